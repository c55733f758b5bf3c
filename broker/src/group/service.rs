//! `GroupCoordinatorService`: the async edge of the group coordinator. It owns the state
//! machine behind one lock, stores its records in `__consumer_offsets`, parks JoinGroup and
//! SyncGroup requests until their answers exist, loads state on start and fires deadlines.

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
use crate::replica_manager::{now_ms, ReplicaManager};
use crate::shutdown::Shutdown;

/// How the offsets topic is created when it does not exist yet.
#[derive(Debug, Clone)]
pub struct OffsetsTopicConfig {
    /// offsets.topic.num.partitions
    pub partitions: i32,
    /// offsets.topic.segment.bytes
    pub segment_bytes: u64,
}

pub struct GroupCoordinatorService {
    inner: Mutex<Inner>,
    replicas: Arc<ReplicaManager>,
    /// Wakes the timer task when a request may have set an earlier deadline.
    wake: Notify,
}

struct Inner {
    coordinator: GroupCoordinator,
    waiting: HashMap<ReplyId, oneshot::Sender<Reply>>,
    next_reply: ReplyId,
}

/// Bytes read per step while loading a partition: the lock is taken once per step, so other
/// groups stay served while a big partition loads.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

impl GroupCoordinatorService {
    /// Creates `__consumer_offsets` if needed and marks its partitions as loading; `run` loads
    /// them and then fires deadlines until shutdown.
    pub fn open(
        replicas: Arc<ReplicaManager>,
        config: CoordinatorConfig,
        topic: OffsetsTopicConfig,
    ) -> Result<Arc<GroupCoordinatorService>> {
        let partitions = match replicas.metadata().topic(OFFSETS_TOPIC) {
            Some(t) => t.partitions,
            None => {
                let configs = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("segment.bytes".to_string(), topic.segment_bytes.to_string()),
                    ("compression.type".to_string(), "producer".to_string()),
                ]);
                replicas
                    .create_topic(OFFSETS_TOPIC, topic.partitions, 1, configs, false)?
                    .partitions
            }
        };
        let nonce = u64::from_be_bytes(
            crate::metadata::random_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        );
        let mut coordinator = GroupCoordinator::new(config, partitions, nonce);
        for p in 0..partitions {
            coordinator.begin_load(p);
        }
        Ok(Arc::new(GroupCoordinatorService {
            inner: Mutex::new(Inner {
                coordinator,
                waiting: HashMap::new(),
                next_reply: 0,
            }),
            replicas,
            wake: Notify::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the state machine mid-change; nothing sensible
        // can continue from there.
        self.inner.lock().expect("group coordinator lock poisoned")
    }

    /// Loads every partition, then fires deadlines until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let partitions = self.lock().coordinator.num_partitions();
        for p in 0..partitions {
            let this = self.clone();
            let loaded = tokio::task::spawn_blocking(move || this.load_partition(p)).await;
            match loaded {
                Ok(Ok(n)) if n > 0 => info!(partition = p, records = n, "loaded group state"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    // Serving from a partial load would hand out stale offsets; the partition
                    // stays loading (clients retry) and the operator sees why.
                    warn!(partition = p, error = %e, "could not load group state");
                }
                Err(e) => warn!(partition = p, error = %e, "group state load task failed"),
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
                    Ok(()) => info!(records = n, "expired committed offsets"),
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

    /// Replays one partition's records into the state machine. Returns how many were read.
    fn load_partition(&self, partition: i32) -> Result<usize> {
        let part = self
            .replicas
            .partition(OFFSETS_TOPIC, partition)
            .ok_or_else(|| {
                BrokerError::UnknownTopicOrPartition(format!("{OFFSETS_TOPIC}-{partition}"))
            })?;
        let mut offset = part.log.log_start_offset();
        let end = part.log.high_watermark();
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
            for record in records {
                inner.coordinator.replay(record, now);
            }
        }
        self.lock().coordinator.finish_load(partition, now_ms());
        Ok(count)
    }

    /// Stores the effects' records, then sends their replies. A group whose record could not be
    /// stored rebalances, and the replies sent with it become errors.
    fn settle(&self, inner: &mut Inner, fx: Effects, now: i64) {
        let Effects {
            records,
            mut replies,
        } = fx;
        if !records.is_empty() {
            let failed_groups = self.store(&inner.coordinator, &records);
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
        deliver(inner, replies);
    }

    /// Appends records to their partitions, one batch per partition, in order. Returns the
    /// groups whose records did not make it.
    fn store(&self, coordinator: &GroupCoordinator, records: &[GroupRecord]) -> Vec<String> {
        let n = coordinator.num_partitions();
        let mut by_partition: BTreeMap<i32, Vec<&GroupRecord>> = BTreeMap::new();
        for r in records {
            by_partition
                .entry(partition_for(r.group_id(), n))
                .or_default()
                .push(r);
        }
        let mut failed = Vec::new();
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
                    .append(OFFSETS_TOPIC, partition, Some(bytes))
                    .map_err(|e| e.message)
            });
            if let Err(e) = appended {
                warn!(partition, error = %e, "could not store group records");
                failed.extend(records.iter().map(|r| r.group_id().to_string()));
            }
        }
        failed.sort();
        failed.dedup();
        failed
    }

    /// For records that take effect only once stored (commits, deletions, expiry).
    fn store_then_replay(
        &self,
        inner: &mut Inner,
        records: Vec<GroupRecord>,
        now: i64,
    ) -> std::result::Result<(), ErrorCode> {
        if records.is_empty() {
            return Ok(());
        }
        if !self.store(&inner.coordinator, &records).is_empty() {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        for r in records {
            inner.coordinator.replay(r, now);
        }
        Ok(())
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

    pub fn commit_offsets(&self, req: &CommitRequest) -> Vec<ErrorCode> {
        let now = now_ms();
        let mut inner = self.lock();
        let outcome = inner.coordinator.commit_offsets(now, req);
        match self.store_then_replay(&mut inner, outcome.records, now) {
            Ok(()) => outcome.errors,
            Err(e) => outcome
                .errors
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

    pub fn delete_group(&self, group_id: &str) -> ErrorCode {
        let now = now_ms();
        let mut inner = self.lock();
        match inner.coordinator.delete_group(group_id) {
            Ok(records) => match self.store_then_replay(&mut inner, records, now) {
                Ok(()) => {
                    info!(group = group_id, "deleted group");
                    ErrorCode::None
                }
                Err(e) => e,
            },
            Err(e) => e,
        }
    }

    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> std::result::Result<Vec<ErrorCode>, ErrorCode> {
        let now = now_ms();
        let mut inner = self.lock();
        let (errors, records) = inner.coordinator.delete_offsets(group_id, partitions)?;
        self.store_then_replay(&mut inner, records, now)?;
        Ok(errors)
    }

    /// Drops every group's committed offsets for a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        let now = now_ms();
        let mut inner = self.lock();
        let records = inner.coordinator.offsets_of_topic(topic);
        let n = records.len();
        match self.store_then_replay(&mut inner, records, now) {
            Ok(()) if n > 0 => info!(
                topic,
                offsets = n,
                "dropped committed offsets of deleted topic"
            ),
            Ok(()) => {}
            Err(e) => warn!(topic, error = ?e, "could not drop committed offsets of deleted topic"),
        }
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

fn deliver(inner: &mut Inner, replies: Vec<(ReplyId, Reply)>) {
    for (id, reply) in replies {
        if let Some(tx) = inner.waiting.remove(&id) {
            // The requester may have gone (connection closed); its member carries on.
            let _ = tx.send(reply);
        }
    }
}
