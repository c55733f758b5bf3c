//! Record batch tests: a golden batch assembled from the spec, round trips in every codec, and
//! the broker-side validation's refusals.

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::error::ProtocolError;

const ALL: [Compression; 5] = Compression::ALL;

fn rec(offset: i64, ts: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    Record {
        offset,
        timestamp: ts,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: vec![],
    }
}

/// One record, key "k", value "v", at base offset 0 and timestamp 1000, laid out by hand from
/// the protocol guide. The CRC-32C was computed separately with a bitwise reference
/// implementation (polynomial 0x82F63B78) over attributes..end.
const GOLDEN: &[u8] = &[
    0, 0, 0, 0, 0, 0, 0, 0, // base offset
    0, 0, 0, 58, // batch length
    0xff, 0xff, 0xff, 0xff, // partition leader epoch
    2,    // magic
    0x71, 0x6a, 0x61, 0x89, // crc
    0, 0, // attributes
    0, 0, 0, 0, // last offset delta
    0, 0, 0, 0, 0, 0, 0x03, 0xe8, // base timestamp 1000
    0, 0, 0, 0, 0, 0, 0x03, 0xe8, // max timestamp 1000
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producer id -1
    0xff, 0xff, // producer epoch -1
    0xff, 0xff, 0xff, 0xff, // base sequence -1
    0, 0, 0, 1,    // record count
    0x10, // record length 8 (zig-zag)
    0,    // attributes
    0,    // timestamp delta
    0,    // offset delta
    0x02, b'k', // key
    0x02, b'v', // value
    0,    // header count
];

/// CRC-32C one bit at a time, straight from the polynomial: an implementation independent of
/// the `crc32c` crate that encode uses, so the golden CRCs are checked twice.
fn bitwise_crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn stored_crc(batch: &[u8]) -> u32 {
    u32::from_be_bytes(batch[17..21].try_into().unwrap())
}

