//! `Fetcher`: keeps one Fetch in flight per leader broker and buffers what comes back, so `poll`
//! hands out records already in memory while the next ones are on their way.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_protocol::messages::{
    FetchRequest, FetchRequestPartition, FetchRequestTopic, FetchResponse, ListOffsetsRequest,
    ListOffsetsRequestPartition, ListOffsetsRequestTopic,
};
use sluice_protocol::records::{Batches, Record, RecordBatch};
use sluice_protocol::ErrorCode;
use tokio::sync::mpsc;

use super::config::{ConsumerConfig, OffsetReset};
use super::subscription::{Position, SubscriptionState};
use super::{ConsumerRecord, TimestampType, TopicPartition};
use crate::cluster::{Cluster, Lane};
use crate::error::{needs_metadata_refresh, ClientError, Result};

/// Bound on one batch's decompressed size: a guard against compression bombs, far above any
/// batch a broker accepts (message.max.bytes is 1 MiB by default).
const MAX_UNCOMPRESSED_BATCH: usize = 256 << 20;

struct Requested {
    tp: TopicPartition,
    epoch: u64,
    fetch_offset: i64,
}

/// A fetch's answer (or failure), sent back by its task.
pub(crate) struct FetchOutcome {
    node: i32,
    requested: Vec<Requested>,
    response: Result<FetchResponse>,
}

/// One partition's records from one fetch, handed out as `poll` asks for them.
struct Chunk {
    tp: TopicPartition,
    epoch: u64,
    batches: Batches,
    /// The records of the batch being handed out, and that batch's facts.
    records: VecDeque<Record>,
    batch: Option<BatchFacts>,
}

#[derive(Clone, Copy)]
struct BatchFacts {
    last_offset: i64,
    leader_epoch: Option<i32>,
    timestamp_type: TimestampType,
}

impl Chunk {
    /// The next record at or after `position`, which it advances; `None` when the chunk is
    /// used up. Offsets missing inside or at the end of a batch (compaction, control records)
    /// are stepped over: the position moves to the end of every batch it passes.
    fn next(&mut self, position: &mut Position) -> Result<Option<ConsumerRecord>> {
        loop {
            if let Some(facts) = self.batch {
                while let Some(r) = self.records.pop_front() {
                    if r.offset < position.offset {
                        continue;
                    }
                    position.offset = r.offset + 1;
                    position.leader_epoch = facts.leader_epoch;
                    return Ok(Some(ConsumerRecord {
                        topic: self.tp.topic.clone(),
                        partition: self.tp.partition,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        timestamp_type: facts.timestamp_type,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                        leader_epoch: facts.leader_epoch,
                    }));
                }
                position.offset = position.offset.max(facts.last_offset + 1);
                self.batch = None;
            }
            let (header, bytes) = match self.batches.next() {
                None => return Ok(None),
                Some(Ok(b)) => b,
                Some(Err(error)) => return Err(corrupt(&self.tp, error)),
            };
            if header.last_offset() < position.offset {
                continue;
            }
            if header.is_control() {
                // Transaction markers: nothing for the application, but they take offsets.
                position.offset = header.last_offset() + 1;
                continue;
            }
            let batch = RecordBatch::decode_bytes(&bytes, MAX_UNCOMPRESSED_BATCH)
                .map_err(|e| corrupt(&self.tp, e))?;
            // With log append time, the broker's time is the batch's max timestamp.
            let log_append = batch.log_append_time;
            self.records = batch
                .records
                .into_iter()
                .map(|mut r| {
                    if log_append {
                        r.timestamp = batch.max_timestamp;
                    }
                    r
                })
                .collect();
            self.batch = Some(BatchFacts {
                last_offset: header.last_offset(),
                leader_epoch: (batch.partition_leader_epoch >= 0)
                    .then_some(batch.partition_leader_epoch),
                timestamp_type: if log_append {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                },
            });
        }
    }
}

