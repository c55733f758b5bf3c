//! `GroupCoordinatorService`: the async edge of the group coordinator. It owns the state
//! machine behind one lock, stores its records in `__consumer_offsets`, parks JoinGroup and
//! SyncGroup requests until their answers exist, loads state on start and fires deadlines.
//! In a cluster it coordinates the offsets partitions this broker leads, loading and unloading
//! them as leadership moves, and answers writes once the partition's ISR has them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sluice_protocol::records::{Batches, Record, RecordBatch};
use sluice_protocol::ErrorCode;
use tokio::sync::{oneshot, Notify};
use tracing::{info, warn};

use super::codec;
use super::coordinator::*;
use super::records::GroupRecord;
use super::{partition_for, ReplyId, OFFSETS_TOPIC};
use crate::error::{BrokerError, Result};
use crate::replica_manager::{now_ms, AcksAllWait, ReplicaManager};
use crate::shutdown::Shutdown;

/// How the offsets topic is created when it does not exist yet.
#[derive(Debug, Clone)]
pub struct OffsetsTopicConfig {
    /// offsets.topic.num.partitions
    pub partitions: i32,
    /// offsets.topic.segment.bytes
    pub segment_bytes: u64,
    /// offsets.topic.replication.factor: in a cluster, the topic is created (on the first
    /// FindCoordinator) only once this many brokers are alive.
    pub replication_factor: i16,
}

impl OffsetsTopicConfig {
    /// The topic configs `__consumer_offsets` is created with.
    pub fn topic_configs(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), self.segment_bytes.to_string()),
            ("compression.type".to_string(), "producer".to_string()),
        ])
    }
}

/// offsets.commit.timeout.ms (Kafka's default): how long a write in a cluster may wait for the
/// ISR before the request is answered COORDINATOR_NOT_AVAILABLE.
const COMMIT_TIMEOUT: Duration = Duration::from_millis(5_000);

pub struct GroupCoordinatorService {
    inner: Mutex<Inner>,
    replicas: Arc<ReplicaManager>,
    /// Wakes the timer task when a request may have set an earlier deadline.
    wake: Notify,
    /// In a cluster: partitions are hosted while led, and writes wait for the ISR.
    clustered: bool,
}

struct Inner {
    coordinator: GroupCoordinator,
    waiting: HashMap<ReplyId, oneshot::Sender<Reply>>,
    next_reply: ReplyId,
    /// In a cluster, each hosted partition's leader epoch and load number: a load that finds
    /// its number gone stops (the partition was unloaded, or reloaded under a newer epoch).
    hosted: HashMap<i32, (i32, u64)>,
    next_load: u64,
}

/// Bytes read per step while loading a partition: the lock is taken once per step, so other
/// groups stay served while a big partition loads.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

