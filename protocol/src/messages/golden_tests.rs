//! Decoding of hand-assembled bodies laid out field by field from the Kafka message specs, one
//! non-flexible and one flexible version per API, so that a field in the wrong place, version or
//! encoding fails here even when it still round-trips through our own encoder.
//! In flexible versions every struct ends with its own tagged-field section, including a struct
//! that is itself the value of a tagged field (CurrentLeader: 4 + 4 + 1 bytes).

use bytes::{Bytes, BytesMut};

use super::*;
use crate::api::ApiMessage;
use crate::wire::Uuid;

/// Joins byte fragments, so that each commented line is one field.
fn concat(parts: &[&[u8]]) -> Bytes {
    Bytes::from(parts.concat())
}

fn encode<T: ApiMessage>(value: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    value.encode_body(&mut buf, version);
    buf.freeze()
}

// ---- Metadata -----------------------------------------------------------------------------

#[test]
fn metadata_v1_request_with_one_topic() {
    let body = concat(&[
        b"\x00\x00\x00\x01", // topics: array of 1 (int32 count)
        b"\x00\x03foo",      //   name: int16 length 3, "foo"
    ]);
    let req = MetadataRequest::decode_body(body, 1).unwrap();
    let topics = req.topics.unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name.as_deref(), Some("foo"));
    assert_eq!(topics[0].topic_id, Uuid::ZERO);
    // Not on the wire before v4: keeps its spec default.
    assert!(req.allow_auto_topic_creation);
}

#[test]
fn metadata_v1_request_null_topics_means_all() {
    let body = concat(&[b"\xff\xff\xff\xff"]); // topics: null array (int32 -1)
    let req = MetadataRequest::decode_body(body, 1).unwrap();
    assert_eq!(req.topics, None);
}

#[test]
fn metadata_v12_request_by_topic_id() {
    let id: [u8; 16] = *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef";
    let body = concat(&[
        b"\x02", // topics: compact array, 1 element (count + 1)
        &id,     //   topic_id: 16 bytes
        b"\x00", //   name: compact nullable string, null
        b"\x00", //   tagged fields: none
        b"\x00", // allow_auto_topic_creation: false
        // include_cluster_authorized_operations exists only in v8-v10: absent here
        b"\x01", // include_topic_authorized_operations: true
        b"\x00", // tagged fields: none
    ]);
    let req = MetadataRequest::decode_body(body, 12).unwrap();
    let topics = req.topics.unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].topic_id, Uuid(id));
    assert_eq!(topics[0].name, None);
    assert!(!req.allow_auto_topic_creation);
    assert!(!req.include_cluster_authorized_operations);
    assert!(req.include_topic_authorized_operations);
}

#[test]
fn metadata_v9_response_layout() {
    let resp = MetadataResponse {
        throttle_time_ms: 0,
        brokers: vec![MetadataResponseBroker {
            node_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        }],
        cluster_id: Some("c".into()),
        controller_id: 1,
        topics: vec![MetadataResponseTopic {
            error_code: 0,
            name: Some("t".into()),
            is_internal: false,
            partitions: vec![MetadataResponsePartition {
                partition_index: 0,
                leader_id: 1,
                leader_epoch: 0,
                replica_nodes: vec![1],
                isr_nodes: vec![1],
                ..Default::default()
            }],
            ..Default::default()
        }],
        cluster_authorized_operations: i32::MIN,
    };
    let expected = concat(&[
        b"\x00\x00\x00\x00",     // throttle_time_ms
        b"\x02",                 // brokers: compact array of 1
        b"\x00\x00\x00\x01",     //   node_id
        b"\x02h",                //   host: compact string "h"
        b"\x00\x00\x23\x84",     //   port: 9092
        b"\x00",                 //   rack: null
        b"\x00",                 //   tagged fields
        b"\x02c",                // cluster_id: "c"
        b"\x00\x00\x00\x01",     // controller_id
        b"\x02",                 // topics: compact array of 1
        b"\x00\x00",             //   error_code
        b"\x02t",                //   name: "t"
        b"\x00",                 //   is_internal
        b"\x02",                 //   partitions: compact array of 1
        b"\x00\x00",             //     error_code
        b"\x00\x00\x00\x00",     //     partition_index
        b"\x00\x00\x00\x01",     //     leader_id
        b"\x00\x00\x00\x00",     //     leader_epoch
        b"\x02\x00\x00\x00\x01", //     replica_nodes: [1]
        b"\x02\x00\x00\x00\x01", //     isr_nodes: [1]
        b"\x01",                 //     offline_replicas: []
        b"\x00",                 //     tagged fields
        b"\x80\x00\x00\x00",     //   topic_authorized_operations: i32::MIN
        b"\x00",                 //   tagged fields
        b"\x80\x00\x00\x00",     // cluster_authorized_operations (v8-v10 only)
        b"\x00",                 // tagged fields
    ]);
    assert_eq!(encode(&resp, 9), expected);
    assert_eq!(MetadataResponse::decode_body(expected, 9).unwrap(), resp);
}

// ---- Fetch --------------------------------------------------------------------------------

#[test]
fn fetch_v4_request() {
    let body = concat(&[
        b"\xff\xff\xff\xff",                 // replica_id: -1 (consumer)
        b"\x00\x00\x01\xf4",                 // max_wait_ms: 500
        b"\x00\x00\x00\x01",                 // min_bytes: 1
        b"\x03\x20\x00\x00",                 // max_bytes: 52428800 (v3+)
        b"\x01",                             // isolation_level: read committed (v4+)
        b"\x00\x00\x00\x01",                 // topics: array of 1
        b"\x00\x06events",                   //   topic: "events"
        b"\x00\x00\x00\x01",                 //   partitions: array of 1
        b"\x00\x00\x00\x02",                 //     partition: 2
        b"\x00\x00\x00\x00\x00\x00\x00\x2a", //     fetch_offset: 42
        b"\x00\x10\x00\x00",                 //     partition_max_bytes: 1048576
    ]);
    let req = FetchRequest::decode_body(body, 4).unwrap();
    assert_eq!(req.replica_id, -1);
    assert_eq!(req.max_wait_ms, 500);
    assert_eq!(req.min_bytes, 1);
    assert_eq!(req.max_bytes, 52_428_800);
    assert_eq!(req.isolation_level, 1);
    assert_eq!(req.topics.len(), 1);
    assert_eq!(req.topics[0].topic, "events");
    let p = &req.topics[0].partitions[0];
    assert_eq!(
        (p.partition, p.fetch_offset, p.partition_max_bytes),
        (2, 42, 1_048_576)
    );
    // Fields of later versions keep their spec defaults.
    assert_eq!(p.current_leader_epoch, -1);
    assert_eq!(p.log_start_offset, -1);
    assert_eq!(p.last_fetched_epoch, -1);
    assert_eq!(req.session_epoch, -1);
    assert_eq!(req.cluster_id, None);
}

