//! The consumer against an in-process broker: reading assigned partitions (order, record
//! fields, limits), seeks, pause/resume, offset reset policies, commits, pattern subscriptions,
//! and groups of three consumers sharing six partitions through joins, closes and a member
//! that dies, with eager (range) and cooperative (cooperative-sticky) rebalancing.
//! Test data is produced with raw Produce requests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_client::cluster::Lane;
use sluice_client::config::CommonConfig;
use sluice_client::consumer::{OffsetAndMetadata, RebalanceListener, TimestampType};
use sluice_client::{ClientConfig, Cluster, Consumer, ConsumerRecord, TopicPartition};
use sluice_protocol::messages::{
    CreateTopicsRequest, CreateTopicsRequestTopic, ProduceRequest, ProduceRequestPartition,
    ProduceRequestTopic,
};
use sluice_protocol::records::{Record, RecordBatch, RecordHeader};
use tokio::sync::mpsc;

struct TestBroker {
    addr: std::net::SocketAddr,
    broker: Option<common::RunningBroker>,
    _dir: tempfile::TempDir,
    admin: Arc<Cluster>,
}

impl TestBroker {
    async fn start() -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let broker = common::start_broker(dir.path(), common::any_port(), |c| {
            c.num_partitions = 1;
            // Members start one after the other here; waiting for more to arrive only slows
            // tests.
            c.group_coordinator.initial_rebalance_delay_ms = 0;
            c.offsets_topic.partitions = 3;
        })
        .await;
        let addr = broker.addr;
        let admin = Cluster::new(
            CommonConfig::from_config(
                &ClientConfig::new().set("bootstrap.servers", addr.to_string()),
                "test-admin",
            )
            .unwrap(),
            false,
        );
        TestBroker {
            addr,
            broker: Some(broker),
            _dir: dir,
            admin,
        }
    }

    async fn stop(mut self) {
        self.broker.take().unwrap().stop().await;
    }

    async fn create_topic(&self, name: &str, partitions: i32) {
        let conn = self.admin.any_connection().await.unwrap();
        let response = conn
            .send(
                &CreateTopicsRequest {
                    topics: vec![CreateTopicsRequestTopic {
                        name: name.into(),
                        num_partitions: partitions,
                        replication_factor: 1,
                        ..Default::default()
                    }],
                    timeout_ms: 5000,
                    validate_only: false,
                },
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(response.topics[0].error_code, 0, "creating {name}");
    }

    /// Appends `records` (offsets relative: 0, 1, ...) as one batch; returns the base offset.
    async fn produce(&self, topic: &str, partition: i32, records: Vec<Record>) -> i64 {
        let batch = RecordBatch::new(records).encode().unwrap();
        let (leader, _) = self.admin.leader(topic, partition).await.unwrap();
        let conn = self.admin.connection(leader, Lane::Default).await.unwrap();
        let response = conn
            .send(
                &ProduceRequest {
                    transactional_id: None,
                    acks: -1,
                    timeout_ms: 5000,
                    topic_data: vec![ProduceRequestTopic {
                        name: topic.into(),
                        partition_data: vec![ProduceRequestPartition {
                            index: partition,
                            records: Some(batch),
                        }],
                    }],
                },
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "producing to {topic}-{partition}");
        p.base_offset
    }

    /// `n` records with values "{tag}-{i}" and keys "k{i}".
    async fn produce_values(&self, topic: &str, partition: i32, tag: &str, n: usize) {
        let records = (0..n)
            .map(|i| {
                record(
                    i as i64,
                    Some(&format!("k{i}")),
                    Some(&format!("{tag}-{i}")),
                    &[],
                )
            })
            .collect();
        self.produce(topic, partition, records).await;
    }
}

fn record(
    offset: i64,
    key: Option<&str>,
    value: Option<&str>,
    headers: &[(&str, Option<&str>)],
) -> Record {
    Record {
        offset,
        timestamp: 1_700_000_000_000 + offset,
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        headers: headers
            .iter()
            .map(|(k, v)| RecordHeader {
                key: k.to_string(),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            })
            .collect(),
    }
}

