//! The admin client against an in-process broker: topics, configs, offsets, and groups both
//! without members (offsets committed from outside) and with a live member joined by hand.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use sluice_client::admin::{AlterConfigOp, AlterConfigOpType, ConfigSource, NewTopic, OffsetSpec};
use sluice_client::connection::Connection;
use sluice_client::{Admin, ClientConfig, ClientError};
use sluice_protocol::messages::*;
use sluice_protocol::records::{Record, RecordBatch};
use sluice_protocol::ErrorCode;

struct TestBroker {
    addr: SocketAddr,
    broker: Option<common::RunningBroker>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    async fn start() -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let broker = common::start_broker(dir.path(), common::any_port(), |c| {
            c.num_partitions = 2;
            // Joins complete at once instead of waiting for more members.
            c.group_coordinator.initial_rebalance_delay_ms = 0;
        })
        .await;
        TestBroker {
            addr: broker.addr,
            broker: Some(broker),
            _dir: dir,
        }
    }

    fn admin(&self) -> Admin {
        Admin::new(
            ClientConfig::new()
                .set("bootstrap.servers", self.addr.to_string())
                .set("request.timeout.ms", "5000"),
        )
        .unwrap()
    }

    async fn stop(mut self) {
        self.broker.take().unwrap().stop().await;
    }
}

fn code(e: &ClientError) -> Option<ErrorCode> {
    e.code()
}

/// Produces `values` to one partition, one batch each, with timestamps 1000, 1010, 1020...
/// One batch per record, as the broker finds timestamps at batch granularity.
async fn produce(addr: SocketAddr, topic: &str, partition: i32, values: &[&str]) {
    let conn = Connection::connect(&addr.to_string(), "test-producer", Duration::from_secs(5))
        .await
        .unwrap();
    let mut batches = BytesMut::new();
    for (i, v) in values.iter().enumerate() {
        let record = Record {
            offset: 0,
            timestamp: 1000 + 10 * i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Vec::new(),
        };
        batches.put_slice(&RecordBatch::new(vec![record]).encode().unwrap());
    }
    let request = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 5000,
        topic_data: vec![ProduceRequestTopic {
            name: topic.into(),
            partition_data: vec![ProduceRequestPartition {
                index: partition,
                records: Some(batches.freeze()),
            }],
        }],
    };
    let response = conn.send(&request, Duration::from_secs(5)).await.unwrap();
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to {topic}-{partition}");
}