fn corrupt(tp: &TopicPartition, error: sluice_protocol::ProtocolError) -> ClientError {
    ClientError::Protocol {
        addr: format!("the records of {tp}"),
        error,
    }
}

#[derive(Debug, Clone)]
struct FetchSettings {
    min_bytes: i32,
    max_bytes: i32,
    max_wait: Duration,
    partition_max_bytes: i32,
    rack: String,
    retry_backoff: Duration,
    default_reset: OffsetReset,
}

/// Fetches run on tasks of their own, on each broker's fetch lane (a long poll must not hold up
/// anything else); their answers come back over a channel and are checked against the
/// partition's epoch, so a seek or a reassignment in the meantime voids them.
pub(crate) struct Fetcher {
    cluster: Arc<Cluster>,
    settings: FetchSettings,
    /// Brokers with a fetch on the wire.
    in_flight: HashSet<i32>,
    tx: mpsc::UnboundedSender<FetchOutcome>,
    rx: mpsc::UnboundedReceiver<FetchOutcome>,
    chunks: VecDeque<Chunk>,
}

impl Fetcher {
    pub fn new(cluster: Arc<Cluster>, config: &ConsumerConfig) -> Fetcher {
        let (tx, rx) = mpsc::unbounded_channel();
        Fetcher {
            cluster,
            settings: FetchSettings {
                min_bytes: config.fetch_min_bytes,
                max_bytes: config.fetch_max_bytes,
                max_wait: config.fetch_max_wait,
                partition_max_bytes: config.max_partition_fetch_bytes,
                rack: config.client_rack.clone().unwrap_or_default(),
                retry_backoff: config.common.retry_backoff,
                default_reset: config.auto_offset_reset,
            },
            in_flight: HashSet::new(),
            tx,
            rx,
            chunks: VecDeque::new(),
        }
    }

    /// Waits for the next fetch answer. Never ends: the fetcher holds a sender itself.
    pub async fn recv(&mut self) -> Option<FetchOutcome> {
        self.rx.recv().await
    }