fn config(b: &TestBroker) -> ClientConfig {
    ClientConfig::new()
        .set("bootstrap.servers", b.addr.to_string())
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.wait.ms", "100")
        .set("request.timeout.ms", "10000")
}

fn group_config(b: &TestBroker, group: &str) -> ClientConfig {
    config(b)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("max.poll.interval.ms", "30000")
        .set("auto.commit.interval.ms", "500")
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn value(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap()
}

/// Polls until `n` records came back (failing after 20 s).
async fn poll_n(c: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(out.len(), n, "more records than expected");
    out
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- a consumer on its own ------------------------------------------------------------------

#[tokio::test]
async fn assigned_partitions_are_read_in_order_with_every_field() {
    let b = TestBroker::start().await;
    b.create_topic("basic", 2).await;
    let mut expected: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for batch in 0..3 {
        let records: Vec<Record> = (0..5)
            .map(|i| {
                let n = batch * 5 + i;
                match i {
                    0 => record(i, None, Some(&format!("v{n}")), &[]),
                    1 => record(i, Some(&format!("k{n}")), None, &[("h", None)]),
                    _ => record(
                        i,
                        Some(&format!("k{n}")),
                        Some(&format!("v{n}")),
                        &[("trace", Some("abc")), ("n", Some(&n.to_string()))],
                    ),
                }
            })
            .collect();
        let base = b.produce("basic", 0, records.clone()).await;
        expected
            .entry(0)
            .or_default()
            .extend(records.into_iter().map(|mut r| {
                r.offset += base;
                r
            }));
    }
    b.produce_values("basic", 1, "p1", 4).await;

    let mut c = Consumer::new(config(&b).set("max.poll.records", "4")).unwrap();
    c.assign([tp("basic", 0), tp("basic", 1)]).unwrap();
    let mut got: Vec<ConsumerRecord> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 19 {
        assert!(Instant::now() < deadline);
        let batch = c.poll(Duration::from_millis(200)).await.unwrap();
        assert!(
            batch.len() <= 4,
            "max.poll.records is 4, got {}",
            batch.len()
        );
        got.extend(batch);
    }
    let p0: Vec<&ConsumerRecord> = got.iter().filter(|r| r.partition == 0).collect();
    assert_eq!(p0.len(), 15);
    for (r, want) in p0.iter().zip(&expected[&0]) {
        assert_eq!(r.topic, "basic");
        assert_eq!(r.offset, want.offset);
        assert_eq!(r.timestamp, 1_700_000_000_000 + want.offset % 5);
        assert_eq!(r.timestamp_type, TimestampType::CreateTime);
        assert_eq!(r.key, want.key);
        assert_eq!(r.value, want.value);
        assert_eq!(r.headers, want.headers);
        assert_eq!(r.leader_epoch, Some(0));
    }
    let p1: Vec<i64> = got
        .iter()
        .filter(|r| r.partition == 1)
        .map(|r| r.offset)
        .collect();
    assert_eq!(p1, [0, 1, 2, 3]);
    assert_eq!(c.position(&tp("basic", 0)).await.unwrap(), 15);
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    assert!(
        c.commit_sync(None).await.is_err(),
        "no group.id: nothing to commit to"
    );
    c.close().await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn seeks_move_the_position() {
    let b = TestBroker::start().await;
    b.create_topic("seek", 1).await;
    b.produce_values("seek", 0, "a", 10).await;
    let p = tp("seek", 0);
    let mut c = Consumer::new(config(&b)).unwrap();
    c.assign([p.clone()]).unwrap();
    let all = poll_n(&mut c, 10).await;
    assert_eq!(all.last().unwrap().offset, 9);
    assert_eq!(c.position(&p).await.unwrap(), 10);

    c.seek(&p, 5).unwrap();
    let again = poll_n(&mut c, 5).await;
    assert_eq!(
        again.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [5, 6, 7, 8, 9]
    );

    c.seek_to_beginning(&[tp("seek", 0)]).unwrap();
    assert_eq!(c.position(&p).await.unwrap(), 0);
    assert_eq!(poll_n(&mut c, 10).await[0].offset, 0);

    c.seek_to_beginning(&[]).unwrap();
    c.seek_to_end(&[]).unwrap();
    assert_eq!(c.position(&p).await.unwrap(), 10);
    b.produce_values("seek", 0, "b", 2).await;
    let new = poll_n(&mut c, 2).await;
    assert_eq!(new.iter().map(|r| r.offset).collect::<Vec<_>>(), [10, 11]);
    assert_eq!(value(&new[0]), "b-0");

    // Past the end: out of range, and auto.offset.reset=earliest starts over.
    c.seek(&p, 1000).unwrap();
    assert_eq!(poll_n(&mut c, 12).await[0].offset, 0);
    assert!(c.seek(&tp("seek", 3), 0).is_err(), "not assigned");
    b.stop().await;
}

#[tokio::test]
async fn paused_partitions_wait_until_resumed() {
    let b = TestBroker::start().await;
    b.create_topic("flow", 2).await;
    b.produce_values("flow", 0, "zero", 5).await;
    b.produce_values("flow", 1, "one", 5).await;
    let (p0, p1) = (tp("flow", 0), tp("flow", 1));
    let mut c = Consumer::new(config(&b)).unwrap();
    c.assign([p0.clone(), p1.clone()]).unwrap();
    c.pause(&[tp("flow", 1)]).unwrap();
    assert_eq!(c.paused(), BTreeSet::from([p1.clone()]));
    assert_eq!(c.current_lag(&p0), None, "no fetch answered yet");
    let first = poll_n(&mut c, 5).await;
    assert!(first.iter().all(|r| r.partition == 0));
    // Everything fetched was handed out: caught up. The paused partition was never fetched.
    assert_eq!(c.current_lag(&p0), Some(0));
    assert_eq!(c.current_lag(&p1), None);
    for _ in 0..3 {
        assert!(c.poll(Duration::from_millis(200)).await.unwrap().is_empty());
    }
    c.resume(&[tp("flow", 1)]).unwrap();
    assert!(c.paused().is_empty());
    let rest = poll_n(&mut c, 5).await;
    assert!(rest.iter().all(|r| r.partition == 1));
    assert_eq!(value(&rest[0]), "one-0");
    assert_eq!(c.current_lag(&p1), Some(0));
    // A seek back puts the records behind the position again.
    c.seek(&p1, 2).unwrap();
    assert_eq!(c.current_lag(&p1), Some(3));
    assert!(c.pause(&[tp("flow", 9)]).is_err());
    b.stop().await;
}

#[tokio::test]
async fn offset_reset_policies() {
    let b = TestBroker::start().await;
    b.create_topic("reset", 1).await;
    b.produce_values("reset", 0, "old", 5).await;
    let p = tp("reset", 0);

    let mut latest = Consumer::new(config(&b).set("auto.offset.reset", "latest")).unwrap();
    latest.assign([p.clone()]).unwrap();
    assert_eq!(latest.position(&p).await.unwrap(), 5);
    assert!(latest
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
    b.produce_values("reset", 0, "new", 3).await;
    let got = poll_n(&mut latest, 3).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [5, 6, 7]);

    let mut earliest = Consumer::new(config(&b)).unwrap();
    earliest.assign([p.clone()]).unwrap();
    assert_eq!(poll_n(&mut earliest, 8).await[0].offset, 0);

    let mut none = Consumer::new(config(&b).set("auto.offset.reset", "none")).unwrap();
    none.assign([p.clone()]).unwrap();
    let e = none
        .poll(Duration::from_millis(300))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("auto.offset.reset"), "{e}");
    // A seek is an explicit choice: reading goes on from there, and out of range is an error.
    none.seek(&p, 6).unwrap();
    assert_eq!(poll_n(&mut none, 2).await[0].offset, 6);
    none.seek(&p, 500).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        match none.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(r) => assert!(r.is_empty() && Instant::now() < deadline),
        }
    };
    assert!(e.to_string().contains("out of range"), "{e}");

    // With a group, a committed offset is where "none" starts.
    let mut committer =
        Consumer::new(group_config(&b, "reset-g").set("enable.auto.commit", "false")).unwrap();
    committer.assign([p.clone()]).unwrap();
    committer
        .commit_sync(Some(BTreeMap::from([(
            p.clone(),
            OffsetAndMetadata::new(4),
        )])))
        .await
        .unwrap();
    committer.close().await.unwrap();
    let mut resumed =
        Consumer::new(group_config(&b, "reset-g").set("auto.offset.reset", "none")).unwrap();
    resumed.assign([p.clone()]).unwrap();
    assert_eq!(poll_n(&mut resumed, 4).await[0].offset, 4);
    b.stop().await;
}

