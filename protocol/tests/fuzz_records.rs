//! Fuzzing of the record batch readers with many proptest cases: arbitrary bytes, mutated valid
//! batches of every codec, and mutated compressed streams. Errors are fine; panics are not.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::records::{
    Batches, Compression, Record, RecordBatch, RecordHeader, BATCH_HEADER_SIZE,
};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

const LIMIT: usize = 1 << 16;

fn valid_batch(codec: Compression, n: i64) -> Vec<u8> {
    let records = (0..n)
        .map(|i| Record {
            offset: 100 + i,
            timestamp: 1_700_000_000_000 + i * 3 - 5,
            key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 4 != 1).then(|| Bytes::from(vec![i as u8; (i * 7) as usize % 50])),
            headers: (0..i % 3)
                .map(|h| RecordHeader {
                    key: format!("h{h}"),
                    value: (h != 1).then(|| Bytes::from_static(b"hv")),
                })
                .collect(),
        })
        .collect();
    let mut b = RecordBatch::new(records);
    b.compression = codec;
    b.encode().unwrap().to_vec()
}

/// Everything that reads a batch, fed the same bytes.
fn read_all(data: &[u8]) {
    let _ = RecordBatch::decode(data, LIMIT);
    let _ = RecordBatch::validate(data, LIMIT);
    let _ = RecordBatch::decode_bytes(&Bytes::copy_from_slice(data), LIMIT);
    for batch in Batches::new(Bytes::copy_from_slice(data)).flatten() {
        let _ = RecordBatch::decode(&batch.1, LIMIT);
    }
}

/// Puts a correct CRC back so a mutation reaches the parsers behind the CRC check.
fn fix_crc(data: &mut [u8]) {
    if data.len() >= BATCH_HEADER_SIZE {
        let crc = crc32c::crc32c(&data[21..]);
        data[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        read_all(&data);
        for c in CODECS {
            let _ = c.decompress(&data, LIMIT);
        }
    }

    #[test]
    fn mutated_valid_batches_never_panic(
        codec in 0usize..5,
        n in 0i64..8,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        recrc in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = valid_batch(CODECS[codec], n);
        for (i, b) in edits {
            let at = i.index(data.len());
            data[at] = b;
        }
        if recrc {
            fix_crc(&mut data);
        }
        read_all(&data);
        data.truncate(cut.index(data.len() + 1));
        read_all(&data);
    }

    #[test]
    fn mutated_compressed_streams_never_panic(
        codec in 1usize..5,
        payload in proptest::collection::vec(any::<u8>(), 0..2000),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let c = CODECS[codec];
        let mut z = c.compress(&payload).unwrap();
        prop_assert_eq!(&c.decompress(&z, payload.len()).unwrap(), &payload);
        for (i, b) in edits {
            let at = i.index(z.len());
            z[at] = b;
        }
        let _ = c.decompress(&z, LIMIT);
        z.truncate(cut.index(z.len() + 1));
        let _ = c.decompress(&z, LIMIT);
    }

    #[test]
    fn concatenated_mutated_batches_never_panic(
        a in 0usize..5,
        b in 0usize..5,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut data = valid_batch(CODECS[a], 3);
        data.extend(valid_batch(CODECS[b], 5));
        let i = at.index(data.len());
        data[i] = byte;
        read_all(&data);
    }
}
