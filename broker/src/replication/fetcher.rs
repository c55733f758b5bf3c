//! `ReplicaFetcherManager`: the follower side of replication. One task per leader broker fetches
//! every partition this broker follows there, appends what comes, and truncates divergent tails.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sluice_protocol::messages::{
    FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponse,
};
use sluice_protocol::ErrorCode;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::log::{Log, TopicPartition};
use crate::replica_manager::now_ms;
use crate::replication::{BrokerChannel, DivergingEpoch, FollowerStep, PartitionFollower};

/// The Fetch version followers send: the first with LastFetchedEpoch and DivergingEpoch, and the
/// last that names topics rather than ids, which is all the protocol crate speaks.
const FETCH_VERSION: i16 = 12;
/// replica.fetch.max.bytes and replica.fetch.response.max.bytes, Kafka's defaults.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: i32 = 10 << 20;

/// How the fetchers behave, from the broker's replica.* settings.
#[derive(Debug, Clone, Copy)]
pub struct FetcherConfig {
    pub local_id: i32,
    pub max_wait_ms: i32,
    pub backoff: Duration,
}

/// A followed partition: its fetch position and the log the fetched batches go to.
struct Followed {
    follower: PartitionFollower,
    log: Arc<Log>,
    /// Left out of fetches until then, after an error for this partition alone.
    delayed_until: Option<Instant>,
}