#[tokio::test]
async fn a_new_member_resumes_from_committed_offsets() {
    let b = TestBroker::start().await;
    b.create_topic("resume", 1).await;
    b.produce_values("resume", 0, "r", 20).await;
    let p = tp("resume", 0);

    let mut first = Consumer::new(
        group_config(&b, "resumers")
            .set("enable.auto.commit", "false")
            .set("max.poll.records", "3"),
    )
    .unwrap();
    first.subscribe(["resume"]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 7 {
        seen.extend(first.poll(Duration::from_millis(200)).await.unwrap());
    }
    let next = seen.last().unwrap().offset + 1;
    assert_eq!(first.position(&p).await.unwrap(), next);
    first.commit_sync(None).await.unwrap();
    assert_eq!(
        first.committed(std::slice::from_ref(&p)).await.unwrap()[&p]
            .as_ref()
            .map(|o| o.offset),
        Some(next)
    );
    let meta = first.group_metadata().unwrap();
    assert!(
        meta.generation_id >= 1 && !meta.member_id.is_empty(),
        "{meta:?}"
    );
    first.close().await.unwrap();

    let mut second =
        Consumer::new(group_config(&b, "resumers").set("enable.auto.commit", "false")).unwrap();
    second.subscribe(["resume"]).unwrap();
    let rest = poll_n(&mut second, (20 - next) as usize).await;
    assert_eq!(rest[0].offset, next, "resumes at the committed offset");
    // An async commit with explicit offsets, awaited.
    let done = second.commit_async(Some(BTreeMap::from([(
        p.clone(),
        OffsetAndMetadata {
            offset: 18,
            leader_epoch: None,
            metadata: "checkpoint".into(),
        },
    )])));
    done.await.unwrap();
    let committed = second.committed(std::slice::from_ref(&p)).await.unwrap()[&p]
        .clone()
        .unwrap();
    assert_eq!(
        (committed.offset, committed.metadata.as_str()),
        (18, "checkpoint")
    );
    second.close().await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn pattern_subscriptions_follow_new_topics() {
    let b = TestBroker::start().await;
    b.create_topic("pat-a", 1).await;
    b.create_topic("other", 1).await;
    b.produce_values("pat-a", 0, "a", 3).await;
    b.produce_values("other", 0, "o", 3).await;
    let mut c =
        Consumer::new(group_config(&b, "patterns").set("metadata.max.age.ms", "300")).unwrap();
    c.subscribe_pattern("pat-.*").unwrap();
    let got = poll_n(&mut c, 3).await;
    assert!(got.iter().all(|r| r.topic == "pat-a"));
    assert_eq!(c.subscription(), BTreeSet::from(["pat-a".to_string()]));

    b.create_topic("pat-b", 1).await;
    b.produce_values("pat-b", 0, "b", 2).await;
    let got = poll_n(&mut c, 2).await;
    assert!(got.iter().all(|r| r.topic == "pat-b"), "{got:?}");
    assert_eq!(
        c.assignment(),
        BTreeSet::from([tp("pat-a", 0), tp("pat-b", 0)])
    );
    c.close().await.unwrap();
    b.stop().await;
}

// ---- groups ---------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
    Lost(Vec<TopicPartition>),
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Change>>>);

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(Change::Revoked(partitions.to_vec()));
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(Change::Assigned(partitions.to_vec()));
    }
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(Change::Lost(partitions.to_vec()));
    }
}