#[tokio::test]
async fn topics_are_created_listed_described_and_deleted() {
    let broker = TestBroker::start().await;
    let admin = broker.admin();

    let created = admin
        .create_topics(
            &[
                NewTopic::new("orders")
                    .partitions(3)
                    .replication_factor(1)
                    .config("retention.ms", "60000"),
                NewTopic::new("defaults"),
            ],
            false,
        )
        .await
        .unwrap();
    let orders = created["orders"].as_ref().unwrap();
    assert_eq!((orders.partitions, orders.replication_factor), (3, 1));
    assert_ne!(orders.id, sluice_protocol::wire::Uuid::ZERO);
    // -1 took the broker's num.partitions.
    assert_eq!(created["defaults"].as_ref().unwrap().partitions, 2);

    // One topic failing does not fail the others; validate_only creates nothing.
    let again = admin
        .create_topics(&[NewTopic::new("orders"), NewTopic::new("checked")], true)
        .await
        .unwrap();
    let e = again["orders"].as_ref().unwrap_err();
    assert_eq!(code(e), Some(ErrorCode::TopicAlreadyExists), "{e}");
    assert!(again["checked"].is_ok());
    let bad = admin
        .create_topics(&[NewTopic::new("bad").partitions(0)], false)
        .await
        .unwrap();
    assert_eq!(
        code(bad["bad"].as_ref().unwrap_err()),
        Some(ErrorCode::InvalidPartitions)
    );

    let names: Vec<String> = admin
        .list_topics(false)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["defaults", "orders"]);

    // An unknown topic is an answer at once, not something to retry until the timeout.
    let started = Instant::now();
    let described = admin
        .describe_topics(&["orders".into(), "missing".into()])
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let d = described["orders"].as_ref().unwrap();
    assert_eq!((d.name.as_str(), d.internal), ("orders", false));
    assert_eq!(d.id, orders.id);
    assert_eq!(
        d.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    for p in &d.partitions {
        assert_eq!(
            (p.leader, &p.replicas[..], &p.isr[..]),
            (Some(1), &[1][..], &[1][..])
        );
    }
    assert_eq!(
        code(described["missing"].as_ref().unwrap_err()),
        Some(ErrorCode::UnknownTopicOrPartition)
    );

    let cluster = admin.describe_cluster().await.unwrap();
    assert!(cluster.cluster_id.is_some());
    assert_eq!(cluster.controller, Some(1));
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].port, broker.addr.port() as i32);

    let deleted = admin
        .delete_topics(&["defaults".into(), "missing".into()])
        .await
        .unwrap();
    assert!(deleted["defaults"].is_ok());
    assert_eq!(
        code(deleted["missing"].as_ref().unwrap_err()),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    let listed = admin.list_topics(true).await.unwrap();
    let (internal, external): (Vec<_>, Vec<_>) = listed.into_iter().partition(|t| t.internal);
    assert_eq!(external.len(), 1);
    assert_eq!(external[0].name, "orders");
    assert!(internal.iter().all(|t| t.name == "__consumer_offsets"));
    broker.stop().await;
}

#[tokio::test]
async fn topic_configs_are_described_and_altered_key_by_key() {
    let broker = TestBroker::start().await;
    let admin = broker.admin();
    admin
        .create_topics(&[NewTopic::new("t").config("retention.ms", "60000")], false)
        .await
        .unwrap()["t"]
        .as_ref()
        .unwrap();

    let entries = admin.describe_configs("t").await.unwrap();
    let get = |entries: &[sluice_client::admin::ConfigEntry], k: &str| {
        entries.iter().find(|e| e.name == k).cloned().unwrap()
    };
    let retention = get(&entries, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.default && !retention.sensitive);
    let policy = get(&entries, "cleanup.policy");
    assert_eq!(policy.value.as_deref(), Some("delete"));
    assert!(policy.default);
    assert_eq!(policy.source, ConfigSource::Default);

    admin
        .incremental_alter_configs(
            "t",
            &[
                AlterConfigOp::delete("retention.ms"),
                AlterConfigOp::set("max.message.bytes", "2048"),
                AlterConfigOp {
                    name: "cleanup.policy".into(),
                    op: AlterConfigOpType::Append,
                    value: Some("compact".into()),
                },
            ],
        )
        .await
        .unwrap();
    let entries = admin.describe_configs("t").await.unwrap();
    assert!(get(&entries, "retention.ms").default);
    assert_eq!(
        get(&entries, "max.message.bytes").value.as_deref(),
        Some("2048")
    );
    assert_eq!(
        get(&entries, "cleanup.policy").value.as_deref(),
        Some("delete,compact")
    );

    let e = admin.describe_configs("missing").await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::UnknownTopicOrPartition), "{e}");
    let e = admin
        .incremental_alter_configs("t", &[AlterConfigOp::set("no.such.key", "1")])
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::InvalidConfig), "{e}");
    broker.stop().await;
}