/// What one fetcher task and the manager share. The partitions lock is held while an answer is
/// applied to a log, so once `remove` returns no fetched batch can reach that log any more.
struct Shared {
    partitions: Mutex<BTreeMap<TopicPartition, Followed>>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TopicPartition, Followed>> {
        // Every change under this lock is a single insert, remove or field update, so a panic
        // elsewhere cannot have left the map half changed.
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Fetcher {
    addr: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// The fetcher tasks, keyed by the leader broker they fetch from.
pub struct ReplicaFetcherManager {
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl Default for ReplicaFetcherManager {
    fn default() -> Self {
        ReplicaFetcherManager {
            fetchers: Mutex::new(HashMap::new()),
        }
    }
}

impl ReplicaFetcherManager {
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Fetcher>> {
        self.fetchers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts fetching `tp` from `leader` at `addr`, taking it away from any other fetcher.
    /// Must run inside a tokio runtime: a new leader gets a new task.
    pub fn add(
        &self,
        config: FetcherConfig,
        leader: i32,
        addr: &str,
        tp: TopicPartition,
        follower: PartitionFollower,
        log: Arc<Log>,
    ) {
        let mut fetchers = self.lock();
        remove_from(&mut fetchers, &tp, Some(leader));
        // A leader that moved to another address is fetched from there by a fresh task; the
        // partitions it already had move along.
        let moved = match fetchers.get(&leader) {
            Some(f) if f.addr != addr => fetchers.remove(&leader).map(|f| {
                f.task.abort();
                std::mem::take(&mut *f.shared.lock())
            }),
            _ => None,
        };
        let fetcher = fetchers.entry(leader).or_insert_with(|| {
            let shared = Arc::new(Shared {
                partitions: Mutex::new(BTreeMap::new()),
                wake: Notify::new(),
            });
            let task = tokio::spawn(run(config, leader, addr.to_string(), shared.clone()));
            Fetcher {
                addr: addr.to_string(),
                shared,
                task,
            }
        });
        let mut partitions = fetcher.shared.lock();
        partitions.extend(moved.unwrap_or_default());
        partitions.insert(
            tp,
            Followed {
                follower,
                log,
                delayed_until: None,
            },
        );
        drop(partitions);
        fetcher.shared.wake.notify_one();
    }

    /// Stops fetching `tp`. Once this returns, no fetcher writes to its log.
    pub fn remove(&self, tp: &TopicPartition) {
        remove_from(&mut self.lock(), tp, None);
    }

    /// The partitions being fetched, with the leader each is fetched from.
    pub fn fetching(&self) -> BTreeMap<TopicPartition, i32> {
        let fetchers = self.lock();
        let mut all = BTreeMap::new();
        for (leader, f) in fetchers.iter() {
            for tp in f.shared.lock().keys() {
                all.insert(tp.clone(), *leader);
            }
        }
        all
    }

    /// Stops every fetcher task (broker shutdown).
    pub fn shutdown(&self) {
        for (_, f) in self.lock().drain() {
            f.task.abort();
        }
    }
}

/// Takes `tp` away from every fetcher and stops those left with nothing to fetch, except the
/// one for `keep`, which is about to get a partition.
fn remove_from(fetchers: &mut HashMap<i32, Fetcher>, tp: &TopicPartition, keep: Option<i32>) {
    fetchers.retain(|leader, f| {
        let mut partitions = f.shared.lock();
        partitions.remove(tp);
        if partitions.is_empty() && keep != Some(*leader) {
            f.task.abort();
            false
        } else {
            true
        }
    });
}

/// What a fetch asked for one partition, to recognise answers that no longer apply.
struct Asked {
    tp: TopicPartition,
    leader_epoch: i32,
    fetch_offset: i64,
}

async fn run(config: FetcherConfig, leader: i32, addr: String, shared: Arc<Shared>) {
    let client_id = format!("broker-{}-fetcher", config.local_id);
    // The leader holds a fetch up to max_wait_ms; a peer silent for much longer than that is
    // taken for gone.
    let timeout = Duration::from_millis(config.max_wait_ms.max(0) as u64) + Duration::from_secs(10);
    let mut channel: Option<BrokerChannel> = None;
    loop {
        let (request, asked, next_due) = build_request(&config, &shared);
        if asked.is_empty() {
            let idle = next_due.map_or(Duration::from_secs(1), |due| {
                due.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
            }
            continue;
        }
        let ch = match channel.as_mut() {
            Some(ch) => ch,
            None => match BrokerChannel::connect(&addr, &client_id, timeout).await {
                Ok(ch) => channel.insert(ch),
                Err(e) => {
                    debug!(leader, %addr, error = %e, "cannot reach the leader; retrying");
                    tokio::time::sleep(config.backoff).await;
                    continue;
                }
            },
        };
        match ch.call(FETCH_VERSION, &request).await {
            Ok(response) if response.error_code == 0 => {
                apply_response(&config, &shared, response, &asked);
            }
            Ok(response) => {
                let code = ErrorCode::from_code(response.error_code);
                warn!(leader, %addr, ?code, "leader refused the fetch");
                channel = None;
                tokio::time::sleep(config.backoff).await;
            }
            Err(e) => {
                debug!(leader, %addr, error = %e, "fetch failed; reconnecting");
                channel = None;
                tokio::time::sleep(config.backoff).await;
            }
        }
    }
}

/// One fetch for every partition not backing off; also when the first one that is will be due.
fn build_request(
    config: &FetcherConfig,
    shared: &Shared,
) -> (FetchRequest, Vec<Asked>, Option<Instant>) {
    let now = Instant::now();
    let partitions = shared.lock();
    let mut asked = Vec::new();
    let mut topics: Vec<FetchRequestTopic> = Vec::new();
    let mut next_due: Option<Instant> = None;
    for (tp, f) in partitions.iter() {
        if let Some(until) = f.delayed_until.filter(|until| *until > now) {
            next_due = Some(next_due.map_or(until, |d| d.min(until)));
            continue;
        }
        let partition = FetchRequestPartition {
            partition: tp.partition,
            current_leader_epoch: f.follower.leader_epoch,
            fetch_offset: f.follower.fetch_offset,
            last_fetched_epoch: f.follower.last_fetched_epoch.unwrap_or(-1),
            log_start_offset: f.log.log_start_offset(),
            partition_max_bytes: PARTITION_MAX_BYTES,
        };
        match topics.last_mut() {
            Some(t) if t.topic == tp.topic => t.partitions.push(partition),
            _ => topics.push(FetchRequestTopic {
                topic: tp.topic.clone(),
                partitions: vec![partition],
            }),
        }
        asked.push(Asked {
            tp: tp.clone(),
            leader_epoch: f.follower.leader_epoch,
            fetch_offset: f.follower.fetch_offset,
        });
    }
    let request = FetchRequest {
        replica_id: config.local_id,
        max_wait_ms: config.max_wait_ms,
        min_bytes: 1,
        max_bytes: RESPONSE_MAX_BYTES,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics,
        ..Default::default()
    };
    (request, asked, next_due)
}

fn apply_response(
    config: &FetcherConfig,
    shared: &Shared,
    response: FetchResponse,
    asked: &[Asked],
) {
    let mut partitions = shared.lock();
    for topic in response.responses {
        for p in topic.partitions {
            let tp = TopicPartition {
                topic: topic.topic.clone(),
                partition: p.partition_index,
            };
            let Some(f) = partitions.get_mut(&tp) else {
                continue;
            };
            // The partition was re-added (a newer epoch) or moved while the fetch was out: the
            // answer is for a position it no longer has.
            let current = asked.iter().any(|a| {
                a.tp == tp
                    && a.leader_epoch == f.follower.leader_epoch
                    && a.fetch_offset == f.follower.fetch_offset
            });
            if !current {
                continue;
            }
            if apply_partition(config, &tp, f, p) == Outcome::Stop {
                partitions.remove(&tp);
            }
        }
    }
}

#[derive(PartialEq, Eq)]
enum Outcome {
    Continue,
    Stop,
}

fn apply_partition(
    config: &FetcherConfig,
    tp: &TopicPartition,
    f: &mut Followed,
    p: sluice_protocol::messages::FetchResponsePartition,
) -> Outcome {
    let error = ErrorCode::from_code(p.error_code);
    let d = &p.diverging_epoch;
    // The tagged field is absent (all -1) unless the leader found a divergence.
    let diverging = (d.epoch >= 0 || d.end_offset >= 0).then_some(DivergingEpoch {
        epoch: d.epoch,
        end_offset: d.end_offset,
    });
    let log = f.log.clone();
    let step = f
        .follower
        .on_fetch_answer(error, p.high_watermark, diverging, |epoch| {
            let (found, end) = log.end_offset_for_epoch(epoch);
            (found >= 0).then_some((found, end))
        });
    let backoff = |f: &mut Followed| f.delayed_until = Some(Instant::now() + config.backoff);
    match step {
        FollowerStep::Append { high_watermark } => {
            if let Some(records) = p.records.filter(|r| !r.is_empty()) {
                if let Err(e) = log.append_as_follower(records, now_ms()) {
                    warn!(partition = %tp, error = %e, "cannot append fetched batches");
                    backoff(f);
                    return Outcome::Continue;
                }
            }
            f.follower
                .appended(log.log_end_offset(), log.latest_epoch(), high_watermark);
            log.set_high_watermark(f.follower.high_watermark);
        }
        FollowerStep::Truncate(t) => {
            // Offsets below the leader's log start are gone there for good: this log restarts
            // where the leader's begins rather than keeping a prefix nothing can extend.
            let below_leader_start = error == ErrorCode::OffsetOutOfRange
                && p.log_start_offset > f.follower.fetch_offset;
            let done = if below_leader_start {
                log.truncate_fully_and_start_at(p.log_start_offset)
            } else {
                log.truncate_to(t.offset)
            };
            if let Err(e) = done {
                warn!(partition = %tp, error = %e, "cannot truncate the log");
                backoff(f);
                return Outcome::Continue;
            }
            info!(
                partition = %tp,
                from = f.follower.fetch_offset,
                to = log.log_end_offset(),
                "truncated a follower's log to match its leader"
            );
            f.follower
                .truncated(log.log_end_offset(), log.latest_epoch());
            log.set_high_watermark(f.follower.high_watermark);
        }
        // The leader has moved past this broker's epoch: only new partition state helps.
        FollowerStep::AwaitMetadata if error == ErrorCode::FencedLeaderEpoch => {
            info!(partition = %tp, "fenced by a newer leader epoch; waiting for new partition state");
            return Outcome::Stop;
        }
        // NOT_LEADER_OR_FOLLOWER and UNKNOWN_LEADER_EPOCH usually mean the leader has not yet
        // applied the state this broker already has; Kafka retries those after a back-off too.
        FollowerStep::AwaitMetadata | FollowerStep::Retry => {
            debug!(partition = %tp, ?error, "fetch error; backing off");
            backoff(f);
        }
    }
    Outcome::Continue
}