impl Recorder {
    fn revoked(&self) -> Vec<TopicPartition> {
        self.changes(|c| match c {
            Change::Revoked(p) => Some(p.clone()),
            _ => None,
        })
    }
    fn lost(&self) -> Vec<TopicPartition> {
        self.changes(|c| match c {
            Change::Lost(p) => Some(p.clone()),
            _ => None,
        })
    }
    fn changes(
        &self,
        pick: impl Fn(&Change) -> Option<Vec<TopicPartition>>,
    ) -> Vec<TopicPartition> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(pick)
            .flatten()
            .collect()
    }
}

enum Command {
    Close,
    Kill,
}

/// A consumer polling on a task of its own, as a group member in its own process would.
struct Member {
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<()>,
    assignment: Arc<Mutex<BTreeSet<TopicPartition>>>,
    listener: Recorder,
}

type Log = Arc<Mutex<Vec<(usize, i32, i64)>>>;

fn spawn_member(id: usize, mut consumer: Consumer, topic: &str, log: Log) -> Member {
    let listener = Recorder::default();
    consumer
        .subscribe_with_listener([topic], listener.clone())
        .unwrap();
    let (commands, mut rx) = mpsc::unbounded_channel();
    let assignment = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = assignment.clone();
    let task = tokio::spawn(async move {
        loop {
            match rx.try_recv() {
                Ok(Command::Close) => {
                    consumer.close().await.unwrap();
                    return;
                }
                // A crash: no commit, no LeaveGroup; the group finds out by the session timeout.
                Ok(Command::Kill) => return,
                Err(_) => {}
            }
            let records = consumer.poll(Duration::from_millis(100)).await.unwrap();
            log.lock()
                .unwrap()
                .extend(records.iter().map(|r| (id, r.partition, r.offset)));
            *seen.lock().unwrap() = consumer.assignment();
        }
    });
    Member {
        commands,
        task,
        assignment,
        listener,
    }
}

