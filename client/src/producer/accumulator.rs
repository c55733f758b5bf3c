//! `RecordAccumulator`: records waiting to be sent, per partition, in `ProducerBatch`es that fill
//! up to batch.size, become ready when full, lingered or flushed, and go back on retry.
//!
//! A record is encoded into its batch's buffer as it is sent, so a batch is one buffer however
//! many records it holds, and sending it adds only the header, compression and CRC. The
//! accumulator also keeps what `send` needs to place a record (the topic's partitions and the
//! sticky partition), so that a send takes this one lock and nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use sluice_protocol::records::{
    encoded_record_len, finish_batch, write_record, BatchFields, Compression, RecordHeader,
    BATCH_HEADER_SIZE,
};
use tokio::sync::Semaphore;

use super::outcome::{BatchOutcome, DeliveryFuture};
use super::partitioner::{partition_for_hash, Spread, Sticky};
use crate::cluster::TopicInfo;
use crate::error::{ClientError, Result};

/// The most a record can take in any batch (largest deltas), for memory and size limits
/// decided before its batch is known.
pub(crate) fn max_record_size(
    key: &Option<Bytes>,
    value: &Option<Bytes>,
    headers: &[RecordHeader],
) -> usize {
    encoded_record_len(
        i32::MAX,
        i64::MIN,
        key.as_deref(),
        value.as_deref(),
        headers,
    )
}

/// Kafka's sequence arithmetic: sequences wrap from i32::MAX to 0.
fn add_sequence(seq: i32, count: i32) -> i32 {
    ((seq as i64 + count as i64) % (i32::MAX as i64 + 1)) as i32
}

/// buffer.memory held by one batch, given back when the batch is done with.
struct Reservation {
    pool: Arc<Semaphore>,
    bytes: usize,
}

impl Reservation {
    /// Makes the reservation cover `need` bytes, from `held` (what a send that waited for
    /// memory brings) or the pool. It takes the rest of a batch's worth at once when it can, so
    /// the pool is touched about once per batch rather than per record; when memory is short it
    /// takes only what is missing. False when the pool has not even that.
    fn cover(&mut self, need: usize, batch_size: usize, held: &mut usize) -> bool {
        if need <= self.bytes + *held {
            self.bytes += std::mem::take(held);
            return true;
        }
        let short = need - self.bytes - *held;
        let whole = batch_size.saturating_sub(self.bytes + *held).max(short);
        for want in [whole, short] {
            let Ok(n) = u32::try_from(want) else { continue };
            if let Ok(permit) = self.pool.try_acquire_many(n) {
                permit.forget();
                self.bytes += want + std::mem::take(held);
                return true;
            }
        }
        false
    }