#[test]
fn fetch_v12_request_with_tagged_cluster_id() {
    let body = concat(&[
        b"\xff\xff\xff\xff",                     // replica_id: -1
        b"\x00\x00\x01\xf4",                     // max_wait_ms: 500
        b"\x00\x00\x00\x01",                     // min_bytes: 1
        b"\x7f\xff\xff\xff",                     // max_bytes
        b"\x00",                                 // isolation_level: read uncommitted
        b"\x00\x00\x00\x00",                     // session_id: 0
        b"\xff\xff\xff\xff",                     // session_epoch: -1
        b"\x02",                                 // topics: compact array of 1
        b"\x07events",                           //   topic: compact string "events"
        b"\x02",                                 //   partitions: compact array of 1
        b"\x00\x00\x00\x00",                     //     partition: 0
        b"\x00\x00\x00\x05",                     //     current_leader_epoch: 5
        b"\x00\x00\x00\x00\x00\x00\x00\x64",     //     fetch_offset: 100
        b"\x00\x00\x00\x04",                     //     last_fetched_epoch: 4
        b"\xff\xff\xff\xff\xff\xff\xff\xff",     //     log_start_offset: -1
        b"\x00\x10\x00\x00",                     //     partition_max_bytes
        b"\x00",                                 //     tagged fields: none
        b"\x00",                                 //   tagged fields: none
        b"\x02",                                 // forgotten_topics_data: compact array of 1
        b"\x04old",                              //   topic: "old"
        b"\x03\x00\x00\x00\x01\x00\x00\x00\x03", //   partitions: [1, 3]
        b"\x00",                                 //   tagged fields: none
        b"\x07rack-a",                           // rack_id: "rack-a"
        b"\x01",                                 // tagged fields: 1
        b"\x00\x08",                             //   tag 0 (cluster_id), 8 bytes
        b"\x08cluster",                          //   compact nullable string "cluster"
    ]);
    let req = FetchRequest::decode_body(body, 12).unwrap();
    assert_eq!(req.cluster_id.as_deref(), Some("cluster"));
    assert_eq!(req.max_bytes, i32::MAX);
    assert_eq!((req.session_id, req.session_epoch), (0, -1));
    let p = &req.topics[0].partitions[0];
    assert_eq!(p.current_leader_epoch, 5);
    assert_eq!(p.fetch_offset, 100);
    assert_eq!(p.last_fetched_epoch, 4);
    assert_eq!(p.log_start_offset, -1);
    assert_eq!(req.forgotten_topics_data[0].topic, "old");
    assert_eq!(req.forgotten_topics_data[0].partitions, vec![1, 3]);
    assert_eq!(req.rack_id, "rack-a");
}

#[test]
fn fetch_v12_response_with_tagged_current_leader() {
    let body = concat(&[
        b"\x00\x00\x00\x00",                 // throttle_time_ms
        b"\x00\x00",                         // error_code
        b"\x00\x00\x00\x07",                 // session_id: 7
        b"\x02",                             // responses: compact array of 1
        b"\x02t",                            //   topic: "t"
        b"\x02",                             //   partitions: compact array of 1
        b"\x00\x00\x00\x00",                 //     partition_index: 0
        b"\x00\x06",                         //     error_code: NOT_LEADER_OR_FOLLOWER
        b"\x00\x00\x00\x00\x00\x00\x00\x0a", //     high_watermark: 10
        b"\x00\x00\x00\x00\x00\x00\x00\x0a", //     last_stable_offset: 10
        b"\x00\x00\x00\x00\x00\x00\x00\x00", //     log_start_offset: 0
        b"\x00",                             //     aborted_transactions: null
        b"\xff\xff\xff\xff",                 //     preferred_read_replica: -1
        b"\x04\x01\x02\x03",                 //     records: compact bytes, 3 bytes
        b"\x01",                             //     tagged fields: 1
        b"\x01\x09",                         //       tag 1 (current_leader), 9 bytes
        b"\x00\x00\x00\x03",                 //       leader_id: 3
        b"\x00\x00\x00\x09",                 //       leader_epoch: 9
        b"\x00",                             //       its own tagged fields: none
        b"\x00",                             //   tagged fields: none
        b"\x00",                             // tagged fields: none
    ]);
    let resp = FetchResponse::decode_body(body.clone(), 12).unwrap();
    assert_eq!(resp.session_id, 7);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 6);
    assert_eq!(p.high_watermark, 10);
    assert_eq!(p.aborted_transactions, None);
    assert_eq!(p.preferred_read_replica, -1);
    assert_eq!(p.records.as_deref(), Some(&b"\x01\x02\x03"[..]));
    assert_eq!(
        (p.current_leader.leader_id, p.current_leader.leader_epoch),
        (3, 9)
    );
    // Absent tagged fields keep their spec defaults.
    assert_eq!(
        (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
        (-1, -1)
    );
    assert_eq!((p.snapshot_id.end_offset, p.snapshot_id.epoch), (-1, -1));
    // Encoding gives back the same bytes: tagged fields at their default are not written.
    assert_eq!(encode(&resp, 12), body);
}