impl Member {
    fn owns(&self) -> BTreeSet<TopicPartition> {
        self.assignment.lock().unwrap().clone()
    }

    async fn stop(self, command: Command) {
        self.commands.send(command).unwrap();
        self.task.await.unwrap();
    }
}

/// Every partition owned by exactly one of `members`, each owning `sizes` (sorted) of them.
fn partitioned(members: &[&Member], topic: &str, partitions: i32, sizes: &[usize]) -> bool {
    let owned: Vec<BTreeSet<TopicPartition>> = members.iter().map(|m| m.owns()).collect();
    let mut counts: Vec<usize> = owned.iter().map(BTreeSet::len).collect();
    counts.sort();
    let all: Vec<TopicPartition> = owned.iter().flatten().cloned().collect();
    let distinct: BTreeSet<TopicPartition> = all.iter().cloned().collect();
    counts == sizes
        && all.len() == distinct.len()
        && distinct == (0..partitions).map(|p| tp(topic, p)).collect()
}

async fn produce_round(b: &TestBroker, topic: &str, round: usize) {
    for p in 0..6 {
        b.produce_values(topic, p, &format!("round{round}"), 10)
            .await;
    }
}

/// Waits until every (partition, offset) below `per_partition` has been consumed.
async fn consumed_all(log: &Log, per_partition: i64) {
    let expected: BTreeSet<(i32, i64)> = (0..6)
        .flat_map(|p| (0..per_partition).map(move |o| (p, o)))
        .collect();
    wait_until("every record is consumed", Duration::from_secs(60), || {
        let got: BTreeSet<(i32, i64)> = log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p, o)| (*p, *o))
            .collect();
        expected.is_subset(&got)
    })
    .await;
}

fn duplicates(log: &Log) -> usize {
    let log = log.lock().unwrap();
    let distinct: BTreeSet<(i32, i64)> = log.iter().map(|(_, p, o)| (*p, *o)).collect();
    log.len() - distinct.len()
}

