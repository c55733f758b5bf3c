//! `Sender`: the producer's background task. It drains ready batches into one Produce request
//! per leader, resolves, retries or fails them by the answers, and keeps the producer id.

// Ordering: a partition has at most one batch in flight; the next waits for its outcome. A
// retried batch therefore cannot be overtaken, and the broker sees each partition's sequence
// numbers in order without the client having to re-sequence anything after a failure.
// Partitions still pipeline: up to max.in.flight.requests.per.connection requests per broker,
// each carrying one batch for every ready partition that broker leads. The price is one round
// trip per batch per partition, so a single busy partition moves batch.size bytes per round
// trip (Java keeps up to five batches per partition in flight and re-sequences on errors).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use sluice_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceRequestPartition, ProduceRequestTopic,
    ProduceResponse, ProduceResponsePartition,
};
use sluice_protocol::ErrorCode;
use tokio::task::{Id, JoinError, JoinSet};
use tracing::{debug, warn};

use super::accumulator::ProducerBatch;
use super::{now_millis, Acks, Shared};
use crate::cluster::{Lane, TopicInfo};
use crate::error::{is_retriable_code, needs_metadata_refresh, ClientError};

/// How one Produce request went.
enum Outcome {
    Answered(ProduceResponse),
    /// acks=0: written to the socket, nothing more to learn.
    Unanswered,
    Failed {
        error: ClientError,
        retriable: bool,
    },
}

struct Completion {
    node: i32,
    batches: Vec<ProducerBatch>,
    outcome: Outcome,
}

/// What a request task holds, for the sender to recover if the task dies.
struct InFlight {
    node: i32,
    batches: Vec<(Arc<str>, i32, u64)>,
}

struct Sender {
    shared: Arc<Shared>,
    tasks: JoinSet<Completion>,
    in_flight: HashMap<Id, InFlight>,
    requests_per_node: HashMap<i32, usize>,
    /// The idempotent producer's id and epoch.
    producer: Option<(i64, i16)>,
    /// A batch with a sequence number failed or expired: the broker may or may not have it, so
    /// the sequences after it mean nothing. New batches start over under a new producer id.
    renew_producer: bool,
    producer_retry_at: Option<Instant>,
    /// Topics whose metadata could not be had, and when to ask again.
    metadata_retry_at: HashMap<Arc<str>, Instant>,
    /// Batches resolved since the accumulator last heard of it: told in one go, as every lock
    /// the sender takes is one the sending threads may have to wait for.
    resolved: Vec<u64>,
}