    fn release(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if bytes > 0 {
            self.pool.add_permits(bytes);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

/// Records for one partition that travel, succeed and fail together.
pub struct ProducerBatch {
    pub(crate) id: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// Room for the header, then the records as `send` encoded them. The first encode takes it;
    /// every attempt then sends `encoded`.
    records: BytesMut,
    count: u32,
    base_timestamp: i64,
    max_timestamp: i64,
    /// Uncompressed size, header included: what batch.size limits.
    pub(crate) bytes: usize,
    created: Instant,
    deadline: Instant,
    /// No more records join: it is full, or was sent once.
    sealed: bool,
    pub(crate) attempts: u32,
    retry_at: Option<Instant>,
    /// (producer id, epoch, base sequence), fixed when the batch is first drained so that
    /// every retry is recognisably the same batch.
    pub(crate) sequence: Option<(i64, i16, i32)>,
    encoded: Option<Bytes>,
    /// What every record's `DeliveryFuture` waits on.
    outcome: Arc<BatchOutcome>,
    memory: Reservation,
}

impl std::fmt::Debug for ProducerBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBatch")
            .field("id", &self.id)
            .field("partition", &format!("{}-{}", self.topic, self.partition))
            .field("records", &self.count)
            .field("bytes", &self.bytes)
            .field("attempts", &self.attempts)
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl ProducerBatch {
    pub(crate) fn record_count(&self) -> usize {
        self.count as usize
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    fn push(&mut self, r: &Appending<'_>, size: usize) -> DeliveryFuture {
        let index = self.count;
        write_record(
            &mut self.records,
            index as i32,
            r.timestamp.wrapping_sub(self.base_timestamp),
            r.key,
            r.value,
            r.headers,
        );
        self.count += 1;
        self.bytes += size;
        self.max_timestamp = self.max_timestamp.max(r.timestamp);
        debug_assert_eq!(self.records.len(), self.bytes);
        DeliveryFuture::new(self.outcome.clone(), index, r.timestamp)
    }

    /// The batch's bytes on the wire, finished (and compressed) on first use.
    pub(crate) fn encode(&mut self, compression: Compression) -> Result<Bytes> {
        if let Some(b) = &self.encoded {
            return Ok(b.clone());
        }
        let mut fields =
            BatchFields::new(self.count as i32, self.base_timestamp, self.max_timestamp);
        fields.compression = compression;
        if let Some((id, epoch, seq)) = self.sequence {
            fields.producer_id = id;
            fields.producer_epoch = epoch;
            fields.base_sequence = seq;
        }
        let encoded = finish_batch(std::mem::take(&mut self.records), &fields).map_err(|e| {
            ClientError::Invalid(format!(
                "cannot encode a batch for {}-{}: {e}",
                self.topic, self.partition
            ))
        })?;
        self.encoded = Some(encoded.clone());
        Ok(encoded)
    }

    /// Resolves every record: offsets count up from `base_offset` (-1 stays -1: unknown).
    pub(crate) fn succeed(mut self, base_offset: i64, log_append_time: i64) {
        // Memory first: whoever awaits a record may send the next one at once.
        self.memory.release();
        self.outcome.resolve(Ok((base_offset, log_append_time)));
    }

    pub(crate) fn fail(mut self, error: &ClientError) {
        self.memory.release();
        self.outcome.resolve(Err(copy_error(error)));
    }
}

impl Drop for ProducerBatch {
    /// A batch dropped unresolved (its request task died) must not leave its records' futures
    /// waiting forever.
    fn drop(&mut self) {
        self.memory.release();
        self.outcome.resolve(Err(ClientError::Closed));
    }
}

/// One error for each record of a failed batch (errors hold an `io::Error`, which is not
/// `Clone`): the same variant where it matters to callers, else the message.
pub(crate) fn copy_error(e: &ClientError) -> ClientError {
    match e {
        ClientError::Broker {
            code,
            message,
            context,
        } => ClientError::Broker {
            code: *code,
            message: message.clone(),
            context: context.clone(),
        },
        ClientError::Io { addr, error } => ClientError::Io {
            addr: addr.clone(),
            error: std::io::Error::new(error.kind(), error.to_string()),
        },
        ClientError::Timeout(s) => ClientError::Timeout(s.clone()),
        ClientError::NoBrokers(s) => ClientError::NoBrokers(s.clone()),
        ClientError::Disconnected(s) => ClientError::Disconnected(s.clone()),
        ClientError::UnsupportedVersion { api } => ClientError::UnsupportedVersion { api },
        ClientError::Closed => ClientError::Closed,
        other => ClientError::Invalid(other.to_string()),
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<ProducerBatch>,
    /// A batch of this partition is being sent: the next waits for its outcome, which keeps
    /// the partition's records in order through retries.
    in_flight: bool,
    next_sequence: i32,
    /// The producer id `next_sequence` counts for; a new id starts again from 0.
    sequence_owner: i64,
}

impl PartitionQueue {
    /// Whether the front batch may go now, else when it may (`None`: not for time reasons).
    fn front_ready(&self, now: Instant, linger: Duration, hurry: bool) -> (bool, Option<Instant>) {
        let Some(front) = self.batches.front() else {
            return (false, None);
        };
        if self.in_flight {
            return (false, None);
        }
        if let Some(at) = front.retry_at {
            if at > now {
                return (false, Some(at));
            }
        }
        if hurry || front.sealed || self.batches.len() > 1 {
            return (true, None);
        }
        let due = front.created + linger;
        (due <= now, Some(due))
    }
}

/// What the sender may send now.
pub(crate) struct Drained {
    /// Batches by leader node, each list within max.request.size.
    pub by_node: Vec<(i32, Vec<ProducerBatch>)>,
    /// Topics with a ready partition whose leader is unknown.
    pub leaderless: Vec<Arc<str>>,
    /// The earliest time a waiting batch becomes ready by itself.
    pub next_wake: Option<Instant>,
}

/// A record on its way into a batch, borrowed from the `ProducerRecord`: its bytes are copied
/// into the batch, so nothing of it outlives the send.
pub(crate) struct Appending<'a> {
    pub topic: &'a str,
    /// The partition the caller asked for.
    pub partition: Option<i32>,
    /// murmur2 of the key, when the key decides the partition.
    pub key_hash: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [RecordHeader],
    pub timestamp: i64,
    /// `max_record_size` of the record.
    pub max_size: usize,
}

/// What became of an `append`.
pub(crate) enum Appended {
    /// In a batch; `wake` when the sender has something new to look at (a new or full batch).
    Done {
        delivery: DeliveryFuture,
        wake: bool,
    },
    /// The topic's partitions are unknown or due for another look: ask the cluster, then
    /// `remember_topic` and append again.
    NeedMetadata,
    /// buffer.memory is short: wait for the record's worth, then append again with it held.
    NeedMemory,
}

/// One topic's partitions, and what `send` needs to place records in them.
struct TopicQueues {
    name: Arc<str>,
    /// By partition index.
    partitions: Vec<PartitionQueue>,
    info: Option<Arc<TopicInfo>>,
    /// Wall-clock milliseconds until which `info` is used without asking the cluster again.
    info_until: i64,
    sticky: Sticky,
}

pub struct RecordAccumulator {
    batch_size: usize,
    linger: Duration,
    delivery_timeout: Duration,
    /// How long `send` reuses a topic's metadata before checking it with the cluster (whose
    /// own cache decides whether that means a request).
    metadata_reuse_ms: i64,
    memory: Arc<Semaphore>,
    topics: Vec<TopicQueues>,
    by_name: HashMap<Arc<str>, usize>,
    /// The topic of the last append: consecutive sends mostly share one, and comparing names
    /// is cheaper than hashing them.
    last_topic: usize,
    spread: Spread,
    /// Batches created and not yet resolved, by id: what flush waits for.
    incomplete: BTreeSet<u64>,
    next_id: u64,
    queued: usize,
    closed: bool,
}

impl RecordAccumulator {
    pub fn new(
        batch_size: usize,
        linger: Duration,
        delivery_timeout: Duration,
        metadata_reuse: Duration,
        memory: Arc<Semaphore>,
    ) -> Self {
        RecordAccumulator {
            batch_size: batch_size.max(1),
            linger,
            delivery_timeout,
            // At least a millisecond, so metadata a send has just fetched serves that send.
            metadata_reuse_ms: metadata_reuse.as_millis().clamp(1, i64::MAX as u128) as i64,
            memory,
            topics: Vec::new(),
            by_name: HashMap::new(),
            last_topic: 0,
            spread: Spread::new(),
            incomplete: BTreeSet::new(),
            next_id: 0,
            queued: 0,
            closed: false,
        }
    }

    /// Refuses records from now on; queued ones are still sent.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Nothing queued (batches in flight are the sender's to count).
    pub(crate) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// The id the next batch will get: every batch before it is what a flush waits for.
    pub(crate) fn flush_marker(&self) -> u64 {
        self.next_id
    }

    pub(crate) fn resolved_before(&self, marker: u64) -> bool {
        match self.incomplete.first() {
            Some(&oldest) => oldest >= marker,
            None => true,
        }
    }

    fn topic_index(&mut self, name: &str) -> Option<usize> {
        if let Some(t) = self.topics.get(self.last_topic) {
            if *t.name == *name {
                return Some(self.last_topic);
            }
        }
        let i = *self.by_name.get(name)?;
        self.last_topic = i;
        Some(i)
    }

    fn topic_mut(&mut self, name: &str) -> &mut TopicQueues {
        let i = match self.topic_index(name) {
            Some(i) => i,
            None => {
                let name: Arc<str> = Arc::from(name);
                self.topics.push(TopicQueues {
                    name: name.clone(),
                    partitions: Vec::new(),
                    info: None,
                    info_until: i64::MIN,
                    sticky: Sticky::default(),
                });
                self.by_name.insert(name, self.topics.len() - 1);
                self.topics.len() - 1
            }
        };
        &mut self.topics[i]
    }

    fn queue_mut(&mut self, topic: &str, partition: i32) -> &mut PartitionQueue {
        let t = self.topic_mut(topic);
        let p = partition.max(0) as usize;
        if t.partitions.len() <= p {
            t.partitions.resize_with(p + 1, PartitionQueue::default);
        }
        &mut t.partitions[p]
    }

    /// The cluster's metadata for `topic`, as of `now_ms` (wall clock), for sends to use.
    pub(crate) fn remember_topic(&mut self, topic: &str, info: Arc<TopicInfo>, now_ms: i64) {
        if info.partitions.is_empty() {
            return;
        }
        let reuse = self.metadata_reuse_ms;
        let t = self.topic_mut(topic);
        t.info = Some(info);
        t.info_until = now_ms.saturating_add(reuse);
    }

    /// Adds a record to its partition's open batch, or to a new one. The partition is the one
    /// asked for, the key's, or the topic's sticky partition. `held` is buffer.memory the
    /// caller already took for this record (after `NeedMemory`); what a batch uses of it is
    /// no longer the caller's. `clock` is read only when a batch is created.
    pub(crate) fn append(
        &mut self,
        r: &Appending<'_>,
        now_ms: i64,
        held: &mut usize,
        clock: impl FnOnce() -> Instant,
    ) -> Result<Appended> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let Some(ti) = self.topic_index(r.topic) else {
            return Ok(Appended::NeedMetadata);
        };
        let batch_size = self.batch_size;
        let reuse = self.metadata_reuse_ms;
        let t = &mut self.topics[ti];
        let info = match &t.info {
            // A clock that went back also sends the topic to the cluster again.
            Some(info) if now_ms < t.info_until && now_ms >= t.info_until - reuse => info,
            _ => return Ok(Appended::NeedMetadata),
        };
        let count = info.partitions.len();
        let partition = match (r.partition, r.key_hash) {
            (Some(p), _) => {
                if p < 0 || p as usize >= count {
                    return Err(ClientError::Invalid(format!(
                        "partition {p} of {} does not exist: it has partitions 0 to {}",
                        r.topic,
                        count - 1
                    )));
                }
                p
            }
            (None, Some(hash)) => partition_for_hash(hash, count),
            (None, None) => t.sticky.current(info, batch_size, &mut self.spread),
        };
        let sticky = r.partition.is_none() && r.key_hash.is_none();
        let p = partition as usize;
        if t.partitions.len() <= p {
            t.partitions.resize_with(p + 1, PartitionQueue::default);
        }
        let queue = &mut t.partitions[p];
        if let Some(batch) = queue.batches.back_mut().filter(|b| !b.sealed) {
            let size = encoded_record_len(
                batch.count as i32,
                r.timestamp.wrapping_sub(batch.base_timestamp),
                r.key,
                r.value,
                r.headers,
            );
            if batch.bytes + size <= batch_size {
                if !batch.memory.cover(batch.bytes + size, batch_size, held) {
                    return Ok(Appended::NeedMemory);
                }
                let delivery = batch.push(r, size);
                let full = batch.bytes >= batch_size;
                batch.sealed = full;
                if sticky {
                    t.sticky.add(r.max_size);
                }
                return Ok(Appended::Done {
                    delivery,
                    wake: full,
                });
            }
            batch.sealed = true;
        }
        let size = encoded_record_len(0, 0, r.key, r.value, r.headers);
        let mut memory = Reservation {
            pool: self.memory.clone(),
            bytes: 0,
        };
        if !memory.cover(BATCH_HEADER_SIZE + size, batch_size, held) {
            return Ok(Appended::NeedMemory);
        }
        // The buffer is what buffer.memory accounts for: a batch's worth, or what this record
        // needs when memory is short (it grows if more records join).
        let mut records = BytesMut::with_capacity(memory.bytes);
        records.put_bytes(0, BATCH_HEADER_SIZE);
        let now = clock();
        let id = self.next_id;
        self.next_id += 1;
        let mut batch = ProducerBatch {
            id,
            topic: t.name.clone(),
            partition,
            records,
            count: 0,
            base_timestamp: r.timestamp,
            max_timestamp: r.timestamp,
            bytes: BATCH_HEADER_SIZE,
            created: now,
            deadline: now + self.delivery_timeout,
            sealed: false,
            attempts: 0,
            retry_at: None,
            sequence: None,
            encoded: None,
            outcome: Arc::new(BatchOutcome::new(t.name.clone(), partition)),
            memory,
        };
        let delivery = batch.push(r, size);
        // A record larger than batch.size has the batch to itself.
        batch.sealed = batch.bytes >= batch_size;
        queue.batches.push_back(batch);
        if sticky {
            t.sticky.add(r.max_size);
        }
        self.incomplete.insert(id);
        self.queued += 1;
        Ok(Appended::Done {
            delivery,
            wake: true,
        })
    }

    /// Topics with a partition ready to send, for the sender to look their leaders up.
    pub(crate) fn ready_topics(&self, now: Instant, hurry: bool) -> Vec<Arc<str>> {
        let hurry = hurry || self.closed;
        self.topics
            .iter()
            .filter(|t| {
                t.partitions
                    .iter()
                    .any(|q| q.front_ready(now, self.linger, hurry).0)
            })
            .map(|t| t.name.clone())
            .collect()
    }

    /// Metadata the sender just had from the cluster: sends use it too.
    pub(crate) fn remember_topics(
        &mut self,
        infos: &HashMap<Arc<str>, Arc<TopicInfo>>,
        now_ms: i64,
    ) {
        for (topic, info) in infos {
            self.remember_topic(topic, info.clone(), now_ms);
        }
    }

    /// Takes the ready batches whose leader is known and can take another request: one per
    /// partition, grouped by leader, each group within `max_request_size`. New batches get
    /// their sequence numbers here when `producer` is given.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        hurry: bool,
        leaders: &HashMap<Arc<str>, Arc<TopicInfo>>,
        node_has_room: impl Fn(i32) -> bool,
        max_request_size: usize,
        producer: Option<(i64, i16)>,
    ) -> Drained {
        let hurry = hurry || self.closed;
        let mut by_node: BTreeMap<i32, (usize, Vec<ProducerBatch>)> = BTreeMap::new();
        let mut leaderless = Vec::new();
        let mut next_wake: Option<Instant> = None;
        let mut wake_at = |at: Instant| {
            next_wake = Some(next_wake.map_or(at, |w: Instant| w.min(at)));
        };
        let mut full_nodes = BTreeSet::new();
        for t in self.topics.iter_mut() {
            let topic = &t.name;
            let info = leaders.get(topic);
            for (index, queue) in t.partitions.iter_mut().enumerate() {
                let partition = index as i32;
                let (ready, due) = queue.front_ready(now, self.linger, hurry);
                if let Some(front) = queue.batches.front() {
                    wake_at(front.deadline);
                }
                if let Some(due) = due {
                    wake_at(due);
                }
                if !ready {
                    continue;
                }
                let leader = info
                    .and_then(|t| {
                        // Partitions are listed by index: the lookup is direct but for gaps.
                        t.partitions
                            .get(index)
                            .filter(|p| p.partition == partition)
                            .or_else(|| t.partitions.iter().find(|p| p.partition == partition))
                    })
                    .map_or(-1, |p| p.leader);
                if leader < 0 {
                    if info.is_some() && !leaderless.contains(topic) {
                        leaderless.push(topic.clone());
                    }
                    continue;
                }
                if full_nodes.contains(&leader) {
                    continue;
                }
                let (bytes, batches) = by_node.entry(leader).or_default();
                if batches.is_empty() && !node_has_room(leader) {
                    full_nodes.insert(leader);
                    continue;
                }
                let front_bytes = queue.batches.front().map_or(0, |b| b.bytes);
                if !batches.is_empty() && *bytes + front_bytes > max_request_size {
                    // The rest waits for this node's next request.
                    continue;
                }
                let mut batch = queue.batches.pop_front().expect("ready front");
                self.queued -= 1;
                batch.sealed = true;
                batch.retry_at = None;
                if let (None, Some((id, epoch))) = (batch.sequence, producer) {
                    if queue.sequence_owner != id {
                        queue.sequence_owner = id;
                        queue.next_sequence = 0;
                    }
                    batch.sequence = Some((id, epoch, queue.next_sequence));
                    queue.next_sequence =
                        add_sequence(queue.next_sequence, batch.record_count() as i32);
                }
                queue.in_flight = true;
                *bytes += batch.bytes;
                batches.push(batch);
            }
        }
        Drained {
            by_node: by_node
                .into_iter()
                .filter(|(_, (_, b))| !b.is_empty())
                .map(|(node, (_, b))| (node, b))
                .collect(),
            leaderless,
            next_wake,
        }
    }

    /// The partition's batch in flight came back (resolved or about to be retried).
    pub(crate) fn release_partition(&mut self, topic: &str, partition: i32) {
        self.queue_mut(topic, partition).in_flight = false;
    }

    /// Puts a batch back at the front of its partition, to go again at `retry_at`.
    pub(crate) fn requeue(&mut self, mut batch: ProducerBatch, retry_at: Instant) {
        batch.retry_at = Some(retry_at);
        batch.attempts += 1;
        let topic = batch.topic.clone();
        let q = self.queue_mut(&topic, batch.partition);
        q.in_flight = false;
        q.batches.push_front(batch);
        self.queued += 1;
    }

    /// Takes the queued batches whose delivery timeout has passed.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<ProducerBatch> {
        let mut expired = Vec::new();
        for t in self.topics.iter_mut() {
            for q in t.partitions.iter_mut() {
                // A retried batch keeps its place, so deadlines grow from the front; a batch
                // behind the front expires once the front has.
                while q.batches.front().is_some_and(|b| b.deadline <= now) {
                    expired.push(q.batches.pop_front().expect("front"));
                    self.queued -= 1;
                }
            }
        }
        expired
    }

    /// Takes every queued batch: for a failure that dooms them all.
    pub(crate) fn take_all(&mut self) -> Vec<ProducerBatch> {
        let mut all = Vec::new();
        for t in self.topics.iter_mut() {
            for q in t.partitions.iter_mut() {
                all.extend(q.batches.drain(..));
            }
        }
        self.queued = 0;
        all
    }

    /// A batch is resolved: flushes stop waiting for it.
    pub(crate) fn finished(&mut self, id: u64) {
        self.incomplete.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionInfo;
    use crate::producer::RecordMetadata;
    use sluice_protocol::records::{Record, RecordBatch};
    use sluice_protocol::wire::Uuid;
    use sluice_protocol::ErrorCode;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Wake, Waker};

    const NOW_MS: i64 = 1_000;

    fn info(topic: &str, partitions: i32, leader: i32) -> Arc<TopicInfo> {
        Arc::new(TopicInfo {
            name: topic.into(),
            id: Uuid::ZERO,
            internal: false,
            partitions: (0..partitions)
                .map(|p| PartitionInfo {
                    partition: p,
                    leader,
                    leader_epoch: 0,
                    replicas: vec![],
                    isr: vec![],
                    error: ErrorCode::None,
                })
                .collect(),
        })
    }

    fn leaders(topic: &str, partitions: i32, leader: i32) -> HashMap<Arc<str>, Arc<TopicInfo>> {
        HashMap::from([(Arc::from(topic), info(topic, partitions, leader))])
    }

    struct Noop;

    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    /// The outcome of a delivery if it has one yet.
    fn outcome(d: &mut DeliveryFuture) -> Option<Result<RecordMetadata>> {
        let waker = Waker::from(Arc::new(Noop));
        match Pin::new(d).poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    fn appending<'a>(partition: Option<i32>, value: &'a [u8], timestamp: i64) -> Appending<'a> {
        Appending {
            topic: "t",
            partition,
            key_hash: None,
            key: None,
            value: Some(value),
            headers: &[],
            timestamp,
            max_size: encoded_record_len(i32::MAX, i64::MIN, None, Some(value), &[]),
        }
    }

