//! A stream thread: one consumer group member with its tasks, restore consumer and producer;
//! polls, processes, produces, and commits only progress whose outputs are acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_client::consumer::{OffsetAndMetadata, RebalanceListener, RevokeCommit};
use sluice_client::{
    Consumer, ConsumerRecord, DeliveryFuture, Producer, ProducerRecord, TopicPartition,
};

use super::config::{Settings, StreamsConfig};
use super::partition_group::PartitionGroup;
use super::Shared;
use crate::error::StreamsError;
use crate::record::{InputRecord, OutputKind, OutputRecord};
use crate::task::{Task, TaskConfig};
use crate::topology::{TaskId, Topology};

/// Outputs kept awaiting acknowledgement before the finished ones are checked and dropped.
const PENDING_CHECK: usize = 10_000;

/// How long a stream thread replays changelogs before polling its group consumer again.
const RESTORE_STEP: Duration = Duration::from_millis(200);

/// Records of one task processed under one lock before their outputs are produced.
const RUN_CHUNK: usize = 64;

fn runtime_err(what: &str, e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Runtime(format!("{what}: {e}"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct ActiveTask {
    task: Task,
    /// Fetched records waiting, per input partition, and the offsets processed (what a
    /// commit stores).
    input: PartitionGroup,
    /// Changelog partition -> offset after the latest acknowledged changelog record, for the
    /// checkpoint of persistent stores.
    changelog_acked: BTreeMap<(String, i32), i64>,
    /// The checkpoint last written to each persistent store.
    checkpointed: BTreeMap<String, i64>,
    /// Its stores are still being restored: it processes nothing yet.
    restoring: bool,
}

/// Partition changes told by the consumer during a poll, acted on after it returns.
enum Change {
    Revoked(Vec<TopicPartition>),
    Assigned(Vec<TopicPartition>),
    Lost(Vec<TopicPartition>),
}

/// What the processing loop and the rebalance listener share.
struct TaskSet {
    active: BTreeMap<TaskId, ActiveTask>,
    /// Revoked (offsets committed) but kept until the new assignment, which may give them back.
    suspended: BTreeMap<TaskId, ActiveTask>,
    /// Produced records not yet known to be acknowledged, with the task that produced them.
    pending: Vec<(TaskId, OutputKind, DeliveryFuture)>,
    changes: Vec<Change>,
    /// Set once an output failed or processing stopped on an error: the offsets processed
    /// since the last commit then cover records whose outputs are lost, so from here on
    /// nothing is committed (the next owner reprocesses from the last commit).
    failed: Option<String>,
}

type Tasks = Arc<Mutex<TaskSet>>;
type Pending = Vec<(TaskId, OutputKind, DeliveryFuture)>;
type Offsets = BTreeMap<TopicPartition, OffsetAndMetadata>;

fn lock(t: &Tasks) -> MutexGuard<'_, TaskSet> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Produces a task's outputs, adding their deliveries to `into`.
async fn produce(
    producer: &Producer,
    id: TaskId,
    out: &mut Vec<OutputRecord>,
    into: &mut Pending,
) -> Result<(), StreamsError> {
    for o in out.drain(..) {
        let kind = o.kind;
        let mut pr = ProducerRecord::new(o.topic).timestamp(o.timestamp);
        pr.key = o.key;
        pr.value = o.value;
        pr.headers = o.headers;
        if let Some(p) = o.partition {
            pr = pr.partition(p);
        }
        let f = producer
            .send(pr)
            .await
            .map_err(|e| runtime_err("producing", e))?;
        into.push((id, kind, f));
    }
    Ok(())
}

/// What a commit stores, made safe to store: flushes every task (the record caches first,
/// whose writes and the changes they forward are produced too, then the stores), waits until
/// every output is acknowledged, writes the checkpoints, and returns the offsets to commit
/// (for `only`'s partitions, or all). On an error nothing may be committed.
async fn commit_point(
    tasks: &Tasks,
    producer: &Producer,
    only: Option<&BTreeSet<TopicPartition>>,
) -> Result<Offsets, StreamsError> {
    if let Some(why) = &lock(tasks).failed {
        return Err(runtime_err("not committing after a failure", why));
    }
    let result = flush_and_await(tasks, producer, only).await;
    if let Err(e) = &result {
        lock(tasks).failed.get_or_insert_with(|| e.to_string());
    }
    result
}

async fn flush_and_await(
    tasks: &Tasks,
    producer: &Producer,
    only: Option<&BTreeSet<TopicPartition>>,
) -> Result<Offsets, StreamsError> {
    let mut offsets = BTreeMap::new();
    let mut flushed = Vec::new();
    let mut pending = {
        let mut set = lock(tasks);
        for (id, t) in set.active.iter_mut() {
            let mut out = Vec::new();
            t.task.flush(&mut out)?;
            flushed.push((*id, out));
            for (tp, o) in t.input.consumed() {
                if only.map_or(true, |s| s.contains(tp)) {
                    let mut committed = OffsetAndMetadata::new(o);
                    committed.metadata = encode_partition_time(t.task.partition_time(&tp.topic));
                    offsets.insert(tp.clone(), committed);
                }
            }
        }
        std::mem::take(&mut set.pending)
    };
    for (id, mut out) in flushed {
        produce(producer, id, &mut out, &mut pending).await?;
    }
    producer.flush().await;
    await_outputs(tasks, pending).await?;
    write_checkpoints(tasks);
    Ok(offsets)
}

/// What the committed offset's metadata says: the partition's stream time, so that a task
/// taken over or restarted goes on from it (Kafka Streams keeps it there too, in its own
/// encoding; this one is plain text).
const PARTITION_TIME: &str = "sluice-streams partition.time=";

fn encode_partition_time(ts: i64) -> String {
    format!("{PARTITION_TIME}{ts}")
}

fn decode_partition_time(metadata: &str) -> Option<i64> {
    metadata.strip_prefix(PARTITION_TIME)?.parse().ok()
}

/// Awaits outputs; notes where acknowledged changelog records ended. The first failure is
/// the result: the offsets of their inputs must then not be committed.
async fn await_outputs(tasks: &Tasks, pending: Pending) -> Result<(), StreamsError> {
    let mut acked: Vec<(TaskId, String, i32, i64)> = Vec::new();
    let mut first_err = None;
    for (id, kind, f) in pending {
        // Only changelog offsets are kept; other outputs just need to be stored, which spares
        // building their metadata (a copy of the topic name each).
        let result = if kind == OutputKind::Changelog {
            f.await.map(Some)
        } else {
            f.stored().await.map(|()| None)
        };
        match result {
            Ok(Some(md)) => acked.push((id, md.topic, md.partition, md.offset + 1)),
            Ok(None) => {}
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(runtime_err("producing a task's output", e));
                }
            }
        }
    }
    let mut set = lock(tasks);
    for (id, topic, partition, next) in acked {
        let TaskSet {
            active, suspended, ..
        } = &mut *set;
        if let Some(t) = active.get_mut(&id).or(suspended.get_mut(&id)) {
            let e = t.changelog_acked.entry((topic, partition)).or_insert(0);
            *e = (*e).max(next);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Records in each persistent store how far its changelog is acknowledged (its data includes
/// the changelog up to there), so that a restart restores only the tail; an unlogged
/// persistent store has no changelog, and its checkpoint (-1) only marks its data as the
/// task's own. Called once a commit's outputs are all acknowledged.
fn write_checkpoints(tasks: &Tasks) {
    let mut set = lock(tasks);
    for t in set.active.values_mut() {
        let id = t.task.id();
        let stores = t.task.stores();
        let persistent: Vec<(String, Option<String>)> = stores
            .names()
            .filter(|n| stores.store(n).is_some_and(|s| s.persistent()))
            .map(|n| (n.to_string(), stores.changelog_of(n).map(str::to_string)))
            .collect();
        for (name, changelog) in persistent {
            let offset = match changelog {
                Some(topic) => match t.changelog_acked.get(&(topic, id.partition)) {
                    Some(next) => next - 1,
                    None => continue, // nothing written or restored yet: nothing to record
                },
                None => -1,
            };
            if t.checkpointed.get(&name) == Some(&offset) {
                continue; // unchanged since the last commit: spare the fsync
            }
            match t.task.stores_mut().write_checkpoint(&name, offset) {
                Ok(()) => {
                    t.checkpointed.insert(name, offset);
                }
                Err(e) => {
                    tracing::warn!(task = %id, store = %name, error = %e,
                        "cannot write the checkpoint; a restart restores more of the changelog")
                }
            }
        }
    }
}

/// Records partition changes, and before an orderly revocation flushes the tasks, awaits their
/// outputs and hands the consumer the offsets to commit (Kafka Streams commits there too).
struct Listener {
    tasks: Tasks,
    producer: Arc<Producer>,
}

impl RebalanceListener for Listener {
    fn commit_before_revoke(&mut self, partitions: &[TopicPartition]) -> Option<RevokeCommit> {
        let only: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
        let tasks = self.tasks.clone();
        let producer = self.producer.clone();
        Some(Box::pin(async move {
            commit_point(&tasks, &producer, Some(&only))
                .await
                .map_err(|e| e.to_string())
        }))
    }

    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        lock(&self.tasks)
            .changes
            .push(Change::Revoked(partitions.to_vec()));
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        lock(&self.tasks)
            .changes
            .push(Change::Assigned(partitions.to_vec()));
    }

    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        lock(&self.tasks)
            .changes
            .push(Change::Lost(partitions.to_vec()));
    }
}

pub(crate) struct StreamThread {
    pub index: usize,
    pub topology: Arc<Topology>,
    pub config: StreamsConfig,
    pub settings: Settings,
    pub shared: Arc<Shared>,
}

struct Running {
    index: usize,
    topology: Arc<Topology>,
    settings: Settings,
    shared: Arc<Shared>,
    task_config: TaskConfig,
    sub_of_topic: HashMap<String, u32>,
    tasks: Tasks,
    consumer: Consumer,
    restore: Consumer,
    producer: Arc<Producer>,
    /// Pending outputs at which `send` next drops the acknowledged ones.
    check_pending_at: usize,
    /// `send`'s list of deliveries, empty between calls.
    sent: Pending,
    /// Changelog partitions being replayed into new tasks' stores.
    restoring: BTreeMap<TopicPartition, Restoring>,
    /// When the current restores began, and the records replayed since, for the log.
    restore_started: Option<Instant>,
    restored_now: u64,
}

/// A changelog partition being restored: into which task's store, up to which offset (its
/// end when the restore began), and the next offset to read.
struct Restoring {
    task: TaskId,
    store: String,
    end: i64,
    next: i64,
}

impl StreamThread {
    pub(crate) async fn run(self) -> Result<(), StreamsError> {
        let app = self.settings.application_id.clone();
        let consumer = Consumer::new(self.config.main_consumer(&app, self.index))
            .map_err(|e| runtime_err("consumer config", e))?;
        let restore = Consumer::new(self.config.restore_consumer(&app, self.index))
            .map_err(|e| runtime_err("restore consumer config", e))?;
        let producer = Arc::new(
            Producer::new(self.config.producer(&app, self.index))
                .await
                .map_err(|e| runtime_err("producer config", e))?,
        );
        let sources = self.topology.source_topics(&app);
        let sub_of_topic = sources
            .iter()
            .filter_map(|t| Some((t.clone(), self.topology.subtopology_of_topic(&app, t)?)))
            .collect();
        let mut task_config = TaskConfig::new(app.clone());
        task_config.default_timestamp_extractor = self.settings.extractor.clone();
        task_config.deserialization_errors = self.settings.deserialization_errors;
        task_config.cache_max_bytes = self.settings.cache_max_bytes / self.settings.num_threads;
        let tasks: Tasks = Arc::new(Mutex::new(TaskSet {
            active: BTreeMap::new(),
            suspended: BTreeMap::new(),
            pending: Vec::new(),
            changes: Vec::new(),
            failed: None,
        }));
        let mut r = Running {
            index: self.index,
            topology: self.topology,
            settings: self.settings,
            shared: self.shared,
            task_config,
            sub_of_topic,
            tasks: tasks.clone(),
            consumer,
            restore,
            producer,
            check_pending_at: PENDING_CHECK,
            sent: Vec::new(),
            restoring: BTreeMap::new(),
            restore_started: None,
            restored_now: 0,
        };
        r.consumer
            .subscribe_with_listener(
                sources,
                Listener {
                    tasks,
                    producer: r.producer.clone(),
                },
            )
            .map_err(|e| runtime_err("subscribing", e))?;
        let result = r.process_loop().await;
        r.shutdown(result.is_ok()).await;
        result
    }
}

impl Running {
    async fn process_loop(&mut self) -> Result<(), StreamsError> {
        let mut next_commit = Instant::now() + self.settings.commit_interval;
        let mut out = Vec::new();
        while !self.shared.stopping() {
            let records = self
                .consumer
                // While stores are restored, the poll only keeps the membership alive.
                .poll(match self.restoring.is_empty() {
                    true => self.settings.poll,
                    false => Duration::from_millis(1),
                })
                .await
                .map_err(|e| runtime_err("polling", e))?;
            self.apply_changes().await?;
            self.restore_step().await?;
            // A stop asked for meanwhile (a restore cut short, say) leaves this poll's records
            // unprocessed and uncommitted: the next owner reads them.
            if self.shared.stopping() {
                break;
            }
            // An output that failed during the poll (a revocation's commit awaits them all).
            if let Some(why) = lock(&self.tasks).failed.clone() {
                return Err(runtime_err("producing a task's output", why));
            }
            self.buffer(records)?;
            let mut processed = 0u64;
            let ids: Vec<TaskId> = lock(&self.tasks).active.keys().copied().collect();
            for id in ids {
                // In chunks, each under one lock with its outputs produced together (small
                // enough that the outputs are still in cache when produced).
                loop {
                    let mut chunk = 0;
                    {
                        let mut set = lock(&self.tasks);
                        let Some(t) = set.active.get_mut(&id) else {
                            break;
                        };
                        if t.restoring {
                            break; // its records wait in its queues (paused when full)
                        }
                        let now = Instant::now();
                        let consumer = &self.consumer;
                        let dropped = t.task.dropped_records() + t.task.skipped_records();
                        while chunk < RUN_CHUNK {
                            let next = t
                                .input
                                .next(now, self.settings.task_idle, |tp| consumer.current_lag(tp));
                            let Some((queue, rec)) = next else { break };
                            let offset = rec.offset;
                            t.task.process(InputRecord::from(rec), &mut out)?;
                            // Only once processed: a failure must not commit past its record.
                            t.input.processed(queue, offset);
                            chunk += 1;
                        }
                        let now_dropped = t.task.dropped_records() + t.task.skipped_records();
                        self.shared.note_dropped(now_dropped - dropped);
                    }
                    processed += chunk as u64;
                    self.send(id, &mut out).await?;
                    if chunk < RUN_CHUNK {
                        break;
                    }
                }
            }
            self.pause_full_partitions()?;
            self.shared.note_processed(processed);
            let now = now_ms();
            let ids: Vec<TaskId> = lock(&self.tasks).active.keys().copied().collect();
            for id in ids {
                if let Some(t) = lock(&self.tasks).active.get_mut(&id) {
                    t.task.advance_wall_clock(now, &mut out)?;
                }
                self.send(id, &mut out).await?;
            }
            if Instant::now() >= next_commit {
                self.commit().await?;
                next_commit = Instant::now() + self.settings.commit_interval;
            }
        }
        Ok(())
    }

    /// Hands a poll's records to their tasks' queues (records of partitions revoked meanwhile
    /// are dropped: their next owner fetches them).
    fn buffer(&mut self, records: Vec<ConsumerRecord>) -> Result<(), StreamsError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut set = lock(&self.tasks);
        for rec in records {
            let sub = self.sub_of_topic.get(&rec.topic).copied().ok_or_else(|| {
                StreamsError::Topology(format!("no sub-topology reads {}", rec.topic))
            })?;
            let id = TaskId {
                subtopology: sub,
                partition: rec.partition,
            };
            if let Some(t) = set.active.get_mut(&id) {
                t.input.push(rec);
            }
        }
        Ok(())
    }

    /// Pauses fetching for partitions with buffered.records.per.partition records waiting,
    /// resumes the others, so a task waiting on one partition cannot buffer without bound.
    fn pause_full_partitions(&mut self) -> Result<(), StreamsError> {
        let limit = self.settings.buffered_per_partition;
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        {
            let set = lock(&self.tasks);
            let paused = self.consumer.paused();
            for t in set.active.values() {
                for (tp, n) in t.input.buffered() {
                    match (n >= limit, paused.contains(tp)) {
                        (true, false) => pause.push(tp.clone()),
                        (false, true) => resume.push(tp.clone()),
                        _ => {}
                    }
                }
            }
        }
        if !pause.is_empty() {
            self.consumer
                .pause(&pause)
                .map_err(|e| runtime_err("pausing a full partition", e))?;
        }
        if !resume.is_empty() {
            self.consumer
                .resume(&resume)
                .map_err(|e| runtime_err("resuming a partition", e))?;
        }
        Ok(())
    }

    async fn send(&mut self, id: TaskId, out: &mut Vec<OutputRecord>) -> Result<(), StreamsError> {
        if out.is_empty() {
            return Ok(());
        }
        let mut futures = std::mem::take(&mut self.sent);
        produce(&self.producer, id, out, &mut futures).await?;
        let check = {
            let mut set = lock(&self.tasks);
            set.pending.append(&mut futures);
            set.pending.len() >= self.check_pending_at
        };
        // Kept for the next call: a list per input record would cost an allocation each.
        self.sent = futures;
        if check {
            // Memory stays bounded between commits: finished sends are checked and dropped.
            // Outputs are acknowledged about in the order sent, so the finished ones are the
            // front (those behind an open one wait for the next look, or the commit).
            let done: Pending = {
                let mut set = lock(&self.tasks);
                let n = set
                    .pending
                    .iter()
                    .position(|(_, _, f)| !f.is_resolved())
                    .unwrap_or(set.pending.len());
                let done = set.pending.drain(..n).collect();
                // Unacknowledged outputs are the normal state (linger.ms, acks=all): looking
                // again once the backlog has doubled keeps the cost per send constant.
                self.check_pending_at = (2 * set.pending.len()).max(PENDING_CHECK);
                done
            };
            if let Err(e) = await_outputs(&self.tasks, done).await {
                lock(&self.tasks)
                    .failed
                    .get_or_insert_with(|| e.to_string());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Flush caches and stores, wait for every output to be acknowledged, then commit the
    /// offsets.
    async fn commit(&mut self) -> Result<(), StreamsError> {
        let offsets = commit_point(&self.tasks, &self.producer, None).await?;
        self.check_pending_at = PENDING_CHECK;
        if offsets.is_empty() {
            return Ok(());
        }
        match self.consumer.commit_sync(Some(offsets)).await {
            Ok(()) => {
                self.shared.note_commit();
                Ok(())
            }
            // A rebalance started: the partitions still owned are committed on revocation.
            Err(e) if e.is_retriable() || e.code().is_some() => {
                tracing::warn!(thread = self.index, error = %e, "commit failed; the records since the last commit may be processed again");
                Ok(())
            }
            Err(e) => Err(runtime_err("committing offsets", e)),
        }
    }

    fn task_ids(&self, partitions: &[TopicPartition]) -> BTreeSet<TaskId> {
        partitions
            .iter()
            .filter_map(|tp| {
                Some(TaskId {
                    subtopology: *self.sub_of_topic.get(&tp.topic)?,
                    partition: tp.partition,
                })
            })
            .collect()
    }

    /// Acts on partition changes: suspends revoked tasks, closes lost ones, and for an
    /// assignment resumes suspended tasks it gives back, creates and restores new ones, and
    /// closes the suspended rest.
    async fn apply_changes(&mut self) -> Result<(), StreamsError> {
        let changes = std::mem::take(&mut lock(&self.tasks).changes);
        if changes.is_empty() {
            return Ok(());
        }
        let mut created = Vec::new();
        for change in changes {
            match change {
                Change::Revoked(parts) => {
                    let ids = self.task_ids(&parts);
                    {
                        let mut set = lock(&self.tasks);
                        for id in &ids {
                            let Some(mut t) = set.active.remove(id) else {
                                continue;
                            };
                            if t.restoring {
                                // Half restored: given back, it restores again from its
                                // checkpoint (the revocation's commit wrote it).
                                close_task(t, "revoked while restoring");
                                continue;
                            }
                            // Given back, its partitions are fetched again from the commit.
                            t.input.clear();
                            set.suspended.insert(*id, t);
                        }
                    }
                    self.drop_restores(&ids)?;
                }
                Change::Lost(parts) => {
                    let ids = self.task_ids(&parts);
                    {
                        let mut set = lock(&self.tasks);
                        for id in &ids {
                            for t in [set.active.remove(id), set.suspended.remove(id)]
                                .into_iter()
                                .flatten()
                            {
                                close_task(t, "lost");
                            }
                        }
                    }
                    self.drop_restores(&ids)?;
                }
                Change::Assigned(parts) => {
                    let ids = self.task_ids(&parts);
                    let mut set = lock(&self.tasks);
                    for id in ids {
                        if set.active.contains_key(&id) {
                            continue;
                        }
                        if let Some(t) = set.suspended.remove(&id) {
                            set.active.insert(id, t);
                            continue;
                        }
                        let dir = self
                            .settings
                            .state_dir
                            .join(&self.settings.application_id)
                            .join(id.to_string());
                        std::fs::create_dir_all(&dir).map_err(|e| {
                            runtime_err(&format!("creating state directory {}", dir.display()), e)
                        })?;
                        let mut cfg = self.task_config.clone();
                        cfg.state_dir = Some(dir);
                        let task = Task::new(&self.topology, &cfg, id)?;
                        // The partitions assigned to it: a topic with fewer partitions than
                        // the others of its sub-topology has none for this task to wait on.
                        let inputs = parts
                            .iter()
                            .filter(|tp| {
                                tp.partition == id.partition
                                    && self.sub_of_topic.get(&tp.topic) == Some(&id.subtopology)
                            })
                            .cloned();
                        set.active.insert(
                            id,
                            ActiveTask {
                                task,
                                input: PartitionGroup::new(inputs),
                                changelog_acked: BTreeMap::new(),
                                checkpointed: BTreeMap::new(),
                                restoring: false,
                            },
                        );
                        created.push(id);
                    }
                    for (_, t) in std::mem::take(&mut set.suspended) {
                        close_task(t, "revoked");
                    }
                }
            }
        }
        let ids: Vec<TaskId> = lock(&self.tasks).active.keys().copied().collect();
        self.shared.set_tasks(self.index, ids.clone());
        if !created.is_empty() {
            self.start_restore(&created).await?;
        }
        // The thread's record cache budget is split among its tasks, as they are now.
        let thread_share = self.settings.cache_max_bytes / self.settings.num_threads;
        let share = thread_share / ids.len().max(1);
        let mut out = Vec::new();
        for id in ids {
            if let Some(t) = lock(&self.tasks).active.get_mut(&id) {
                t.task.set_cache_max_bytes(share, &mut out)?;
            }
            self.send(id, &mut out).await?;
        }
        Ok(())
    }

    /// Gives new tasks the partition times their inputs' last commits stored. Without them
    /// (a first start, an older commit, an error asking) stream time starts over, at the
    /// first record.
    async fn restore_stream_time(&mut self, ids: &[TaskId]) {
        let parts: Vec<TopicPartition> = ids
            .iter()
            .flat_map(|id| {
                (self.sub_of_topic.iter())
                    .filter(move |(_, &sub)| sub == id.subtopology)
                    .map(move |(topic, _)| TopicPartition::new(topic.clone(), id.partition))
            })
            .collect();
        let committed = match self.consumer.committed(&parts).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(thread = self.index, error = %e,
                    "cannot read the committed partition times; stream time starts over");
                return;
            }
        };
        let mut set = lock(&self.tasks);
        for (tp, c) in committed {
            let Some(ts) = c.and_then(|c| decode_partition_time(&c.metadata)) else {
                continue;
            };
            let Some(&sub) = self.sub_of_topic.get(&tp.topic) else {
                continue;
            };
            let id = TaskId {
                subtopology: sub,
                partition: tp.partition,
            };
            if let Some(t) = set.active.get_mut(&id) {
                t.task.restore_partition_time(&tp.topic, ts);
            }
        }
    }

    /// Starts replaying new tasks' changelog partitions into their stores, from the start (or
    /// a persistent store's checkpoint) to the end found now. The replay goes on between polls
    /// (`restore_step`), so a long restore keeps the thread in its group; a task processes
    /// nothing until its stores are restored.
    async fn start_restore(&mut self, ids: &[TaskId]) -> Result<(), StreamsError> {
        // changelog partition -> (task, store, start offset)
        let mut targets: BTreeMap<TopicPartition, (TaskId, String, Option<i64>)> = BTreeMap::new();
        {
            let set = lock(&self.tasks);
            for id in ids {
                let Some(t) = set.active.get(id) else {
                    continue;
                };
                let stores = t.task.stores();
                for name in stores.names() {
                    let Some(topic) = stores.changelog_of(name) else {
                        continue;
                    };
                    // A persistent store holds the changelog up to its checkpoint already.
                    let start = stores.checkpointed_offset(name)?.map(|o| o + 1);
                    targets.insert(
                        TopicPartition::new(topic, id.partition),
                        (*id, name.to_string(), start),
                    );
                }
            }
        }
        let new: Vec<TopicPartition> = targets.keys().cloned().collect();
        self.assign_restore(&new)?;
        self.restore
            .seek_to_end(&new)
            .map_err(|e| runtime_err("restore consumer", e))?;
        for (tp, (task, store, start)) in targets {
            let end = self
                .restore
                .position(&tp)
                .await
                .map_err(|e| runtime_err(&format!("the end of changelog {tp}"), e))?;
            match start {
                Some(o) => self.restore.seek(&tp, o),
                None => self.restore.seek_to_beginning(std::slice::from_ref(&tp)),
            }
            .map_err(|e| runtime_err("restore consumer", e))?;
            let next = self
                .restore
                .position(&tp)
                .await
                .map_err(|e| runtime_err(&format!("the start of changelog {tp}"), e))?;
            if next < end {
                self.restoring.insert(
                    tp,
                    Restoring {
                        task,
                        store,
                        end,
                        next,
                    },
                );
            }
        }
        let (restoring, ready): (Vec<TaskId>, Vec<TaskId>) = ids
            .iter()
            .partition(|id| self.restoring.values().any(|r| r.task == **id));
        {
            let mut set = lock(&self.tasks);
            for id in &restoring {
                if let Some(t) = set.active.get_mut(id) {
                    t.restoring = true;
                }
            }
        }
        if !restoring.is_empty() {
            self.restore_started.get_or_insert_with(Instant::now);
        }
        self.assign_restore(&[])?;
        self.restore_stream_time(&ready).await;
        Ok(())
    }

    /// Points the restore consumer at the changelog partitions being restored (and `also`),
    /// each restoring one where it had got to.
    fn assign_restore(&mut self, also: &[TopicPartition]) -> Result<(), StreamsError> {
        let parts: BTreeSet<TopicPartition> =
            (self.restoring.keys().chain(also)).cloned().collect();
        self.restore
            .assign(parts)
            .map_err(|e| runtime_err("restore consumer", e))?;
        for (tp, r) in &self.restoring {
            self.restore
                .seek(tp, r.next)
                .map_err(|e| runtime_err("restore consumer", e))?;
        }
        Ok(())
    }

    /// Replays changelog records for up to `RESTORE_STEP` (then the thread polls its group
    /// consumer again); tasks whose changelogs are all read to their ends become ready.
    async fn restore_step(&mut self) -> Result<(), StreamsError> {
        let step = Instant::now();
        while !self.restoring.is_empty() && step.elapsed() < RESTORE_STEP {
            let records = self
                .restore
                .poll(Duration::from_millis(10))
                .await
                .map_err(|e| runtime_err("reading a changelog", e))?;
            let got = !records.is_empty();
            self.apply_restored(records)?;
            self.finish_restores().await?;
            if !got {
                break;
            }
        }
        Ok(())
    }

    fn apply_restored(&mut self, records: Vec<ConsumerRecord>) -> Result<(), StreamsError> {
        let mut restored = 0u64;
        {
            let mut set = lock(&self.tasks);
            for rec in records {
                let tp = rec.topic_partition();
                let Some(r) = self.restoring.get_mut(&tp) else {
                    continue;
                };
                if rec.offset >= r.end {
                    continue;
                }
                r.next = rec.offset + 1;
                let Some(key) = rec.key else { continue };
                if let Some(t) = set.active.get_mut(&r.task) {
                    t.task
                        .stores_mut()
                        .restore(&r.store, [(key, rec.value, rec.timestamp)])?;
                    t.changelog_acked
                        .insert((tp.topic.clone(), tp.partition), rec.offset + 1);
                    restored += 1;
                }
            }
        }
        self.shared.note_restored(restored);
        self.restored_now += restored;
        Ok(())
    }

    /// Ends the restores whose changelogs are read to their ends; their tasks become ready
    /// once all their stores are.
    async fn finish_restores(&mut self) -> Result<(), StreamsError> {
        let mut done = Vec::new();
        for (tp, r) in &self.restoring {
            let pos = self
                .restore
                .position(tp)
                .await
                .map_err(|e| runtime_err("restore consumer", e))?;
            if pos >= r.end {
                done.push(tp.clone());
            }
        }
        let mut finished: BTreeSet<TaskId> = BTreeSet::new();
        for tp in done {
            if let Some(r) = self.restoring.remove(&tp) {
                finished.insert(r.task);
            }
        }
        finished.retain(|id| !self.restoring.values().any(|r| r.task == *id));
        if finished.is_empty() {
            return Ok(());
        }
        {
            let mut set = lock(&self.tasks);
            for id in &finished {
                if let Some(t) = set.active.get_mut(id) {
                    t.restoring = false;
                }
            }
        }
        let ready: Vec<TaskId> = finished.into_iter().collect();
        self.restore_stream_time(&ready).await;
        if self.restoring.is_empty() {
            self.restore
                .assign([])
                .map_err(|e| runtime_err("restore consumer", e))?;
            let ms = self
                .restore_started
                .take()
                .map_or(0, |s| s.elapsed().as_millis());
            tracing::info!(
                thread = self.index,
                records = std::mem::take(&mut self.restored_now),
                ms = ms as u64,
                "restored stores from their changelogs"
            );
        }
        Ok(())
    }

    /// Forgets the restores of tasks given up (their next owner restores them).
    fn drop_restores(&mut self, ids: &BTreeSet<TaskId>) -> Result<(), StreamsError> {
        let before = self.restoring.len();
        self.restoring.retain(|_, r| !ids.contains(&r.task));
        if self.restoring.len() != before {
            self.assign_restore(&[])?;
        }
        Ok(())
    }

    /// A clean stop commits (and leaves the group, whose next owners start from there); after
    /// an error only outputs already acknowledged have their offsets committed, by the revoke.
    async fn shutdown(self, clean: bool) {
        let Running {
            mut consumer,
            restore,
            producer,
            tasks,
            index,
            ..
        } = self;
        if !clean {
            // Closing the consumer revokes the partitions, and the listener would commit the
            // offsets processed, outputs sent or not: nothing may be committed now.
            lock(&tasks)
                .failed
                .get_or_insert_with(|| "the stream thread failed".into());
        }
        if clean {
            match commit_point(&tasks, &producer, None).await {
                Ok(offsets) if !offsets.is_empty() => {
                    if let Err(e) = consumer.commit_sync(Some(offsets)).await {
                        tracing::warn!(thread = index, error = %e, "final commit failed");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(thread = index, error = %e, "outputs lost at shutdown"),
            }
        }
        // Leaving the group revokes the partitions (committing through the listener again).
        if let Err(e) = consumer.close().await {
            tracing::warn!(thread = index, error = %e, "closing the consumer");
        }
        let _ = restore.close().await;
        producer.close().await;
        let mut set = lock(&tasks);
        let all: Vec<ActiveTask> = std::mem::take(&mut set.active)
            .into_values()
            .chain(std::mem::take(&mut set.suspended).into_values())
            .collect();
        drop(set);
        for t in all {
            close_task(t, "shutdown");
        }
    }
}

fn close_task(mut t: ActiveTask, why: &str) {
    let id = t.task.id();
    if let Err(e) = t.task.close() {
        tracing::warn!(task = %id, error = %e, "closing a task ({why})");
    } else {
        tracing::debug!(task = %id, "task closed ({why})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_time_survives_the_commit_metadata() {
        for ts in [-1, 0, 1_700_000_000_000, i64::MAX] {
            assert_eq!(decode_partition_time(&encode_partition_time(ts)), Some(ts));
        }
        // Metadata written by others (or none) is not a partition time.
        assert_eq!(decode_partition_time(""), None);
        assert_eq!(decode_partition_time("AQAAAYw="), None);
        assert_eq!(
            decode_partition_time("sluice-streams partition.time=x"),
            None
        );
    }
}
