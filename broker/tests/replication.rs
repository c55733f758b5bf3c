//! Three in-process brokers on loopback replicating one partition, driven by partition states
//! applied directly (no controller) and a fake ISR channel that commits every proposal: acks=all
//! waits for the ISR, followers end with the leader's exact batches, a stopped follower leaves
//! the ISR and rejoins it, and a new leader's followers cut the old leader's divergent tail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sluice_broker::error::Result;
use sluice_broker::log::TopicPartition;
use sluice_broker::replica_manager::{ReplicaManager, Role};
use sluice_broker::replication::{IsrChannel, IsrFuture, IsrProposal, PartitionState};
use sluice_broker::topic_config::AlterOp;
use sluice_protocol::messages::*;
use sluice_protocol::records::{Batches, Record, RecordBatch};
use sluice_protocol::ErrorCode;

use common::{start, start_in, Client, TestBroker};

const TOPIC: &str = "t";

/// Commits every proposal as the controller would: the proposed ISR at the next partition
/// epoch. Keeps what it was asked, for the tests to look at.
#[derive(Default)]
struct CommittingController {
    proposals: Mutex<Vec<IsrProposal>>,
}

impl IsrChannel for CommittingController {
    fn alter_partition(&self, _partition: TopicPartition, proposal: IsrProposal) -> IsrFuture<'_> {
        self.proposals.lock().unwrap().push(proposal.clone());
        Box::pin(async move {
            let committed: Result<(BTreeSet<i32>, i32)> =
                Ok((proposal.isr, proposal.partition_epoch + 1));
            committed
        })
    }
}

fn tweak(id: i32) -> impl FnOnce(&mut sluice_broker::BrokerConfig) {
    move |c| {
        c.node_id = id;
        c.replica_lag_time_max_ms = 1_000;
        // Idle followers come back well within the lag time even on a busy machine.
        c.replica_fetch_wait_max_ms = 200;
        c.replica_fetch_backoff_ms = 100;
    }
}

struct Cluster {
    brokers: BTreeMap<i32, TestBroker>,
    controller: Arc<CommittingController>,
}

impl Cluster {
    /// Three brokers, each hosting topic `t` (one partition) with `configs`, not yet replicated.
    async fn start(configs: &[(&str, &str)]) -> Cluster {
        let controller = Arc::new(CommittingController::default());
        let mut brokers = BTreeMap::new();
        for id in 1..=3 {
            let b = start(tweak(id)).await;
            prepare(&b, configs, &controller);
            brokers.insert(id, b);
        }
        Cluster {
            brokers,
            controller,
        }
    }

    fn addresses(&self) -> BTreeMap<i32, String> {
        self.brokers
            .iter()
            .map(|(id, b)| (*id, b.addr.to_string()))
            .collect()
    }

    fn rm(&self, id: i32) -> &Arc<ReplicaManager> {
        &self.brokers[&id].replicas
    }

    fn apply(&self, ids: &[i32], state: &PartitionState) {
        let addresses = self.addresses();
        for id in ids {
            self.rm(*id)
                .apply_partition_states(*id, std::slice::from_ref(state), &addresses)
                .unwrap();
        }
    }

    async fn client(&self, id: i32) -> Client {
        Client::connect(&self.brokers[&id]).await
    }

    async fn stop(self) {
        for (_, b) in self.brokers {
            b.stop().await;
        }
    }
}

fn prepare(b: &TestBroker, configs: &[(&str, &str)], controller: &Arc<CommittingController>) {
    if b.replicas.metadata().topic(TOPIC).is_none() {
        let configs = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        b.replicas
            .create_topic(TOPIC, 1, 1, configs, false)
            .unwrap();
    }
    let channel: Arc<dyn IsrChannel> = controller.clone();
    b.replicas.set_isr_channel(Some(channel));
}

fn state(leader: i32, leader_epoch: i32, isr: &[i32], partition_epoch: i32) -> PartitionState {
    PartitionState {
        topic: TOPIC.into(),
        partition: 0,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader,
        leader_epoch,
        partition_epoch,
        configs: Default::default(),
    }
}

fn batch(values: &[&str]) -> Bytes {
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset: i as i64,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        })
        .collect();
    RecordBatch::new(records).encode().unwrap()
}

/// Produces one batch; returns the partition's error code and base offset.
async fn produce(c: &mut Client, acks: i16, timeout_ms: i32, values: &[&str]) -> (ErrorCode, i64) {
    let response = c
        .send(
            9,
            &ProduceRequest {
                acks,
                timeout_ms,
                topic_data: vec![ProduceRequestTopic {
                    name: TOPIC.into(),
                    partition_data: vec![ProduceRequestPartition {
                        index: 0,
                        records: Some(batch(values)),
                    }],
                }],
                ..Default::default()
            },
        )
        .await;
    let p = &response.responses[0].partition_responses[0];
    (ErrorCode::from_code(p.error_code), p.base_offset)
}