#[test]
fn fetch_v12_response_tells_a_follower_where_it_diverged() {
    let body = concat(&[
        b"\x00\x00\x00\x00",                 // throttle_time_ms
        b"\x00\x00",                         // error_code
        b"\x00\x00\x00\x00",                 // session_id
        b"\x02",                             // responses: compact array of 1
        b"\x02t",                            //   topic: "t"
        b"\x02",                             //   partitions: compact array of 1
        b"\x00\x00\x00\x00",                 //     partition_index
        b"\x00\x00",                         //     error_code
        b"\x00\x00\x00\x00\x00\x00\x00\x0a", //     high_watermark: 10
        b"\x00\x00\x00\x00\x00\x00\x00\x0a", //     last_stable_offset: 10
        b"\x00\x00\x00\x00\x00\x00\x00\x00", //     log_start_offset: 0
        b"\x00",                             //     aborted_transactions: null
        b"\xff\xff\xff\xff",                 //     preferred_read_replica: -1
        b"\x01",                             //     records: empty compact bytes
        b"\x02",                             //     tagged fields: 2
        b"\x00\x0d",                         //       tag 0 (diverging_epoch), 13 bytes
        b"\x00\x00\x00\x04",                 //         epoch: 4
        b"\x00\x00\x00\x00\x00\x00\x00\x07", //         end_offset: 7
        b"\x00",                             //         its own tagged fields
        b"\x02\x0d",                         //       tag 2 (snapshot_id), 13 bytes
        b"\x00\x00\x00\x00\x00\x00\x00\x05", //         end_offset: 5 (before the epoch here)
        b"\x00\x00\x00\x03",                 //         epoch: 3
        b"\x00",                             //         its own tagged fields
        b"\x00",                             //   tagged fields
        b"\x00",                             // tagged fields
    ]);
    let resp = FetchResponse::decode_body(body.clone(), 12).unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(
        (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
        (4, 7)
    );
    assert_eq!((p.snapshot_id.end_offset, p.snapshot_id.epoch), (5, 3));
    assert_eq!(p.current_leader, LeaderIdAndEpoch::default());
    assert_eq!(p.records.as_deref(), Some(&b""[..]));
    assert_eq!(encode(&resp, 12), body);
}

#[test]
fn fetch_v12_request_from_a_follower() {
    let req = FetchRequest {
        replica_id: 2,
        max_wait_ms: 500,
        min_bytes: 1,
        topics: vec![FetchRequestTopic {
            topic: "t".into(),
            partitions: vec![FetchRequestPartition {
                partition: 0,
                current_leader_epoch: 5,
                fetch_offset: 8,
                last_fetched_epoch: 4,
                log_start_offset: 0,
                partition_max_bytes: 1 << 20,
            }],
        }],
        ..Default::default()
    };
    let expected = concat(&[
        b"\x00\x00\x00\x02",                 // replica_id: broker 2 (v0-v14)
        b"\x00\x00\x01\xf4",                 // max_wait_ms
        b"\x00\x00\x00\x01",                 // min_bytes
        b"\x7f\xff\xff\xff",                 // max_bytes (default)
        b"\x00",                             // isolation_level
        b"\x00\x00\x00\x00",                 // session_id
        b"\xff\xff\xff\xff",                 // session_epoch: -1
        b"\x02\x02t",                        // topics: compact array of 1; topic "t"
        b"\x02",                             //   partitions: compact array of 1
        b"\x00\x00\x00\x00",                 //     partition
        b"\x00\x00\x00\x05",                 //     current_leader_epoch: 5
        b"\x00\x00\x00\x00\x00\x00\x00\x08", //     fetch_offset: 8
        b"\x00\x00\x00\x04",                 //     last_fetched_epoch: 4
        b"\x00\x00\x00\x00\x00\x00\x00\x00", //     log_start_offset: 0
        b"\x00\x10\x00\x00",                 //     partition_max_bytes
        b"\x00",                             //     tagged fields
        b"\x00",                             //   tagged fields
        b"\x01",                             // forgotten_topics_data: empty
        b"\x01",                             // rack_id: ""
        b"\x00",                             // tagged fields: cluster_id null, so none
    ]);
    assert_eq!(encode(&req, 12), expected);
    assert_eq!(FetchRequest::decode_body(expected, 12).unwrap(), req);
}

// ---- Produce ------------------------------------------------------------------------------

#[test]
fn produce_v3_request() {
    let body = concat(&[
        b"\xff\xff",             // transactional_id: null (int16 -1)
        b"\xff\xff",             // acks: -1 (all)
        b"\x00\x00\x75\x30",     // timeout_ms: 30000
        b"\x00\x00\x00\x01",     // topic_data: array of 1
        b"\x00\x06events",       //   name: "events"
        b"\x00\x00\x00\x01",     //   partition_data: array of 1
        b"\x00\x00\x00\x00",     //     index: 0
        b"\x00\x00\x00\x05",     //     records: int32 length 5
        b"\xaa\xbb\xcc\xdd\xee", //       (opaque batch bytes)
    ]);
    let req = ProduceRequest::decode_body(body, 3).unwrap();
    assert_eq!(req.transactional_id, None);
    assert_eq!(req.acks, -1);
    assert_eq!(req.timeout_ms, 30_000);
    assert_eq!(req.topic_data[0].name, "events");
    let p = &req.topic_data[0].partition_data[0];
    assert_eq!(p.index, 0);
    assert_eq!(p.records.as_deref(), Some(&b"\xaa\xbb\xcc\xdd\xee"[..]));
}

#[test]
fn produce_v9_request_with_compact_records() {
    let body = concat(&[
        b"\x03tx",               // transactional_id: compact nullable string "tx"
        b"\x00\x01",             // acks: 1
        b"\x00\x00\x13\x88",     // timeout_ms: 5000
        b"\x02",                 // topic_data: compact array of 1
        b"\x07events",           //   name: "events"
        b"\x02",                 //   partition_data: compact array of 1
        b"\x00\x00\x00\x01",     //     index: 1
        b"\x05\x01\x02\x03\x04", //     records: compact bytes (varint 4 + 1), 4 bytes
        b"\x00",                 //     tagged fields: none
        b"\x00",                 //   tagged fields: none
        b"\x00",                 // tagged fields: none
    ]);
    let req = ProduceRequest::decode_body(body, 9).unwrap();
    assert_eq!(req.transactional_id.as_deref(), Some("tx"));
    assert_eq!(req.acks, 1);
    assert_eq!(req.timeout_ms, 5000);
    let p = &req.topic_data[0].partition_data[0];
    assert_eq!(p.index, 1);
    assert_eq!(p.records.as_deref(), Some(&b"\x01\x02\x03\x04"[..]));
}

#[test]
fn produce_v9_request_null_records() {
    let body = concat(&[
        b"\x00",             // transactional_id: null
        b"\x00\x00",         // acks: 0
        b"\x00\x00\x00\x00", // timeout_ms: 0
        b"\x02\x02t",        // topic_data: compact array of 1; name "t"
        b"\x02",             //   partition_data: compact array of 1
        b"\x00\x00\x00\x00", //     index: 0
        b"\x00",             //     records: compact null
        b"\x00\x00\x00",     // tagged fields of the partition, the topic, the request
    ]);
    let req = ProduceRequest::decode_body(body, 9).unwrap();
    assert_eq!(req.topic_data[0].partition_data[0].records, None);
}

#[test]
fn produce_v10_response_writes_tagged_leader_and_endpoints() {
    let resp = ProduceResponse {
        responses: vec![ProduceResponseTopic {
            name: "t".into(),
            partition_responses: vec![ProduceResponsePartition {
                index: 0,
                error_code: 6,
                base_offset: -1,
                current_leader: LeaderIdAndEpoch {
                    leader_id: 2,
                    leader_epoch: 5,
                },
                ..Default::default()
            }],
        }],
        throttle_time_ms: 0,
        node_endpoints: vec![NodeEndpoint {
            node_id: 2,
            host: "h".into(),
            port: 9092,
            rack: None,
        }],
    };
    let expected = concat(&[
        b"\x02",                             // responses: compact array of 1
        b"\x02t",                            //   name: "t"
        b"\x02",                             //   partition_responses: compact array of 1
        b"\x00\x00\x00\x00",                 //     index
        b"\x00\x06",                         //     error_code
        b"\xff\xff\xff\xff\xff\xff\xff\xff", //     base_offset: -1
        b"\xff\xff\xff\xff\xff\xff\xff\xff", //     log_append_time_ms: -1 (default)
        b"\xff\xff\xff\xff\xff\xff\xff\xff", //     log_start_offset: -1 (default)
        b"\x01",                             //     record_errors: empty
        b"\x00",                             //     error_message: null
        b"\x01\x00\x09",     //     tagged fields: 1; tag 0 (current_leader), 9 bytes
        b"\x00\x00\x00\x02", //       leader_id
        b"\x00\x00\x00\x05", //       leader_epoch
        b"\x00",             //       its own tagged fields: none
        b"\x00",             //   tagged fields: none
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x01\x00\x0d",     // tagged fields: 1; tag 0 (node_endpoints), 13 bytes
        b"\x02",             //   compact array of 1
        b"\x00\x00\x00\x02", //     node_id
        b"\x02h",            //     host: "h"
        b"\x00\x00\x23\x84", //     port: 9092
        b"\x00",             //     rack: null
        b"\x00",             //     tagged fields: none
    ]);
    assert_eq!(encode(&resp, 10), expected);
    assert_eq!(ProduceResponse::decode_body(expected, 10).unwrap(), resp);

    // v9 is flexible but predates both tagged fields: neither is written.
    let v9 = ProduceResponse::decode_body(encode(&resp, 9), 9).unwrap();
    assert!(v9.node_endpoints.is_empty());
    assert_eq!(
        v9.responses[0].partition_responses[0].current_leader,
        LeaderIdAndEpoch::default()
    );
}

// ---- consumer groups ----------------------------------------------------------------------

#[test]
fn join_group_v0_request() {
    let body = concat(&[
        b"\x00\x03grp",      // group_id: "grp"
        b"\x00\x00\x27\x10", // session_timeout_ms: 10000
        // rebalance_timeout_ms is v1+: absent
        b"\x00\x00", // member_id: "" (first join)
        // group_instance_id is v5+: absent
        b"\x00\x08consumer", // protocol_type: "consumer"
        b"\x00\x00\x00\x01", // protocols: array of 1
        b"\x00\x05range",    //   name: "range"
        b"\x00\x00\x00\x03", //   metadata: int32 length 3
        b"\x00\x01\x02",     //     (opaque subscription bytes)
                             // reason is v8+: absent
    ]);
    let req = JoinGroupRequest::decode_body(body.clone(), 0).unwrap();
    assert_eq!(req.group_id, "grp");
    assert_eq!(req.session_timeout_ms, 10_000);
    assert_eq!(req.rebalance_timeout_ms, -1);
    assert_eq!(req.member_id, "");
    assert_eq!(req.group_instance_id, None);
    assert_eq!(req.protocol_type, "consumer");
    assert_eq!(req.protocols.len(), 1);
    assert_eq!(req.protocols[0].name, "range");
    assert_eq!(&req.protocols[0].metadata[..], b"\x00\x01\x02");
    assert_eq!(req.reason, None);
    assert_eq!(encode(&req, 0), body);
}

#[test]
fn join_group_response_protocol_name_is_empty_not_null_before_v7() {
    let resp = JoinGroupResponse {
        error_code: 25, // UNKNOWN_MEMBER_ID
        ..Default::default()
    };
    let v6 = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x00\x19",         // error_code: 25
        b"\xff\xff\xff\xff", // generation_id: -1 (default)
        // protocol_type is v7+: absent
        b"\x01", // protocol_name: None goes out as the empty compact string
        b"\x01", // leader: ""
        b"\x01", // member_id: ""
        b"\x01", // members: empty compact array
        b"\x00", // tagged fields
    ]);
    assert_eq!(encode(&resp, 6), v6);
    assert_eq!(
        JoinGroupResponse::decode_body(v6, 6)
            .unwrap()
            .protocol_name
            .as_deref(),
        Some("")
    );
    let v7 = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x00\x19",         // error_code: 25
        b"\xff\xff\xff\xff", // generation_id: -1
        b"\x00",             // protocol_type: null
        b"\x00",             // protocol_name: null, allowed from v7
        b"\x01\x01\x01\x00", // leader, member_id, members, tagged fields
    ]);
    assert_eq!(encode(&resp, 7), v7);
    assert_eq!(JoinGroupResponse::decode_body(v7.clone(), 7).unwrap(), resp);
    // The same null in v6, where the field is not nullable, is refused.
    let mut null_v6 = v7.to_vec();
    assert_eq!(null_v6.remove(10), 0); // drop protocol_type (after 4 + 2 + 4 bytes): not in v6
    assert_eq!(null_v6[10], 0); // protocol_name: null
    assert_eq!(
        JoinGroupResponse::decode_body(Bytes::from(null_v6), 6),
        Err(crate::ProtocolError::UnexpectedNull)
    );
}