#[test]
fn golden_crcs_match_a_bitwise_crc32c() {
    assert_eq!(bitwise_crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(bitwise_crc32c(&GOLDEN[21..]), stored_crc(GOLDEN));
    assert_eq!(bitwise_crc32c(&GOLDEN_2[21..]), stored_crc(GOLDEN_2));
}

/// Two records at base offset 5: a null key with one header whose value is null, then a null
/// value one millisecond before the base timestamp (a negative delta). Laid out by hand.
const GOLDEN_2: &[u8] = &[
    0, 0, 0, 0, 0, 0, 0, 5, // base offset 5
    0, 0, 0, 69, // batch length: 49 + 20 bytes of records
    0xff, 0xff, 0xff, 0xff, // partition leader epoch
    2,    // magic
    0x7b, 0xfc, 0x36, 0x1c, // crc
    0, 0, // attributes
    0, 0, 0, 1, // last offset delta
    0, 0, 0, 0, 0, 0, 0x07, 0xd0, // base timestamp 2000
    0, 0, 0, 0, 0, 0, 0x07, 0xd0, // max timestamp 2000
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producer id -1
    0xff, 0xff, // producer epoch -1
    0xff, 0xff, 0xff, 0xff, // base sequence -1
    0, 0, 0, 2,    // record count
    0x16, // record length 11
    0,    // attributes
    0,    // timestamp delta 0
    0,    // offset delta 0
    0x01, // key: null
    0x04, b'a', b'b', // value "ab"
    0x02, // one header
    0x02, b'h', // header key "h"
    0x01, // header value: null
    0x0e, // record length 7
    0,    // attributes
    0x01, // timestamp delta -1
    0x02, // offset delta 1
    0x02, b'k', // key "k"
    0x01, // value: null
    0,    // no headers
];

#[test]
fn golden_batch_with_nulls_headers_and_a_negative_delta() {
    let mut first = rec(5, 2000, None, Some(b"ab"));
    first.headers = vec![RecordHeader {
        key: "h".into(),
        value: None,
    }];
    let batch = RecordBatch::new(vec![first, rec(6, 1999, Some(b"k"), None)]);
    assert_eq!(&batch.encode().unwrap()[..], GOLDEN_2);
    assert_eq!(RecordBatch::decode(GOLDEN_2, 1 << 20).unwrap(), batch);
    RecordBatch::validate(GOLDEN_2, 1 << 20).unwrap();
}

#[test]
fn golden_batch_encodes_and_decodes() {
    let batch = RecordBatch::new(vec![rec(0, 1000, Some(b"k"), Some(b"v"))]);
    assert_eq!(&batch.encode().unwrap()[..], GOLDEN);
    let decoded = RecordBatch::decode(GOLDEN, 1 << 20).unwrap();
    assert_eq!(decoded, batch);
    RecordBatch::validate(GOLDEN, 1 << 20).unwrap();
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

fn sample_batch(codec: Compression) -> RecordBatch {
    let mut records = vec![
        rec(10, 5000, Some(b"key"), Some(b"value")),
        rec(11, 4999, None, Some(b"")),
        rec(12, 6000, Some(b""), None),
    ];
    records[0].headers = vec![
        RecordHeader {
            key: "h1".into(),
            value: Some(Bytes::from_static(b"\x00\xff")),
        },
        RecordHeader {
            key: "null".into(),
            value: None,
        },
    ];
    let mut b = RecordBatch::new(records);
    b.compression = codec;
    b.producer_id = 7;
    b.producer_epoch = 1;
    b.base_sequence = 42;
    b
}

#[test]
fn every_codec_round_trips_keys_values_and_headers() {
    for codec in ALL {
        let batch = sample_batch(codec);
        let bytes = batch.encode().unwrap();
        verify_crc(&bytes).unwrap();
        RecordBatch::validate(&bytes, 1 << 20).unwrap();
        let back = RecordBatch::decode(&bytes, 1 << 20).unwrap();
        assert_eq!(back, batch, "{codec:?}");
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.compression().unwrap(), codec);
        assert_eq!(h.last_offset(), 12);
        assert_eq!(h.max_timestamp, 6000);
        assert_eq!(h.last_sequence(), 44);
    }
}

/// Records written one at a time and finished later must be the very bytes `encode` makes
/// of the same records, in every codec: producers rely on it to skip building `Record`s.
#[test]
fn records_written_as_they_come_finish_into_the_encoded_batch() {
    for codec in ALL {
        let batch = sample_batch(codec);
        let mut buf = BytesMut::new();
        buf.put_bytes(0, BATCH_HEADER_SIZE);
        for r in &batch.records {
            let before = buf.len();
            let (offset_delta, ts_delta) = (
                (r.offset - batch.base_offset) as i32,
                r.timestamp - batch.base_timestamp,
            );
            let (key, value) = (r.key.as_deref(), r.value.as_deref());
            write_record(&mut buf, offset_delta, ts_delta, key, value, &r.headers);
            assert_eq!(
                buf.len() - before,
                encoded_record_len(offset_delta, ts_delta, key, value, &r.headers)
            );
        }
        let mut fields = BatchFields::new(3, batch.base_timestamp, batch.max_timestamp);
        fields.base_offset = batch.base_offset;
        fields.compression = codec;
        fields.producer_id = 7;
        fields.producer_epoch = 1;
        fields.base_sequence = 42;
        let finished = finish_batch(buf, &fields).unwrap();
        assert_eq!(finished, batch.encode().unwrap(), "{codec:?}");
    }
    let short = BytesMut::from(&[0u8; 10][..]);
    let fields = BatchFields::new(0, -1, -1);
    assert!(matches!(
        finish_batch(short, &fields),
        Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn a_flipped_bit_fails_the_crc() {
    let mut bytes = BytesMut::from(&sample_batch(Compression::None).encode().unwrap()[..]);
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    assert!(matches!(
        RecordBatch::validate(&bytes, 1 << 20),
        Err(ProtocolError::CorruptBatch(_))
    ));
}

#[test]
fn validate_refuses_gapped_offsets_and_count_mismatch() {
    let mut gapped = RecordBatch::new(vec![
        rec(0, 1, None, Some(b"a")),
        rec(2, 1, None, Some(b"b")),
    ]);
    gapped.last_offset_delta = 1;
    let bytes = gapped.encode().unwrap();
    assert!(matches!(
        RecordBatch::validate(&bytes, 1 << 20),
        Err(ProtocolError::InvalidRecord(_))
    ));
    let mut short = RecordBatch::new(vec![rec(0, 1, None, Some(b"a"))]);
    short.last_offset_delta = 3;
    let bytes = short.encode().unwrap();
    assert!(matches!(
        RecordBatch::validate(&bytes, 1 << 20),
        Err(ProtocolError::InvalidRecord(_))
    ));
    let empty = RecordBatch::new(vec![]).encode().unwrap();
    assert!(RecordBatch::validate(&empty, 1 << 20).is_err());
}

#[test]
fn batches_iterates_and_stops_at_a_partial_batch() {
    let a = sample_batch(Compression::None).encode().unwrap();
    let b = sample_batch(Compression::Gzip).encode().unwrap();
    let mut all = BytesMut::new();
    all.extend_from_slice(&a);
    all.extend_from_slice(&b);
    all.extend_from_slice(&a[..20]);
    let mut it = Batches::new(all.freeze());
    assert_eq!(it.next().unwrap().unwrap().1, a);
    assert_eq!(it.next().unwrap().unwrap().1, b);
    assert!(it.next().is_none());
    assert_eq!(it.remainder(), 20);
}

/// A record's key, value, headers and timestamp offset, before it is given an offset.
type RecordParts = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    i64,
);

fn arb_record() -> impl Strategy<Value = RecordParts> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            (
                "[a-z]{0,8}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
            ),
            0..3,
        ),
        -1000i64..1000,
    )
}