    struct Fixture {
        acc: RecordAccumulator,
        memory: Arc<Semaphore>,
        outcomes: Vec<DeliveryFuture>,
    }

    impl Fixture {
        fn new(batch_size: usize, linger_ms: u64) -> Fixture {
            Fixture::with_memory(batch_size, linger_ms, 1 << 20)
        }

        fn with_memory(batch_size: usize, linger_ms: u64, memory: usize) -> Fixture {
            let memory = Arc::new(Semaphore::new(memory));
            let mut acc = RecordAccumulator::new(
                batch_size,
                Duration::from_millis(linger_ms),
                Duration::from_secs(10),
                Duration::from_secs(1),
                memory.clone(),
            );
            acc.remember_topic("t", info("t", 4, 1), NOW_MS);
            Fixture {
                acc,
                memory,
                outcomes: vec![],
            }
        }

        fn try_append(&mut self, r: &Appending<'_>, now: Instant) -> Appended {
            let mut held = 0;
            self.acc.append(r, NOW_MS, &mut held, || now).unwrap()
        }

        /// Appends to `partition`; whether the sender is told (a new or full batch).
        fn append(&mut self, partition: i32, value: &[u8], now: Instant) -> bool {
            match self.try_append(&appending(Some(partition), value, 1_000), now) {
                Appended::Done { delivery, wake } => {
                    self.outcomes.push(delivery);
                    wake
                }
                _ => panic!("append did not go through"),
            }
        }
    }