#[test]
fn find_coordinator_v4_request_with_batched_keys() {
    let body = concat(&[
        // key exists only in v0-v3: absent
        b"\x00",   // key_type: 0 (group)
        b"\x03",   // coordinator_keys: compact array of 2
        b"\x03g1", //   "g1"
        b"\x03g2", //   "g2"
        b"\x00",   // tagged fields
    ]);
    let req = FindCoordinatorRequest::decode_body(body.clone(), 4).unwrap();
    assert_eq!(req.key, "");
    assert_eq!(req.key_type, 0);
    assert_eq!(
        req.coordinator_keys,
        vec!["g1".to_string(), "g2".to_string()]
    );
    assert_eq!(encode(&req, 4), body);
}

#[test]
fn find_coordinator_v4_response_per_key() {
    let resp = FindCoordinatorResponse {
        coordinators: vec![FindCoordinatorResponseCoordinator {
            key: "g1".into(),
            node_id: 1,
            host: "h".into(),
            port: 9092,
            error_code: 0,
            error_message: None,
        }],
        ..Default::default()
    };
    let expected = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        // error_code, error_message, node_id, host, port are v0-v3 only: absent
        b"\x02",             // coordinators: compact array of 1
        b"\x03g1",           //   key: "g1"
        b"\x00\x00\x00\x01", //   node_id: 1
        b"\x02h",            //   host: "h"
        b"\x00\x00\x23\x84", //   port: 9092
        b"\x00\x00",         //   error_code
        b"\x00",             //   error_message: null
        b"\x00",             //   tagged fields
        b"\x00",             // tagged fields
    ]);
    assert_eq!(encode(&resp, 4), expected);
    assert_eq!(
        FindCoordinatorResponse::decode_body(expected, 4).unwrap(),
        resp
    );
}

#[test]
fn offset_commit_v2_request() {
    let body = concat(&[
        b"\x00\x03grp",      // group_id: "grp"
        b"\x00\x00\x00\x05", // generation_id_or_member_epoch: 5 (v1+)
        b"\x00\x03m-1",      // member_id: "m-1" (v1+)
        // group_instance_id is v7+: absent
        b"\xff\xff\xff\xff\xff\xff\xff\xff", // retention_time_ms: -1 (v2-v4)
        b"\x00\x00\x00\x01",                 // topics: array of 1
        b"\x00\x06events",                   //   name: "events"
        b"\x00\x00\x00\x01",                 //   partitions: array of 1
        b"\x00\x00\x00\x02",                 //     partition_index: 2
        b"\x00\x00\x00\x00\x00\x00\x00\x2a", //     committed_offset: 42
        // committed_leader_epoch is v6+, commit_timestamp v1 only: absent
        b"\xff\xff", //     committed_metadata: null
    ]);
    let req = OffsetCommitRequest::decode_body(body.clone(), 2).unwrap();
    assert_eq!(req.group_id, "grp");
    assert_eq!(req.generation_id_or_member_epoch, 5);
    assert_eq!(req.member_id, "m-1");
    assert_eq!(req.retention_time_ms, -1);
    let p = &req.topics[0].partitions[0];
    assert_eq!(req.topics[0].name, "events");
    assert_eq!((p.partition_index, p.committed_offset), (2, 42));
    assert_eq!((p.committed_leader_epoch, p.commit_timestamp), (-1, -1));
    assert_eq!(p.committed_metadata, None);
    assert_eq!(encode(&req, 2), body);
}

#[test]
fn offset_commit_v1_request_carries_a_commit_timestamp() {
    let body = concat(&[
        b"\x00\x01g",        // group_id: "g"
        b"\xff\xff\xff\xff", // generation_id_or_member_epoch: -1
        b"\x00\x00",         // member_id: ""
        // retention_time_ms is v2-v4: absent
        b"\x00\x00\x00\x01\x00\x01t", // topics: array of 1; name "t"
        b"\x00\x00\x00\x01",          //   partitions: array of 1
        b"\x00\x00\x00\x00",          //     partition_index: 0
        b"\x00\x00\x00\x00\x00\x00\x00\x07", //     committed_offset: 7
        b"\x00\x00\x01\x8b\xcf\xe5\x68\x00", //     commit_timestamp (v1 only)
        b"\x00\x02md",                //     committed_metadata: "md"
    ]);
    let req = OffsetCommitRequest::decode_body(body.clone(), 1).unwrap();
    let p = &req.topics[0].partitions[0];
    assert_eq!(p.committed_offset, 7);
    assert_eq!(p.commit_timestamp, 0x018b_cfe5_6800);
    assert_eq!(p.committed_metadata.as_deref(), Some("md"));
    assert_eq!(req.retention_time_ms, -1);
    assert_eq!(encode(&req, 1), body);
}

#[test]
fn offset_fetch_v8_request_with_two_groups() {
    let body = concat(&[
        // group_id and topics are v0-v7 only: absent
        b"\x03",   // groups: compact array of 2
        b"\x03g1", //   group_id: "g1"
        // member_id and member_epoch are v9+: absent
        b"\x02",                                 //   topics: compact array of 1
        b"\x02t",                                //     name: "t"
        b"\x03\x00\x00\x00\x00\x00\x00\x00\x01", // partition_indexes: [0, 1]
        b"\x00",                                 //     tagged fields
        b"\x00",                                 //   tagged fields
        b"\x03g2",                               //   group_id: "g2"
        b"\x00",                                 //   topics: null (every committed partition)
        b"\x00",                                 //   tagged fields
        b"\x01",                                 // require_stable: true (v7+)
        b"\x00",                                 // tagged fields
    ]);
    let req = OffsetFetchRequest::decode_body(body.clone(), 8).unwrap();
    assert_eq!(req.group_id, "");
    assert_eq!(req.topics, None);
    assert!(req.require_stable);
    assert_eq!(req.groups.len(), 2);
    let g1 = &req.groups[0];
    assert_eq!(g1.group_id, "g1");
    assert_eq!((g1.member_id.as_deref(), g1.member_epoch), (None, -1));
    let topics = g1.topics.as_ref().unwrap();
    assert_eq!(topics[0].name, "t");
    assert_eq!(topics[0].partition_indexes, vec![0, 1]);
    assert_eq!(req.groups[1].group_id, "g2");
    assert_eq!(req.groups[1].topics, None);
    assert_eq!(encode(&req, 8), body);
}

