//! Property-based fuzzing of everything that reads untrusted bytes: every request body of every
//! API and version the codec knows (the controller's included), the responses a follower or a
//! broker reads from its leader or controller, request headers, record batches and
//! decompression, the `__consumer_offsets` keys and values read back from disk, and the
//! subscriptions and assignments other group members send. None may panic.

mod common;

use bytes::Bytes;
use proptest::prelude::*;
use sluice_protocol::api::known;
use sluice_protocol::api::ApiMessage;
use sluice_protocol::consumer_protocol::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription,
};
use sluice_protocol::group_records::{GroupMetadataValue, GroupRecordKey, OffsetCommitValue};
use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::records::{Batches, Compression, Record, RecordBatch};
use sluice_protocol::wire::Uuid;

fn decode_any(api_key: i16, version: i16, body: Bytes) {
    let _ = common::reencode_request(api_key, version, body);
}

/// Every version of a response that a broker decodes from another node rather than a client.
fn decode_all_versions<T: ApiMessage>(body: &Bytes) {
    for v in T::MIN_VERSION..=T::MAX_VERSION {
        let _ = T::decode_body(body.clone(), v);
    }
}

/// Valid encodings of the replication and controller requests at every version, as seeds that
/// random edits turn into inputs reaching deep into the nested structs.
fn replication_requests() -> Vec<(i16, i16, Vec<u8>)> {
    fn all<T: ApiMessage>(msg: T, out: &mut Vec<(i16, i16, Vec<u8>)>) {
        for v in T::MIN_VERSION..=T::MAX_VERSION {
            let mut buf = bytes::BytesMut::new();
            msg.encode_body(&mut buf, v);
            out.push((T::API_KEY, v, buf.to_vec()));
        }
    }
    let mut out = Vec::new();
    all(
        OffsetForLeaderEpochRequest {
            replica_id: 1,
            topics: vec![OffsetForLeaderEpochRequestTopic {
                topic: "t".into(),
                partitions: vec![OffsetForLeaderEpochRequestPartition {
                    partition: 0,
                    current_leader_epoch: 3,
                    leader_epoch: 2,
                }],
            }],
        },
        &mut out,
    );
    all(
        AlterPartitionRequest {
            broker_id: 1,
            broker_epoch: 5,
            topics: vec![AlterPartitionRequestTopic {
                topic_name: "t".into(),
                topic_id: Uuid([7; 16]),
                partitions: vec![AlterPartitionRequestPartition {
                    partition_index: 0,
                    leader_epoch: 1,
                    new_isr: vec![1, 2],
                    new_isr_with_epochs: vec![AlterPartitionBrokerState {
                        broker_id: 2,
                        broker_epoch: 9,
                    }],
                    leader_recovery_state: 0,
                    partition_epoch: 4,
                }],
            }],
        },
        &mut out,
    );
    all(
        BrokerRegistrationRequest {
            broker_id: 1,
            cluster_id: "c".into(),
            incarnation_id: Uuid([1; 16]),
            listeners: vec![BrokerRegistrationListener {
                name: "PLAINTEXT".into(),
                host: "h".into(),
                port: 9092,
                security_protocol: 0,
            }],
            features: vec![BrokerRegistrationFeature {
                name: "metadata.version".into(),
                min_supported_version: 1,
                max_supported_version: 21,
            }],
            rack: Some("r".into()),
            is_migrating_zk_broker: false,
            log_dirs: vec![Uuid([2; 16])],
            previous_broker_epoch: 3,
        },
        &mut out,
    );
    all(
        BrokerHeartbeatRequest {
            broker_id: 1,
            broker_epoch: 5,
            current_metadata_offset: 100,
            want_fence: false,
            want_shut_down: false,
            offline_log_dirs: vec![Uuid([3; 16])],
        },
        &mut out,
    );
    out
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
/// the codec's tables without an arm there would be decoded but never fuzzed.
#[test]
fn every_known_api_has_a_decoder_to_fuzz() {
    for s in known() {
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
        for s in known() {
            for v in s.min..=s.max {
                decode_any(s.api_key, v, body.clone());
            }
        }
        for hv in 0..=2 {
            let _ = RequestHeader::decode(&mut body.clone(), hv);
        }
    }

    #[test]
    fn replication_responses_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let body = Bytes::from(data);
        decode_all_versions::<FetchResponse>(&body);
        decode_all_versions::<OffsetForLeaderEpochResponse>(&body);
        decode_all_versions::<AlterPartitionResponse>(&body);
        decode_all_versions::<BrokerRegistrationResponse>(&body);
        decode_all_versions::<BrokerHeartbeatResponse>(&body);
    }

    #[test]
    fn mutated_replication_requests_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let seeds = replication_requests();
        let (key, version, mut data) = seeds[seed.index(seeds.len())].clone();
        for (i, b) in edits {
            let at = i.index(data.len());
            data[at] = b;
        }
        decode_any(key, version, Bytes::from(data.clone()));
        data.truncate(cut.index(data.len() + 1));
        decode_any(key, version, Bytes::from(data));
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
