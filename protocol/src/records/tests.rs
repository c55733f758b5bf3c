//! Record batch tests: a golden batch assembled from the spec, round trips in every codec, and
//! the broker-side validation's refusals.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::error::ProtocolError;

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

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