#[tokio::test]
async fn three_eager_members_share_six_partitions_through_a_close_and_a_crash() {
    let b = TestBroker::start().await;
    b.create_topic("orders", 6).await;
    produce_round(&b, "orders", 0).await;
    let log: Log = Default::default();
    // The default strategies (range, then cooperative-sticky) pick range: eager rebalancing.
    let members: Vec<Member> = (0..3)
        .map(|i| {
            let c = Consumer::new(group_config(&b, "eager")).unwrap();
            spawn_member(i, c, "orders", log.clone())
        })
        .collect();
    let all: Vec<&Member> = members.iter().collect();
    wait_until(
        "three members own two partitions each",
        Duration::from_secs(30),
        || partitioned(&all, "orders", 6, &[2, 2, 2]),
    )
    .await;
    consumed_all(&log, 10).await;
    // Range: each member's two partitions are neighbours.
    for m in &members {
        let ps: Vec<i32> = m.owns().iter().map(|tp| tp.partition).collect();
        assert_eq!(ps[1], ps[0] + 1, "{ps:?}");
    }
    produce_round(&b, "orders", 1).await;
    consumed_all(&log, 20).await;

    // An orderly close: it commits and leaves; the others take over where it stopped.
    let mut members = members;
    let closing = members.remove(0);
    let closed_owned = closing.owns();
    closing.stop(Command::Close).await;
    let two: Vec<&Member> = members.iter().collect();
    wait_until(
        "two members own three partitions each",
        Duration::from_secs(30),
        || partitioned(&two, "orders", 6, &[3, 3]),
    )
    .await;
    produce_round(&b, "orders", 2).await;
    consumed_all(&log, 30).await;
    assert_eq!(
        duplicates(&log),
        0,
        "an orderly handover reads nothing twice"
    );
    for m in &members {
        // Eager: rejoining gives everything up first, and gets a full assignment back.
        assert!(m.listener.lost().is_empty());
        assert!(!m.listener.revoked().is_empty());
    }
    assert!(!closed_owned.is_empty());

    // A crash: the group waits for its session to time out (6 s), then moves its partitions.
    let crashed = members.remove(1);
    let started = Instant::now();
    crashed.stop(Command::Kill).await;
    let one: Vec<&Member> = members.iter().collect();
    wait_until(
        "the survivor owns everything",
        Duration::from_secs(30),
        || partitioned(&one, "orders", 6, &[6]),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "expelled by the session timeout, not sooner"
    );
    produce_round(&b, "orders", 3).await;
    consumed_all(&log, 40).await;
    members.remove(0).stop(Command::Close).await;
    b.stop().await;
}