    #[test]
    fn batches_encode_as_record_batches_do() {
        let now = Instant::now();
        let headers = [RecordHeader {
            key: "h".into(),
            value: Some(Bytes::from_static(b"v")),
        }];
        let records = [
            (None, Some(&b"0123456789"[..]), &[][..], 1_500),
            (Some(&b"key"[..]), None, &headers[..], 1_000),
            (Some(&b""[..]), Some(&b""[..]), &[][..], 2_000),
        ];
        let expected: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value, headers, timestamp))| Record {
                offset: i as i64,
                timestamp: *timestamp,
                key: key.map(Bytes::copy_from_slice),
                value: value.map(Bytes::copy_from_slice),
                headers: headers.to_vec(),
            })
            .collect();
        for codec in [Compression::None, Compression::Lz4] {
            let mut f = Fixture::new(16_384, 0);
            for (key, value, headers, timestamp) in records {
                let r = Appending {
                    topic: "t",
                    partition: Some(1),
                    key_hash: None,
                    key,
                    value,
                    headers,
                    timestamp,
                    max_size: 0,
                };
                let Appended::Done { delivery, .. } = f.try_append(&r, now) else {
                    panic!("appended")
                };
                f.outcomes.push(delivery);
            }
            let l = leaders("t", 4, 1);
            let mut d = f.acc.drain(now, true, &l, |_| true, 1 << 20, Some((9, 2)));
            let mut batch = d.by_node.remove(0).1.remove(0);
            let uncompressed = batch.bytes;
            let mut want = RecordBatch::new(expected.clone());
            want.compression = codec;
            (want.producer_id, want.producer_epoch, want.base_sequence) = (9, 2, 0);
            let bytes = batch.encode(codec).unwrap();
            assert_eq!(bytes, want.encode().unwrap(), "{codec:?}");
            if codec == Compression::None {
                assert_eq!(bytes.len(), uncompressed);
            }
            assert_eq!(
                batch.encode(codec).unwrap(),
                bytes,
                "every attempt sends the same"
            );
        }
        let max = max_record_size(&Some(Bytes::from_static(b"key")), &None, &headers);
        assert!(max >= encoded_record_len(1, -500, Some(b"key"), None, &headers));
    }

    #[test]
    fn batches_fill_to_batch_size_and_big_records_go_alone() {
        let now = Instant::now();
        let mut f = Fixture::new(200, 1_000);
        assert!(f.append(0, &[0; 50], now), "first record opens a batch");
        assert!(!f.append(0, &[0; 50], now));
        // 61 + 2 * 57 = 175: another 57 would pass 200.
        assert!(f.append(0, &[0; 50], now));
        assert!(f.append(0, &[0; 500], now), "too big: a batch of its own");
        assert!(f.append(0, &[0; 10], now), "the big batch is sealed");
        let l = leaders("t", 1, 7);
        let d = f.acc.drain(now, false, &l, |_| true, 1 << 20, None);
        // One batch per partition at a time, and the first is ready because others follow it.
        assert_eq!(d.by_node.len(), 1);
        let (node, batches) = &d.by_node[0];
        assert_eq!(*node, 7);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].record_count(), 2);
        // In flight: the partition's next batch waits.
        let again = f.acc.drain(now, true, &l, |_| true, 1 << 20, None);
        assert!(again.by_node.is_empty());
    }

    #[test]
    fn linger_decides_readiness_and_flush_overrides_it() {
        let now = Instant::now();
        let mut f = Fixture::new(16_384, 100);
        f.append(0, b"a", now);
        let l = leaders("t", 1, 1);
        let d = f.acc.drain(now, false, &l, |_| true, 1 << 20, None);
        assert!(d.by_node.is_empty());
        assert_eq!(d.next_wake, Some(now + Duration::from_millis(100)));
        assert!(f.acc.ready_topics(now, false).is_empty());
        assert_eq!(f.acc.ready_topics(now, true).len(), 1);
        let later = now + Duration::from_millis(100);
        let d = f.acc.drain(later, false, &l, |_| true, 1 << 20, None);
        assert_eq!(d.by_node[0].1.len(), 1);
    }

    #[test]
    fn sequences_are_assigned_once_and_kept_on_retry() {
        let now = Instant::now();
        let mut f = Fixture::new(100, 0);
        for _ in 0..3 {
            f.append(0, &[1; 20], now);
        }
        let l = leaders("t", 1, 1);
        let pid = Some((42, 0));
        let mut d = f.acc.drain(now, false, &l, |_| true, 1 << 20, pid);
        let batch = d.by_node.remove(0).1.remove(0);
        let n = batch.record_count() as i32;
        assert_eq!(batch.sequence, Some((42, 0, 0)));
        f.acc.requeue(batch, now);
        let mut d = f.acc.drain(now, false, &l, |_| true, 1 << 20, pid);
        let batch = d.by_node.remove(0).1.remove(0);
        assert_eq!(
            batch.sequence,
            Some((42, 0, 0)),
            "a retry keeps its sequence"
        );
        assert_eq!(batch.attempts, 1);
        f.acc.release_partition("t", 0);
        let mut d = f.acc.drain(now, false, &l, |_| true, 1 << 20, pid);
        let next = d.by_node.remove(0).1.remove(0);
        assert_eq!(next.sequence, Some((42, 0, n)));
        f.acc.release_partition("t", 0);
        // A new producer id counts from 0 again.
        f.append(0, &[1; 20], now);
        let mut d = f.acc.drain(now, true, &l, |_| true, 1 << 20, Some((43, 0)));
        let renewed = d.by_node.remove(0).1.remove(0);
        assert_eq!(renewed.sequence, Some((43, 0, 0)));
        assert_eq!(add_sequence(i32::MAX, 1), 0);
        assert_eq!(add_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn leaderless_and_busy_nodes_wait_and_requests_respect_max_size() {
        let now = Instant::now();
        let mut f = Fixture::new(100, 0);
        for p in 0..3 {
            f.append(p, &[1; 60], now);
        }
        let nobody = leaders("t", 3, -1);
        let d = f.acc.drain(now, false, &nobody, |_| true, 1 << 20, None);
        assert!(d.by_node.is_empty());
        assert_eq!(d.leaderless.len(), 1);
        let l = leaders("t", 3, 1);
        let d = f.acc.drain(now, false, &l, |_| false, 1 << 20, None);
        assert!(d.by_node.is_empty(), "node 1 has no room");
        // Each batch is 61 + 67 bytes: two fit in 300.
        let d = f.acc.drain(now, false, &l, |_| true, 300, None);
        assert_eq!(d.by_node[0].1.len(), 2);
        let d = f.acc.drain(now, false, &l, |_| true, 300, None);
        assert_eq!(d.by_node[0].1.len(), 1);
        assert!(f.acc.is_empty());
    }

    #[test]
    fn memory_returns_when_batches_go_and_flush_markers_track_them() {
        let now = Instant::now();
        let mut f = Fixture::new(16_384, 0);
        let marker_before = f.acc.flush_marker();
        f.append(0, b"x", now);
        f.append(0, b"y", now);
        let held = (1 << 20) - f.memory.available_permits();
        assert_eq!(held, 16_384, "a batch takes its batch.size at once");
        let marker = f.acc.flush_marker();
        assert!(f.acc.resolved_before(marker_before));
        assert!(!f.acc.resolved_before(marker));
        let expired = f.acc.expire(now + Duration::from_secs(11));
        assert_eq!(expired.len(), 1);
        for b in expired {
            f.acc.finished(b.id);
            b.fail(&ClientError::Timeout("test".into()));
        }
        assert_eq!(f.memory.available_permits(), 1 << 20);
        assert!(f.acc.resolved_before(marker));
        for mut d in f.outcomes.drain(..) {
            assert!(matches!(
                outcome(&mut d),
                Some(Err(ClientError::Timeout(_)))
            ));
        }
    }

    #[test]
    fn short_memory_is_taken_record_by_record_and_then_waited_for() {
        let now = Instant::now();
        // Less than a batch.size: each record takes what it needs.
        let mut f = Fixture::with_memory(100_000, 0, 250);
        assert!(f.append(0, &[0; 50], now));
        assert_eq!(f.memory.available_permits(), 250 - 61 - 57);
        assert!(!f.append(0, &[0; 50], now));
        assert!(!f.append(0, &[0; 50], now));
        assert_eq!(f.memory.available_permits(), 250 - 61 - 3 * 57);
        let r = appending(Some(0), &[0; 50], 1_000);
        assert!(matches!(f.try_append(&r, now), Appended::NeedMemory));
        // What a send brings after waiting goes into the batch.
        let mut held = r.max_size + BATCH_HEADER_SIZE;
        let Ok(Appended::Done { delivery, .. }) = f.acc.append(&r, NOW_MS, &mut held, || now)
        else {
            panic!("appended with the memory held")
        };
        assert_eq!(held, 0);
        f.outcomes.push(delivery);
        let l = leaders("t", 1, 1);
        let mut d = f.acc.drain(now, true, &l, |_| true, 1 << 20, None);
        let batch = d.by_node.remove(0).1.remove(0);
        batch.succeed(10, -1);
        // `held` was made up rather than taken from the pool, so it comes back on top.
        assert_eq!(
            f.memory.available_permits(),
            250 + r.max_size + BATCH_HEADER_SIZE
        );
        let offsets: Vec<i64> = f
            .outcomes
            .iter_mut()
            .map(|d| outcome(d).unwrap().unwrap().offset)
            .collect();
        assert_eq!(offsets, [10, 11, 12, 13]);
    }

    #[test]
    fn sends_reuse_metadata_for_a_while_and_place_records_by_it() {
        let now = Instant::now();
        let mut f = Fixture::new(16_384, 0);
        let mut r = appending(None, b"v", 1_000);
        r.topic = "other";
        assert!(matches!(f.try_append(&r, now), Appended::NeedMetadata));
        r.topic = "t";
        let mut held = 0;
        let late = f.acc.append(&r, NOW_MS + 1_000, &mut held, || now).unwrap();
        assert!(matches!(late, Appended::NeedMetadata), "reused for 1 s");
        let early = f.acc.append(&r, NOW_MS - 1, &mut held, || now).unwrap();
        assert!(
            matches!(early, Appended::NeedMetadata),
            "the clock went back"
        );
        r.partition = Some(4);
        let e = f.acc.append(&r, NOW_MS, &mut held, || now).err().unwrap();
        assert!(e.to_string().contains("partition 4"), "{e}");
        r.partition = None;
        r.key_hash = Some(-790_332_482);
        let Appended::Done { mut delivery, .. } = f.try_append(&r, now) else {
            panic!("appended")
        };
        let l = leaders("t", 4, 1);
        let d = f.acc.drain(now, true, &l, |_| true, 1 << 20, None);
        for b in d.by_node.into_iter().flat_map(|(_, b)| b) {
            b.succeed(0, -1);
        }
        // murmur2("foobar") as in partitioner's tests: 1357151166 % 4.
        assert_eq!(outcome(&mut delivery).unwrap().unwrap().partition, 2);

        // metadata.max.age.ms=0 still lets the send that fetched the metadata use it.
        let memory = Arc::new(Semaphore::new(1 << 20));
        let mut acc =
            RecordAccumulator::new(100, Duration::ZERO, Duration::ZERO, Duration::ZERO, memory);
        acc.remember_topic("t", info("t", 1, 1), NOW_MS);
        let r = appending(None, b"v", 1_000);
        let done = acc.append(&r, NOW_MS, &mut held, || now).unwrap();
        assert!(matches!(done, Appended::Done { .. }));
        let later = acc.append(&r, NOW_MS + 1, &mut held, || now).unwrap();
        assert!(matches!(later, Appended::NeedMetadata));
    }
}