/// One Fetch v12 of partition 0 as `replica_id` (-1: a consumer).
async fn fetch(
    c: &mut Client,
    replica_id: i32,
    current_leader_epoch: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> FetchResponsePartition {
    let response = c
        .send(
            12,
            &FetchRequest {
                replica_id,
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 1 << 20,
                session_epoch: -1,
                topics: vec![FetchRequestTopic {
                    topic: TOPIC.into(),
                    partitions: vec![FetchRequestPartition {
                        partition: 0,
                        current_leader_epoch,
                        fetch_offset,
                        last_fetched_epoch,
                        log_start_offset: -1,
                        partition_max_bytes: 1 << 20,
                    }],
                }],
                ..Default::default()
            },
        )
        .await;
    response.responses[0].partitions[0].clone()
}

/// Every batch of the partition's log, byte for byte, and its leader epochs.
fn log_contents(rm: &ReplicaManager) -> (Bytes, Vec<(i32, i64)>) {
    let log = rm.partition(TOPIC, 0).unwrap().log.clone();
    let mut all = bytes::BytesMut::new();
    let mut offset = log.log_start_offset();
    // A read stops at the end of a segment, and a restart starts a new one.
    while offset < log.log_end_offset() {
        let read = log.read(offset, 64 << 20, i64::MAX, true).unwrap().records;
        let last = Batches::new(read.clone())
            .map(|b| b.unwrap().0.last_offset())
            .last()
            .expect("a batch below the log end");
        all.extend_from_slice(&read);
        offset = last + 1;
    }
    let bytes = all.freeze();
    let epochs = log
        .leader_epochs()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    (bytes, epochs)
}

fn committed_isr(rm: &ReplicaManager) -> Option<BTreeSet<i32>> {
    match &rm.partition(TOPIC, 0)?.role {
        Role::Leader(cell) => cell.with(|l| l.isr().committed.clone()),
        _ => None,
    }
}

fn set(ids: &[i32]) -> BTreeSet<i32> {
    ids.iter().copied().collect()
}

/// Polls `check` every 50 ms for up to `secs` seconds.
async fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_completes_once_followers_hold_the_leaders_exact_batches() {
    let cluster = Cluster::start(&[]).await;
    cluster.apply(&[1, 2, 3], &state(1, 1, &[1, 2, 3], 1));
    assert_eq!(
        cluster
            .rm(2)
            .fetching()
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![1]
    );
    let mut c = cluster.client(1).await;
    for (i, values) in [&["a", "b"][..], &["c"], &["d", "e", "f"]]
        .iter()
        .enumerate()
    {
        let (code, base) = produce(&mut c, -1, 10_000, values).await;
        assert_eq!((code, base), (ErrorCode::None, [0, 2, 3][i]));
        // The answer came only once the high watermark passed the batch, which takes every ISR
        // member having fetched past it.
        let end = base + values.len() as i64;
        for id in [2, 3] {
            let log_end = cluster
                .rm(id)
                .partition(TOPIC, 0)
                .unwrap()
                .log
                .log_end_offset();
            assert!(
                log_end >= end,
                "broker {id} ends at {log_end}, before {end}"
            );
        }
        let leader_hw = cluster
            .rm(1)
            .partition(TOPIC, 0)
            .unwrap()
            .log
            .high_watermark();
        assert_eq!(leader_hw, end);
    }
    let leader = log_contents(cluster.rm(1));
    assert_eq!(leader.1, vec![(1, 0)], "the leader stamped its epoch");
    for id in [2, 3] {
        assert_eq!(log_contents(cluster.rm(id)), leader, "broker {id}");
        // Followers learn the high watermark from the leader's next answers.
        eventually("the follower's high watermark reaches 6", 5, || {
            cluster
                .rm(id)
                .partition(TOPIC, 0)
                .unwrap()
                .log
                .high_watermark()
                == 6
        })
        .await;
    }
    // A consumer reads the committed records from the leader.
    let read = fetch(&mut c, -1, 1, 0, -1).await;
    assert_eq!(read.error_code, 0);
    assert_eq!(read.high_watermark, 6);
    assert_eq!(read.records.unwrap(), leader.0);
    assert_eq!(committed_isr(cluster.rm(1)), Some(set(&[1, 2, 3])));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_refuse_clients_and_leaders_fence_stale_epochs() {
    let cluster = Cluster::start(&[]).await;
    cluster.apply(&[1, 2, 3], &state(1, 3, &[1, 2, 3], 1));
    let mut leader = cluster.client(1).await;
    assert_eq!(
        produce(&mut leader, 1, 5_000, &["x"]).await.0,
        ErrorCode::None
    );

    let mut follower = cluster.client(2).await;
    let (code, _) = produce(&mut follower, 1, 5_000, &["y"]).await;
    assert_eq!(code, ErrorCode::NotLeaderOrFollower);
    let (code, _) = produce(&mut follower, -1, 5_000, &["y"]).await;
    assert_eq!(code, ErrorCode::NotLeaderOrFollower);
    // Consumers read from the leader only; so do other replicas.
    assert_eq!(
        fetch(&mut follower, -1, -1, 0, -1).await.error_code,
        ErrorCode::NotLeaderOrFollower.code()
    );
    assert_eq!(
        fetch(&mut follower, 3, 3, 0, -1).await.error_code,
        ErrorCode::NotLeaderOrFollower.code()
    );
    let listed = follower
        .send(
            7,
            &ListOffsetsRequest {
                replica_id: -1,
                topics: vec![ListOffsetsRequestTopic {
                    name: TOPIC.into(),
                    partitions: vec![ListOffsetsRequestPartition {
                        partition_index: 0,
                        current_leader_epoch: -1,
                        timestamp: -1,
                        ..Default::default()
                    }],
                }],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        listed.topics[0].partitions[0].error_code,
        ErrorCode::NotLeaderOrFollower.code()
    );
    for (replica_id, code) in [(-1, ErrorCode::NotLeaderOrFollower), (-2, ErrorCode::None)] {
        let asked = follower
            .send(
                4,
                &OffsetForLeaderEpochRequest {
                    replica_id,
                    topics: vec![OffsetForLeaderEpochRequestTopic {
                        topic: TOPIC.into(),
                        partitions: vec![OffsetForLeaderEpochRequestPartition {
                            partition: 0,
                            current_leader_epoch: 3,
                            leader_epoch: 3,
                        }],
                    }],
                },
            )
            .await;
        let answer = &asked.topics[0].partitions[0];
        assert_eq!(answer.error_code, code.code(), "replica id {replica_id}");
    }
    // A replica that missed the leader change is fenced; one ahead of the leader is told so.
    assert_eq!(
        fetch(&mut leader, 2, 2, 0, -1).await.error_code,
        ErrorCode::FencedLeaderEpoch.code()
    );
    assert_eq!(
        fetch(&mut leader, 2, 4, 0, -1).await.error_code,
        ErrorCode::UnknownLeaderEpoch.code()
    );
    // A follower holding records of an epoch the leader never had (2, older than anything in
    // the leader's log) is told to cut back to where the leader's log begins that history.
    let diverged = fetch(&mut leader, 2, 3, 5, 2).await;
    assert_eq!(diverged.error_code, 0);
    assert_eq!(
        (
            diverged.diverging_epoch.epoch,
            diverged.diverging_epoch.end_offset
        ),
        (2, 0)
    );
    assert!(diverged.records.unwrap().is_empty());
    // One in step with the leader gets records and no divergence.
    let in_step = fetch(&mut leader, 2, 3, 0, -1).await;
    assert_eq!(in_step.diverging_epoch.end_offset, -1);
    assert!(!in_step.records.unwrap().is_empty());
    // A stale state changes nothing: broker 2 still follows 1 at epoch 3.
    cluster.apply(&[2], &state(2, 2, &[1, 2, 3], 0));
    let part = cluster.rm(2).partition(TOPIC, 0).unwrap();
    assert_eq!(part.leader_epoch, 3);
    assert!(matches!(part.role, Role::Follower { leader_id: 1 }));
    // A leader re-elected at epoch 5 has no batches of it yet; a follower that last fetched in
    // epoch 4 (which the leader never had) diverged where the leader's epoch 3 ends, as if
    // the new epoch began at the log end.
    cluster.apply(&[1], &state(1, 5, &[1, 2, 3], 2));
    let diverged = fetch(&mut leader, 3, 5, 3, 4).await;
    assert_eq!(
        (
            diverged.diverging_epoch.epoch,
            diverged.diverging_epoch.end_offset
        ),
        (3, 1)
    );
    let current = fetch(&mut leader, 3, 5, 1, 5).await;
    assert_eq!(
        (current.error_code, current.diverging_epoch.end_offset),
        (0, -1)
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let mut cluster = Cluster::start(&[("min.insync.replicas", "2")]).await;
    cluster.apply(&[1, 2, 3], &state(1, 1, &[1, 2, 3], 1));
    let mut c = cluster.client(1).await;
    assert_eq!(
        produce(&mut c, -1, 10_000, &["a"]).await,
        (ErrorCode::None, 0)
    );

    let dir = cluster.brokers.remove(&3).unwrap().shut_down().await;
    // Broker 3 is still in the ISR, which the write must reach: it cannot complete.
    let (code, _) = produce(&mut c, -1, 200, &["b"]).await;
    assert_eq!(code, ErrorCode::RequestTimedOut);

    eventually("the leader drops broker 3 from the ISR", 8, || {
        committed_isr(cluster.rm(1)) == Some(set(&[1, 2]))
    })
    .await;
    let first = cluster
        .controller
        .proposals
        .lock()
        .unwrap()
        .first()
        .cloned();
    assert_eq!(
        first,
        Some(IsrProposal {
            isr: set(&[1, 2]),
            leader_epoch: 1,
            partition_epoch: 1
        })
    );
    // Two in-sync replicas satisfy min.insync.replicas=2 ...
    assert_eq!(
        produce(&mut c, -1, 10_000, &["c"]).await,
        (ErrorCode::None, 2)
    );
    // ... but not 3, and nothing is appended then.
    let rm1 = cluster.rm(1).clone();
    let to_three = [("min.insync.replicas".to_string(), AlterOp::Set("3".into()))];
    rm1.alter_topic_configs(TOPIC, &to_three, false).unwrap();
    let (code, _) = produce(&mut c, -1, 10_000, &["d"]).await;
    assert_eq!(code, ErrorCode::NotEnoughReplicas);
    assert_eq!(rm1.partition(TOPIC, 0).unwrap().log.log_end_offset(), 3);
    // acks=1 does not ask for the ISR.
    assert_eq!(
        produce(&mut c, 1, 10_000, &["e"]).await,
        (ErrorCode::None, 3)
    );

    // Broker 3 comes back, learns it follows 1, catches up and is proposed back in.
    let b3 = start_in(dir, tweak(3)).await;
    prepare(&b3, &[], &cluster.controller);
    cluster.brokers.insert(3, b3);
    cluster.apply(&[3], &state(1, 1, &[1, 2], 2));
    eventually("broker 3 rejoins the ISR", 8, || {
        committed_isr(cluster.rm(1)) == Some(set(&[1, 2, 3]))
    })
    .await;
    let leader = log_contents(cluster.rm(1));
    eventually("broker 3 holds the leader's log", 5, || {
        log_contents(cluster.rm(3)) == leader
    })
    .await;
    assert_eq!(
        produce(&mut c, -1, 10_000, &["f"]).await,
        (ErrorCode::None, 4)
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leaders_followers_cut_the_old_leaders_divergent_tail() {
    let cluster = Cluster::start(&[]).await;
    cluster.apply(&[1, 2, 3], &state(1, 1, &[1, 2, 3], 1));
    let mut c1 = cluster.client(1).await;
    assert_eq!(
        produce(&mut c1, -1, 10_000, &["a", "b"]).await,
        (ErrorCode::None, 0)
    );

    // Brokers 2 and 3 hear of the new leader first; broker 1 still leads epoch 1 and takes
    // writes nobody else will ever fetch.
    cluster.apply(&[2, 3], &state(2, 2, &[2, 3], 2));
    eventually("broker 3 fetches from broker 2", 5, || {
        cluster.rm(3).fetching().values().eq([&2])
    })
    .await;
    assert_eq!(
        produce(&mut c1, 1, 10_000, &["lost-1", "lost-2"]).await,
        (ErrorCode::None, 2)
    );
    assert_eq!(
        produce(&mut c1, 1, 10_000, &["lost-3"]).await,
        (ErrorCode::None, 4)
    );
    let mut c2 = cluster.client(2).await;
    assert_eq!(
        produce(&mut c2, -1, 10_000, &["new"]).await,
        (ErrorCode::None, 2)
    );
    // The old leader is fenced out of the new epoch's fetches.
    assert_eq!(
        fetch(&mut c2, 1, 1, 2, 1).await.error_code,
        ErrorCode::FencedLeaderEpoch.code()
    );

    cluster.apply(&[1], &state(2, 2, &[2, 3], 2));
    let leader = log_contents(cluster.rm(2));
    assert_eq!(leader.1, vec![(1, 0), (2, 2)]);
    for id in [1, 3] {
        eventually("every log matches the new leader's", 8, || {
            log_contents(cluster.rm(id)) == leader
        })
        .await;
    }
    assert_eq!(
        cluster
            .rm(1)
            .partition(TOPIC, 0)
            .unwrap()
            .log
            .log_end_offset(),
        3
    );
    // Caught up past the new epoch's start, the old leader is proposed back into the ISR.
    eventually("broker 1 rejoins the ISR", 8, || {
        committed_isr(cluster.rm(2)) == Some(set(&[1, 2, 3]))
    })
    .await;
    let mut c1 = cluster.client(1).await;
    assert_eq!(
        produce(&mut c1, -1, 10_000, &["x"]).await.0,
        ErrorCode::NotLeaderOrFollower
    );
    cluster.stop().await;
}