#[test]
fn offset_fetch_null_topics_only_from_v2() {
    let body = concat(&[
        b"\x00\x01g",        // group_id: "g"
        b"\xff\xff\xff\xff", // topics: null (int32 -1)
    ]);
    assert_eq!(
        OffsetFetchRequest::decode_body(body.clone(), 1),
        Err(crate::ProtocolError::UnexpectedNull)
    );
    assert_eq!(
        OffsetFetchRequest::decode_body(body, 2).unwrap().topics,
        None
    );
}

#[test]
fn sync_group_v5_response() {
    let resp = SyncGroupResponse {
        throttle_time_ms: 0,
        error_code: 0,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignment: Bytes::from_static(b"\x00\x01\x02\x03"),
    };
    let expected = concat(&[
        b"\x00\x00\x00\x00",     // throttle_time_ms
        b"\x00\x00",             // error_code
        b"\x09consumer",         // protocol_type: compact nullable string (8 + 1)
        b"\x06range",            // protocol_name: "range"
        b"\x05\x00\x01\x02\x03", // assignment: compact bytes (4 + 1)
        b"\x00",                 // tagged fields
    ]);
    assert_eq!(encode(&resp, 5), expected);
    assert_eq!(SyncGroupResponse::decode_body(expected, 5).unwrap(), resp);
}

#[test]
fn leave_group_v5_request_with_a_reason_per_member() {
    let body = concat(&[
        b"\x02g", // group_id: "g"
        // member_id is v0-v2 only: absent
        b"\x02",     // members: compact array of 1
        b"\x03m1",   //   member_id: "m1"
        b"\x00",     //   group_instance_id: null
        b"\x05bye!", //   reason: "bye!" (v5+)
        b"\x00",     //   tagged fields
        b"\x00",     // tagged fields
    ]);
    let req = LeaveGroupRequest::decode_body(body.clone(), 5).unwrap();
    assert_eq!(req.members[0].member_id, "m1");
    assert_eq!(req.members[0].reason.as_deref(), Some("bye!"));
    assert_eq!(encode(&req, 5), body);
}

#[test]
fn offset_delete_is_never_flexible() {
    assert!(!OffsetDeleteRequest::ctx(0).flexible);
    assert_eq!(crate::api::request_header_version(47, 0), 1);
    let body = concat(&[
        b"\x00\x01g",                        // group_id: "g"
        b"\x00\x00\x00\x01\x00\x01t",        // topics: array of 1; name "t"
        b"\x00\x00\x00\x01\x00\x00\x00\x03", //   partitions: [partition_index 3]
    ]);
    let req = OffsetDeleteRequest::decode_body(body.clone(), 0).unwrap();
    assert_eq!(req.topics[0].partitions[0].partition_index, 3);
    assert_eq!(encode(&req, 0), body);
}

// ---- CreatePartitions ---------------------------------------------------------------------

#[test]
fn create_partitions_v1_request_with_and_without_assignments() {
    let body = concat(&[
        b"\x00\x00\x00\x02",                 // topics: array of 2
        b"\x00\x06events",                   //   name: "events"
        b"\x00\x00\x00\x03",                 //   count: 3 (the new total)
        b"\x00\x00\x00\x02",                 //   assignments: array of 2
        b"\x00\x00\x00\x01\x00\x00\x00\x01", //     broker_ids: [1]
        b"\x00\x00\x00\x01\x00\x00\x00\x01", //     broker_ids: [1]
        b"\x00\x04logs",                     //   name: "logs"
        b"\x00\x00\x00\x05",                 //   count: 5
        b"\xff\xff\xff\xff",                 //   assignments: null (int32 -1)
        b"\x00\x00\x75\x30",                 // timeout_ms: 30000
        b"\x01",                             // validate_only: true
    ]);
    let req = CreatePartitionsRequest::decode_body(body.clone(), 1).unwrap();
    assert_eq!(req.timeout_ms, 30_000);
    assert!(req.validate_only);
    let events = &req.topics[0];
    assert_eq!((events.name.as_str(), events.count), ("events", 3));
    let assignments = events.assignments.as_ref().unwrap();
    assert_eq!(assignments.len(), 2);
    assert!(assignments.iter().all(|a| a.broker_ids == vec![1]));
    let logs = &req.topics[1];
    assert_eq!((logs.name.as_str(), logs.count), ("logs", 5));
    assert_eq!(logs.assignments, None);
    assert_eq!(encode(&req, 1), body);
}

#[test]
fn create_partitions_v2_request_is_flexible() {
    assert!(!CreatePartitionsRequest::ctx(1).flexible);
    assert!(CreatePartitionsRequest::ctx(2).flexible);
    let body = concat(&[
        b"\x03",                 // topics: compact array of 2
        b"\x02a",                //   name: compact string "a"
        b"\x00\x00\x00\x04",     //   count: 4
        b"\x02",                 //   assignments: compact array of 1
        b"\x02\x00\x00\x00\x07", //     broker_ids: compact array [7]
        b"\x00",                 //     tagged fields
        b"\x00",                 //   tagged fields
        b"\x02b",                //   name: "b"
        b"\x00\x00\x00\x02",     //   count: 2
        b"\x00",                 //   assignments: null (compact length 0)
        b"\x00",                 //   tagged fields
        b"\x00\x00\x03\xe8",     // timeout_ms: 1000
        b"\x00",                 // validate_only: false
        b"\x00",                 // tagged fields
    ]);
    let req = CreatePartitionsRequest::decode_body(body.clone(), 2).unwrap();
    assert_eq!(req.topics[0].name, "a");
    assert_eq!(
        req.topics[0].assignments.as_ref().unwrap()[0].broker_ids,
        vec![7]
    );
    assert_eq!((req.topics[1].name.as_str(), req.topics[1].count), ("b", 2));
    assert_eq!(req.topics[1].assignments, None);
    assert_eq!(req.timeout_ms, 1000);
    assert!(!req.validate_only);
    assert_eq!(encode(&req, 2), body);
    // v3 changed only what a broker may answer, not the layout.
    assert_eq!(CreatePartitionsRequest::decode_body(body, 3).unwrap(), req);
}

#[test]
fn create_partitions_response_layouts() {
    let resp = CreatePartitionsResponse {
        throttle_time_ms: 0,
        results: vec![
            CreatePartitionsTopicResult {
                name: "t".into(),
                error_code: 37, // INVALID_PARTITIONS
                error_message: Some("no".into()),
            },
            CreatePartitionsTopicResult {
                name: "u".into(),
                error_code: 0,
                error_message: None,
            },
        ],
    };
    let v0 = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x00\x00\x00\x02", // results: array of 2
        b"\x00\x01t",        //   name: "t"
        b"\x00\x25",         //   error_code: 37
        b"\x00\x02no",       //   error_message: "no"
        b"\x00\x01u",        //   name: "u"
        b"\x00\x00",         //   error_code: 0
        b"\xff\xff",         //   error_message: null (int16 -1)
    ]);
    assert_eq!(encode(&resp, 0), v0);
    assert_eq!(CreatePartitionsResponse::decode_body(v0, 0).unwrap(), resp);
    let v3 = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x03",             // results: compact array of 2
        b"\x02t",            //   name: "t"
        b"\x00\x25",         //   error_code: 37
        b"\x03no",           //   error_message: compact "no"
        b"\x00",             //   tagged fields
        b"\x02u",            //   name: "u"
        b"\x00\x00",         //   error_code: 0
        b"\x00",             //   error_message: null
        b"\x00",             //   tagged fields
        b"\x00",             // tagged fields
    ]);
    assert_eq!(encode(&resp, 3), v3);
    assert_eq!(CreatePartitionsResponse::decode_body(v3, 3).unwrap(), resp);
}

