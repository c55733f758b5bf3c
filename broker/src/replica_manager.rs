//! `ReplicaManager`: the partitions this broker hosts, topic creation, deletion and config
//! changes, and the produce (append) and fetch (read) paths over their logs. On a single node
//! every partition's only replica is the leader; partition states applied through
//! `apply_partition_states` make this broker a replicated partition's leader or follower.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use dashmap::DashMap;
use sluice_protocol::records::{Batches, RecordBatch};
use sluice_protocol::wire::Uuid;
use sluice_protocol::ErrorCode;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::log::{AppendInfo, Log, LogConfig, LogManager, ReadResult, TopicPartition};
use crate::metadata::{random_bytes, MetadataStore, TopicMetadata};
use crate::replication::fetcher::{FetcherConfig, ReplicaFetcherManager};
use crate::replication::{
    IsrChannel, IsrProposal, LeaderUpdate, Leadership, PartitionFollower, PartitionLeader,
    PartitionState,
};
use crate::topic_config::{self, AlterOp};

/// How long a leader waits after a refused ISR change before it may propose again.
const ISR_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(250);

/// The least a compressed produced batch may expand to during validation.
const MIN_DECOMPRESSION_LIMIT: usize = 64 << 20;

/// One hosted partition: its log, its part in replication, and what the produce path needs to
/// check against.
pub struct Partition {
    pub log: Arc<Log>,
    pub leader_epoch: i32,
    pub max_message_bytes: usize,
    /// cleanup.policy includes compact: every record needs a key.
    pub compacted: bool,
    /// min.insync.replicas: what an acks=all write to a replicated partition needs.
    pub min_insync_replicas: usize,
    pub role: Role,
}

/// A partition's part in replication.
#[derive(Clone)]
pub enum Role {
    /// A standalone broker's partition: its only replica, leader at epoch 0, with the high
    /// watermark following the log end.
    Standalone,
    /// Led by this broker under a controller's partition state.
    Leader(Arc<LeaderCell>),
    /// Followed from `leader_id` (-1 when no replica leads): its log only takes fetched batches,
    /// and produce and consumer fetches are refused.
    Follower { leader_id: i32 },
}

/// A led partition's `PartitionLeader`, shared by the produce and fetch paths, the lag check
/// and ISR proposals in flight.
pub struct LeaderCell {
    tp: TopicPartition,
    log: Arc<Log>,
    /// `None` once the partition has moved on (a newer epoch, or follower): answers and waits
    /// that outlive the leadership find out here instead of moving the log's high watermark.
    state: Mutex<Option<PartitionLeader>>,
    changed: Arc<watch::Sender<u64>>,
}

impl LeaderCell {
    fn lock(&self) -> MutexGuard<'_, Option<PartitionLeader>> {
        // PartitionLeader's methods do not panic midway; a poisoned lock holds a whole state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the leader's state, puts a high-watermark move into the log and wakes the
    /// requests waiting on one. Returns the ISR change to propose, if any.
    fn update(&self, f: impl FnOnce(&mut PartitionLeader) -> LeaderUpdate) -> Option<IsrProposal> {
        let mut guard = self.lock();
        let leader = guard.as_mut()?;
        let update = f(leader);
        if let Some(hw) = update.high_watermark {
            // Under the lock, so a retired leader can never move the high watermark after the
            // partition's next role has taken it over.
            self.log.set_high_watermark(hw);
            drop(guard);
            bump(&self.changed);
        }
        update.propose
    }

    /// Reads the leader's state; `None` once it is retired.
    pub fn with<T>(&self, f: impl FnOnce(&PartitionLeader) -> T) -> Option<T> {
        self.lock().as_ref().map(f)
    }

    fn retire(&self) {
        *self.lock() = None;
    }
}

fn bump(changed: &watch::Sender<u64>) {
    changed.send_modify(|n| *n = n.wrapping_add(1));
}

/// An acks=all write appended to a led partition, waiting for the high watermark to pass it.
pub struct AcksAllWait {
    cell: Arc<LeaderCell>,
    required_offset: i64,
    min_insync_replicas: usize,
}

impl std::fmt::Debug for AcksAllWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcksAllWait")
            .field("partition", &self.cell.tp)
            .field("required_offset", &self.required_offset)
            .field("min_insync_replicas", &self.min_insync_replicas)
            .finish()
    }
}

impl AcksAllWait {
    /// `None` while the write is not yet committed; a leadership lost meanwhile answers
    /// NOT_LEADER_OR_FOLLOWER, as Kafka does for produce requests it can no longer complete.
    pub fn outcome(&self) -> Option<std::result::Result<(), ErrorCode>> {
        self.cell
            .with(|l| l.acks_all_outcome(self.required_offset, self.min_insync_replicas))
            .unwrap_or(Some(Err(ErrorCode::NotLeaderOrFollower)))
    }
}

impl Partition {
    /// KIP-320 fencing of a request that names the leader epoch it believes current: an older
    /// one means the requester missed a leader change (FENCED_LEADER_EPOCH), a newer one that
    /// this broker has not caught up with it yet (UNKNOWN_LEADER_EPOCH). -1 skips the check.
    pub fn check_leader_epoch(
        &self,
        current_leader_epoch: i32,
    ) -> std::result::Result<(), ErrorCode> {
        if current_leader_epoch < 0 || current_leader_epoch == self.leader_epoch {
            Ok(())
        } else if current_leader_epoch < self.leader_epoch {
            Err(ErrorCode::FencedLeaderEpoch)
        } else {
            Err(ErrorCode::UnknownLeaderEpoch)
        }
    }