proptest! {
    #[test]
    fn random_batches_round_trip(
        recs in proptest::collection::vec(arb_record(), 1..30),
        codec in 0usize..5,
        base in 0i64..1_000_000,
    ) {
        let records = recs
            .into_iter()
            .enumerate()
            .map(|(i, (k, v, hs, dt))| Record {
                offset: base + i as i64,
                timestamp: 1_700_000_000_000 + dt,
                key: k.map(Bytes::from),
                value: v.map(Bytes::from),
                headers: hs
                    .into_iter()
                    .map(|(key, value)| RecordHeader { key, value: value.map(Bytes::from) })
                    .collect(),
            })
            .collect();
        let mut batch = RecordBatch::new(records);
        batch.compression = ALL[codec];
        let bytes = batch.encode().unwrap();
        RecordBatch::validate(&bytes, 1 << 20).unwrap();
        prop_assert_eq!(RecordBatch::decode(&bytes, 1 << 20).unwrap(), batch);
    }

    #[test]
    fn mutated_batches_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), codec in 0usize..5) {
        let bytes = sample_batch(ALL[codec]).encode().unwrap();
        let mut m = bytes.to_vec();
        let i = pos.index(m.len());
        m[i] = byte;
        let _ = RecordBatch::decode(&m, 1 << 16);
        let _ = RecordBatch::validate(&m, 1 << 16);
    }
}