#[tokio::test]
async fn offsets_are_listed_by_each_partitions_leader() {
    let broker = TestBroker::start().await;
    let admin = broker.admin();
    admin
        .create_topics(&[NewTopic::new("t").partitions(2)], false)
        .await
        .unwrap();
    produce(broker.addr, "t", 0, &["a", "b", "c"]).await;
    produce(broker.addr, "t", 1, &["x"]).await;

    let all = [
        ("t".to_string(), 0),
        ("t".to_string(), 1),
        ("t".to_string(), 9),
        ("missing".to_string(), 0),
    ];
    let latest = admin.list_offsets(&all, OffsetSpec::Latest).await.unwrap();
    assert_eq!(latest[&("t".into(), 0)].as_ref().unwrap().offset, 3);
    assert_eq!(latest[&("t".into(), 1)].as_ref().unwrap().offset, 1);
    assert_eq!(
        code(latest[&("t".into(), 9)].as_ref().unwrap_err()),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(
        code(latest[&("missing".into(), 0)].as_ref().unwrap_err()),
        Some(ErrorCode::UnknownTopicOrPartition)
    );
    let earliest = admin
        .list_offsets(&all[..2], OffsetSpec::Earliest)
        .await
        .unwrap();
    assert!(earliest.values().all(|r| r.as_ref().unwrap().offset == 0));
    let p0 = [("t".to_string(), 0)];
    let at = admin
        .list_offsets(&p0, OffsetSpec::Timestamp(1015))
        .await
        .unwrap();
    let at = at[&("t".into(), 0)].as_ref().unwrap();
    assert_eq!((at.offset, at.timestamp), (2, 1020));
    let after = admin
        .list_offsets(&p0, OffsetSpec::Timestamp(5000))
        .await
        .unwrap();
    assert_eq!(after[&("t".into(), 0)].as_ref().unwrap().offset, -1);
    broker.stop().await;
}

#[tokio::test]
async fn groups_made_by_committing_offsets_are_listed_described_and_deleted() {
    let broker = TestBroker::start().await;
    let admin = broker.admin();
    admin
        .create_topics(&[NewTopic::new("t").partitions(2)], false)
        .await
        .unwrap();

    let offsets = BTreeMap::from([(("t".to_string(), 0), 5), (("t".to_string(), 1), 7)]);
    admin.alter_group_offsets("g", &offsets).await.unwrap();
    let listed = admin.list_groups().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_id, "g");
    assert_eq!(listed[0].state.as_deref(), Some("Empty"));

    let described = admin
        .describe_groups(&["g".into(), "nobody".into()])
        .await
        .unwrap();
    let g = described["g"].as_ref().unwrap();
    assert_eq!((g.state.as_str(), g.members.len()), ("Empty", 0));
    assert_eq!(g.coordinator, 1);
    assert_eq!(described["nobody"].as_ref().unwrap().state, "Dead");

    let committed = admin.list_group_offsets("g").await.unwrap();
    let plain: BTreeMap<_, _> = committed
        .iter()
        .map(|(k, v)| (k.clone(), v.offset))
        .collect();
    assert_eq!(plain, offsets);
    assert!(admin.list_group_offsets("nobody").await.unwrap().is_empty());

    let deleted = admin
        .delete_group_offsets("g", &[("t".into(), 0)])
        .await
        .unwrap();
    assert!(deleted[&("t".into(), 0)].is_ok());
    let committed = admin.list_group_offsets("g").await.unwrap();
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        [&("t".to_string(), 1)]
    );

    let deleted = admin
        .delete_groups(&["g".into(), "nobody".into()])
        .await
        .unwrap();
    assert!(deleted["g"].is_ok());
    assert_eq!(
        code(deleted["nobody"].as_ref().unwrap_err()),
        Some(ErrorCode::GroupIdNotFound)
    );
    assert!(admin.list_groups().await.unwrap().is_empty());
    broker.stop().await;
}

fn put_string(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// ConsumerProtocolSubscription v0 for `topics`, without user data.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_string(&mut b, t);
    }
    b.put_i32(-1);
    b.freeze()
}

/// ConsumerProtocolAssignment v1 of partitions of one topic, without user data.
fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(1);
    put_string(&mut b, topic);
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