pub(crate) async fn run(shared: Arc<Shared>) {
    Sender {
        shared,
        tasks: JoinSet::new(),
        in_flight: HashMap::new(),
        requests_per_node: HashMap::new(),
        producer: None,
        renew_producer: false,
        producer_retry_at: None,
        metadata_retry_at: HashMap::new(),
        resolved: Vec::new(),
    }
    .run()
    .await
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Sender {
    async fn run(mut self) {
        loop {
            while let Some(done) = self.tasks.try_join_next_with_id() {
                self.on_done(done);
            }
            let now = Instant::now();
            self.expire(now);
            let next_wake = if self.producer_ready(now).await {
                self.send_ready(now).await
            } else {
                self.producer_retry_at
            };
            if self.tasks.is_empty() {
                let acc = self.shared.accumulator();
                if acc.is_closed() && acc.is_empty() {
                    break;
                }
            }
            let sleep = async {
                match next_wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let done = tokio::select! {
                _ = self.shared.wake.notified() => None,
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => Some(done),
                _ = sleep => None,
            };
            if let Some(done) = done {
                self.on_done(done);
            }
        }
        debug!("producer sender stopped");
    }

    /// Whether new batches may be drained: always without idempotence, else once a producer
    /// id is known (and renewed if it had to be).
    async fn producer_ready(&mut self, now: Instant) -> bool {
        let config = &self.shared.config;
        if !config.idempotence
            || (self.producer.is_some() && !self.renew_producer)
            || self.shared.accumulator().is_empty()
        {
            return true;
        }
        if self.producer_retry_at.is_some_and(|at| at > now) {
            return false;
        }
        let request = InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        let error = match self.shared.cluster.send_any(&request).await {
            Ok(r) if r.error_code == 0 => {
                debug!(
                    producer_id = r.producer_id,
                    epoch = r.producer_epoch,
                    renewed = self.producer.is_some(),
                    "producer id assigned"
                );
                self.producer = Some((r.producer_id, r.producer_epoch));
                self.renew_producer = false;
                self.producer_retry_at = None;
                return true;
            }
            Ok(r) => {
                ClientError::broker(ErrorCode::from_code(r.error_code), None, "InitProducerId")
            }
            Err(e) => e,
        };
        self.producer_retry_at = Some(now + self.shared.cluster.config().retry_backoff);
        if error.is_retriable() {
            debug!(error = %error, "no producer id yet; retrying");
        } else {
            warn!(error = %error, "cannot get a producer id; failing queued records");
            let doomed = self.shared.accumulator().take_all();
            for batch in doomed {
                self.fail(batch, &error);
            }
            self.report_resolved(&[]);
        }
        false
    }

    fn expire(&mut self, now: Instant) {
        let expired = self.shared.accumulator().expire(now);
        for batch in expired {
            let error = ClientError::Timeout(format!(
                "delivery of {} records to {}-{} within delivery.timeout.ms ({} ms)",
                batch.record_count(),
                batch.topic,
                batch.partition,
                self.shared.config.delivery_timeout.as_millis()
            ));
            self.fail(batch, &error);
        }
        self.report_resolved(&[]);
    }

    /// Sends every batch that is ready and has somewhere to go; returns when to look again if
    /// nothing else wakes the sender first.
    async fn send_ready(&mut self, now: Instant) -> Option<Instant> {
        let config = &self.shared.config;
        let backoff = self.shared.cluster.config().retry_backoff;
        let hurry = self.shared.flushing.load(Ordering::Acquire) > 0;
        let topics = self.shared.accumulator().ready_topics(now, hurry);
        let mut next_wake = None;
        let mut leaders: HashMap<Arc<str>, Arc<TopicInfo>> = HashMap::new();
        for topic in topics {
            if let Some(&at) = self.metadata_retry_at.get(&topic) {
                if at > now {
                    next_wake = earliest(next_wake, Some(at));
                    continue;
                }
            }
            match self.shared.cluster.topic(&topic).await {
                Ok(info) => {
                    self.metadata_retry_at.remove(&topic);
                    leaders.insert(topic, info);
                }
                Err(e) => {
                    debug!(topic = %topic, error = %e, "no metadata for ready batches; retrying");
                    next_wake = earliest(next_wake, Some(now + backoff));
                    self.metadata_retry_at.insert(topic, now + backoff);
                }
            }
        }
        let per_node = &self.requests_per_node;
        let max_in_flight = config.max_in_flight;
        let mut acc = self.shared.accumulator();
        acc.remember_topics(&leaders, now_millis());
        let drained = acc.drain(
            now,
            hurry,
            &leaders,
            |node| per_node.get(&node).copied().unwrap_or(0) < max_in_flight,
            config.max_request_size,
            if config.idempotence {
                self.producer
            } else {
                None
            },
        );
        drop(acc);
        for topic in drained.leaderless {
            debug!(topic = %topic, "a partition has no leader; refreshing metadata");
            self.shared.cluster.invalidate(&topic);
            self.metadata_retry_at.insert(topic, now + backoff);
            next_wake = earliest(next_wake, Some(now + backoff));
        }
        for (node, batches) in drained.by_node {
            self.dispatch(node, batches);
        }
        earliest(next_wake, drained.next_wake)
    }

    fn dispatch(&mut self, node: i32, batches: Vec<ProducerBatch>) {
        let held = batches
            .iter()
            .map(|b| (b.topic.clone(), b.partition, b.id))
            .collect();
        *self.requests_per_node.entry(node).or_default() += 1;
        let shared = self.shared.clone();
        let task = self.tasks.spawn(async move {
            let mut batches = batches;
            let outcome = produce(&shared, node, &mut batches).await;
            Completion {
                node,
                batches,
                outcome,
            }
        });
        self.in_flight.insert(
            task.id(),
            InFlight {
                node,
                batches: held,
            },
        );
    }

    fn on_done(&mut self, done: Result<(Id, Completion), JoinError>) {
        match done {
            Ok((id, completion)) => {
                self.in_flight.remove(&id);
                self.node_done(completion.node);
                self.complete(completion);
            }
            Err(e) => {
                // The task's batches went with it; their futures report Closed. The partitions
                // and the flush bookkeeping must not wait for them forever.
                warn!(error = %e, "produce request task failed");
                if let Some(lost) = self.in_flight.remove(&e.id()) {
                    self.node_done(lost.node);
                    let mut acc = self.shared.accumulator();
                    for (topic, partition, id) in lost.batches {
                        acc.release_partition(&topic, partition);
                        acc.finished(id);
                    }
                }
                if self.producer.is_some() {
                    self.renew_producer = true;
                }
                self.shared.resolved.notify_waiters();
            }
        }
    }

    fn node_done(&mut self, node: i32) {
        if let Some(n) = self.requests_per_node.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
    }

    fn complete(&mut self, completion: Completion) {
        let Completion {
            batches, outcome, ..
        } = completion;
        let partitions: Vec<(Arc<str>, i32)> = batches
            .iter()
            .map(|b| (b.topic.clone(), b.partition))
            .collect();
        self.resolve(batches, outcome);
        self.report_resolved(&partitions);
    }

    fn resolve(&mut self, batches: Vec<ProducerBatch>, outcome: Outcome) {
        match outcome {
            Outcome::Unanswered => {
                for batch in batches {
                    self.succeed(batch, -1, -1);
                }
            }
            Outcome::Failed { error, retriable } => {
                for batch in batches {
                    if retriable {
                        // The broker may be gone or no longer lead: ask again where to send.
                        self.shared.cluster.invalidate(&batch.topic);
                    }
                    self.retry_or_fail(batch, &error, retriable);
                }
            }
            Outcome::Answered(response) => {
                let mut results: HashMap<(String, i32), ProduceResponsePartition> = HashMap::new();
                for topic in response.responses {
                    for p in topic.partition_responses {
                        results.insert((topic.name.clone(), p.index), p);
                    }
                }
                for batch in batches {
                    let key = (batch.topic.to_string(), batch.partition);
                    let Some(result) = results.remove(&key) else {
                        let error = ClientError::Invalid(format!(
                            "the Produce response has no answer for {}-{}",
                            key.0, key.1
                        ));
                        self.fail(batch, &error);
                        continue;
                    };
                    let code = ErrorCode::from_code(result.error_code);
                    match code {
                        ErrorCode::None => {
                            self.succeed(batch, result.base_offset, result.log_append_time_ms)
                        }
                        // Already written by an earlier attempt whose answer was lost; a
                        // broker that says so without the offsets leaves them unknown.
                        ErrorCode::DuplicateSequenceNumber => self.succeed(batch, -1, -1),
                        code => {
                            let error = ClientError::broker(
                                code,
                                result.error_message,
                                format!("produce to {}-{}", key.0, key.1),
                            );
                            if needs_metadata_refresh(code) {
                                self.shared.cluster.invalidate(&batch.topic);
                            }
                            self.retry_or_fail(batch, &error, is_retriable_code(code));
                        }
                    }
                }
            }
        }
    }

    fn retry_or_fail(&mut self, batch: ProducerBatch, error: &ClientError, retriable: bool) {
        let now = Instant::now();
        if retriable && batch.attempts < self.shared.config.retries && now < batch.deadline() {
            debug!(
                topic = %batch.topic,
                partition = batch.partition,
                attempt = batch.attempts + 1,
                records = batch.record_count(),
                sequence = ?batch.sequence.map(|s| s.2),
                error = %error,
                "retrying produce"
            );
            let at = now + self.shared.cluster.config().retry_backoff;
            self.shared.accumulator().requeue(batch, at);
        } else {
            self.fail(batch, error);
        }
    }

    fn succeed(&mut self, batch: ProducerBatch, base_offset: i64, log_append_time: i64) {
        let id = batch.id;
        batch.succeed(base_offset, log_append_time);
        self.finished(id);
    }

    fn fail(&mut self, batch: ProducerBatch, error: &ClientError) {
        if batch.sequence.is_some() {
            self.renew_producer = true;
        }
        debug!(batch = ?batch, error = %error, "records failed");
        let id = batch.id;
        batch.fail(error);
        self.finished(id);
    }

    fn finished(&mut self, id: u64) {
        self.resolved.push(id);
    }

    /// Tells the accumulator, under one lock, which partitions' requests came back and which
    /// batches are resolved, then wakes flushes.
    fn report_resolved(&mut self, partitions: &[(Arc<str>, i32)]) {
        if partitions.is_empty() && self.resolved.is_empty() {
            return;
        }
        {
            let mut acc = self.shared.accumulator();
            for (topic, partition) in partitions {
                acc.release_partition(topic, *partition);
            }
            for id in self.resolved.drain(..) {
                acc.finished(id);
            }
        }
        self.shared.resolved.notify_waiters();
    }
}

/// Sends one Produce request with `batches` to `node`, encoding each batch on its first trip.
async fn produce(shared: &Shared, node: i32, batches: &mut [ProducerBatch]) -> Outcome {
    let config = &shared.config;
    // Not reaching the leader is retriable whatever the reason: it may be restarting, or
    // leadership may have moved to a broker the metadata has yet to name.
    let conn = match shared.cluster.connection(node, Lane::Default).await {
        Ok(c) => c,
        Err(error) => {
            return Outcome::Failed {
                error,
                retriable: true,
            }
        }
    };
    // v3 is the first with record batches (magic 2).
    let version = match conn.version_for::<ProduceRequest>() {
        Ok(v) if v >= 3 => v,
        _ => {
            return Outcome::Failed {
                error: ClientError::UnsupportedVersion { api: "Produce" },
                retriable: false,
            }
        }
    };
    let mut topic_data: Vec<ProduceRequestTopic> = Vec::new();
    for batch in batches.iter_mut() {
        let records = match batch.encode(config.compression) {
            Ok(r) => r,
            Err(error) => {
                return Outcome::Failed {
                    error,
                    retriable: false,
                }
            }
        };
        let partition = ProduceRequestPartition {
            index: batch.partition,
            records: Some(records),
        };
        match topic_data.iter_mut().find(|t| *t.name == *batch.topic) {
            Some(t) => t.partition_data.push(partition),
            None => topic_data.push(ProduceRequestTopic {
                name: batch.topic.to_string(),
                partition_data: vec![partition],
            }),
        }
    }
    let request_timeout = config.common.request_timeout;
    let request = ProduceRequest {
        transactional_id: None,
        acks: config.acks.wire(),
        timeout_ms: request_timeout.as_millis().min(i32::MAX as u128) as i32,
        topic_data,
    };
    let result = if config.acks == Acks::None {
        conn.send_unanswered(version, &request)
            .await
            .map(|()| Outcome::Unanswered)
    } else {
        conn.send_at(version, &request, request_timeout)
            .await
            .map(Outcome::Answered)
    };
    result.unwrap_or_else(|error| Outcome::Failed {
        retriable: error.is_retriable(),
        error,
    })
}