impl GroupCoordinatorService {
    /// Standalone: creates `__consumer_offsets` if needed and marks its partitions as loading;
    /// `run` loads them and then fires deadlines until shutdown. Clustered: the topic is the
    /// controller's and partitions are loaded through `lead_partitions`.
    pub fn open(
        replicas: Arc<ReplicaManager>,
        config: CoordinatorConfig,
        topic: OffsetsTopicConfig,
        clustered: bool,
    ) -> Result<Arc<GroupCoordinatorService>> {
        let partitions = match replicas.metadata().topic(OFFSETS_TOPIC) {
            _ if clustered => topic.partitions,
            Some(t) => t.partitions,
            None => {
                replicas
                    .create_topic(
                        OFFSETS_TOPIC,
                        topic.partitions,
                        1,
                        topic.topic_configs(),
                        false,
                    )?
                    .partitions
            }
        };
        let nonce = u64::from_be_bytes(
            crate::metadata::random_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        );
        let mut coordinator = GroupCoordinator::new(config, partitions, nonce);
        if !clustered {
            for p in 0..partitions {
                coordinator.begin_load(p);
            }
        }
        Ok(Arc::new(GroupCoordinatorService {
            inner: Mutex::new(Inner {
                coordinator,
                waiting: HashMap::new(),
                next_reply: 0,
                hosted: HashMap::new(),
                next_load: 0,
            }),
            replicas,
            wake: Notify::new(),
            clustered,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the state machine mid-change; nothing sensible
        // can continue from there.
        self.inner.lock().expect("group coordinator lock poisoned")
    }

    /// Standalone: loads every partition. Then fires deadlines until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let partitions = self.lock().coordinator.num_partitions();
        if !self.clustered {
            for p in 0..partitions {
                self.clone().load(p, None).await;
            }
        }
        loop {
            let now = now_ms();
            let wait = self
                .lock()
                .coordinator
                .next_deadline()
                .map_or(60_000, |d| (d - now).clamp(0, 60_000));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = self.wake.notified() => continue,
                _ = shutdown.recv() => break,
            }
            let now = now_ms();
            let mut inner = self.lock();
            let mut fx = Effects::default();
            let expired = inner.coordinator.tick(now, &mut fx);
            self.settle(&mut inner, fx, now);
            if !expired.is_empty() {
                let n = expired.len();
                match self.store_then_replay(&mut inner, expired, now) {
                    Ok(_) => info!(records = n, "expired committed offsets"),
                    Err(e) => warn!(error = ?e, "could not store expired offsets"),
                }
            }
        }
        // Parked requests learn NOT_COORDINATOR and look the coordinator up again.
        let mut inner = self.lock();
        let mut fx = Effects::default();
        for p in 0..partitions {
            inner.coordinator.unload(p, &mut fx);
        }
        deliver(&mut inner, fx.replies);
        inner.waiting.clear();
    }

    /// Loads one partition off the async threads and says how it went. `load` is the load
    /// number in a cluster (`None` standalone).
    async fn load(self: Arc<Self>, partition: i32, load: Option<u64>) {
        let loaded =
            tokio::task::spawn_blocking(move || self.load_partition(partition, load)).await;
        match loaded {
            Ok(Ok(Some(n))) => info!(partition, records = n, "loaded group state"),
            Ok(Ok(None)) => info!(partition, "group state load abandoned: leadership moved"),
            Ok(Err(e)) => {
                // Serving from a partial load would hand out stale offsets; the partition
                // stays loading (clients retry) and the operator sees why.
                warn!(partition, error = %e, "could not load group state");
            }
            Err(e) => warn!(partition, error = %e, "group state load task failed"),
        }
    }

    /// In a cluster, makes this coordinator host exactly the offsets partitions this broker
    /// leads (`led`: partition -> leader epoch). A partition led under a new epoch is loaded
    /// again: another broker may have written to it meanwhile.
    pub fn lead_partitions(self: &Arc<Self>, led: &BTreeMap<i32, i32>) {
        let loads = {
            let mut inner = self.lock();
            let n = inner.coordinator.num_partitions();
            let mut fx = Effects::default();
            let stale: Vec<i32> = inner
                .hosted
                .iter()
                .filter(|(p, (epoch, _))| led.get(p) != Some(epoch))
                .map(|(p, _)| *p)
                .collect();
            for p in stale {
                inner.hosted.remove(&p);
                inner.coordinator.unload(p, &mut fx);
                info!(
                    partition = p,
                    "no longer coordinating this offsets partition"
                );
            }
            deliver(&mut inner, fx.replies);
            let mut loads = Vec::new();
            for (&p, &epoch) in led {
                if p >= n || inner.hosted.contains_key(&p) {
                    continue;
                }
                inner.next_load += 1;
                let load = inner.next_load;
                inner.hosted.insert(p, (epoch, load));
                inner.coordinator.begin_load(p);
                loads.push((p, load));
            }
            loads
        };
        for (p, load) in loads {
            tokio::spawn(self.clone().load(p, Some(load)));
        }
    }

    /// Whether load number `load` of `partition` is still the one wanted (always, standalone).
    fn load_current(inner: &Inner, partition: i32, load: Option<u64>) -> bool {
        load.map_or(true, |l| {
            inner.hosted.get(&partition).map(|(_, n)| *n) == Some(l)
        })
    }

    /// Replays one partition's records into the state machine. Returns how many were read, or
    /// `None` when the load was abandoned because leadership moved.
    fn load_partition(&self, partition: i32, load: Option<u64>) -> Result<Option<usize>> {
        let part = self
            .replicas
            .partition(OFFSETS_TOPIC, partition)
            .ok_or_else(|| {
                BrokerError::UnknownTopicOrPartition(format!("{OFFSETS_TOPIC}-{partition}"))
            })?;
        let mut offset = part.log.log_start_offset();
        // To the log end, not the high watermark: a new leader's tail becomes committed as its
        // followers catch up, and every later write goes after it.
        let end = part.log.log_end_offset();
        let mut count = 0;
        while offset < end {
            let read = part.log.read(offset, LOAD_CHUNK_BYTES, end, true)?;
            if read.records.is_empty() {
                break;
            }
            let mut records = Vec::new();
            for batch in Batches::new(read.records) {
                let (header, bytes) = batch?;
                offset = header.last_offset() + 1;
                let batch = RecordBatch::decode_bytes(&bytes, 64 << 20)?;
                for r in batch.records {
                    let Some(key) = r.key else { continue };
                    match codec::decode(&key, r.value.as_deref()) {
                        Ok(Some(record)) => records.push(record),
                        Ok(None) => {}
                        Err(e) => {
                            warn!(partition, offset = r.offset, error = %e, "skipping unreadable group record")
                        }
                    }
                }
            }
            count += records.len();
            let now = now_ms();
            let mut inner = self.lock();
            if !Self::load_current(&inner, partition, load) {
                return Ok(None);
            }
            for record in records {
                inner.coordinator.replay(record, now);
            }
        }
        let mut inner = self.lock();
        if !Self::load_current(&inner, partition, load) {
            return Ok(None);
        }
        inner.coordinator.finish_load(partition, now_ms());
        Ok(Some(count))
    }

    /// Stores the effects' records, then sends their replies. A group whose record could not be
    /// stored rebalances, and the replies sent with it become errors.
    fn settle(&self, inner: &mut Inner, fx: Effects, now: i64) {
        let Effects {
            records,
            mut replies,
        } = fx;
        let mut waits = Vec::new();
        if !records.is_empty() {
            let (failed_groups, stored) = self.store(&inner.coordinator, &records);
            waits = stored;
            if !failed_groups.is_empty() {
                for (_, reply) in replies.iter_mut() {
                    match reply {
                        Reply::Join(j) if j.error.is_ok() => {
                            *j = JoinResponse::error(
                                ErrorCode::CoordinatorNotAvailable,
                                &j.member_id,
                            )
                        }
                        Reply::Sync(s) if s.error.is_ok() => {
                            *s = SyncResponse::error(ErrorCode::CoordinatorNotAvailable)
                        }
                        _ => {}
                    }
                }
                let mut fx = Effects::default();
                for group in failed_groups {
                    inner.coordinator.store_failed(&group, now, &mut fx);
                }
                replies.extend(fx.replies);
            }
        }
        if waits.is_empty() {
            deliver(inner, replies);
            return;
        }
        // In a cluster a JoinGroup or SyncGroup answer waits until the group's record is
        // committed, so a member never acts on an assignment a new coordinator will not know.
        let pending: Vec<(oneshot::Sender<Reply>, Reply)> = replies
            .into_iter()
            .filter_map(|(id, reply)| inner.waiting.remove(&id).map(|tx| (tx, reply)))
            .collect();
        let replicas = self.replicas.clone();
        tokio::spawn(async move {
            let stored = await_stored(&replicas, waits).await;
            for (tx, mut reply) in pending {
                if let Err(code) = stored {
                    match &mut reply {
                        Reply::Join(j) if j.error.is_ok() => {
                            *j = JoinResponse::error(code, &j.member_id)
                        }
                        Reply::Sync(s) if s.error.is_ok() => *s = SyncResponse::error(code),
                        _ => {}
                    }
                }
                let _ = tx.send(reply);
            }
        });
    }

    /// Appends records to their partitions, one batch per partition, in order. Returns the
    /// groups whose records did not make it, and (in a cluster) the waits for the ISR.
    fn store(
        &self,
        coordinator: &GroupCoordinator,
        records: &[GroupRecord],
    ) -> (Vec<String>, Vec<AcksAllWait>) {
        let n = coordinator.num_partitions();
        let mut by_partition: BTreeMap<i32, Vec<&GroupRecord>> = BTreeMap::new();
        for r in records {
            by_partition
                .entry(partition_for(r.group_id(), n))
                .or_default()
                .push(r);
        }
        let mut failed = Vec::new();
        let mut waits = Vec::new();
        let acks = if self.clustered { -1 } else { 1 };
        let now = now_ms();
        for (partition, records) in by_partition {
            let batch = RecordBatch::new(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let (key, value) = codec::encode(r);
                        Record {
                            offset: i as i64,
                            timestamp: now,
                            key: Some(key),
                            value,
                            headers: Vec::new(),
                        }
                    })
                    .collect(),
            );
            let appended = batch.encode().map_err(|e| e.to_string()).and_then(|bytes| {
                self.replicas
                    .append_records(OFFSETS_TOPIC, partition, Some(bytes), acks)
                    .map_err(|e| e.message)
            });
            match appended {
                Ok((_, wait)) => waits.extend(wait),
                Err(e) => {
                    warn!(partition, error = %e, "could not store group records");
                    failed.extend(records.iter().map(|r| r.group_id().to_string()));
                }
            }
        }
        failed.sort();
        failed.dedup();
        (failed, waits)
    }

    /// For records that take effect once appended (commits, deletions, expiry). They are
    /// replayed at once, in log order; in a cluster the caller answers only after the returned
    /// waits say the ISR has them.
    fn store_then_replay(
        &self,
        inner: &mut Inner,
        records: Vec<GroupRecord>,
        now: i64,
    ) -> std::result::Result<Vec<AcksAllWait>, ErrorCode> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (failed, waits) = self.store(&inner.coordinator, &records);
        if !failed.is_empty() {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        for r in records {
            inner.coordinator.replay(r, now);
        }
        Ok(waits)
    }

    /// `store_then_replay` and then the wait for the ISR, outside the lock.
    async fn store_and_commit(
        &self,
        f: impl FnOnce(&mut GroupCoordinator) -> Vec<GroupRecord>,
    ) -> std::result::Result<(), ErrorCode> {
        let waits = {
            let now = now_ms();
            let mut inner = self.lock();
            let records = f(&mut inner.coordinator);
            self.store_then_replay(&mut inner, records, now)?
        };
        await_stored(&self.replicas, waits).await
    }

    /// Runs `f` on the state machine with a fresh reply slot and waits for its reply.
    async fn park(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, i64, ReplyId, &mut Effects),
    ) -> Option<Reply> {
        let rx = {
            let now = now_ms();
            let mut inner = self.lock();
            inner.next_reply += 1;
            let id = inner.next_reply;
            let (tx, rx) = oneshot::channel();
            inner.waiting.insert(id, tx);
            let mut fx = Effects::default();
            f(&mut inner.coordinator, now, id, &mut fx);
            self.settle(&mut inner, fx, now);
            rx
        };
        self.wake.notify_one();
        rx.await.ok()
    }

    /// Runs `f` on the state machine for an answer given at once.
    fn now<T>(&self, f: impl FnOnce(&mut GroupCoordinator, i64, &mut Effects) -> T) -> T {
        let now = now_ms();
        let out = {
            let mut inner = self.lock();
            let mut fx = Effects::default();
            let out = f(&mut inner.coordinator, now, &mut fx);
            self.settle(&mut inner, fx, now);
            out
        };
        self.wake.notify_one();
        out
    }

    // ---- what the handlers call -----------------------------------------------------------

    pub async fn join(&self, req: JoinRequest) -> JoinResponse {
        let member_id = req.member_id.clone();
        match self.park(|c, now, id, fx| c.join(now, id, req, fx)).await {
            Some(Reply::Join(r)) => r,
            _ => JoinResponse::error(ErrorCode::NotCoordinator, &member_id),
        }
    }

    pub async fn sync(&self, req: SyncRequest) -> SyncResponse {
        match self.park(|c, now, id, fx| c.sync(now, id, req, fx)).await {
            Some(Reply::Sync(r)) => r,
            _ => SyncResponse::error(ErrorCode::NotCoordinator),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> ErrorCode {
        self.now(|c, now, _| {
            c.heartbeat(now, group_id, member_id, group_instance_id, generation_id)
        })
    }

    pub fn leave(
        &self,
        group_id: &str,
        members: &[LeaveMember],
    ) -> std::result::Result<Vec<ErrorCode>, ErrorCode> {
        self.now(|c, now, fx| c.leave(now, group_id, members, fx))
    }

    pub async fn commit_offsets(&self, req: &CommitRequest) -> Vec<ErrorCode> {
        let mut errors = Vec::new();
        let stored = self
            .store_and_commit(|c| {
                let outcome = c.commit_offsets(now_ms(), req);
                errors = outcome.errors;
                outcome.records
            })
            .await;
        match stored {
            Ok(()) => errors,
            Err(e) => errors
                .into_iter()
                .map(|old| if old.is_ok() { e } else { old })
                .collect(),
        }
    }

    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> std::result::Result<Vec<FetchedOffset>, ErrorCode> {
        self.lock().coordinator.fetch_offsets(group_id, topics)
    }

    pub fn list_groups(&self, states: &[String]) -> Vec<GroupListing> {
        self.lock().coordinator.list_groups(states)
    }

    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        self.lock().coordinator.describe_group(group_id)
    }

    pub async fn delete_group(&self, group_id: &str) -> ErrorCode {
        let mut refused = None;
        let stored = self
            .store_and_commit(|c| match c.delete_group(group_id) {
                Ok(records) => records,
                Err(e) => {
                    refused = Some(e);
                    Vec::new()
                }
            })
            .await;
        match (refused, stored) {
            (Some(e), _) | (None, Err(e)) => e,
            (None, Ok(())) => {
                info!(group = group_id, "deleted group");
                ErrorCode::None
            }
        }
    }

    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> std::result::Result<Vec<ErrorCode>, ErrorCode> {
        let mut outcome = Err(ErrorCode::None);
        self.store_and_commit(|c| match c.delete_offsets(group_id, partitions) {
            Ok((errors, records)) => {
                outcome = Ok(errors);
                records
            }
            Err(e) => {
                outcome = Err(e);
                Vec::new()
            }
        })
        .await?;
        outcome
    }

    /// Drops every group's committed offsets for a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        let now = now_ms();
        let mut inner = self.lock();
        let records = inner.coordinator.offsets_of_topic(topic);
        let n = records.len();
        match self.store_then_replay(&mut inner, records, now) {
            Ok(_) if n > 0 => info!(
                topic,
                offsets = n,
                "dropped committed offsets of deleted topic"
            ),
            Ok(_) => {}
            Err(e) => warn!(topic, error = ?e, "could not drop committed offsets of deleted topic"),
        }
    }

    /// The offsets partition `group_id` belongs to.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        self.lock().coordinator.partition_of(group_id)
    }

    /// Whether this broker coordinates `group_id` (FindCoordinator): loading counts, since the
    /// group's requests will be answered here once the load finishes.
    pub fn coordinates(&self, group_id: &str) -> std::result::Result<(), ErrorCode> {
        match self.lock().coordinator.check_coordinator(group_id) {
            Ok(()) | Err(ErrorCode::CoordinatorLoadInProgress) => Ok(()),
            Err(_) => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }
}

/// Waits until the ISR has every write in `waits`, as a group write needs before it is
/// answered in a cluster; Kafka's error mapping for the offsets topic applies.
async fn await_stored(
    replicas: &ReplicaManager,
    waits: Vec<AcksAllWait>,
) -> std::result::Result<(), ErrorCode> {
    if waits.is_empty() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
    let mut changes = replicas.subscribe_appends();
    loop {
        // Seen before checking, so a commit landing after the check wakes the wait below.
        changes.borrow_and_update();
        let mut done = true;
        for wait in &waits {
            match wait.outcome() {
                None => done = false,
                Some(Ok(())) => {}
                Some(Err(ErrorCode::NotLeaderOrFollower)) => return Err(ErrorCode::NotCoordinator),
                Some(Err(_)) => return Err(ErrorCode::CoordinatorNotAvailable),
            }
        }
        if done {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return Err(ErrorCode::CoordinatorNotAvailable),
        }
    }
}

fn deliver(inner: &mut Inner, replies: Vec<(ReplyId, Reply)>) {
    for (id, reply) in replies {
        if let Some(tx) = inner.waiting.remove(&id) {
            // The requester may have gone (connection closed); its member carries on.
            let _ = tx.send(reply);
        }
    }
}
