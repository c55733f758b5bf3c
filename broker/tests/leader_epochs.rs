//! The broker answering OffsetForLeaderEpoch over a real socket, in the versions librdkafka,
//! the Java consumer and followers send, across a restart; and what ApiVersions offers of the
//! replication and controller APIs.

mod common;

use bytes::Bytes;
use sluice_protocol::api::encode_request_frame;
use sluice_protocol::messages::*;
use sluice_protocol::records::{Record, RecordBatch};
use sluice_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{start, Client};

fn records(n: usize) -> Bytes {
    let records = (0..n)
        .map(|i| Record {
            offset: i as i64,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
        })
        .collect();
    RecordBatch::new(records).encode().unwrap()
}

async fn create_and_fill(c: &mut Client, topic: &str, batches: &[usize]) {
    let created = c
        .send(
            7,
            &CreateTopicsRequest {
                topics: vec![CreateTopicsRequestTopic {
                    name: topic.into(),
                    num_partitions: 2,
                    replication_factor: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    for &n in batches {
        let produced = c
            .send(
                9,
                &ProduceRequest {
                    acks: -1,
                    timeout_ms: 5000,
                    topic_data: vec![ProduceRequestTopic {
                        name: topic.into(),
                        partition_data: vec![ProduceRequestPartition {
                            index: 0,
                            records: Some(records(n)),
                        }],
                    }],
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    }
}

/// (partition, current leader epoch, epoch asked about) for one topic.
fn ask(
    replica_id: i32,
    topic: &str,
    partitions: &[(i32, i32, i32)],
) -> OffsetForLeaderEpochRequest {
    OffsetForLeaderEpochRequest {
        replica_id,
        topics: vec![OffsetForLeaderEpochRequestTopic {
            topic: topic.into(),
            partitions: partitions
                .iter()
                .map(|&(partition, current_leader_epoch, leader_epoch)| {
                    OffsetForLeaderEpochRequestPartition {
                        partition,
                        current_leader_epoch,
                        leader_epoch,
                    }
                })
                .collect(),
        }],
    }
}

/// (error code, partition, leader epoch, end offset) of every answer, in order.
fn answers(r: &OffsetForLeaderEpochResponse) -> Vec<(i16, i32, i32, i64)> {
    r.topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.error_code, p.partition, p.leader_epoch, p.end_offset))
        .collect()
}

#[tokio::test]
async fn offset_for_leader_epoch_answers_from_the_partitions_epochs() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    create_and_fill(&mut c, "events", &[3, 2]).await;

    // librdkafka's version: a consumer checking epoch 0, the standalone broker's only epoch.
    let v2 = c
        .send(2, &ask(-1, "events", &[(0, 0, 0), (1, 0, 0), (0, -1, 0)]))
        .await;
    assert_eq!(
        answers(&v2),
        vec![
            // The latest epoch ends at the log end.
            (0, 0, 0, 5),
            // An empty partition has no epoch yet: no error, nothing to compare against.
            (0, 1, -1, -1),
            // Without a current epoch there is nothing to fence.
            (0, 0, 0, 5),
        ]
    );

    // A requester that believes in a newer leader epoch than this broker's, an epoch this log
    // never had, and partitions and topics that do not exist.
    let unknown = ErrorCode::UnknownTopicOrPartition.code();
    let odd = c
        .send(3, &ask(-1, "events", &[(0, 1, 0), (0, 0, 7), (2, 0, 0)]))
        .await;
    assert_eq!(
        answers(&odd),
        vec![
            (ErrorCode::UnknownLeaderEpoch.code(), 0, -1, -1),
            (0, 0, -1, -1),
            (unknown, 2, -1, -1),
        ]
    );
    let nope = c.send(4, &ask(-1, "nope", &[(0, 0, 0)])).await;
    assert_eq!(answers(&nope), vec![(unknown, 0, -1, -1)]);
    assert_eq!(nope.topics[0].topic, "nope");

    // A follower (broker id 2) asking in the flexible version gets the leader's answer.
    let v4 = c.send(4, &ask(2, "events", &[(0, 0, 0)])).await;
    assert_eq!(answers(&v4), vec![(0, 0, 0, 5)]);
    // v0 predates both the fencing epoch and the epoch in the answer.
    let v0 = c.send(0, &ask(-1, "events", &[(0, 5, 0)])).await;
    assert_eq!(answers(&v0), vec![(0, 0, -1, 5)]);

    // The epochs live in the partition directory and are there after a restart.
    let b = b.restart().await;
    let mut c = Client::connect(&b).await;
    let again = c.send(4, &ask(-1, "events", &[(0, 0, 0), (1, 0, 0)])).await;
    assert_eq!(answers(&again), vec![(0, 0, 0, 5), (0, 1, -1, -1)]);
    let checkpoint = b
        .dir
        .path()
        .join("logs/events-0")
        .join(sluice_broker::log::LEADER_EPOCH_CHECKPOINT);
    assert_eq!(std::fs::read_to_string(checkpoint).unwrap(), "0\n1\n0 0\n");
    b.stop().await;
}

#[tokio::test]
async fn api_versions_offers_offset_for_leader_epoch_but_not_the_controllers_apis() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    let offered = c.send(3, &ApiVersionsRequest::default()).await;
    let range = |key: i16| {
        offered
            .api_keys
            .iter()
            .find(|k| k.api_key == key)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(23), Some((0, 4)));
    for controller_only in [56, 62, 63] {
        assert_eq!(range(controller_only), None, "api key {controller_only}");
    }

    // Sent anyway, a controller API is a request this broker does not speak: the connection
    // is closed rather than answered.
    let mut raw = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let heartbeat = BrokerHeartbeatRequest {
        broker_id: 1,
        ..Default::default()
    };
    let frame = encode_request_frame(1, 1, Some("test"), &heartbeat);
    raw.write_all(&frame).await.unwrap();
    let mut buf = [0u8; 4];
    let read = raw.read(&mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    b.stop().await;
}
