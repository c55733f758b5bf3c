//! Property-based fuzzing of everything that reads untrusted bytes: every request body of every
//! supported API and version, request headers, record batches and decompression, the
//! `__consumer_offsets` keys and values read back from disk, and the subscriptions and
//! assignments other group members send. None may panic.

mod common;

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::api::SUPPORTED;
use sluice_protocol::consumer_protocol::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription,
};
use sluice_protocol::group_records::{GroupMetadataValue, GroupRecordKey, OffsetCommitValue};
use sluice_protocol::header::RequestHeader;
use sluice_protocol::records::{Batches, Compression, Record, RecordBatch};

fn decode_any(api_key: i16, version: i16, body: Bytes) {
    let _ = common::reencode_request(api_key, version, body);
}

fn valid_batch(codec: Compression) -> Vec<u8> {
    let records = (0..5)
        .map(|i| Record {
            offset: i,
            timestamp: 1000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![i as u8; 30])),
            headers: vec![],
        })
        .collect();
    let mut b = RecordBatch::new(records);
    b.compression = codec;
    b.encode().unwrap().to_vec()
}

/// The fuzz property below reaches a decoder only through `reencode_request`: an API added to
/// `SUPPORTED` without an arm there would be advertised but never fuzzed.
#[test]
fn every_supported_api_has_a_decoder_to_fuzz() {
    for s in SUPPORTED {
        for v in s.min..=s.max {
            assert!(
                common::reencode_request(s.api_key, v, Bytes::new()).is_some(),
                "{} (key {}) v{v} has no arm in common::reencode_request",
                s.name,
                s.api_key
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn request_bodies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let body = Bytes::from(data);
        for s in SUPPORTED {
            for v in s.min..=s.max {
                decode_any(s.api_key, v, body.clone());
            }
        }
        for hv in 0..=2 {
            let _ = RequestHeader::decode(&mut body.clone(), hv);
        }
    }

    #[test]
    fn group_decoders_never_panic(
        version in 0i16..6,
        data in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Prefixed with a plausible version so most inputs get past the first two bytes.
        let mut prefixed = version.to_be_bytes().to_vec();
        prefixed.extend_from_slice(&data);
        for bytes in [&data[..], &prefixed[..]] {
            let _ = GroupRecordKey::decode(bytes);
            let _ = OffsetCommitValue::decode(bytes);
            let _ = GroupMetadataValue::decode(bytes);
            let bytes = Bytes::copy_from_slice(bytes);
            let _ = ConsumerProtocolSubscription::deserialize(&bytes);
            let _ = ConsumerProtocolAssignment::deserialize(&bytes);
        }
    }

    #[test]
    fn record_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = RecordBatch::decode(&data, 1 << 16);
        let _ = RecordBatch::validate(&data, 1 << 16);
        for b in Batches::new(Bytes::from(data.clone())) {
            let _ = b;
        }
        for c in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let _ = c.decompress(&data, 1 << 16);
        }
    }

    #[test]
    fn mutated_valid_batches_never_panic(
        codec in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = valid_batch(Compression::ALL[codec]);
        for (i, b) in edits {
            let at = i.index(data.len());
            data[at] = b;
        }
        let _ = RecordBatch::decode(&data, 1 << 16);
        let _ = RecordBatch::validate(&data, 1 << 16);
        data.truncate(cut.index(data.len() + 1));
        let _ = RecordBatch::decode(&data, 1 << 16);
        for b in Batches::new(Bytes::from(data)) {
            let _ = b;
        }
    }
}
