//! `RecordAccumulator`: records waiting to be sent, per partition, in `ProducerBatch`es that fill
//! up to batch.size, become ready when full, lingered or flushed, and go back on retry.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_protocol::records::{Compression, Record, RecordBatch, RecordHeader, BATCH_HEADER_SIZE};
use sluice_protocol::wire::{varint_len, varlong_len};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::RecordMetadata;
use crate::cluster::TopicInfo;
use crate::error::{ClientError, Result};

pub(crate) type DeliveryTx = oneshot::Sender<Result<RecordMetadata>>;

fn field_len(b: &Option<Bytes>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

/// A record's bytes inside a batch, length prefix included, at `offset_delta` and `ts_delta`
/// from the batch's first record.
fn record_size(
    key: &Option<Bytes>,
    value: &Option<Bytes>,
    headers: &[RecordHeader],
    offset_delta: i32,
    ts_delta: i64,
) -> usize {
    let body = 1
        + varlong_len(ts_delta)
        + varint_len(offset_delta)
        + field_len(key)
        + field_len(value)
        + varint_len(headers.len() as i32)
        + headers
            .iter()
            .map(|h| varint_len(h.key.len() as i32) + h.key.len() + field_len(&h.value))
            .sum::<usize>();
    varint_len(body as i32) + body
}

/// The most a record can take in any batch (largest deltas), for memory and size limits
/// decided before its batch is known.
pub(crate) fn max_record_size(
    key: &Option<Bytes>,
    value: &Option<Bytes>,
    headers: &[RecordHeader],
) -> usize {
    record_size(key, value, headers, i32::MAX, i64::MIN)
}

/// Kafka's sequence arithmetic: sequences wrap from i32::MAX to 0.
fn add_sequence(seq: i32, count: i32) -> i32 {
    ((seq as i64 + count as i64) % (i32::MAX as i64 + 1)) as i32
}

/// Records for one partition that travel, succeed and fail together.
pub struct ProducerBatch {
    pub(crate) id: u64,
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    /// Until encoded; the encoding is what every attempt sends.
    records: Vec<Record>,
    /// Each record's timestamp and where its outcome goes, in offset order.
    deliveries: Vec<(i64, DeliveryTx)>,
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
    /// buffer.memory held by the records, given back when the batch is dropped.
    memory: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for ProducerBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerBatch")
            .field("id", &self.id)
            .field("partition", &format!("{}-{}", self.topic, self.partition))
            .field("records", &self.deliveries.len())
            .field("bytes", &self.bytes)
            .field("attempts", &self.attempts)
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl ProducerBatch {
    pub(crate) fn record_count(&self) -> usize {
        self.deliveries.len()
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The batch's bytes on the wire, encoded (and compressed) on first use.
    pub(crate) fn encode(&mut self, compression: Compression) -> Result<Bytes> {
        if let Some(b) = &self.encoded {
            return Ok(b.clone());
        }
        let mut batch = RecordBatch::new(std::mem::take(&mut self.records));
        batch.compression = compression;
        if let Some((id, epoch, seq)) = self.sequence {
            batch.producer_id = id;
            batch.producer_epoch = epoch;
            batch.base_sequence = seq;
        }
        let encoded = batch.encode().map_err(|e| {
            ClientError::Invalid(format!(
                "cannot encode a batch for {}-{}: {e}",
                self.topic, self.partition
            ))
        })?;
        self.encoded = Some(encoded.clone());
        Ok(encoded)
    }

    /// Resolves every record: offsets count up from `base_offset` (-1 stays -1: unknown).
    pub(crate) fn succeed(self, base_offset: i64, log_append_time: i64) {
        let ProducerBatch {
            topic,
            partition,
            deliveries,
            memory,
            ..
        } = self;
        // Memory first: whoever awaits a record may send the next one at once.
        drop(memory);
        let topic = topic.to_string();
        for (i, (timestamp, tx)) in deliveries.into_iter().enumerate() {
            let _ = tx.send(Ok(RecordMetadata {
                topic: topic.clone(),
                partition,
                offset: if base_offset < 0 {
                    -1
                } else {
                    base_offset + i as i64
                },
                timestamp: if log_append_time >= 0 {
                    log_append_time
                } else {
                    timestamp
                },
            }));
        }
    }

    pub(crate) fn fail(self, error: &ClientError) {
        let ProducerBatch {
            deliveries, memory, ..
        } = self;
        drop(memory);
        for (_, tx) in deliveries {
            let _ = tx.send(Err(copy_error(error)));
        }
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

/// A record on its way into a batch.
pub(crate) struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
    pub timestamp: i64,
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

pub struct RecordAccumulator {
    batch_size: usize,
    linger: Duration,
    delivery_timeout: Duration,
    topics: HashMap<Arc<str>, BTreeMap<i32, PartitionQueue>>,
    /// Batches created and not yet resolved, by id: what flush waits for.
    incomplete: BTreeSet<u64>,
    next_id: u64,
    queued: usize,
    closed: bool,
}

impl RecordAccumulator {
    pub fn new(batch_size: usize, linger: Duration, delivery_timeout: Duration) -> Self {
        RecordAccumulator {
            batch_size: batch_size.max(1),
            linger,
            delivery_timeout,
            topics: HashMap::new(),
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

    /// Adds a record to the partition's open batch, or to a new one. Returns whether a batch
    /// was created (the sender learns of a new linger deadline, or of a full batch).
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: i32,
        record: NewRecord,
        memory: OwnedSemaphorePermit,
        delivery: DeliveryTx,
        now: Instant,
    ) -> Result<bool> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let partitions = match self.topics.get_mut(topic) {
            Some(p) => p,
            None => self.topics.entry(Arc::from(topic)).or_default(),
        };
        let queue = partitions.entry(partition).or_default();
        if let Some(batch) = queue.batches.back_mut().filter(|b| !b.sealed) {
            let base_ts = batch
                .records
                .first()
                .map_or(record.timestamp, |r| r.timestamp);
            let size = record_size(
                &record.key,
                &record.value,
                &record.headers,
                batch.records.len() as i32,
                record.timestamp.wrapping_sub(base_ts),
            );
            if batch.bytes + size <= self.batch_size {
                push(batch, record, size, memory, delivery);
                if batch.bytes >= self.batch_size {
                    batch.sealed = true;
                }
                return Ok(false);
            }
            batch.sealed = true;
        }
        let id = self.next_id;
        self.next_id += 1;
        let topic: Arc<str> = self
            .topics
            .get_key_value(topic)
            .map(|(k, _)| k.clone())
            .expect("topic entry exists");
        let size = record_size(&record.key, &record.value, &record.headers, 0, 0);
        let mut batch = ProducerBatch {
            id,
            topic,
            partition,
            records: Vec::new(),
            deliveries: Vec::new(),
            bytes: BATCH_HEADER_SIZE,
            created: now,
            deadline: now + self.delivery_timeout,
            sealed: false,
            attempts: 0,
            retry_at: None,
            sequence: None,
            encoded: None,
            memory: None,
        };
        push(&mut batch, record, size, memory, delivery);
        // A record larger than batch.size has the batch to itself.
        batch.sealed = batch.bytes >= self.batch_size;
        let queue = self
            .topics
            .get_mut(&*batch.topic)
            .and_then(|p| p.get_mut(&partition))
            .expect("queue exists");
        queue.batches.push_back(batch);
        self.incomplete.insert(id);
        self.queued += 1;
        Ok(true)
    }

    /// Topics with a partition ready to send, for the sender to look their leaders up.
    pub(crate) fn ready_topics(&self, now: Instant, hurry: bool) -> Vec<Arc<str>> {
        let hurry = hurry || self.closed;
        self.topics
            .iter()
            .filter(|(_, partitions)| {
                partitions
                    .values()
                    .any(|q| q.front_ready(now, self.linger, hurry).0)
            })
            .map(|(t, _)| t.clone())
            .collect()
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
        for (topic, partitions) in self.topics.iter_mut() {
            let info = leaders.get(topic);
            for (&partition, queue) in partitions.iter_mut() {
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
                    .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
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
        if let Some(q) = self
            .topics
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
        {
            q.in_flight = false;
        }
    }

    /// Puts a batch back at the front of its partition, to go again at `retry_at`.
    pub(crate) fn requeue(&mut self, mut batch: ProducerBatch, retry_at: Instant) {
        batch.retry_at = Some(retry_at);
        batch.attempts += 1;
        let q = self
            .topics
            .entry(batch.topic.clone())
            .or_default()
            .entry(batch.partition)
            .or_default();
        q.in_flight = false;
        q.batches.push_front(batch);
        self.queued += 1;
    }

    /// Takes the queued batches whose delivery timeout has passed.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<ProducerBatch> {
        let mut expired = Vec::new();
        for partitions in self.topics.values_mut() {
            for q in partitions.values_mut() {
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
        for partitions in self.topics.values_mut() {
            for q in partitions.values_mut() {
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

fn push(
    batch: &mut ProducerBatch,
    record: NewRecord,
    size: usize,
    memory: OwnedSemaphorePermit,
    delivery: DeliveryTx,
) {
    let offset = batch.records.len() as i64;
    batch.deliveries.push((record.timestamp, delivery));
    batch.records.push(Record {
        offset,
        timestamp: record.timestamp,
        key: record.key,
        value: record.value,
        headers: record.headers,
    });
    batch.bytes += size;
    match &mut batch.memory {
        Some(held) => held.merge(memory),
        None => batch.memory = Some(memory),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::PartitionInfo;
    use sluice_protocol::wire::Uuid;
    use sluice_protocol::ErrorCode;
    use tokio::sync::Semaphore;

    fn record(value: &'static [u8]) -> NewRecord {
        NewRecord {
            key: None,
            value: Some(Bytes::from_static(value)),
            headers: vec![],
            timestamp: 1_000,
        }
    }

    fn leaders(topic: &str, partitions: i32, leader: i32) -> HashMap<Arc<str>, Arc<TopicInfo>> {
        let info = TopicInfo {
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
        };
        HashMap::from([(Arc::from(topic), Arc::new(info))])
    }

    struct Fixture {
        acc: RecordAccumulator,
        memory: Arc<Semaphore>,
        outcomes: Vec<oneshot::Receiver<Result<RecordMetadata>>>,
    }

    impl Fixture {
        fn new(batch_size: usize, linger_ms: u64) -> Fixture {
            Fixture {
                acc: RecordAccumulator::new(
                    batch_size,
                    Duration::from_millis(linger_ms),
                    Duration::from_secs(10),
                ),
                memory: Arc::new(Semaphore::new(1 << 20)),
                outcomes: vec![],
            }
        }

        fn append(&mut self, partition: i32, r: NewRecord, now: Instant) -> bool {
            let size = max_record_size(&r.key, &r.value, &r.headers);
            let permit = self
                .memory
                .clone()
                .try_acquire_many_owned(size as u32)
                .unwrap();
            let (tx, rx) = oneshot::channel();
            self.outcomes.push(rx);
            self.acc.append("t", partition, r, permit, tx, now).unwrap()
        }
    }

    #[test]
    fn sizes_match_the_encoding() {
        let r = Record {
            offset: 3,
            timestamp: 1_500,
            key: Some(Bytes::from_static(b"key")),
            value: None,
            headers: vec![RecordHeader {
                key: "h".into(),
                value: Some(Bytes::from_static(b"v")),
            }],
        };
        let first = Record {
            offset: 0,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from_static(b"0123456789")),
            headers: vec![],
        };
        let encoded = RecordBatch::new(vec![first.clone(), r.clone()])
            .encode()
            .unwrap();
        let expected = BATCH_HEADER_SIZE
            + record_size(&first.key, &first.value, &first.headers, 0, 0)
            + record_size(&r.key, &r.value, &r.headers, 3, 500);
        assert_eq!(encoded.len(), expected);
        assert!(
            max_record_size(&r.key, &r.value, &r.headers)
                >= record_size(&r.key, &r.value, &r.headers, 3, 500)
        );
    }

    #[test]
    fn batches_fill_to_batch_size_and_big_records_go_alone() {
        let now = Instant::now();
        let mut f = Fixture::new(200, 1_000);
        assert!(
            f.append(0, record(&[0; 50]), now),
            "first record opens a batch"
        );
        assert!(!f.append(0, record(&[0; 50]), now));
        // 61 + 2 * 58 = 177: another 58 would pass 200.
        assert!(f.append(0, record(&[0; 50]), now));
        assert!(
            f.append(0, record(&[0; 500]), now),
            "too big: a batch of its own"
        );
        assert!(
            f.append(0, record(&[0; 10]), now),
            "the big batch is sealed"
        );
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
        f.append(0, record(b"a"), now);
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
            f.append(0, record(&[1; 20]), now);
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
        f.append(0, record(&[1; 20]), now);
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
            f.append(p, record(&[1; 60]), now);
        }
        let nobody = leaders("t", 3, -1);
        let d = f.acc.drain(now, false, &nobody, |_| true, 1 << 20, None);
        assert!(d.by_node.is_empty());
        assert_eq!(d.leaderless.len(), 1);
        let l = leaders("t", 3, 1);
        let d = f.acc.drain(now, false, &l, |_| false, 1 << 20, None);
        assert!(d.by_node.is_empty(), "node 1 has no room");
        // Each batch is 61 + 68 bytes: two fit in 300.
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
        f.append(0, record(b"x"), now);
        f.append(0, record(b"y"), now);
        let held = (1 << 20) - f.memory.available_permits();
        assert!(held > 0);
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
        for mut rx in f.outcomes.drain(..) {
            assert!(matches!(rx.try_recv(), Ok(Err(ClientError::Timeout(_)))));
        }
    }
}
