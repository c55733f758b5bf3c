//! The broker in-process, driven by encoded requests over a real TCP socket: the error codes of
//! Produce, CreateTopics, Fetch and ListOffsets, idempotent producers, the fetch long poll,
//! topic configs altered at run time and partitions added at run time, both kept across a
//! restart, and DescribeCluster.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_protocol::messages::*;
use sluice_protocol::records::{Record, RecordBatch};
use sluice_protocol::ErrorCode;

use common::{start, Client};

fn create(name: &str, partitions: i32, rf: i16) -> CreateTopicsRequest {
    CreateTopicsRequest {
        topics: vec![CreateTopicsRequestTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn batch(n: usize, value_len: usize, producer: Option<(i64, i16, i32)>) -> Bytes {
    let records = (0..n)
        .map(|i| Record {
            offset: i as i64,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: vec![],
        })
        .collect();
    let mut b = RecordBatch::new(records);
    if let Some((id, epoch, seq)) = producer {
        b.producer_id = id;
        b.producer_epoch = epoch;
        b.base_sequence = seq;
    }
    b.encode().unwrap()
}

fn produce(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest {
        acks: -1,
        timeout_ms: 5000,
        topic_data: vec![ProduceRequestTopic {
            name: topic.into(),
            partition_data: vec![ProduceRequestPartition {
                index: partition,
                records: Some(records),
            }],
        }],
        ..Default::default()
    }
}

fn produce_result(r: &ProduceResponse) -> (i16, i64) {
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch(topic: &str, offset: i64, min_bytes: i32, max_wait_ms: i32) -> FetchRequest {
    FetchRequest {
        max_wait_ms,
        min_bytes,
        max_bytes: 50 << 20,
        topics: vec![FetchRequestTopic {
            topic: topic.into(),
            partitions: vec![FetchRequestPartition {
                partition: 0,
                fetch_offset: offset,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn create_topics_validates_each_topic() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    let ok = c.send(7, &create("good", 3, 1)).await;
    assert_eq!(ok.topics[0].error_code, 0);
    assert_eq!(ok.topics[0].num_partitions, 3);
    let code = |r: CreateTopicsResponse| r.topics[0].error_code;
    assert_eq!(
        code(c.send(7, &create("good", 3, 1)).await),
        ErrorCode::TopicAlreadyExists.code()
    );
    assert_eq!(
        code(c.send(7, &create("zero", 0, 1)).await),
        ErrorCode::InvalidPartitions.code()
    );
    assert_eq!(
        code(c.send(7, &create("rf", 1, 3)).await),
        ErrorCode::InvalidReplicationFactor.code()
    );
    assert_eq!(
        code(c.send(7, &create("bad/name", 1, 1)).await),
        ErrorCode::InvalidTopicException.code()
    );
    let mut with_config = create("configured", 1, 1);
    with_config.topics[0].configs = vec![CreateTopicsRequestConfig {
        name: "retention.ms".into(),
        value: Some("forever".into()),
    }];
    assert_eq!(
        code(c.send(7, &with_config).await),
        ErrorCode::InvalidConfig.code()
    );
    // Defaults (-1) take num.partitions.
    let defaults = c.send(4, &create("defaults", -1, -1)).await;
    assert_eq!(defaults.topics[0].error_code, 0);

    let meta = c
        .send(
            12,
            &MetadataRequest {
                topics: None,
                ..Default::default()
            },
        )
        .await;
    let mut names: Vec<_> = meta
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .map(|t| t.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["defaults", "good"]);
    // The group coordinator's topic is there, marked internal, as in Kafka.
    assert!(meta
        .topics
        .iter()
        .any(|t| t.is_internal && t.name.as_deref() == Some("__consumer_offsets")));
    let deleted = c
        .send(
            6,
            &DeleteTopicsRequest {
                topics: vec![DeleteTopicsRequestTopic {
                    name: Some("good".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(deleted.responses[0].error_code, 0);
    b.stop().await;
}

#[tokio::test]
async fn produce_answers_per_partition_errors() {
    let b = start(|c| {
        c.message_max_bytes = 10_000;
        c.auto_create_topics = false;
    })
    .await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("t", 1, 1)).await;
    assert_eq!(
        produce_result(&c.send(9, &produce("t", 0, batch(3, 10, None))).await),
        (0, 0)
    );
    assert_eq!(
        produce_result(&c.send(9, &produce("t", 0, batch(2, 10, None))).await),
        (0, 3)
    );
    let code = |r: ProduceResponse| produce_result(&r).0;
    assert_eq!(
        code(c.send(9, &produce("missing", 0, batch(1, 10, None))).await),
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        code(c.send(9, &produce("t", 5, batch(1, 10, None))).await),
        ErrorCode::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        code(c.send(9, &produce("t", 0, batch(10, 2000, None))).await),
        ErrorCode::MessageTooLarge.code()
    );
    let mut corrupt = batch(2, 10, None).to_vec();
    let n = corrupt.len();
    corrupt[n - 2] ^= 0xff;
    assert_eq!(
        code(c.send(9, &produce("t", 0, Bytes::from(corrupt))).await),
        ErrorCode::CorruptMessage.code()
    );
    // Offset deltas that skip: a well-formed batch with an invalid record sequence.
    let mut gapped = RecordBatch::new(vec![
        Record {
            offset: 0,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from_static(b"a")),
            headers: vec![],
        },
        Record {
            offset: 5,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from_static(b"b")),
            headers: vec![],
        },
    ]);
    gapped.last_offset_delta = 1;
    assert_eq!(
        code(c.send(9, &produce("t", 0, gapped.encode().unwrap())).await),
        ErrorCode::InvalidRecord.code()
    );
    let mut bad_acks = produce("t", 0, batch(1, 10, None));
    bad_acks.acks = 2;
    assert_eq!(
        code(c.send(9, &bad_acks).await),
        ErrorCode::InvalidRequiredAcks.code()
    );
    assert_eq!(
        code(c.send(2, &produce("t", 0, batch(1, 10, None))).await),
        ErrorCode::UnsupportedVersion.code()
    );
    // Nothing refused was appended: the log end is still 5.
    let offsets = c
        .send(
            7,
            &ListOffsetsRequest {
                replica_id: -1,
                topics: vec![ListOffsetsRequestTopic {
                    name: "t".into(),
                    partitions: vec![ListOffsetsRequestPartition {
                        partition_index: 0,
                        timestamp: -1,
                        current_leader_epoch: -1,
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(offsets.topics[0].partitions[0].offset, 5);
    b.stop().await;
}

#[tokio::test]
async fn idempotent_retries_are_not_appended_twice() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("idem", 1, 1)).await;
    let pid = c.send(4, &InitProducerIdRequest::default()).await;
    assert_eq!(pid.error_code, 0);
    let (id, epoch) = (pid.producer_id, pid.producer_epoch);
    let first = batch(4, 10, Some((id, epoch, 0)));
    assert_eq!(
        produce_result(&c.send(9, &produce("idem", 0, first.clone())).await),
        (0, 0)
    );
    // The same batch again (a retry after a lost response): same offset, not appended.
    assert_eq!(
        produce_result(&c.send(9, &produce("idem", 0, first)).await),
        (0, 0)
    );
    assert_eq!(
        produce_result(
            &c.send(9, &produce("idem", 0, batch(2, 10, Some((id, epoch, 4)))))
                .await
        ),
        (0, 4)
    );
    // A gap in sequence numbers.
    assert_eq!(
        produce_result(
            &c.send(9, &produce("idem", 0, batch(1, 10, Some((id, epoch, 9)))))
                .await
        )
        .0,
        ErrorCode::OutOfOrderSequenceNumber.code()
    );
    let other = c.send(4, &InitProducerIdRequest::default()).await;
    assert_ne!(other.producer_id, id);
    b.stop().await;
}

#[tokio::test]
async fn fetch_long_polls_until_min_bytes_arrive() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("poll", 1, 1)).await;
    // Nothing there: waits max_wait_ms, then answers empty.
    let started = Instant::now();
    let empty = c.send(12, &fetch("poll", 0, 1, 300)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    let p = &empty.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert!(p.records.as_ref().map_or(true, |r| r.is_empty()));

    // A fetch waiting 10 s returns as soon as a produce on another connection lands.
    let addr = b.addr;
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut p = Client::connect_to(addr).await;
        p.send(9, &produce("poll", 0, batch(5, 10, None))).await
    });
    let started = Instant::now();
    let got = c.send(12, &fetch("poll", 0, 1, 10_000)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "long poll did not wake on produce"
    );
    producer.await.unwrap();
    let p = &got.responses[0].partitions[0];
    assert_eq!(p.high_watermark, 5);
    let batch = RecordBatch::decode(p.records.as_ref().unwrap(), 1 << 20).unwrap();
    assert_eq!(batch.records.len(), 5);
    assert_eq!(batch.records[4].offset, 4);

    let out_of_range = c.send(12, &fetch("poll", 99, 1, 0)).await;
    let p = &out_of_range.responses[0].partitions[0];
    assert_eq!(p.error_code, ErrorCode::OffsetOutOfRange.code());
    assert_eq!(
        p.records.as_deref(),
        Some(&b""[..]),
        "record set must be empty, not null"
    );
    b.stop().await;
}

#[tokio::test]
async fn metadata_auto_creates_and_reports_invalid_names() {
    let b = start(|c| c.num_partitions = 2).await;
    let mut c = Client::connect(&b).await;
    let req = |name: &str| MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some(name.into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: true,
        ..Default::default()
    };
    for version in [1, 4, 9, 12] {
        let name = format!("auto-{version}");
        let m = c.send(version, &req(&name)).await;
        assert_eq!(m.topics[0].error_code, 0, "v{version}");
        assert_eq!(m.topics[0].partitions.len(), 2);
        assert_eq!(m.brokers[0].port as u16, b.addr.port());
    }
    let bad = c.send(9, &req("no spaces")).await;
    assert_eq!(
        bad.topics[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    b.stop().await;
}

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn alter_configs(
    resource_type: i8,
    name: &str,
    changes: &[(&str, i8, Option<&str>)],
) -> AlterConfigsResource {
    AlterConfigsResource {
        resource_type,
        resource_name: name.into(),
        configs: changes
            .iter()
            .map(|(key, op, value)| AlterableConfig {
                name: key.to_string(),
                config_operation: *op,
                value: value.map(str::to_string),
            })
            .collect(),
    }
}

/// Alters one resource with IncrementalAlterConfigs v1 and returns its (error code, message).
async fn alter_one(
    c: &mut Client,
    resource: AlterConfigsResource,
    validate_only: bool,
) -> (i16, Option<String>) {
    alter_at(c, 1, resource, validate_only).await
}

async fn alter_at(
    c: &mut Client,
    version: i16,
    resource: AlterConfigsResource,
    validate_only: bool,
) -> (i16, Option<String>) {
    let r = c
        .send(
            version,
            &IncrementalAlterConfigsRequest {
                resources: vec![resource.clone()],
                validate_only,
            },
        )
        .await;
    assert_eq!(r.responses.len(), 1);
    let answer = &r.responses[0];
    assert_eq!(answer.resource_name, resource.resource_name);
    assert_eq!(answer.resource_type, resource.resource_type);
    (answer.error_code, answer.error_message.clone())
}

/// The topic's configs as DescribeConfigs reports them: name -> (value, config_source).
async fn describe_topic(c: &mut Client, topic: &str) -> BTreeMap<String, (String, i8)> {
    let r = c
        .send(
            4,
            &DescribeConfigsRequest {
                resources: vec![DescribeConfigsRequestResource {
                    resource_type: TOPIC,
                    resource_name: topic.into(),
                    configuration_keys: None,
                }],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    r.results[0]
        .configs
        .iter()
        .map(|e| (e.name.clone(), (e.value.clone().unwrap(), e.config_source)))
        .collect()
}

fn entry(value: &str, source: i8) -> (String, i8) {
    (value.to_string(), source)
}

const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

#[tokio::test]
async fn incremental_alter_configs_changes_topic_configs() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("cfg", 1, 1)).await;
    let before = describe_topic(&mut c, "cfg").await;
    assert_eq!(before["retention.ms"], entry("604800000", SOURCE_DEFAULT));
    assert_eq!(before["cleanup.policy"], entry("delete", SOURCE_DEFAULT));

    let set = alter_configs(
        TOPIC,
        "cfg",
        &[
            ("retention.ms", SET, Some("3600000")),
            ("cleanup.policy", SET, Some("compact")),
        ],
    );
    // v0 is the non-flexible encoding; the rest of the tests use v1.
    assert_eq!(alter_at(&mut c, 0, set, false).await, (0, None));
    let d = describe_topic(&mut c, "cfg").await;
    assert_eq!(d["retention.ms"], entry("3600000", SOURCE_TOPIC));
    assert_eq!(d["cleanup.policy"], entry("compact", SOURCE_TOPIC));
    assert_eq!(d["segment.bytes"].1, SOURCE_DEFAULT);

    // SUBTRACT takes an item away, APPEND adds one after the current ones.
    let sub = alter_configs(
        TOPIC,
        "cfg",
        &[("cleanup.policy", SUBTRACT, Some("compact"))],
    );
    let (code, message) = alter_one(&mut c, sub, false).await;
    assert_eq!(
        code,
        ErrorCode::InvalidConfig.code(),
        "an empty policy is refused"
    );
    assert!(message.unwrap().contains("cleanup.policy"));
    let append = alter_configs(TOPIC, "cfg", &[("cleanup.policy", APPEND, Some("delete"))]);
    assert_eq!(alter_one(&mut c, append, false).await.0, 0);
    let d = describe_topic(&mut c, "cfg").await;
    assert_eq!(d["cleanup.policy"], entry("compact,delete", SOURCE_TOPIC));
    let sub = alter_configs(
        TOPIC,
        "cfg",
        &[("cleanup.policy", SUBTRACT, Some("compact"))],
    );
    assert_eq!(alter_one(&mut c, sub, false).await.0, 0);
    let d = describe_topic(&mut c, "cfg").await;
    assert_eq!(d["cleanup.policy"], entry("delete", SOURCE_TOPIC));

    // DELETE reverts to the default; the other override stays.
    let revert = alter_configs(TOPIC, "cfg", &[("cleanup.policy", DELETE, None)]);
    assert_eq!(alter_one(&mut c, revert, false).await.0, 0);
    let d = describe_topic(&mut c, "cfg").await;
    assert_eq!(d["cleanup.policy"], entry("delete", SOURCE_DEFAULT));
    assert_eq!(d["retention.ms"], entry("3600000", SOURCE_TOPIC));

    // APPEND to a topic without an override extends the default, as in Kafka.
    c.send(7, &create("plain", 1, 1)).await;
    let append = alter_configs(
        TOPIC,
        "plain",
        &[("cleanup.policy", APPEND, Some("compact"))],
    );
    assert_eq!(alter_one(&mut c, append, false).await.0, 0);
    let d = describe_topic(&mut c, "plain").await;
    assert_eq!(d["cleanup.policy"], entry("delete,compact", SOURCE_TOPIC));

    // validate_only answers as the change would, and changes nothing.
    let try_it = alter_configs(TOPIC, "cfg", &[("retention.ms", SET, Some("1000"))]);
    assert_eq!(alter_one(&mut c, try_it, true).await, (0, None));
    let bad = alter_configs(TOPIC, "cfg", &[("retention.ms", SET, Some("soon"))]);
    assert_eq!(
        alter_one(&mut c, bad, true).await.0,
        ErrorCode::InvalidConfig.code()
    );
    assert_eq!(
        describe_topic(&mut c, "cfg").await["retention.ms"],
        entry("3600000", SOURCE_TOPIC)
    );
    b.stop().await;
}

#[tokio::test]
async fn incremental_alter_configs_refuses_bad_resources_whole() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("cfg", 1, 1)).await;
    let before = describe_topic(&mut c, "cfg").await;

    // A bad value fails its resource; the valid change beside it is not applied either.
    let mixed = alter_configs(
        TOPIC,
        "cfg",
        &[
            ("retention.ms", SET, Some("1000")),
            ("segment.bytes", SET, Some("tiny")),
        ],
    );
    let (code, message) = alter_one(&mut c, mixed, false).await;
    assert_eq!(code, ErrorCode::InvalidConfig.code());
    let message = message.unwrap();
    assert!(
        message.contains("segment.bytes") && message.contains("tiny"),
        "{message}"
    );
    let unknown = alter_configs(TOPIC, "cfg", &[("no.such.config", SET, Some("1"))]);
    let (code, message) = alter_one(&mut c, unknown, false).await;
    assert_eq!(code, ErrorCode::InvalidConfig.code());
    assert!(message.unwrap().contains("no.such.config"));
    let not_a_list = alter_configs(TOPIC, "cfg", &[("retention.ms", APPEND, Some("5"))]);
    let (code, message) = alter_one(&mut c, not_a_list, false).await;
    assert_eq!(code, ErrorCode::InvalidConfig.code());
    assert!(message.unwrap().contains("retention.ms"));
    let twice = alter_configs(
        TOPIC,
        "cfg",
        &[
            ("retention.ms", SET, Some("1000")),
            ("retention.ms", SET, Some("2000")),
        ],
    );
    assert_eq!(
        alter_one(&mut c, twice, false).await.0,
        ErrorCode::InvalidRequest.code()
    );
    let null = alter_configs(TOPIC, "cfg", &[("retention.ms", SET, None)]);
    assert_eq!(
        alter_one(&mut c, null, false).await.0,
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(describe_topic(&mut c, "cfg").await, before);

    // Resources are independent: one good, one unknown topic, one broker, one unknown type.
    let r = c
        .send(
            1,
            &IncrementalAlterConfigsRequest {
                resources: vec![
                    alter_configs(TOPIC, "cfg", &[("retention.ms", SET, Some("1000"))]),
                    alter_configs(TOPIC, "missing", &[("retention.ms", SET, Some("1000"))]),
                    alter_configs(BROKER, "1", &[("log.retention.ms", SET, Some("1000"))]),
                    alter_configs(8, "1", &[("kafka", SET, Some("DEBUG"))]),
                ],
                validate_only: false,
            },
        )
        .await;
    let codes: Vec<i16> = r.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [
            0,
            ErrorCode::UnknownTopicOrPartition.code(),
            ErrorCode::InvalidRequest.code(),
            ErrorCode::InvalidRequest.code(),
        ]
    );
    let broker_message = r.responses[2].error_message.as_deref().unwrap();
    assert!(broker_message.contains("not supported"), "{broker_message}");
    assert_eq!(
        describe_topic(&mut c, "cfg").await["retention.ms"],
        entry("1000", SOURCE_TOPIC)
    );

    // The same resource twice: neither copy is applied.
    let r = c
        .send(
            1,
            &IncrementalAlterConfigsRequest {
                resources: vec![
                    alter_configs(TOPIC, "cfg", &[("retention.ms", SET, Some("2000"))]),
                    alter_configs(TOPIC, "cfg", &[("retention.ms", SET, Some("3000"))]),
                ],
                validate_only: false,
            },
        )
        .await;
    assert!(r
        .responses
        .iter()
        .all(|r| r.error_code == ErrorCode::InvalidRequest.code()));
    assert_eq!(
        describe_topic(&mut c, "cfg").await["retention.ms"],
        entry("1000", SOURCE_TOPIC)
    );
    b.stop().await;
}

#[tokio::test]
async fn altered_max_message_bytes_holds_at_once_and_after_restart() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("small", 1, 1)).await;
    c.send(7, &create("other", 1, 1)).await;
    let big = || batch(10, 200, None);
    assert_eq!(
        produce_result(&c.send(9, &produce("small", 0, big())).await).0,
        0
    );

    let shrink = alter_configs(TOPIC, "small", &[("max.message.bytes", SET, Some("1000"))]);
    assert_eq!(alter_one(&mut c, shrink, false).await.0, 0);
    let code = |r: ProduceResponse| produce_result(&r).0;
    assert_eq!(
        code(c.send(9, &produce("small", 0, big())).await),
        ErrorCode::MessageTooLarge.code()
    );
    assert_eq!(
        code(c.send(9, &produce("small", 0, batch(1, 10, None))).await),
        0
    );
    assert_eq!(code(c.send(9, &produce("other", 0, big())).await), 0);
    // Compaction needs keys; the switch reaches the produce path at once too.
    let compact = alter_configs(TOPIC, "other", &[("cleanup.policy", SET, Some("compact"))]);
    assert_eq!(alter_one(&mut c, compact, false).await.0, 0);
    let keyless = RecordBatch::new(vec![Record {
        offset: 0,
        timestamp: 1,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: vec![],
    }])
    .encode()
    .unwrap();
    assert_eq!(
        code(c.send(9, &produce("other", 0, keyless.clone())).await),
        ErrorCode::InvalidRecord.code()
    );
    drop(c);

    let b = b.restart().await;
    let mut c = Client::connect(&b).await;
    let d = describe_topic(&mut c, "small").await;
    assert_eq!(d["max.message.bytes"], entry("1000", SOURCE_TOPIC));
    assert_eq!(
        code(c.send(9, &produce("small", 0, big())).await),
        ErrorCode::MessageTooLarge.code()
    );
    assert_eq!(
        code(c.send(9, &produce("other", 0, keyless)).await),
        ErrorCode::InvalidRecord.code()
    );
    // Reverted, the broker's message.max.bytes applies again.
    let revert = alter_configs(TOPIC, "small", &[("max.message.bytes", DELETE, None)]);
    assert_eq!(alter_one(&mut c, revert, false).await.0, 0);
    assert_eq!(code(c.send(9, &produce("small", 0, big())).await), 0);
    b.stop().await;
}

#[tokio::test]
async fn altered_retention_reaches_the_running_log() {
    let b = start(|c| c.log_retention_check_interval_ms = 50).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("aging", 1, 1)).await;
    // Timestamps from 2023: far older than any retention set below.
    assert_eq!(
        produce_result(&c.send(9, &produce("aging", 0, batch(3, 10, None))).await),
        (0, 0)
    );
    let earliest = ListOffsetsRequest {
        replica_id: -1,
        topics: vec![ListOffsetsRequestTopic {
            name: "aging".into(),
            partitions: vec![ListOffsetsRequestPartition {
                partition_index: 0,
                timestamp: -2,
                current_leader_epoch: -1,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    // The week-long defaults keep the data; a rolled segment past a 1 ms retention must go.
    let shorten = alter_configs(
        TOPIC,
        "aging",
        &[
            ("segment.ms", SET, Some("1")),
            ("retention.ms", SET, Some("1")),
        ],
    );
    assert_eq!(c.send(7, &earliest).await.topics[0].partitions[0].offset, 0);
    assert_eq!(alter_one(&mut c, shorten, false).await.0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let start = c.send(7, &earliest).await.topics[0].partitions[0].offset;
        if start == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention never ran; log start {start}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.stop().await;
}

fn grow(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
    CreatePartitionsTopic {
        name: name.into(),
        count,
        assignments: assignments.map(|a| {
            a.into_iter()
                .map(|broker_ids| CreatePartitionsAssignment { broker_ids })
                .collect()
        }),
    }
}

fn create_partitions(
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> CreatePartitionsRequest {
    CreatePartitionsRequest {
        topics,
        timeout_ms: 30_000,
        validate_only,
    }
}

/// (error code, message) of each topic, in the response's order.
async fn grow_results(
    c: &mut Client,
    version: i16,
    req: &CreatePartitionsRequest,
) -> Vec<(String, i16, Option<String>)> {
    c.send(version, req)
        .await
        .results
        .into_iter()
        .map(|r| (r.name, r.error_code, r.error_message))
        .collect()
}

async fn partition_count(c: &mut Client, topic: &str) -> usize {
    let m = c
        .send(
            12,
            &MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: Some(topic.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(m.topics[0].error_code, 0, "{topic}");
    m.topics[0].partitions.len()
}

#[tokio::test]
async fn create_partitions_grows_a_topic_at_once_and_after_restart() {
    let b = start(|c| c.auto_create_topics = false).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("grow", 1, 1)).await;
    let code = |r: ProduceResponse| produce_result(&r);
    assert_eq!(
        code(c.send(9, &produce("grow", 2, batch(1, 10, None))).await).0,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    let check = create_partitions(vec![grow("grow", 3, None)], true);
    assert_eq!(
        grow_results(&mut c, 3, &check).await,
        [("grow".to_string(), 0, None)]
    );
    assert_eq!(partition_count(&mut c, "grow").await, 1, "validate_only");

    let node = 1; // BrokerConfig's default node.id
    let req = create_partitions(
        vec![grow("grow", 3, Some(vec![vec![node], vec![node]]))],
        false,
    );
    assert_eq!(
        grow_results(&mut c, 3, &req).await,
        [("grow".to_string(), 0, None)]
    );
    assert_eq!(partition_count(&mut c, "grow").await, 3);
    assert_eq!(
        code(c.send(9, &produce("grow", 2, batch(2, 10, None))).await),
        (0, 0)
    );
    // v0 (not flexible) and no explicit placement.
    let req = create_partitions(vec![grow("grow", 4, None)], false);
    assert_eq!(grow_results(&mut c, 0, &req).await[0].1, 0);
    assert_eq!(partition_count(&mut c, "grow").await, 4);
    drop(c);

    let b = b.restart().await;
    let mut c = Client::connect(&b).await;
    assert_eq!(partition_count(&mut c, "grow").await, 4);
    // The records written to a new partition before the restart are still there.
    assert_eq!(
        code(c.send(9, &produce("grow", 2, batch(1, 10, None))).await),
        (0, 2)
    );
    assert_eq!(
        code(c.send(9, &produce("grow", 3, batch(1, 10, None))).await),
        (0, 0)
    );
    b.stop().await;
}

#[tokio::test]
async fn create_partitions_refuses_each_bad_topic_alone() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    c.send(7, &create("three", 3, 1)).await;
    c.send(7, &create("one", 1, 1)).await;
    c.send(7, &create("other", 1, 1)).await;

    for validate_only in [true, false] {
        let req = create_partitions(
            vec![
                grow("missing", 2, None),
                grow("three", 2, None),
                grow("three-again", 1, None),
                grow("one", 1, None),
                grow("one", 3, Some(vec![vec![1]])),
                grow("__consumer_offsets", 100, None),
            ],
            validate_only,
        );
        let r = grow_results(&mut c, 3, &req).await;
        let codes: Vec<(&str, i16)> = r.iter().map(|(n, code, _)| (n.as_str(), *code)).collect();
        assert_eq!(
            codes,
            [
                ("missing", ErrorCode::UnknownTopicOrPartition.code()),
                ("three", ErrorCode::InvalidPartitions.code()),
                ("three-again", ErrorCode::UnknownTopicOrPartition.code()),
                // Named twice: one answer, and neither copy applied.
                ("one", ErrorCode::InvalidRequest.code()),
                ("__consumer_offsets", ErrorCode::InvalidRequest.code()),
            ],
            "validate_only={validate_only}"
        );
        assert!(r[1]
            .2
            .as_deref()
            .unwrap()
            .contains("Topic currently has 3 partitions, which is higher than the requested 2."));
        assert!(
            r[4].2.as_deref().unwrap().contains("orphan"),
            "{:?}",
            r[4].2
        );

        let same = create_partitions(vec![grow("three", 3, None)], validate_only);
        assert_eq!(
            grow_results(&mut c, 1, &same).await[0].1,
            ErrorCode::InvalidPartitions.code()
        );
        for (assignments, why) in [
            (vec![vec![1]], "one assignment for two new partitions"),
            (vec![vec![1], vec![1], vec![1]], "three for two"),
            (vec![vec![1], vec![2]], "a broker that does not exist"),
            (vec![vec![1], vec![1, 1]], "the same broker twice"),
            (vec![vec![1], vec![]], "no replica at all"),
        ] {
            let req = create_partitions(vec![grow("one", 3, Some(assignments))], validate_only);
            let r = grow_results(&mut c, 3, &req).await;
            assert_eq!(
                r[0].1,
                ErrorCode::InvalidReplicaAssignment.code(),
                "{why}: {:?}",
                r[0].2
            );
        }
        // One bad topic does not hold back a good one in the same request.
        let mixed = create_partitions(
            vec![grow("nope", 2, None), grow("other", 2, None)],
            validate_only,
        );
        let r = grow_results(&mut c, 2, &mixed).await;
        assert_eq!(r[0].1, ErrorCode::UnknownTopicOrPartition.code());
        assert_eq!((r[1].1, r[1].2.clone()), (0, None));
        let expected = if validate_only { 1 } else { 2 };
        assert_eq!(partition_count(&mut c, "other").await, expected);
    }
    assert_eq!(partition_count(&mut c, "three").await, 3);
    assert_eq!(partition_count(&mut c, "one").await, 1);
    b.stop().await;
}

#[tokio::test]
async fn describe_cluster_names_this_node_as_broker_and_controller() {
    let b = start(|_| {}).await;
    let mut c = Client::connect(&b).await;
    let meta = c
        .send(
            12,
            &MetadataRequest {
                topics: Some(vec![]),
                ..Default::default()
            },
        )
        .await;
    let cluster_id = meta.cluster_id.unwrap();
    for version in [0, 1] {
        let r = c.send(version, &DescribeClusterRequest::default()).await;
        assert_eq!((r.error_code, r.error_message), (0, None), "v{version}");
        assert_eq!(r.cluster_id, cluster_id);
        assert_eq!(r.controller_id, 1);
        assert_eq!(r.endpoint_type, 1);
        assert_eq!(r.brokers.len(), 1);
        let broker = &r.brokers[0];
        assert_eq!(broker.broker_id, 1);
        assert_eq!(
            (broker.host.as_str(), broker.port as u16),
            ("127.0.0.1", b.addr.port())
        );
        assert_eq!(broker.rack, None);
        assert_eq!(r.cluster_authorized_operations, i32::MIN, "not asked for");
    }
    let with_ops = DescribeClusterRequest {
        include_cluster_authorized_operations: true,
        ..Default::default()
    };
    let ops = c.send(1, &with_ops).await.cluster_authorized_operations;
    // Describe (8), alter configs (11) and idempotent write (12) among them; read (3) is a
    // topic and group operation, not a cluster one.
    for bit in [8, 11, 12] {
        assert_ne!(ops & (1 << bit), 0, "bit {bit} of {ops:#x}");
    }
    assert_eq!(ops & (1 << 3), 0);

    let controllers = DescribeClusterRequest {
        endpoint_type: 2,
        ..Default::default()
    };
    let r = c.send(1, &controllers).await;
    assert_eq!(r.error_code, ErrorCode::MismatchedEndpointType.code());
    assert_eq!(r.error_code, 114);
    assert!(r.error_message.is_some());
    assert!(r.brokers.is_empty());
    assert_eq!((r.controller_id, r.cluster_id.as_str()), (-1, ""));
    let unknown = DescribeClusterRequest {
        endpoint_type: 7,
        ..Default::default()
    };
    let r = c.send(1, &unknown).await;
    assert_eq!(r.error_code, ErrorCode::UnsupportedEndpointType.code());
    assert_eq!(r.error_code, 115);
    b.stop().await;
}