    /// Where epoch `requested` ends in this partition's log, as Kafka's leader answers (Fetch's
    /// divergence check, OffsetForLeaderEpoch). Kafka records a new leader's epoch at the log
    /// end when it takes over; this log records it only with the first batch, so an epoch past
    /// the log's newest but not past the partition's own is placed as if it had been. Only a
    /// replicated leader does this; a standalone log answers from its batches alone.
    pub fn leader_end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let log = &self.log;
        let found = log.end_offset_for_epoch(requested);
        let led = matches!(self.role, Role::Leader(_));
        if !led || found.0 >= 0 || requested < 0 || requested > self.leader_epoch {
            return found;
        }
        let log_end = log.log_end_offset();
        match log.latest_epoch() {
            Some(latest) if latest < requested && requested < self.leader_epoch => {
                (latest, log_end)
            }
            _ => (requested, log_end),
        }
    }

    /// Clients (and other replicas) are served by the leader only.
    pub fn is_follower(&self) -> bool {
        matches!(self.role, Role::Follower { .. })
    }
}

/// Why a produced partition was refused, with the Kafka error code to answer.
#[derive(Debug)]
pub struct ProduceError {
    pub code: ErrorCode,
    pub message: String,
}

pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    metadata: Arc<MetadataStore>,
    logs: Arc<LogManager>,
    partitions: DashMap<TopicPartition, Arc<Partition>>,
    /// Held across each create, delete and config change of a topic, so that a change reads the
    /// configs the previous one wrote, and the metadata and the running partitions always end up
    /// agreeing with the change that was persisted last.
    topic_changes: Mutex<()>,
    /// Bumped after every append and high-watermark move, so long-polling fetches and acks=all
    /// produces re-check without a busy loop.
    appended: Arc<watch::Sender<u64>>,
    /// Where leaders send ISR changes; `None` (standalone) refuses them all.
    isr_channel: RwLock<Option<Arc<dyn IsrChannel>>>,
    fetchers: ReplicaFetcherManager,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl ReplicaManager {
    /// Opens the partitions of every topic the metadata knows.
    pub fn open(
        config: Arc<BrokerConfig>,
        metadata: Arc<MetadataStore>,
        logs: Arc<LogManager>,
    ) -> Result<ReplicaManager> {
        let (appended, _) = watch::channel(0);
        let rm = ReplicaManager {
            config,
            metadata,
            logs,
            partitions: DashMap::new(),
            topic_changes: Mutex::new(()),
            appended: Arc::new(appended),
            isr_channel: RwLock::new(None),
            fetchers: ReplicaFetcherManager::default(),
        };
        let known: Vec<TopicMetadata> = rm.metadata.topics();
        for topic in &known {
            rm.open_partitions(topic)?;
        }
        for log in rm.logs.all() {
            let tp = log.topic_partition();
            if !rm.partitions.contains_key(tp) && rm.config.cluster.is_some() {
                // A replicated partition: the committed metadata gives it a role once applied.
                debug!(partition = %tp, "log waits for the cluster metadata");
            } else if !rm.partitions.contains_key(tp) {
                warn!(partition = %tp, "log directory belongs to no known topic; leaving it untouched");
            }
        }
        Ok(rm)
    }

    /// What a topic's configs mean for its partitions: the log's settings, and the limits the
    /// produce path checks.
    fn partition_settings(
        &self,
        configs: &BTreeMap<String, String>,
    ) -> (LogConfig, usize, bool, usize) {
        (
            topic_config::log_config(&self.config, configs),
            topic_config::max_message_bytes(&self.config, configs),
            topic_config::is_compacted(configs),
            topic_config::min_insync_replicas(&self.config, configs),
        )
    }

    fn open_partitions(&self, topic: &TopicMetadata) -> Result<()> {
        for (tp, partition) in self.prepare_partitions(topic, 0..topic.partitions)? {
            self.partitions.insert(tp, partition);
        }
        Ok(())
    }

    /// Opens (or creates) the logs of `range` under the topic's configs, without yet making
    /// them visible to produce and fetch.
    fn prepare_partitions(
        &self,
        topic: &TopicMetadata,
        range: Range<i32>,
    ) -> Result<Vec<(TopicPartition, Arc<Partition>)>> {
        let (log_config, max_message_bytes, compacted, min_insync_replicas) =
            self.partition_settings(&topic.configs);
        range
            .map(|p| {
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: p,
                };
                let log = self.logs.get_or_create(&tp, log_config.clone())?;
                // A log found on disk was opened with the broker defaults; the topic's own
                // settings (cleanup.policy above all) must govern it before any retention or
                // cleaning runs.
                log.update_config(log_config.clone());
                // Standalone, every appended batch is committed, whatever a replicated past
                // left in the high-watermark checkpoint.
                log.follow_log_end();
                let partition = Arc::new(Partition {
                    log,
                    leader_epoch: 0,
                    max_message_bytes,
                    compacted,
                    min_insync_replicas,
                    role: Role::Standalone,
                });
                Ok((tp, partition))
            })
            .collect()
    }

    pub fn metadata(&self) -> &MetadataStore {
        &self.metadata
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .get(&TopicPartition {
                topic: topic.to_string(),
                partition,
            })
            .map(|p| p.clone())
    }

    /// Validates and creates a topic. `partitions`/`replication_factor` of -1 take the broker
    /// defaults. With `validate_only`, nothing is written.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicMetadata> {
        let _changing = self.lock_topic_changes();
        topic_config::validate_topic_name(name)?;
        let partitions = match partitions {
            -1 => self.config.num_partitions,
            n if n < 1 => {
                return Err(BrokerError::InvalidPartitions(format!(
                    "number of partitions must be at least 1, got {n}"
                )))
            }
            n => n,
        };
        let replication_factor = match replication_factor {
            -1 => self.config.default_replication_factor,
            n if n < 1 => {
                return Err(BrokerError::InvalidReplicationFactor(format!(
                    "replication factor must be at least 1, got {n}"
                )))
            }
            n => n,
        };
        let live_brokers = 1;
        if replication_factor > live_brokers {
            return Err(BrokerError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is larger than the {live_brokers} available broker(s)"
            )));
        }
        for (k, v) in &configs {
            topic_config::validate(k, v)?;
        }
        if self.metadata.topic(name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(name.to_string()));
        }
        let topic = TopicMetadata {
            name: name.to_string(),
            id: Uuid(random_bytes()),
            partitions,
            replication_factor,
            configs,
        };
        if validate_only {
            return Ok(topic);
        }
        self.metadata.create_topic(topic.clone())?;
        self.open_partitions(&topic)?;
        info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata> {
        let _changing = self.lock_topic_changes();
        let topic = self.metadata.delete_topic(name)?;
        for p in 0..topic.partitions {
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: p,
            };
            if let Some((_, gone)) = self.partitions.remove(&tp) {
                self.fetchers.remove(&tp);
                if let Role::Leader(cell) = &gone.role {
                    cell.retire();
                }
            }
            self.logs.delete(&tp)?;
        }
        info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// Applies IncrementalAlterConfigs operations to a topic: validates them all, persists the
    /// new overrides, then puts them in force on every partition of the topic, logs and produce
    /// limits alike. Any failure leaves the topic as it was. Returns the new overrides; with
    /// `validate_only` they are only computed.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        changes: &[(String, AlterOp)],
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>> {
        let _changing = self.lock_topic_changes();
        let topic = self
            .metadata
            .topic(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        let configs = topic_config::alter(&self.config, &topic.configs, changes)?;
        if validate_only || configs == topic.configs {
            return Ok(configs);
        }
        // Persisted first: if the write fails the partitions have not moved, and once it has
        // succeeded nothing below can fail.
        self.metadata.set_topic_configs(name, configs.clone())?;
        let (log_config, max_message_bytes, compacted, min_insync_replicas) =
            self.partition_settings(&configs);
        for p in 0..topic.partitions {
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: p,
            };
            let Some(old) = self.partition(name, p) else {
                continue;
            };
            old.log.update_config(log_config.clone());
            // Produce takes a snapshot of the Arc per request: a batch already being checked
            // finishes under the old limits, every later one sees the new ones.
            self.partitions.insert(
                tp,
                Arc::new(Partition {
                    log: old.log.clone(),
                    leader_epoch: old.leader_epoch,
                    max_message_bytes,
                    compacted,
                    min_insync_replicas,
                    role: old.role.clone(),
                }),
            );
        }
        info!(topic = name, ?configs, "altered topic configs");
        Ok(configs)
    }

    /// Grows a topic to `new_count` partitions in all, as CreatePartitions asks. `assignments`,
    /// when given, holds the replicas of each new partition in order. The new partitions take
    /// the topic's configs and are served as soon as this returns; with `validate_only` nothing
    /// changes. Returns the topic as it is (or would be) afterwards.
    pub fn create_partitions(
        &self,
        name: &str,
        new_count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<TopicMetadata> {
        let _changing = self.lock_topic_changes();
        let topic = self
            .metadata
            .topic(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        let current = topic.partitions;
        if new_count == current {
            return Err(BrokerError::InvalidPartitions(format!(
                "Topic already has {current} partitions."
            )));
        }
        if new_count < current {
            // Removing a partition would lose its records and move keys between partitions.
            return Err(BrokerError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested \
                 {new_count}."
            )));
        }
        if let Some(assignments) = assignments {
            self.check_assignments(&topic, new_count - current, assignments)?;
        }
        let grown = TopicMetadata {
            partitions: new_count,
            ..topic
        };
        if validate_only {
            return Ok(grown);
        }
        // Logs first: if one fails to open the count has not moved, and a retry finds the logs
        // already made. Once the count is persisted nothing below can fail.
        let added = self.prepare_partitions(&grown, current..new_count)?;
        self.metadata.set_topic_partitions(name, new_count)?;
        for (tp, partition) in added {
            self.partitions.insert(tp, partition);
        }
        info!(
            topic = name,
            from = current,
            to = new_count,
            "added partitions"
        );
        Ok(grown)
    }

    /// Explicit placement of `added` new partitions: one replica list each, naming only live
    /// brokers (this one), no broker twice, as many replicas as the topic's other partitions.
    fn check_assignments(
        &self,
        topic: &TopicMetadata,
        added: i32,
        assignments: &[Vec<i32>],
    ) -> Result<()> {
        let invalid = |message: String| Err(BrokerError::InvalidReplicaAssignment(message));
        if assignments.len() != added as usize {
            return invalid(format!(
                "adding {added} partition(s) takes {added} assignment(s), but {} were given",
                assignments.len()
            ));
        }
        let node = self.config.node_id;
        for (partition, brokers) in (topic.partitions..).zip(assignments) {
            let unknown: Vec<i32> = brokers.iter().copied().filter(|b| *b != node).collect();
            if !unknown.is_empty() {
                return invalid(format!(
                    "partition {partition} names broker(s) {unknown:?}, but the only live \
                     broker is {node}"
                ));
            }
            let mut seen = HashSet::new();
            if brokers.iter().any(|b| !seen.insert(*b)) {
                return invalid(format!(
                    "partition {partition} names broker {node} more than once"
                ));
            }
            if brokers.len() != topic.replication_factor as usize {
                return invalid(format!(
                    "partition {partition} has {} replica(s), but the topic's other partitions \
                     have {}",
                    brokers.len(),
                    topic.replication_factor
                ));
            }
        }
        Ok(())
    }

    fn lock_topic_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is (), so a panic while it was held left nothing inconsistent in it.
        self.topic_changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks a producer's records for one partition and appends them, answering as acks=1
    /// does: once they are in this leader's log.
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Option<Bytes>,
    ) -> std::result::Result<AppendInfo, ProduceError> {
        self.append_records(topic, partition, records, 1)
            .map(|(info, _)| info)
    }

    /// Checks a producer's records for one partition and appends them. With acks=-1 on a
    /// replicated partition, the ISR must hold min.insync.replicas members first, and the
    /// returned wait tells when the write is committed.
    pub fn append_records(
        &self,
        topic: &str,
        partition: i32,
        records: Option<Bytes>,
        acks: i16,
    ) -> std::result::Result<(AppendInfo, Option<AcksAllWait>), ProduceError> {
        let refuse = |code: ErrorCode, message: String| ProduceError { code, message };
        let part = self.partition(topic, partition).ok_or_else(|| {
            refuse(
                ErrorCode::UnknownTopicOrPartition,
                format!("this broker hosts no partition {topic}-{partition}"),
            )
        })?;
        let cell = match &part.role {
            Role::Standalone => None,
            Role::Leader(cell) => Some(cell.clone()),
            Role::Follower { leader_id } => {
                return Err(refuse(
                    ErrorCode::NotLeaderOrFollower,
                    format!(
                        "broker {} only follows {topic}-{partition}; its leader is {leader_id}",
                        self.config.node_id
                    ),
                ))
            }
        };
        if let (Some(cell), -1) = (&cell, acks) {
            let checked = cell
                .with(|l| l.check_min_isr(part.min_insync_replicas))
                .unwrap_or(Err(ErrorCode::NotLeaderOrFollower));
            if let Err(code) = checked {
                let isr = cell.with(|l| l.isr().committed.len()).unwrap_or(0);
                return Err(refuse(
                    code,
                    format!(
                        "the ISR of {topic}-{partition} has {isr} member(s), fewer than \
                         min.insync.replicas {}",
                        part.min_insync_replicas
                    ),
                ));
            }
        }
        let records = records.filter(|r| !r.is_empty()).ok_or_else(|| {
            refuse(
                ErrorCode::CorruptMessage,
                "no record batch in request".into(),
            )
        })?;
        let mut batches = Batches::new(records.clone());
        // Decompression is bounded so a small compressed batch cannot become a huge allocation:
        // generous for real data (log lines compress 5-10x), small enough to keep memory sane.
        let limit = (part.max_message_bytes * 16).max(MIN_DECOMPRESSION_LIMIT);
        for batch in batches.by_ref() {
            let (header, bytes) =
                batch.map_err(|e| refuse(ErrorCode::CorruptMessage, e.to_string()))?;
            if header.total_size() > part.max_message_bytes {
                return Err(refuse(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "batch of {} bytes exceeds max.message.bytes {}",
                        header.total_size(),
                        part.max_message_bytes
                    ),
                ));
            }
            if header.is_transactional() || header.is_control() {
                return Err(refuse(
                    ErrorCode::InvalidRecord,
                    "transactions are not supported yet".into(),
                ));
            }
            RecordBatch::validate(&bytes, limit).map_err(|e| {
                let code = BrokerError::Protocol(e.clone()).code();
                refuse(code, e.to_string())
            })?;
            if part.compacted {
                // Compaction keeps the latest record per key, so Kafka refuses keyless records
                // for compacted topics. The keys are only known after decoding, a second
                // decompression that only compacted topics pay for.
                let batch = RecordBatch::decode_bytes(&bytes, limit)
                    .map_err(|e| refuse(ErrorCode::CorruptMessage, e.to_string()))?;
                if let Some(r) = batch.records.iter().find(|r| r.key.is_none()) {
                    return Err(refuse(
                        ErrorCode::InvalidRecord,
                        format!(
                            "compacted topic partition {topic}-{partition} only accepts records \
                             with a key; the record at offset delta {} has none",
                            r.offset - batch.base_offset
                        ),
                    ));
                }
            }
        }
        if batches.remainder() != 0 {
            return Err(refuse(
                ErrorCode::CorruptMessage,
                format!(
                    "{} trailing bytes after the last batch",
                    batches.remainder()
                ),
            ));
        }
        let info = part
            .log
            .append(records, part.leader_epoch, now_ms())
            .map_err(|e| refuse(e.code(), e.to_string()))?;
        bump(&self.appended);
        let Some(cell) = cell else {
            return Ok((info, None));
        };
        let end = part.log.log_end_offset();
        cell.update(|l| l.on_leader_append(end));
        let wait = (acks == -1).then(|| AcksAllWait {
            cell,
            required_offset: info.last_offset + 1,
            min_insync_replicas: part.min_insync_replicas,
        });
        Ok((info, wait))
    }

    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult> {
        let part = self
            .partition(topic, partition)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(format!("{topic}-{partition}")))?;
        if let Role::Follower { leader_id } = part.role {
            return Err(BrokerError::NotLeaderOrFollower(format!(
                "{topic}-{partition} is read from its leader, broker {leader_id}"
            )));
        }
        let hw = part.log.high_watermark();
        Ok(part.log.read(offset, max_bytes, hw, min_one)?)
    }

    /// A receiver that changes after every append and high-watermark move; long-polling
    /// fetches and acks=all produces wait on it.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Where ISR proposals go from now on; `None` refuses them.
    pub fn set_isr_channel(&self, channel: Option<Arc<dyn IsrChannel>>) {
        *self.isr_channel.write().unwrap_or_else(|e| e.into_inner()) = channel;
    }

    /// Makes this broker (`local_id`) leader or follower of each partition it is a replica of,
    /// as the states say; `broker_addresses` (`host:port` by broker id) tells followers where
    /// their leaders are. A state whose leader epoch is older than the partition's is stale and
    /// ignored; one with the same epoch only brings a leader its newer ISR. A standalone
    /// partition takes any state. States for partitions without a local replica are skipped:
    /// removing replicas comes with reassignment. Must run inside a tokio runtime (followers
    /// fetch from tasks, leaders propose ISR changes from them).
    pub fn apply_partition_states(
        &self,
        local_id: i32,
        states: &[PartitionState],
        broker_addresses: &BTreeMap<i32, String>,
    ) -> Result<()> {
        let _changing = self.lock_topic_changes();
        for state in states {
            if !state.replicas.contains(&local_id) {
                continue;
            }
            let tp = state.topic_partition();
            let existing = self.partitions.get(&tp).map(|p| p.clone());
            if let Some(part) = &existing {
                let replicated = !matches!(part.role, Role::Standalone);
                if replicated && state.leader_epoch < part.leader_epoch {
                    continue;
                }
                if replicated && state.leader_epoch == part.leader_epoch {
                    if let Role::Leader(cell) = &part.role {
                        let isr: BTreeSet<i32> = state.isr.iter().copied().collect();
                        let end = part.log.log_end_offset();
                        cell.update(|l| l.on_isr_committed(isr, state.partition_epoch, end));
                    }
                    continue;
                }
                if let Role::Leader(cell) = &part.role {
                    cell.retire();
                }
            }
            // Replication owns this log from here on; the fetcher must let go of it before
            // anything else may write to it.
            self.fetchers.remove(&tp);
            let part = self.replicated_partition(&tp, state, existing.map(|p| p.log.clone()))?;
            if state.leader == local_id {
                self.become_leader(local_id, tp, state, part);
            } else {
                self.become_follower(local_id, tp, state, part, broker_addresses);
            }
        }
        Ok(())
    }

    /// Drops the replicated partitions that `states` no longer lists (their topic was deleted
    /// through the controller): replication stops and their logs are deleted. Standalone
    /// partitions are the local metadata store's and stay. Returns the topics that went.
    pub fn remove_replicas_not_in(&self, states: &[PartitionState]) -> Result<BTreeSet<String>> {
        let _changing = self.lock_topic_changes();
        let kept: HashSet<TopicPartition> = states.iter().map(|s| s.topic_partition()).collect();
        let gone: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|p| !matches!(p.role, Role::Standalone) && !kept.contains(p.key()))
            .map(|p| p.key().clone())
            .collect();
        let mut topics = BTreeSet::new();
        for tp in gone {
            self.fetchers.remove(&tp);
            if let Some((_, part)) = self.partitions.remove(&tp) {
                if let Role::Leader(cell) = &part.role {
                    cell.retire();
                }
            }
            self.logs.delete(&tp)?;
            info!(partition = %tp, "deleted the replica of a deleted topic");
            topics.insert(tp.topic);
        }
        if !topics.is_empty() {
            bump(&self.appended);
        }
        Ok(topics)
    }

    /// A replicated partition under `state` (its role still to be set): the log it had, or
    /// one opened now. Its settings come from the topic's configs here (a topic created on this
    /// broker) overlaid by the committed ones in the state, which win.
    fn replicated_partition(
        &self,
        tp: &TopicPartition,
        state: &PartitionState,
        log: Option<Arc<Log>>,
    ) -> Result<Partition> {
        let mut configs = self
            .metadata
            .topic(&tp.topic)
            .map(|t| t.configs)
            .unwrap_or_default();
        configs.extend(state.configs.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (log_config, max_message_bytes, compacted, min_insync_replicas) =
            self.partition_settings(&configs);
        let log = match log {
            Some(log) => log,
            None => self.logs.get_or_create(tp, log_config.clone())?,
        };
        log.update_config(log_config);
        Ok(Partition {
            log,
            leader_epoch: state.leader_epoch,
            max_message_bytes,
            compacted,
            min_insync_replicas,
            role: Role::Follower { leader_id: -1 },
        })
    }

    fn become_leader(
        &self,
        local_id: i32,
        tp: TopicPartition,
        state: &PartitionState,
        mut part: Partition,
    ) {
        let log = part.log.clone();
        let leader = PartitionLeader::new(
            Leadership {
                local_id,
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
                replicas: state.replicas.clone(),
                isr: state.isr.iter().copied().collect(),
                log_end_offset: log.log_end_offset(),
                high_watermark: log.high_watermark(),
                max_lag_ms: self.config.replica_lag_time_max_ms as i64,
            },
            now_ms(),
        );
        // The high watermark carries over from the previous role and from now on moves only
        // when the ISR has the records.
        log.set_high_watermark(leader.high_watermark());
        let cell = Arc::new(LeaderCell {
            tp: tp.clone(),
            log: log.clone(),
            state: Mutex::new(Some(leader)),
            changed: self.appended.clone(),
        });
        // A leader alone in its ISR has everything committed at once.
        cell.update(|l| l.on_leader_append(log.log_end_offset()));
        part.role = Role::Leader(cell);
        self.partitions.insert(tp.clone(), Arc::new(part));
        bump(&self.appended);
        info!(
            partition = %tp,
            leader_epoch = state.leader_epoch,
            isr = ?state.isr,
            log_end = log.log_end_offset(),
            "became leader"
        );
    }

    fn become_follower(
        &self,
        local_id: i32,
        tp: TopicPartition,
        state: &PartitionState,
        mut part: Partition,
        broker_addresses: &BTreeMap<i32, String>,
    ) {
        let log = part.log.clone();
        // Taken over from a leader or a standalone log, where it may have followed the log end:
        // from now on only the leader's answers move it.
        log.set_high_watermark(log.high_watermark());
        part.role = Role::Follower {
            leader_id: state.leader,
        };
        self.partitions.insert(tp.clone(), Arc::new(part));
        bump(&self.appended);
        info!(
            partition = %tp,
            leader = state.leader,
            leader_epoch = state.leader_epoch,
            log_end = log.log_end_offset(),
            "became follower"
        );
        if state.leader < 0 {
            return;
        }
        let Some(addr) = broker_addresses.get(&state.leader) else {
            warn!(partition = %tp, leader = state.leader, "no address for the leader; not fetching");
            return;
        };
        let follower = PartitionFollower::new(
            state.leader,
            state.leader_epoch,
            log.log_end_offset(),
            log.latest_epoch(),
            log.high_watermark(),
        );
        let config = FetcherConfig {
            local_id,
            max_wait_ms: self.config.replica_fetch_wait_max_ms.min(i32::MAX as u64) as i32,
            backoff: std::time::Duration::from_millis(self.config.replica_fetch_backoff_ms),
        };
        self.fetchers
            .add(config, state.leader, addr, tp, follower, log);
    }

    /// A follower fetched a partition this broker leads at `fetch_offset`, its log end.
    pub fn record_follower_fetch(
        &self,
        cell: &Arc<LeaderCell>,
        replica_id: i32,
        fetch_offset: i64,
    ) {
        let end = cell.log.log_end_offset();
        let now = now_ms();
        if let Some(proposal) =
            cell.update(|l| l.on_follower_fetch(replica_id, fetch_offset, end, now))
        {
            self.propose_isr(cell.clone(), proposal);
        }
    }

    /// Proposes removing the followers of every led partition that stopped keeping up.
    pub fn check_lagging(&self, now_ms: i64) {
        let cells: Vec<Arc<LeaderCell>> = self
            .partitions
            .iter()
            .filter_map(|p| match &p.role {
                Role::Leader(cell) => Some(cell.clone()),
                _ => None,
            })
            .collect();
        for cell in cells {
            if let Some(proposal) = cell.update(|l| l.check_lagging(now_ms)) {
                self.propose_isr(cell, proposal);
            }
        }
    }

    fn propose_isr(&self, cell: Arc<LeaderCell>, proposal: IsrProposal) {
        let channel = self
            .isr_channel
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(channel) = channel else {
            debug!(partition = %cell.tp, isr = ?proposal.isr, "no ISR channel; change dropped");
            cell.update(|l| {
                l.on_isr_rejected();
                LeaderUpdate::default()
            });
            return;
        };
        info!(partition = %cell.tp, isr = ?proposal.isr, "proposing an ISR change");
        tokio::spawn(async move {
            match channel.alter_partition(cell.tp.clone(), proposal).await {
                Ok((isr, partition_epoch)) => {
                    let end = cell.log.log_end_offset();
                    cell.update(|l| l.on_isr_committed(isr, partition_epoch, end));
                }
                Err(e) => {
                    warn!(partition = %cell.tp, error = %e, "ISR change refused");
                    // Still "in flight" while backing off, so the next follower fetch does not
                    // propose the same change at once (a fenced or unregistered broker would
                    // otherwise ask every few milliseconds).
                    tokio::time::sleep(ISR_RETRY_BACKOFF).await;
                    cell.update(|l| {
                        l.on_isr_rejected();
                        LeaderUpdate::default()
                    });
                }
            }
        });
    }

    /// The partitions being fetched from leaders, with the leader of each.
    pub fn fetching(&self) -> BTreeMap<TopicPartition, i32> {
        self.fetchers.fetching()
    }

    /// Stops every fetcher (broker shutdown, before the logs close).
    pub fn stop_replication(&self) {
        self.fetchers.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::keyed_batch;
    use sluice_protocol::records::Compression;

    fn replica_manager(dir: &std::path::Path) -> ReplicaManager {
        let config = Arc::new(BrokerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.to_path_buf(),
        ));
        let metadata = Arc::new(MetadataStore::open(dir, config.node_id).unwrap());
        let logs = Arc::new(LogManager::open(config.log_dirs.clone(), Default::default()).unwrap());
        ReplicaManager::open(config, metadata, logs).unwrap()
    }

    #[test]
    fn leader_epoch_fencing() {
        let dir = tempfile::tempdir().unwrap();
        let rm = replica_manager(dir.path());
        rm.create_topic("t", 1, 1, BTreeMap::new(), false).unwrap();
        let standalone = rm.partition("t", 0).unwrap();
        assert_eq!(standalone.leader_epoch, 0);
        let part = Partition {
            log: standalone.log.clone(),
            leader_epoch: 3,
            max_message_bytes: standalone.max_message_bytes,
            compacted: false,
            min_insync_replicas: 1,
            role: Role::Standalone,
        };
        assert_eq!(part.check_leader_epoch(-1), Ok(()));
        assert_eq!(part.check_leader_epoch(3), Ok(()));
        assert_eq!(
            part.check_leader_epoch(2),
            Err(ErrorCode::FencedLeaderEpoch)
        );
        assert_eq!(
            part.check_leader_epoch(4),
            Err(ErrorCode::UnknownLeaderEpoch)
        );
    }

    fn replicated(
        leader: i32,
        leader_epoch: i32,
        isr: &[i32],
        partition_epoch: i32,
    ) -> PartitionState {
        PartitionState {
            topic: "r".into(),
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            leader_epoch,
            partition_epoch,
            configs: Default::default(),
        }
    }

    #[test]
    fn a_shrunk_isr_answers_acks_all_writes_already_appended() {
        let dir = tempfile::tempdir().unwrap();
        let rm = replica_manager(dir.path());
        let min_two: BTreeMap<String, String> =
            [("min.insync.replicas".to_string(), "2".to_string())].into();
        rm.create_topic("r", 1, 1, min_two, false).unwrap();
        let none = BTreeMap::new();
        rm.apply_partition_states(1, &[replicated(1, 4, &[1, 2, 3], 7)], &none)
            .unwrap();
        let batch = || keyed_batch(&[(Some("k"), Some("v"))], 0, Compression::None);
        let (info, wait) = rm.append_records("r", 0, Some(batch()), -1).unwrap();
        let wait = wait.expect("acks=all on a replicated partition waits");
        assert_eq!(wait.outcome(), None, "followers have not fetched");
        let part = rm.partition("r", 0).unwrap();
        assert_eq!(part.log.high_watermark(), 0);
        assert_eq!(part.log.leader_epochs()[0].epoch, 4);

        // The same leadership with a newer ISR: the leader alone is left, so the write is
        // committed, but with fewer replicas than min.insync.replicas.
        rm.apply_partition_states(1, &[replicated(1, 4, &[1], 8)], &none)
            .unwrap();
        assert_eq!(
            wait.outcome(),
            Some(Err(ErrorCode::NotEnoughReplicasAfterAppend))
        );
        assert_eq!(part.log.high_watermark(), info.last_offset + 1);
        let e = rm.append_records("r", 0, Some(batch()), -1).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotEnoughReplicas);
        assert!(rm.append_records("r", 0, Some(batch()), 1).is_ok());

        // The followers are back in the ISR; a new write waits for them again. A stale state
        // is ignored; a newer one without a leader makes this a follower, and the write still
        // waiting hears that its leader is gone.
        rm.apply_partition_states(1, &[replicated(1, 4, &[1, 2, 3], 9)], &none)
            .unwrap();
        let (_, wait) = rm.append_records("r", 0, Some(batch()), -1).unwrap();
        let wait = wait.unwrap();
        assert_eq!(wait.outcome(), None);
        rm.apply_partition_states(1, &[replicated(2, 3, &[1, 2], 10)], &none)
            .unwrap();
        assert!(matches!(
            rm.partition("r", 0).unwrap().role,
            Role::Leader(_)
        ));
        assert_eq!(wait.outcome(), None);
        rm.apply_partition_states(1, &[replicated(-1, 5, &[1], 10)], &none)
            .unwrap();
        assert!(matches!(
            rm.partition("r", 0).unwrap().role,
            Role::Follower { leader_id: -1 }
        ));
        assert_eq!(wait.outcome(), Some(Err(ErrorCode::NotLeaderOrFollower)));
        let e = rm.append("r", 0, Some(batch())).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotLeaderOrFollower);
    }

    #[test]
    fn compacted_topics_refuse_keyless_records() {
        let dir = tempfile::tempdir().unwrap();
        let rm = replica_manager(dir.path());
        let compact: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "compact,delete".to_string())].into();
        rm.create_topic("table", 1, 1, compact, false).unwrap();
        rm.create_topic("events", 1, 1, BTreeMap::new(), false)
            .unwrap();

        for codec in [Compression::None, Compression::Zstd] {
            let keyless = keyed_batch(&[(Some("k"), Some("v")), (None, Some("v"))], 0, codec);
            let e = rm.append("table", 0, Some(keyless.clone())).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRecord, "{}", e.message);
            assert_eq!(e.code.code(), 87);
            assert!(e.message.contains("offset delta 1"), "{}", e.message);
            assert!(rm.append("events", 0, Some(keyless)).is_ok());
            let keyed = keyed_batch(&[(Some("k"), None)], 0, codec);
            assert!(rm.append("table", 0, Some(keyed)).is_ok());
        }
        assert_eq!(rm.partition("table", 0).unwrap().log.log_end_offset(), 2);
    }

    #[test]
    fn altered_configs_reach_every_running_partition() {
        let dir = tempfile::tempdir().unwrap();
        let rm = replica_manager(dir.path());
        rm.create_topic("t", 2, 1, BTreeMap::new(), false).unwrap();
        let logs_before: Vec<Arc<Log>> = (0..2)
            .map(|p| rm.partition("t", p).unwrap().log.clone())
            .collect();
        let changes = [
            ("max.message.bytes".to_string(), AlterOp::Set("100".into())),
            (
                "cleanup.policy".to_string(),
                AlterOp::Append("compact".into()),
            ),
            ("retention.ms".to_string(), AlterOp::Set("60000".into())),
        ];

        rm.alter_topic_configs("t", &changes, true).unwrap();
        assert!(rm.metadata().topic("t").unwrap().configs.is_empty());
        assert!(!rm.partition("t", 0).unwrap().compacted);

        let configs = rm.alter_topic_configs("t", &changes, false).unwrap();
        assert_eq!(rm.metadata().topic("t").unwrap().configs, configs);
        for (p, before) in logs_before.iter().enumerate() {
            let part = rm.partition("t", p as i32).unwrap();
            assert!(Arc::ptr_eq(&part.log, before), "the log itself stays");
            assert_eq!(part.max_message_bytes, 100);
            assert!(part.compacted);
            let c = part.log.config();
            assert_eq!(
                c.cleanup_policy,
                crate::log::CleanupPolicy::CompactAndDelete
            );
            assert_eq!(c.retention_ms, Some(60_000));
        }

        let bad = [("retention.ms".to_string(), AlterOp::Set("soon".into()))];
        assert!(rm.alter_topic_configs("t", &bad, false).is_err());
        assert_eq!(rm.metadata().topic("t").unwrap().configs, configs);
        let e = rm.alter_topic_configs("nope", &changes, false).unwrap_err();
        assert!(matches!(e, BrokerError::UnknownTopicOrPartition(_)), "{e}");
    }

    #[test]
    fn added_partitions_take_the_topics_configs_and_serve_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let rm = replica_manager(dir.path());
        let compact: BTreeMap<String, String> =
            [("cleanup.policy".to_string(), "compact".to_string())].into();
        rm.create_topic("table", 1, 1, compact, false).unwrap();

        let checked = rm.create_partitions("table", 3, None, true).unwrap();
        assert_eq!(checked.partitions, 3);
        assert_eq!(rm.metadata().topic("table").unwrap().partitions, 1);
        assert!(rm.partition("table", 1).is_none());

        let node = rm.config.node_id;
        let placed = [vec![node], vec![node]];
        rm.create_partitions("table", 3, Some(&placed), false)
            .unwrap();
        assert_eq!(rm.metadata().topic("table").unwrap().partitions, 3);
        let added = rm.partition("table", 2).unwrap();
        assert!(added.compacted);
        assert_eq!(
            added.log.config().cleanup_policy,
            crate::log::CleanupPolicy::Compact
        );
        let keyed = keyed_batch(&[(Some("k"), Some("v"))], 0, Compression::None);
        assert!(rm.append("table", 2, Some(keyed)).is_ok());

        let e = rm.create_partitions("table", 3, None, false).unwrap_err();
        assert!(matches!(e, BrokerError::InvalidPartitions(_)), "{e}");
        let e = rm.create_partitions("table", 2, None, false).unwrap_err();
        assert!(e.to_string().contains("currently has 3 partitions"), "{e}");
        for bad in [
            vec![vec![node]],
            vec![vec![node], vec![node + 1]],
            vec![vec![node], vec![node, node]],
            vec![vec![node], vec![]],
        ] {
            let e = rm
                .create_partitions("table", 5, Some(&bad), false)
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidReplicaAssignment, "{e}");
        }
        assert_eq!(rm.metadata().topic("table").unwrap().partitions, 3);
        assert!(rm.partition("table", 3).is_none());
        let e = rm.create_partitions("nope", 2, None, false).unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnknownTopicOrPartition);
    }
}