/// A batch around an arbitrary records section, with a correct CRC, so tests reach the record
/// parser with bytes encode would never produce.
fn wrap(section: &[u8], count: i32, last_offset_delta: i32, codec: Compression) -> Vec<u8> {
    let mut b = Vec::with_capacity(BATCH_HEADER_SIZE + section.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((BATCH_HEADER_SIZE - LOG_OVERHEAD + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&codec.attribute_bits().to_be_bytes());
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&1000i64.to_be_bytes());
    b.extend_from_slice(&1000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    super::batch::write_crc(&mut b);
    b
}

/// The records section of an uncompressed encoded batch.
fn section_of(batch: &RecordBatch) -> Vec<u8> {
    batch.encode().unwrap()[BATCH_HEADER_SIZE..].to_vec()
}

#[test]
fn wrap_matches_encode() {
    let batch = RecordBatch::new(vec![rec(0, 1000, Some(b"k"), Some(b"v"))]);
    assert_eq!(wrap(&section_of(&batch), 1, 0, Compression::None), GOLDEN);
}

#[test]
fn empty_batches_round_trip_in_every_codec_but_are_not_valid_produce_input() {
    for codec in ALL {
        let mut batch = RecordBatch::new(vec![]);
        batch.compression = codec;
        let bytes = batch.encode().unwrap();
        assert_eq!(
            RecordBatch::decode(&bytes, 1 << 20).unwrap(),
            batch,
            "{codec:?}"
        );
        assert!(matches!(
            RecordBatch::validate(&bytes, 1 << 20),
            Err(ProtocolError::InvalidRecord(_))
        ));
    }
}

#[test]
fn a_decompression_bomb_inside_a_batch_fails_cleanly() {
    let zeros = vec![0u8; 100 << 20];
    for codec in [Compression::Gzip, Compression::Zstd] {
        let bomb = codec.compress(&zeros).unwrap();
        let batch = wrap(&bomb, 1, 0, codec);
        assert!(
            batch.len() < 1 << 20,
            "{codec:?} bomb is {} bytes",
            batch.len()
        );
        assert!(matches!(
            RecordBatch::decode(&batch, 1 << 20),
            Err(ProtocolError::Compression(_))
        ));
        assert!(matches!(
            RecordBatch::validate(&batch, 1 << 20),
            Err(ProtocolError::Compression(_))
        ));
    }
}

#[test]
fn decode_rejects_bad_counts_and_trailing_bytes() {
    let one = section_of(&RecordBatch::new(vec![rec(
        0,
        1000,
        Some(b"k"),
        Some(b"v"),
    )]));
    let negative = wrap(&one, -1, 0, Compression::None);
    assert!(matches!(
        RecordBatch::decode(&negative, 1 << 20),
        Err(ProtocolError::InvalidRecord(_))
    ));
    assert!(RecordBatch::validate(&negative, 1 << 20).is_err());
    // A count far beyond what nine bytes can hold is refused before anything is sized by it.
    let huge = wrap(&one, i32::MAX, i32::MAX - 1, Compression::None);
    assert!(matches!(
        RecordBatch::decode(&huge, 1 << 20),
        Err(ProtocolError::CorruptBatch(_))
    ));
    assert!(matches!(
        RecordBatch::validate(&huge, 1 << 20),
        Err(ProtocolError::CorruptBatch(_))
    ));
    let mut trailing = one.clone();
    trailing.push(0);
    let trailing = wrap(&trailing, 1, 0, Compression::None);
    assert!(matches!(
        RecordBatch::decode(&trailing, 1 << 20),
        Err(ProtocolError::CorruptBatch(_))
    ));
    assert!(matches!(
        RecordBatch::validate(&trailing, 1 << 20),
        Err(ProtocolError::CorruptBatch(_))
    ));
}

#[test]
fn a_record_length_must_bound_its_fields_exactly() {
    let one = section_of(&RecordBatch::new(vec![rec(
        0,
        1000,
        Some(b"k"),
        Some(b"v"),
    )]));
    assert_eq!(one[0], 0x10);
    // Claim one byte more than the fields use, and supply it.
    let mut long = one.clone();
    long[0] = 0x12;
    long.push(0);
    // Claim one byte fewer: the header count falls outside the record.
    let mut short = one.clone();
    short[0] = 0x0e;
    // A key longer than the record.
    let mut overrun = one.clone();
    overrun[4] = 0x7e;
    for section in [long, short, overrun] {
        let batch = wrap(&section, 1, 0, Compression::None);
        assert!(matches!(
            RecordBatch::decode(&batch, 1 << 20),
            Err(ProtocolError::CorruptBatch(_))
        ));
        assert!(matches!(
            RecordBatch::validate(&batch, 1 << 20),
            Err(ProtocolError::CorruptBatch(_))
        ));
    }
}

#[test]
fn header_keys_need_utf8_to_decode_but_not_to_validate() {
    // One record: no key, no value, one header with key 0xff and a null value.
    let body = [0u8, 0, 0, 0x01, 0x01, 0x02, 0x02, 0xff, 0x01];
    let mut section = vec![(body.len() as u8) << 1];
    section.extend_from_slice(&body);
    let batch = wrap(&section, 1, 0, Compression::None);
    RecordBatch::validate(&batch, 1 << 20).unwrap();
    assert!(matches!(
        RecordBatch::decode(&batch, 1 << 20),
        Err(ProtocolError::InvalidRecord(_))
    ));
    // A null header key is refused by both.
    let body = [0u8, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01];
    let mut section = vec![(body.len() as u8) << 1];
    section.extend_from_slice(&body);
    let batch = wrap(&section, 1, 0, Compression::None);
    assert!(matches!(
        RecordBatch::validate(&batch, 1 << 20),
        Err(ProtocolError::InvalidRecord(_))
    ));
    assert!(RecordBatch::decode(&batch, 1 << 20).is_err());
}

#[test]
fn deltas_that_overflow_wrap_instead_of_panicking() {
    let mut batch = RecordBatch::new(vec![rec(i64::MAX, i64::MAX, None, Some(b"x"))]);
    batch
        .records
        .push(rec(i64::MIN, i64::MIN, None, Some(b"y")));
    batch.last_offset_delta = 1;
    let bytes = batch.encode().unwrap();
    RecordBatch::validate(&bytes, 1 << 20).unwrap();
    assert_eq!(RecordBatch::decode(&bytes, 1 << 20).unwrap(), batch);
}

#[test]
fn decode_bytes_shares_the_batch_buffer() {
    let bytes = sample_batch(Compression::None).encode().unwrap();
    let decoded = RecordBatch::decode_bytes(&bytes, 1 << 20).unwrap();
    assert_eq!(decoded, sample_batch(Compression::None));
    let value = decoded.records[0].value.as_ref().unwrap();
    let batch_range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    assert!(batch_range.contains(&(value.as_ptr() as usize)));
    let gz = sample_batch(Compression::Gzip).encode().unwrap();
    assert_eq!(
        RecordBatch::decode_bytes(&gz, 1 << 20).unwrap(),
        sample_batch(Compression::Gzip)
    );
}

#[test]
fn validate_accepts_transactional_and_control_batches() {
    let mut batch = sample_batch(Compression::Lz4);
    batch
        .records
        .iter_mut()
        .enumerate()
        .for_each(|(i, r)| r.offset = i as i64);
    batch.base_offset = 0;
    batch.last_offset_delta = 2;
    batch.transactional = true;
    batch.control = true;
    batch.log_append_time = true;
    let bytes = batch.encode().unwrap();
    let h = BatchHeader::parse(&bytes).unwrap();
    assert!(h.is_transactional() && h.is_control() && h.has_log_append_time());
    assert_eq!(h.attributes, 0x3b);
    RecordBatch::validate(&bytes, 1 << 20).unwrap();
    assert_eq!(RecordBatch::decode(&bytes, 1 << 20).unwrap(), batch);
}

proptest! {
    /// Random records sections behind a valid header and CRC: the parser itself is exercised,
    /// not just the CRC check that stops random bytes.
    #[test]
    fn random_sections_behind_a_valid_crc_never_panic(
        section in proptest::collection::vec(any::<u8>(), 0..300),
        count in -2i32..40,
        codec in 0usize..5,
    ) {
        let payload = ALL[codec].compress(&section).unwrap();
        let batch = wrap(&payload, count, count.saturating_sub(1), ALL[codec]);
        let _ = RecordBatch::decode(&batch, 1 << 16);
        let _ = RecordBatch::validate(&batch, 1 << 16);
        let _ = RecordBatch::decode_bytes(&Bytes::from(batch), 1 << 16);
    }
}