// ---- DescribeCluster ----------------------------------------------------------------------

#[test]
fn describe_cluster_requests_v0_and_v1() {
    // Flexible from its first version: a tagged-field section even in v0.
    assert!(DescribeClusterRequest::ctx(0).flexible);
    let v0 = concat(&[
        b"\x01", // include_cluster_authorized_operations: true
        b"\x00", // tagged fields
    ]);
    let req = DescribeClusterRequest::decode_body(v0.clone(), 0).unwrap();
    assert!(req.include_cluster_authorized_operations);
    // Not on the wire in v0: the spec default, brokers.
    assert_eq!(req.endpoint_type, 1);
    assert_eq!(encode(&req, 0), v0);
    let v1 = concat(&[
        b"\x00", // include_cluster_authorized_operations: false
        b"\x02", // endpoint_type: 2 (controllers)
        b"\x00", // tagged fields
    ]);
    let req = DescribeClusterRequest::decode_body(v1.clone(), 1).unwrap();
    assert!(!req.include_cluster_authorized_operations);
    assert_eq!(req.endpoint_type, 2);
    assert_eq!(encode(&req, 1), v1);
}

#[test]
fn describe_cluster_v1_response_layout() {
    let resp = DescribeClusterResponse {
        cluster_id: "c".into(),
        controller_id: 1,
        brokers: vec![DescribeClusterBroker {
            broker_id: 1,
            host: "h".into(),
            port: 9092,
            rack: None,
        }],
        ..Default::default()
    };
    assert_eq!(resp.endpoint_type, 1);
    assert_eq!(resp.cluster_authorized_operations, i32::MIN);
    let v1 = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x00\x00",         // error_code
        b"\x00",             // error_message: null
        b"\x01",             // endpoint_type: 1 (brokers; v1+)
        b"\x02c",            // cluster_id: "c"
        b"\x00\x00\x00\x01", // controller_id: 1
        b"\x02",             // brokers: compact array of 1
        b"\x00\x00\x00\x01", //   broker_id: 1
        b"\x02h",            //   host: "h"
        b"\x00\x00\x23\x84", //   port: 9092
        b"\x00",             //   rack: null
        b"\x00",             //   tagged fields
        b"\x80\x00\x00\x00", // cluster_authorized_operations: i32::MIN
        b"\x00",             // tagged fields
    ]);
    assert_eq!(encode(&resp, 1), v1);
    assert_eq!(
        DescribeClusterResponse::decode_body(v1.clone(), 1).unwrap(),
        resp
    );
    // v0 is the same without the endpoint type byte.
    let mut v0 = v1.to_vec();
    assert_eq!(v0.remove(7), 1);
    assert_eq!(encode(&resp, 0), Bytes::from(v0));
}

// ---- OffsetForLeaderEpoch -----------------------------------------------------------------

#[test]
fn offset_for_leader_epoch_v2_request_as_librdkafka_sends_it() {
    let body = concat(&[
        // replica_id is v3+: absent
        b"\x00\x00\x00\x01", // topics: array of 1
        b"\x00\x06events",   //   topic: "events"
        b"\x00\x00\x00\x01", //   partitions: array of 1
        b"\x00\x00\x00\x02", //     partition: 2
        b"\x00\x00\x00\x05", //     current_leader_epoch: 5 (v2+)
        b"\x00\x00\x00\x04", //     leader_epoch: 4
    ]);
    let req = OffsetForLeaderEpochRequest::decode_body(body.clone(), 2).unwrap();
    // Not on the wire before v3: the spec's default, the debug replica.
    assert_eq!(req.replica_id, -2);
    assert_eq!(req.topics[0].topic, "events");
    let p = &req.topics[0].partitions[0];
    assert_eq!(
        (p.partition, p.current_leader_epoch, p.leader_epoch),
        (2, 5, 4)
    );
    assert_eq!(encode(&req, 2), body);
    // v0 and v1 predate the fencing epoch as well.
    let v0 = concat(&[
        b"\x00\x00\x00\x01\x00\x06events", // topics: array of 1; topic "events"
        b"\x00\x00\x00\x01",               //   partitions: array of 1
        b"\x00\x00\x00\x02\x00\x00\x00\x04", //     partition 2, leader_epoch 4
    ]);
    let old = OffsetForLeaderEpochRequest::decode_body(v0, 0).unwrap();
    assert_eq!(old.topics[0].partitions[0].current_leader_epoch, -1);
    assert_eq!(old.topics[0].partitions[0].leader_epoch, 4);
}

#[test]
fn offset_for_leader_epoch_v4_request_from_a_follower() {
    assert!(!OffsetForLeaderEpochRequest::ctx(3).flexible);
    assert!(OffsetForLeaderEpochRequest::ctx(4).flexible);
    let body = concat(&[
        b"\x00\x00\x00\x02", // replica_id: broker 2
        b"\x02",             // topics: compact array of 1
        b"\x02t",            //   topic: "t"
        b"\x02",             //   partitions: compact array of 1
        b"\x00\x00\x00\x01", //     partition: 1
        b"\xff\xff\xff\xff", //     current_leader_epoch: -1 (no fencing)
        b"\x00\x00\x00\x03", //     leader_epoch: 3
        b"\x00",             //     tagged fields
        b"\x00",             //   tagged fields
        b"\x00",             // tagged fields
    ]);
    let req = OffsetForLeaderEpochRequest::decode_body(body.clone(), 4).unwrap();
    assert_eq!(req.replica_id, 2);
    let p = &req.topics[0].partitions[0];
    assert_eq!(
        (p.partition, p.current_leader_epoch, p.leader_epoch),
        (1, -1, 3)
    );
    assert_eq!(encode(&req, 4), body);
}

fn offset_for_leader_epoch_answers() -> OffsetForLeaderEpochResponse {
    OffsetForLeaderEpochResponse {
        throttle_time_ms: 0,
        topics: vec![OffsetForLeaderEpochResponseTopic {
            topic: "t".into(),
            partitions: vec![
                OffsetForLeaderEpochResponsePartition {
                    error_code: 0,
                    partition: 0,
                    leader_epoch: 3,
                    end_offset: 100,
                },
                OffsetForLeaderEpochResponsePartition {
                    error_code: 74, // FENCED_LEADER_EPOCH
                    partition: 1,
                    leader_epoch: -1,
                    end_offset: -1,
                },
            ],
        }],
    }
}

#[test]
fn offset_for_leader_epoch_v0_response_has_no_epoch() {
    let resp = offset_for_leader_epoch_answers();
    let v0 = concat(&[
        // throttle_time_ms is v2+: absent
        b"\x00\x00\x00\x01",                 // topics: array of 1
        b"\x00\x01t",                        //   topic: "t"
        b"\x00\x00\x00\x02",                 //   partitions: array of 2
        b"\x00\x00",                         //     error_code
        b"\x00\x00\x00\x00",                 //     partition: 0
        b"\x00\x00\x00\x00\x00\x00\x00\x64", //     end_offset: 100 (leader_epoch is v1+)
        b"\x00\x4a",                         //     error_code: 74
        b"\x00\x00\x00\x01",                 //     partition: 1
        b"\xff\xff\xff\xff\xff\xff\xff\xff", //     end_offset: -1
    ]);
    assert_eq!(encode(&resp, 0), v0);
    let back = OffsetForLeaderEpochResponse::decode_body(v0, 0).unwrap();
    assert_eq!(back.topics[0].partitions[0].leader_epoch, -1);
    assert_eq!(back.topics[0].partitions[0].end_offset, 100);
}