#[tokio::test]
async fn cooperative_members_only_give_up_what_moves() {
    let b = TestBroker::start().await;
    b.create_topic("events", 6).await;
    produce_round(&b, "events", 0).await;
    let log: Log = Default::default();
    let member = |i: usize| {
        let c = Consumer::new(
            group_config(&b, "cooperative")
                .set("partition.assignment.strategy", "cooperative-sticky"),
        )
        .unwrap();
        spawn_member(i, c, "events", log.clone())
    };

    let m0 = member(0);
    wait_until(
        "the first member owns everything",
        Duration::from_secs(30),
        || partitioned(&[&m0], "events", 6, &[6]),
    )
    .await;
    let m1 = member(1);
    wait_until(
        "two members own three each",
        Duration::from_secs(30),
        || partitioned(&[&m0, &m1], "events", 6, &[3, 3]),
    )
    .await;
    // Exactly the three partitions that moved were revoked, and only from their old owner.
    let moved: BTreeSet<TopicPartition> = m0.listener.revoked().into_iter().collect();
    assert_eq!(moved, m1.owns());
    assert!(m1.listener.revoked().is_empty());

    let m2 = member(2);
    wait_until(
        "three members own two each",
        Duration::from_secs(30),
        || partitioned(&[&m0, &m1, &m2], "events", 6, &[2, 2, 2]),
    )
    .await;
    let revoked0 = m0.listener.revoked();
    let revoked1 = m1.listener.revoked();
    assert_eq!(
        revoked0.len() + revoked1.len(),
        3 + 2,
        "one move per partition that changed hands"
    );
    for tp in m2.owns() {
        assert!(revoked0.contains(&tp) || revoked1.contains(&tp));
    }
    consumed_all(&log, 10).await;

    // m2 closes: its two partitions go to the others, who give up nothing.
    m2.stop(Command::Close).await;
    wait_until(
        "two members own three each again",
        Duration::from_secs(30),
        || partitioned(&[&m0, &m1], "events", 6, &[3, 3]),
    )
    .await;
    assert_eq!(
        m0.listener.revoked(),
        revoked0,
        "partitions that stay put are never revoked"
    );
    assert_eq!(m1.listener.revoked(), revoked1);
    produce_round(&b, "events", 1).await;
    consumed_all(&log, 20).await;
    assert_eq!(
        duplicates(&log),
        0,
        "cooperative handovers commit before letting go"
    );

    // m1 crashes: m0 keeps its three and, after the session timeout, gets m1's too.
    m1.stop(Command::Kill).await;
    wait_until(
        "the survivor owns everything",
        Duration::from_secs(30),
        || partitioned(&[&m0], "events", 6, &[6]),
    )
    .await;
    assert_eq!(m0.listener.revoked(), revoked0);
    assert!(m0.listener.lost().is_empty());
    produce_round(&b, "events", 2).await;
    consumed_all(&log, 30).await;
    m0.stop(Command::Close).await;
    b.stop().await;
}