    /// Takes in every answer already back, without waiting.
    pub fn collect_ready(&mut self, subs: &mut SubscriptionState) -> Result<()> {
        let mut first_error = None;
        while let Ok(outcome) = self.rx.try_recv() {
            if let Err(e) = self.handle(outcome, subs) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Starts a fetch to every leader without one in flight, for its fetchable partitions.
    pub async fn send_fetches(&mut self, subs: &mut SubscriptionState) {
        let now = Instant::now();
        let mut by_node: BTreeMap<i32, Vec<(TopicPartition, i64, u64, bool)>> = BTreeMap::new();
        for (tp, state) in subs.assignment.iter_mut() {
            if !state.fetchable(now) {
                continue;
            }
            match self.cluster.leader(&tp.topic, tp.partition).await {
                Ok((node, _)) if !self.in_flight.contains(&node) => by_node
                    .entry(node)
                    .or_default()
                    .push((tp.clone(), state.fetch_offset, state.epoch, state.starved)),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(partition = %tp, error = %e, "no leader to fetch from");
                    state.backoff_until = Some(now + self.settings.retry_backoff);
                }
            }
        }
        for (node, mut parts) in by_node {
            // A partition whose last answer was only part of a batch goes first: only the first
            // partition with data is sure to get a whole batch past the size limits (KIP-74).
            let starved_topics: HashSet<String> = parts
                .iter()
                .filter(|p| p.3)
                .map(|p| p.0.topic.clone())
                .collect();
            parts.sort_by(|a, b| {
                let key = |p: &(TopicPartition, i64, u64, bool)| {
                    (
                        !starved_topics.contains(&p.0.topic),
                        p.0.topic.clone(),
                        !p.3,
                        p.0.partition,
                    )
                };
                key(a).cmp(&key(b))
            });
            let mut topics: Vec<FetchRequestTopic> = Vec::new();
            let mut requested = Vec::with_capacity(parts.len());
            for (tp, fetch_offset, epoch, _) in parts {
                if topics.last().map_or(true, |t| t.topic != tp.topic) {
                    topics.push(FetchRequestTopic {
                        topic: tp.topic.clone(),
                        partitions: Vec::new(),
                    });
                }
                topics
                    .last_mut()
                    .expect("pushed")
                    .partitions
                    .push(FetchRequestPartition {
                        partition: tp.partition,
                        // -1: no epoch check. The broker would fence a stale epoch, and a stale
                        // leader is found out by NOT_LEADER_OR_FOLLOWER all the same.
                        current_leader_epoch: -1,
                        fetch_offset,
                        last_fetched_epoch: -1,
                        log_start_offset: -1,
                        partition_max_bytes: self.settings.partition_max_bytes,
                    });
                if let Some(s) = subs.get_mut(&tp) {
                    s.in_flight = true;
                }
                requested.push(Requested {
                    tp,
                    epoch,
                    fetch_offset,
                });
            }
            let request = FetchRequest {
                cluster_id: None,
                replica_id: -1,
                max_wait_ms: self.settings.max_wait.as_millis() as i32,
                min_bytes: self.settings.min_bytes,
                max_bytes: self.settings.max_bytes,
                // Always read_uncommitted: see IsolationLevel.
                isolation_level: 0,
                // No fetch session: every fetch names its partitions in full.
                session_id: 0,
                session_epoch: -1,
                topics,
                forgotten_topics_data: Vec::new(),
                rack_id: self.settings.rack.clone(),
            };
            self.in_flight.insert(node);
            let cluster = self.cluster.clone();
            let tx = self.tx.clone();
            let timeout = cluster.timeout_with(self.settings.max_wait);
            tokio::spawn(async move {
                let response = async {
                    let conn = cluster.connection(node, Lane::Fetch).await?;
                    conn.send(&request, timeout).await
                }
                .await;
                // The consumer may be gone; then nobody needs the answer.
                let _ = tx.send(FetchOutcome {
                    node,
                    requested,
                    response,
                });
            });
        }
    }

    /// Files a fetch answer: each partition's records become a chunk to hand out, errors become
    /// resets, backoffs or metadata refreshes. Returns the first error the application must
    /// see (an out-of-range position with auto.offset.reset=none, corrupt data).
    pub fn handle(&mut self, outcome: FetchOutcome, subs: &mut SubscriptionState) -> Result<()> {
        self.in_flight.remove(&outcome.node);
        let now = Instant::now();
        let backoff = now + self.settings.retry_backoff;
        let mut current: HashMap<(String, i32), Requested> = HashMap::new();
        for r in outcome.requested {
            let Some(state) = subs.get_mut(&r.tp) else {
                continue;
            };
            if state.epoch != r.epoch {
                continue;
            }
            state.in_flight = false;
            current.insert((r.tp.topic.clone(), r.tp.partition), r);
        }
        let response = match outcome.response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(node = outcome.node, error = %e, "fetch failed");
                for r in current.values() {
                    if let Some(s) = subs.get_mut(&r.tp) {
                        s.backoff_until = Some(backoff);
                    }
                }
                return Ok(());
            }
        };
        if response.error_code != 0 {
            tracing::warn!(node = outcome.node, error = ?ErrorCode::from_code(response.error_code), "fetch refused");
            for r in current.values() {
                if let Some(s) = subs.get_mut(&r.tp) {
                    s.backoff_until = Some(backoff);
                }
            }
            return Ok(());
        }
        let mut first_error = None;
        for topic in response.responses {
            for p in topic.partitions {
                let Some(r) = current.remove(&(topic.topic.clone(), p.partition_index)) else {
                    continue;
                };
                let code = ErrorCode::from_code(p.error_code);
                match code {
                    ErrorCode::None => {
                        let state = subs.get_mut(&r.tp).expect("checked above");
                        state.high_watermark = p.high_watermark;
                        let records = p.records.unwrap_or_default();
                        match last_whole_batch(&records) {
                            Ok(Some(last)) => {
                                state.fetch_offset = state.fetch_offset.max(last + 1);
                                state.buffered += 1;
                                state.starved = false;
                                self.chunks.push_back(Chunk {
                                    tp: r.tp,
                                    epoch: r.epoch,
                                    batches: Batches::new(records),
                                    records: VecDeque::new(),
                                    batch: None,
                                });
                            }
                            // Only part of a batch: it must come first next time.
                            Ok(None) => state.starved = !records.is_empty(),
                            Err(e) => {
                                state.backoff_until = Some(backoff);
                                first_error.get_or_insert(corrupt(&r.tp, e));
                            }
                        }
                    }
                    ErrorCode::OffsetOutOfRange => {
                        // Only meaningful once what was fetched before it is handed out: until
                        // then the position is behind the offset that was refused.
                        let at_position = subs
                            .assignment
                            .get(&r.tp)
                            .and_then(|s| s.position)
                            .is_some_and(|p| p.offset == r.fetch_offset);
                        if !at_position {
                            continue;
                        }
                        match self.settings.default_reset {
                            OffsetReset::None => {
                                if let Some(s) = subs.get_mut(&r.tp) {
                                    s.backoff_until = Some(backoff);
                                }
                                first_error.get_or_insert(ClientError::broker(
                                    code,
                                    Some(format!(
                                        "offset {} is out of range and auto.offset.reset is none; seek to go on",
                                        r.fetch_offset
                                    )),
                                    format!("fetching {}", r.tp),
                                ));
                            }
                            reset => {
                                tracing::info!(partition = %r.tp, offset = r.fetch_offset, ?reset, "fetch offset out of range; resetting");
                                subs.request_reset(&r.tp, reset);
                            }
                        }
                    }
                    code if needs_metadata_refresh(code) => {
                        tracing::debug!(partition = %r.tp, error = ?code, "leadership moved; refreshing metadata");
                        self.cluster.invalidate(&r.tp.topic);
                        if let Some(s) = subs.get_mut(&r.tp) {
                            s.backoff_until = Some(backoff);
                        }
                    }
                    code => {
                        if let Some(s) = subs.get_mut(&r.tp) {
                            s.backoff_until = Some(backoff);
                        }
                        if code == ErrorCode::TopicAuthorizationFailed {
                            first_error.get_or_insert(ClientError::broker(
                                code,
                                None,
                                format!("fetching {}", r.tp),
                            ));
                        } else {
                            tracing::warn!(partition = %r.tp, error = ?code, "fetch error");
                        }
                    }
                }
            }
        }
        // Partitions the broker left out of its answer: try them again after a pause.
        for r in current.values() {
            if let Some(s) = subs.get_mut(&r.tp) {
                s.backoff_until = Some(backoff);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Up to `max` buffered records, in order within each partition. Chunks of paused
    /// partitions stay buffered for when they resume.
    pub fn drain(
        &mut self,
        subs: &mut SubscriptionState,
        max: usize,
    ) -> Result<Vec<ConsumerRecord>> {
        let mut out = Vec::new();
        let mut skipped = 0;
        while out.len() < max && skipped < self.chunks.len() {
            let (tp, epoch) = {
                let c = self.chunks.front().expect("non-empty");
                (c.tp.clone(), c.epoch)
            };
            let Some(state) = subs.get_mut(&tp).filter(|s| s.epoch == epoch) else {
                // Revoked, reassigned or sought since it was fetched.
                self.chunks.pop_front();
                continue;
            };
            if state.paused || state.position.is_none() {
                self.chunks.rotate_left(1);
                skipped += 1;
                continue;
            }
            let chunk = self.chunks.front_mut().expect("non-empty");
            let mut position = state.position.expect("checked");
            let mut used_up = false;
            let mut failure = None;
            while out.len() < max {
                match chunk.next(&mut position) {
                    Ok(Some(record)) => out.push(record),
                    Ok(None) => {
                        used_up = true;
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            state.position = Some(position);
            if let Some(e) = failure {
                // Whatever was fetched past the bad batch is dropped with it: the partition is
                // fetched again from the position and fails there again until the
                // application seeks past it, rather than skipping records unnoticed.
                self.chunks.retain(|c| c.tp != tp);
                subs.seek(&tp, position.offset, position.leader_epoch);
                if let Some(s) = subs.get_mut(&tp) {
                    s.backoff_until = Some(Instant::now() + self.settings.retry_backoff);
                }
                return if out.is_empty() { Err(e) } else { Ok(out) };
            }
            if used_up {
                state.buffered = state.buffered.saturating_sub(1);
                self.chunks.pop_front();
            }
        }
        Ok(out)
    }
}

/// The last offset of the last whole batch in a partition's fetched bytes, if any.
fn last_whole_batch(
    records: &Bytes,
) -> std::result::Result<Option<i64>, sluice_protocol::ProtocolError> {
    let mut last = None;
    for b in Batches::new(records.clone()) {
        let (header, _) = b?;
        last = Some(header.last_offset());
    }
    Ok(last)
}

/// Resets positions to the log's start or end, by ListOffsets to each partition's leader.
pub(crate) async fn reset_positions(
    cluster: &Cluster,
    subs: &mut SubscriptionState,
    retry_backoff: Duration,
) {
    let now = Instant::now();
    let mut by_node: BTreeMap<i32, Vec<(TopicPartition, i64)>> = BTreeMap::new();
    for (tp, reset) in subs.needing_reset(now) {
        let Some(timestamp) = reset.timestamp() else {
            continue;
        };
        match cluster.leader(&tp.topic, tp.partition).await {
            Ok((node, _)) => by_node.entry(node).or_default().push((tp, timestamp)),
            Err(e) => {
                tracing::debug!(partition = %tp, error = %e, "no leader to list offsets from");
                if let Some(s) = subs.get_mut(&tp) {
                    s.backoff_until = Some(now + retry_backoff);
                }
            }
        }
    }
    for (node, parts) in by_node {
        let mut topics: Vec<ListOffsetsRequestTopic> = Vec::new();
        for (tp, timestamp) in &parts {
            if topics.last().map_or(true, |t| t.name != tp.topic) {
                topics.push(ListOffsetsRequestTopic {
                    name: tp.topic.clone(),
                    partitions: Vec::new(),
                });
            }
            topics
                .last_mut()
                .expect("pushed")
                .partitions
                .push(ListOffsetsRequestPartition {
                    partition_index: tp.partition,
                    current_leader_epoch: -1,
                    timestamp: *timestamp,
                    max_num_offsets: 1,
                });
        }
        let request = ListOffsetsRequest {
            replica_id: -1,
            isolation_level: 0,
            topics,
        };
        let response = async {
            let conn = cluster.connection(node, Lane::Default).await?;
            conn.send(&request, cluster.config().request_timeout).await
        }
        .await;
        let backoff = Instant::now() + retry_backoff;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(node, error = %e, "ListOffsets failed");
                for (tp, _) in &parts {
                    if let Some(s) = subs.get_mut(tp) {
                        s.backoff_until = Some(backoff);
                    }
                }
                continue;
            }
        };
        for t in response.topics {
            for p in t.partitions {
                let tp = TopicPartition::new(t.name.clone(), p.partition_index);
                let code = ErrorCode::from_code(p.error_code);
                if code.is_ok() && p.offset >= 0 {
                    let epoch = (p.leader_epoch >= 0).then_some(p.leader_epoch);
                    if subs.assignment.get(&tp).is_some_and(|s| s.reset.is_some()) {
                        subs.seek(&tp, p.offset, epoch);
                    }
                    continue;
                }
                if needs_metadata_refresh(code) {
                    cluster.invalidate(&tp.topic);
                } else {
                    tracing::warn!(partition = %tp, error = ?code, "ListOffsets error");
                }
                if let Some(s) = subs.get_mut(&tp) {
                    s.backoff_until = Some(backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64) -> Record {
        Record {
            offset,
            timestamp: 100 + offset,
            key: None,
            value: Some(Bytes::from(format!("v{offset}"))),
            headers: Vec::new(),
        }
    }

    fn chunk(batches: &[RecordBatch]) -> Chunk {
        let mut bytes = Vec::new();
        for b in batches {
            bytes.extend_from_slice(&b.encode().unwrap());
        }
        Chunk {
            tp: TopicPartition::new("t", 0),
            epoch: 1,
            batches: Batches::new(Bytes::from(bytes)),
            records: VecDeque::new(),
            batch: None,
        }
    }

    fn drain_all(c: &mut Chunk, position: &mut Position) -> Vec<i64> {
        let mut offsets = Vec::new();
        while let Some(r) = c.next(position).unwrap() {
            offsets.push(r.offset);
        }
        offsets
    }

    #[test]
    fn compacted_gaps_empty_batches_and_control_batches_are_stepped_over() {
        // Compaction left 0, 2 and 5 of a batch spanning 0..=7.
        let mut compacted = RecordBatch::new(vec![rec(0), rec(2), rec(5)]);
        compacted.last_offset_delta = 7;
        compacted.partition_leader_epoch = 4;
        // A batch compacted down to nothing still holds its offsets 8..=9.
        let mut empty = RecordBatch::new(vec![]);
        empty.base_offset = 8;
        empty.last_offset_delta = 1;
        // A transaction marker at 10.
        let mut marker = RecordBatch::new(vec![rec(10)]);
        marker.control = true;
        let tail = RecordBatch::new(vec![rec(11), rec(12)]);
        let mut c = chunk(&[compacted, empty, marker, tail]);
        let mut position = Position {
            offset: 0,
            leader_epoch: None,
        };
        assert_eq!(drain_all(&mut c, &mut position), [0, 2, 5, 11, 12]);
        assert_eq!(position.offset, 13);
    }

    #[test]
    fn records_before_the_position_are_skipped_and_the_epoch_kept() {
        let mut batch = RecordBatch::new((0..6).map(rec).collect());
        batch.partition_leader_epoch = 3;
        let mut c = chunk(&[batch]);
        let mut position = Position {
            offset: 4,
            leader_epoch: None,
        };
        let first = c.next(&mut position).unwrap().unwrap();
        assert_eq!((first.offset, first.leader_epoch), (4, Some(3)));
        assert_eq!(position.leader_epoch, Some(3));
        assert_eq!(drain_all(&mut c, &mut position), [5]);
        assert_eq!(position.offset, 6);
    }

    #[test]
    fn log_append_time_batches_report_the_brokers_time() {
        let mut batch = RecordBatch::new(vec![rec(0), rec(1)]);
        batch.log_append_time = true;
        batch.max_timestamp = 999;
        let mut c = chunk(&[batch]);
        let mut position = Position {
            offset: 0,
            leader_epoch: None,
        };
        let r = c.next(&mut position).unwrap().unwrap();
        assert_eq!(
            (r.timestamp, r.timestamp_type),
            (999, TimestampType::LogAppendTime)
        );
    }

    #[test]
    fn a_cut_off_batch_at_the_end_is_not_counted() {
        let whole = RecordBatch::new(vec![rec(0), rec(1)]).encode().unwrap();
        let next = RecordBatch::new(vec![rec(2)]).encode().unwrap();
        let mut bytes = whole.to_vec();
        bytes.extend_from_slice(&next[..next.len() - 3]);
        assert_eq!(last_whole_batch(&Bytes::from(bytes)).unwrap(), Some(1));
        assert_eq!(last_whole_batch(&next.slice(..20)).unwrap(), None);
    }
}