/// Joins `group` as its only member, the way a consumer does, and returns the connection
/// (the member lives as long as its session) and the member id.
async fn join_and_sync(addr: SocketAddr, group: &str, topic: &str) -> (Connection, String) {
    let conn = Connection::connect(&addr.to_string(), "member-client", Duration::from_secs(5))
        .await
        .unwrap();
    let mut join = JoinGroupRequest {
        group_id: group.into(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 30_000,
        member_id: String::new(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![JoinGroupRequestProtocol {
            name: "range".into(),
            metadata: subscription(&[topic]),
        }],
        reason: None,
    };
    let timeout = Duration::from_secs(10);
    let mut joined = conn.send(&join, timeout).await.unwrap();
    for _ in 0..50 {
        if joined.error_code == ErrorCode::MemberIdRequired.code() {
            join.member_id = joined.member_id.clone();
        } else if joined.error_code != ErrorCode::CoordinatorLoadInProgress.code() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        joined = conn.send(&join, timeout).await.unwrap();
    }
    assert_eq!(joined.error_code, 0, "JoinGroup");
    assert_eq!(joined.leader, joined.member_id);
    let sync = SyncGroupRequest {
        group_id: group.into(),
        generation_id: joined.generation_id,
        member_id: joined.member_id.clone(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: vec![SyncGroupRequestAssignment {
            member_id: joined.member_id.clone(),
            assignment: assignment(topic, &[1, 0]),
        }],
    };
    let synced = conn.send(&sync, timeout).await.unwrap();
    assert_eq!(synced.error_code, 0, "SyncGroup");
    (conn, joined.member_id)
}

#[tokio::test]
async fn a_live_member_is_described_and_its_group_protected() {
    let broker = TestBroker::start().await;
    let admin = broker.admin();
    admin
        .create_topics(&[NewTopic::new("t").partitions(2)], false)
        .await
        .unwrap();
    let (_member, member_id) = join_and_sync(broker.addr, "live", "t").await;

    let described = admin.describe_groups(&["live".into()]).await.unwrap();
    let g = described["live"].as_ref().unwrap();
    assert_eq!(g.state, "Stable");
    assert_eq!(
        (g.protocol_type.as_str(), g.protocol.as_str()),
        ("consumer", "range")
    );
    assert_eq!(g.members.len(), 1);
    let m = &g.members[0];
    assert_eq!(m.member_id, member_id);
    assert_eq!(m.client_id, "member-client");
    assert_eq!(m.host, "/127.0.0.1");
    assert_eq!(
        m.assignment.as_deref(),
        Some(&[("t".to_string(), 0), ("t".to_string(), 1)][..])
    );
    let listed = admin.list_groups().await.unwrap();
    assert_eq!(
        (listed[0].protocol_type.as_str(), listed[0].state.as_deref()),
        ("consumer", Some("Stable"))
    );

    // Offsets are the members' business while there are members.
    let e = admin
        .alter_group_offsets("live", &BTreeMap::from([(("t".to_string(), 0), 1)]))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::UnknownMemberId), "{e}");
    let deleted = admin.delete_groups(&["live".into()]).await.unwrap();
    assert_eq!(
        code(deleted["live"].as_ref().unwrap_err()),
        Some(ErrorCode::NonEmptyGroup)
    );
    let deleted = admin
        .delete_group_offsets("live", &[("t".into(), 0)])
        .await
        .unwrap();
    assert_eq!(
        code(deleted[&("t".into(), 0)].as_ref().unwrap_err()),
        Some(ErrorCode::GroupSubscribedToTopic)
    );
    broker.stop().await;
}

#[tokio::test]
async fn an_unreachable_cluster_fails_within_the_request_timeout() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let admin = Admin::new(
        ClientConfig::new()
            .set("bootstrap.servers", free.to_string())
            .set("request.timeout.ms", "1000"),
    )
    .unwrap();
    let started = Instant::now();
    let e = admin.list_topics(false).await.unwrap_err();
    assert!(matches!(e, ClientError::NoBrokers(_)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(Admin::new(ClientConfig::new()).is_err());
}