#[tokio::test]
async fn a_static_member_returns_to_its_partitions_and_fences_its_double() {
    let b = TestBroker::start().await;
    b.create_topic("static", 4).await;
    let log: Log = Default::default();
    let config = |instance: &str| {
        group_config(&b, "statics")
            .set("group.instance.id", instance)
            .set(
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.RangeAssignor",
            )
    };
    let a = spawn_member(
        0,
        Consumer::new(config("a")).unwrap(),
        "static",
        log.clone(),
    );
    let mut first = Consumer::new(config("b")).unwrap();
    first.subscribe(["static"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(first.assignment().len() == 2 && a.owns().len() == 2) {
        assert!(
            Instant::now() < deadline,
            "the two members never split the partitions"
        );
        first.poll(Duration::from_millis(100)).await.unwrap();
    }
    let owned = first.assignment();
    let a_changes = a.listener.0.lock().unwrap().len();
    // A static member's close leaves no LeaveGroup: its place waits for it.
    first.close().await.unwrap();

    let back_within = Instant::now() + Duration::from_secs(4);
    let mut second = Consumer::new(config("b")).unwrap();
    second.subscribe(["static"]).unwrap();
    while second.assignment() != owned {
        assert!(
            Instant::now() < back_within,
            "the restarted member did not get its partitions back in time"
        );
        second.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(
        a.listener.0.lock().unwrap().len(),
        a_changes,
        "no rebalance for the other member"
    );

    // A second process with the same instance id takes the place; the first one is fenced.
    let mut double = Consumer::new(config("b")).unwrap();
    double.subscribe(["static"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while double.assignment() != owned {
        assert!(Instant::now() < deadline);
        double.poll(Duration::from_millis(100)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let fenced = loop {
        assert!(
            Instant::now() < deadline,
            "the replaced member was never fenced"
        );
        if let Err(e) = second.poll(Duration::from_millis(100)).await {
            break e;
        }
    };
    assert_eq!(
        fenced.code(),
        Some(sluice_protocol::ErrorCode::FencedInstanceId),
        "{fenced}"
    );
    a.stop(Command::Close).await;
    b.stop().await;
}

#[tokio::test]
async fn a_subscribed_topic_created_later_joins_the_assignment() {
    let b = TestBroker::start().await;
    b.create_topic("now", 1).await;
    b.produce_values("now", 0, "n", 2).await;
    let mut c = Consumer::new(
        group_config(&b, "watchers")
            .set("metadata.max.age.ms", "300")
            .set("allow.auto.create.topics", "false"),
    )
    .unwrap();
    c.subscribe(["now", "later"]).unwrap();
    poll_n(&mut c, 2).await;
    assert_eq!(c.assignment(), BTreeSet::from([tp("now", 0)]));
    // The leader watches partition counts: 0 -> 2 is a change that calls for a rebalance.
    b.create_topic("later", 2).await;
    b.produce_values("later", 1, "l", 3).await;
    let got = poll_n(&mut c, 3).await;
    assert!(got.iter().all(|r| r.topic == "later" && r.partition == 1));
    assert_eq!(
        c.assignment(),
        BTreeSet::from([tp("now", 0), tp("later", 0), tp("later", 1)])
    );
    c.close().await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn closing_mid_rebalance_commits_without_waiting_for_the_rebalance() {
    let b = TestBroker::start().await;
    b.create_topic("park", 2).await;
    b.produce_values("park", 0, "zero", 5).await;
    b.produce_values("park", 1, "one", 5).await;
    let config =
        || group_config(&b, "parkers").set("partition.assignment.strategy", "cooperative-sticky");
    let mut a = Consumer::new(config()).unwrap();
    let mut slow = Consumer::new(config()).unwrap();
    a.subscribe(["park"]).unwrap();
    slow.subscribe(["park"]).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(read == 10 && a.assignment().len() == 1 && slow.assignment().len() == 1) {
        assert!(Instant::now() < deadline, "the two members never settled");
        read += a.poll(Duration::from_millis(50)).await.unwrap().len();
        read += slow.poll(Duration::from_millis(50)).await.unwrap().len();
    }
    let mine = a.assignment().into_iter().next().unwrap();

    // A third member joins; `slow` stops polling, so the rebalance waits for it and `a`'s
    // JoinGroup stays parked at the coordinator.
    let mut third = Consumer::new(config()).unwrap();
    third.subscribe(["park"]).unwrap();
    third.poll(Duration::from_millis(50)).await.unwrap();
    for _ in 0..10 {
        a.poll(Duration::from_millis(100)).await.unwrap();
    }
    let started = Instant::now();
    a.close().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "close waited {:?} behind the parked JoinGroup",
        started.elapsed()
    );
    let mut checker = Consumer::new(group_config(&b, "parkers")).unwrap();
    let committed = checker
        .committed(std::slice::from_ref(&mine))
        .await
        .unwrap();
    assert_eq!(committed[&mine].as_ref().map(|o| o.offset), Some(5));
    drop((slow, third));
    b.stop().await;
}

#[tokio::test]
async fn a_member_that_stops_polling_leaves_and_finds_its_partitions_lost() {
    let b = TestBroker::start().await;
    b.create_topic("slow", 2).await;
    let log: Log = Default::default();
    let config = || group_config(&b, "pollers").set("max.poll.interval.ms", "1500");
    let busy = spawn_member(0, Consumer::new(config()).unwrap(), "slow", log);
    let listener = Recorder::default();
    let mut stalled = Consumer::new(config()).unwrap();
    stalled
        .subscribe_with_listener(["slow"], listener.clone())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(stalled.assignment().len() == 1 && busy.owns().len() == 1) {
        assert!(
            Instant::now() < deadline,
            "the two members never split the partitions"
        );
        stalled.poll(Duration::from_millis(100)).await.unwrap();
    }
    let held = stalled.assignment();
    // The application is stuck for longer than max.poll.interval.ms: the member leaves on its
    // own and the other one takes everything.
    wait_until(
        "the busy member owns both partitions",
        Duration::from_secs(10),
        || busy.owns().len() == 2,
    )
    .await;
    stalled.poll(Duration::from_millis(100)).await.unwrap();
    assert_eq!(
        listener.lost().into_iter().collect::<BTreeSet<_>>(),
        held,
        "lost, not revoked: another member owns them by now"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while stalled.assignment().len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the member never got a partition back"
        );
        stalled.poll(Duration::from_millis(100)).await.unwrap();
    }
    stalled.close().await.unwrap();
    busy.stop(Command::Close).await;
    b.stop().await;
}