#[test]
fn offset_for_leader_epoch_v4_response_layout() {
    let resp = offset_for_leader_epoch_answers();
    let v4 = concat(&[
        b"\x00\x00\x00\x00",                 // throttle_time_ms
        b"\x02",                             // topics: compact array of 1
        b"\x02t",                            //   topic: "t"
        b"\x03",                             //   partitions: compact array of 2
        b"\x00\x00",                         //     error_code
        b"\x00\x00\x00\x00",                 //     partition: 0
        b"\x00\x00\x00\x03",                 //     leader_epoch: 3
        b"\x00\x00\x00\x00\x00\x00\x00\x64", //     end_offset: 100
        b"\x00",                             //     tagged fields
        b"\x00\x4a",                         //     error_code: 74
        b"\x00\x00\x00\x01",                 //     partition: 1
        b"\xff\xff\xff\xff",                 //     leader_epoch: -1
        b"\xff\xff\xff\xff\xff\xff\xff\xff", //     end_offset: -1
        b"\x00",                             //     tagged fields
        b"\x00",                             //   tagged fields
        b"\x00",                             // tagged fields
    ]);
    assert_eq!(encode(&resp, 4), v4);
    assert_eq!(
        OffsetForLeaderEpochResponse::decode_body(v4, 4).unwrap(),
        resp
    );
}

// ---- AlterPartition -----------------------------------------------------------------------

const TOPIC_ID: [u8; 16] = *b"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f";
const DIR_ID: [u8; 16] = *b"\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf";

#[test]
fn alter_partition_v0_request_names_the_topic() {
    // Flexible from v0, so its request header is v2 even though the broker never serves it.
    assert!(AlterPartitionRequest::ctx(0).flexible);
    assert_eq!(crate::api::request_header_version(56, 0), 2);
    assert_eq!(crate::api::response_header_version(56, 0), 1);
    let body = concat(&[
        b"\x00\x00\x00\x01",                     // broker_id: 1
        b"\x00\x00\x00\x00\x00\x00\x00\x2a",     // broker_epoch: 42
        b"\x02",                                 // topics: compact array of 1
        b"\x02t",                                //   topic_name: "t" (v0-v1)
        b"\x02",                                 //   partitions: compact array of 1
        b"\x00\x00\x00\x00",                     //     partition_index: 0
        b"\x00\x00\x00\x05",                     //     leader_epoch: 5
        b"\x03\x00\x00\x00\x01\x00\x00\x00\x02", //     new_isr: [1, 2]
        // leader_recovery_state is v1+: absent
        b"\x00\x00\x00\x07", //     partition_epoch: 7
        b"\x00",             //     tagged fields
        b"\x00",             //   tagged fields
        b"\x00",             // tagged fields
    ]);
    let req = AlterPartitionRequest::decode_body(body.clone(), 0).unwrap();
    assert_eq!((req.broker_id, req.broker_epoch), (1, 42));
    let t = &req.topics[0];
    assert_eq!((t.topic_name.as_str(), t.topic_id), ("t", Uuid::ZERO));
    let p = &t.partitions[0];
    assert_eq!(
        (p.partition_index, p.leader_epoch, p.partition_epoch),
        (0, 5, 7)
    );
    assert_eq!(p.new_isr, vec![1, 2]);
    assert!(p.new_isr_with_epochs.is_empty());
    assert_eq!(encode(&req, 0), body);
}

#[test]
fn alter_partition_v3_request_sends_isr_members_with_epochs() {
    let body = concat(&[
        b"\x00\x00\x00\x01",                 // broker_id: 1
        b"\x00\x00\x00\x00\x00\x00\x00\x2a", // broker_epoch: 42
        b"\x02",                             // topics: compact array of 1
        &TOPIC_ID,                           //   topic_id (v2+)
        b"\x02",                             //   partitions: compact array of 1
        b"\x00\x00\x00\x03",                 //     partition_index: 3
        b"\x00\x00\x00\x05",                 //     leader_epoch: 5
        // new_isr is v0-v2: absent
        b"\x03",                             //     new_isr_with_epochs: compact array of 2
        b"\x00\x00\x00\x01",                 //       broker_id: 1
        b"\x00\x00\x00\x00\x00\x00\x00\x2a", //       broker_epoch: 42
        b"\x00",                             //       tagged fields
        b"\x00\x00\x00\x02",                 //       broker_id: 2
        b"\xff\xff\xff\xff\xff\xff\xff\xff", //       broker_epoch: -1 (unknown)
        b"\x00",                             //       tagged fields
        b"\x01",                             //     leader_recovery_state: recovering
        b"\x00\x00\x00\x07",                 //     partition_epoch: 7
        b"\x00",                             //     tagged fields
        b"\x00",                             //   tagged fields
        b"\x00",                             // tagged fields
    ]);
    let req = AlterPartitionRequest::decode_body(body.clone(), 3).unwrap();
    let t = &req.topics[0];
    assert_eq!(t.topic_id, Uuid(TOPIC_ID));
    assert_eq!(t.topic_name, "");
    let p = &t.partitions[0];
    assert!(p.new_isr.is_empty());
    let members: Vec<(i32, i64)> = p
        .new_isr_with_epochs
        .iter()
        .map(|b| (b.broker_id, b.broker_epoch))
        .collect();
    assert_eq!(members, vec![(1, 42), (2, -1)]);
    assert_eq!(p.leader_recovery_state, 1);
    assert_eq!(encode(&req, 3), body);
}

fn alter_partition_answer(topic_name: &str, topic_id: Uuid) -> AlterPartitionResponse {
    AlterPartitionResponse {
        throttle_time_ms: 0,
        error_code: 0,
        topics: vec![AlterPartitionResponseTopic {
            topic_name: topic_name.into(),
            topic_id,
            partitions: vec![AlterPartitionResponsePartition {
                partition_index: 0,
                error_code: 0,
                leader_id: 1,
                leader_epoch: 5,
                isr: vec![1, 2],
                leader_recovery_state: 0,
                partition_epoch: 8,
            }],
        }],
    }
}

#[test]
fn alter_partition_v1_and_v3_responses() {
    let partition: &[u8] = &[
        0, 0, 0, 0, //           partition_index: 0
        0, 0, //                 error_code
        0, 0, 0, 1, //           leader_id: 1
        0, 0, 0, 5, //           leader_epoch: 5
        3, 0, 0, 0, 1, 0, 0, 0, 2, // isr: [1, 2]
        0, //                    leader_recovery_state (v1+)
        0, 0, 0, 8, //           partition_epoch: 8
        0, //                    tagged fields
    ];
    let v1 = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x00\x00",         // error_code
        b"\x02",             // topics: compact array of 1
        b"\x02t",            //   topic_name: "t" (v0-v1)
        b"\x02",             //   partitions: compact array of 1
        partition,
        b"\x00", //   tagged fields
        b"\x00", // tagged fields
    ]);
    let resp = alter_partition_answer("t", Uuid::ZERO);
    assert_eq!(encode(&resp, 1), v1);
    assert_eq!(AlterPartitionResponse::decode_body(v1, 1).unwrap(), resp);
    let v3 = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x00\x00",         // error_code
        b"\x02",             // topics: compact array of 1
        &TOPIC_ID,           //   topic_id (v2+)
        b"\x02",             //   partitions: compact array of 1
        partition,
        b"\x00", //   tagged fields
        b"\x00", // tagged fields
    ]);
    let resp = alter_partition_answer("", Uuid(TOPIC_ID));
    assert_eq!(encode(&resp, 3), v3);
    assert_eq!(AlterPartitionResponse::decode_body(v3, 3).unwrap(), resp);
    // v0 is v1 without the recovery state byte (after 10 bytes of header and 23 of partition).
    let mut v0 = encode(&alter_partition_answer("t", Uuid::ZERO), 1).to_vec();
    assert_eq!(v0.remove(33), 0);
    let v0 = Bytes::from(v0);
    assert_eq!(encode(&alter_partition_answer("t", Uuid::ZERO), 0), v0);
    assert_eq!(
        AlterPartitionResponse::decode_body(v0, 0).unwrap(),
        alter_partition_answer("t", Uuid::ZERO)
    );
}

// ---- BrokerRegistration -------------------------------------------------------------------

const INCARNATION: [u8; 16] = *b"\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf";

fn registration_head() -> Vec<u8> {
    concat(&[
        b"\x00\x00\x00\x01",     // broker_id: 1
        b"\x02c",                // cluster_id: "c"
        &INCARNATION,            // incarnation_id
        b"\x02",                 // listeners: compact array of 1
        b"\x0aPLAINTEXT",        //   name: "PLAINTEXT"
        b"\x02h",                //   host: "h"
        b"\x23\x84",             //   port: uint16 9092
        b"\x00\x00",             //   security_protocol: 0 (PLAINTEXT)
        b"\x00",                 //   tagged fields
        b"\x02",                 // features: compact array of 1
        b"\x11metadata.version", //   name: "metadata.version"
        b"\x00\x01",             //   min_supported_version: 1
        b"\x00\x15",             //   max_supported_version: 21
        b"\x00",                 //   tagged fields
    ])
    .to_vec()
}

#[test]
fn broker_registration_v0_request() {
    assert!(BrokerRegistrationRequest::ctx(0).flexible);
    assert_eq!(crate::api::request_header_version(62, 0), 2);
    let mut body = registration_head();
    body.extend_from_slice(&concat(&[
        b"\x00", // rack: null
        b"\x00", // tagged fields
    ]));
    let body = Bytes::from(body);
    let req = BrokerRegistrationRequest::decode_body(body.clone(), 0).unwrap();
    assert_eq!(req.broker_id, 1);
    assert_eq!(req.cluster_id, "c");
    assert_eq!(req.incarnation_id, Uuid(INCARNATION));
    let l = &req.listeners[0];
    assert_eq!(
        (
            l.name.as_str(),
            l.host.as_str(),
            l.port,
            l.security_protocol
        ),
        ("PLAINTEXT", "h", 9092, 0)
    );
    let f = &req.features[0];
    assert_eq!(
        (
            f.name.as_str(),
            f.min_supported_version,
            f.max_supported_version
        ),
        ("metadata.version", 1, 21)
    );
    assert_eq!(req.rack, None);
    // Fields of later versions keep their spec defaults.
    assert!(!req.is_migrating_zk_broker);
    assert!(req.log_dirs.is_empty());
    assert_eq!(req.previous_broker_epoch, -1);
    assert_eq!(encode(&req, 0), body);
}

#[test]
fn broker_registration_v4_request() {
    let mut body = registration_head();
    body.extend_from_slice(&concat(&[
        b"\x03r1",                           // rack: "r1"
        b"\x00",                             // is_migrating_zk_broker: false (v1+)
        b"\x02",                             // log_dirs: compact array of 1 (v2+)
        &DIR_ID,                             //   uuid
        b"\x00\x00\x00\x00\x00\x00\x00\x07", // previous_broker_epoch: 7 (v3+)
        b"\x00",                             // tagged fields
    ]));
    let body = Bytes::from(body);
    let req = BrokerRegistrationRequest::decode_body(body.clone(), 4).unwrap();
    assert_eq!(req.rack.as_deref(), Some("r1"));
    assert_eq!(req.log_dirs, vec![Uuid(DIR_ID)]);
    assert_eq!(req.previous_broker_epoch, 7);
    assert_eq!(encode(&req, 4), body);
    // The same bytes are v3's too: v4 changed what a feature's minimum may be, not the layout.
    assert_eq!(
        BrokerRegistrationRequest::decode_body(body, 3).unwrap(),
        req
    );
}

#[test]
fn broker_registration_response_layout() {
    let resp = BrokerRegistrationResponse {
        throttle_time_ms: 0,
        error_code: 101, // DUPLICATE_BROKER_REGISTRATION
        broker_epoch: -1,
    };
    let expected = concat(&[
        b"\x00\x00\x00\x00",                 // throttle_time_ms
        b"\x00\x65",                         // error_code: 101
        b"\xff\xff\xff\xff\xff\xff\xff\xff", // broker_epoch: -1
        b"\x00",                             // tagged fields
    ]);
    for version in [0, 4] {
        assert_eq!(encode(&resp, version), expected);
        assert_eq!(
            BrokerRegistrationResponse::decode_body(expected.clone(), version).unwrap(),
            resp
        );
    }
}

// ---- BrokerHeartbeat ----------------------------------------------------------------------

fn heartbeat() -> BrokerHeartbeatRequest {
    BrokerHeartbeatRequest {
        broker_id: 1,
        broker_epoch: 42,
        current_metadata_offset: 1000,
        want_fence: false,
        want_shut_down: true,
        offline_log_dirs: vec![Uuid(DIR_ID)],
    }
}

#[test]
fn broker_heartbeat_v0_request_has_no_offline_dirs() {
    let v0 = concat(&[
        b"\x00\x00\x00\x01",                 // broker_id: 1
        b"\x00\x00\x00\x00\x00\x00\x00\x2a", // broker_epoch: 42
        b"\x00\x00\x00\x00\x00\x00\x03\xe8", // current_metadata_offset: 1000
        b"\x00",                             // want_fence: false
        b"\x01",                             // want_shut_down: true
        b"\x00",                             // tagged fields: offline_log_dirs is v1+
    ]);
    assert_eq!(encode(&heartbeat(), 0), v0);
    let req = BrokerHeartbeatRequest::decode_body(v0, 0).unwrap();
    assert!(req.offline_log_dirs.is_empty());
    assert!(req.want_shut_down);
}

#[test]
fn broker_heartbeat_v1_request_tags_offline_dirs() {
    let v1 = concat(&[
        b"\x00\x00\x00\x01",                 // broker_id: 1
        b"\x00\x00\x00\x00\x00\x00\x00\x2a", // broker_epoch: 42
        b"\x00\x00\x00\x00\x00\x00\x03\xe8", // current_metadata_offset: 1000
        b"\x00",                             // want_fence: false
        b"\x01",                             // want_shut_down: true
        b"\x01",                             // tagged fields: 1
        b"\x00\x11",                         //   tag 0 (offline_log_dirs), 17 bytes
        b"\x02",                             //   compact array of 1
        &DIR_ID,                             //     uuid
    ]);
    assert_eq!(encode(&heartbeat(), 1), v1);
    assert_eq!(
        BrokerHeartbeatRequest::decode_body(v1, 1).unwrap(),
        heartbeat()
    );
    // With no offline dirs the tag is left out altogether.
    let healthy = BrokerHeartbeatRequest {
        offline_log_dirs: vec![],
        ..heartbeat()
    };
    assert_eq!(encode(&healthy, 1), encode(&heartbeat(), 0));
}

#[test]
fn broker_heartbeat_response_layout() {
    let body = concat(&[
        b"\x00\x00\x00\x00", // throttle_time_ms
        b"\x00\x00",         // error_code
        b"\x01",             // is_caught_up: true
        b"\x00",             // is_fenced: false
        b"\x00",             // should_shut_down: false
        b"\x00",             // tagged fields
    ]);
    let resp = BrokerHeartbeatResponse::decode_body(body.clone(), 1).unwrap();
    assert!(resp.is_caught_up);
    assert!(!resp.is_fenced);
    assert!(!resp.should_shut_down);
    assert_eq!(encode(&resp, 0), body);
    // Until the controller says otherwise, a broker is fenced.
    assert!(BrokerHeartbeatResponse::default().is_fenced);
}
