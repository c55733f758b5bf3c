//! `WorkerSinkTask`: consumes the connector's topics in group `connect-<name>`, converts each
//! record and hands batches to the sink task. Offsets are committed only after the task's
//! `pre_commit` says the data is durable: at-least-once delivery.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_client::consumer::{OffsetAndMetadata, RebalanceListener};
use sluice_client::{Consumer, ConsumerRecord, Producer, ProducerRecord};
use tokio::time::Instant;

use super::worker::TaskSetup;
use crate::connector::{Header, SinkRecord, SinkTask, SinkTaskContext, TopicPartition};
use crate::data::{Schema, Value};
use crate::error::{ConnectError, Result};

/// The longest a poll waits, so a stop request is noticed promptly.
const MAX_POLL_WAIT: Duration = Duration::from_millis(200);

type ClientPartition = sluice_client::TopicPartition;

fn to_connect_tp(tp: &ClientPartition) -> TopicPartition {
    TopicPartition::new(tp.topic.clone(), tp.partition)
}

fn to_client_tp(tp: &TopicPartition) -> ClientPartition {
    ClientPartition::new(tp.topic.clone(), tp.partition)
}

/// Partition changes seen during a poll. The consumer's listener cannot await the sink task,
/// so the changes are recorded here and acted on right after the poll returns.
#[derive(Default)]
struct Rebalances {
    revoked: Vec<TopicPartition>,
    assigned: Vec<TopicPartition>,
}

struct Recorder(Arc<Mutex<Rebalances>>);

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[ClientPartition]) {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        r.revoked.extend(partitions.iter().map(to_connect_tp));
    }

    fn on_partitions_assigned(&mut self, partitions: &[ClientPartition]) {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        r.assigned.extend(partitions.iter().map(to_connect_tp));
    }
}

pub(crate) struct WorkerSinkTask {
    pub(crate) setup: TaskSetup,
    pub(crate) task: Box<dyn SinkTask>,
}

/// The records for the task, and (position in the poll, error) of the skipped ones.
type Converted = (Vec<SinkRecord>, Vec<(usize, String)>);

/// Where records that could not be converted or transformed go, with errors.tolerance=all.
struct DeadLetterQueue {
    topic: String,
    context_headers: bool,
    producer: Producer,
}

impl DeadLetterQueue {
    /// Sends the record as it was consumed (raw key, value and headers), plus Kafka's
    /// `__connect.errors.*` context headers if asked for, and waits for the acknowledgement
    /// so the record is safe before its offset is committed.
    async fn send(&self, r: &ConsumerRecord, error: &str) -> Result<()> {
        let mut record = ProducerRecord::new(self.topic.clone()).timestamp(r.timestamp);
        record.key = r.key.clone();
        record.value = r.value.clone();
        record.headers = r.headers.clone();
        if self.context_headers {
            for (k, v) in [
                ("__connect.errors.topic", r.topic.clone()),
                ("__connect.errors.partition", r.partition.to_string()),
                ("__connect.errors.offset", r.offset.to_string()),
                ("__connect.errors.exception.message", error.to_string()),
            ] {
                record = record.header(k, v.into_bytes());
            }
        }
        let delivery = self.producer.send(record).await.map_err(|e| {
            ConnectError::Connector(format!("dead letter queue {}: {e}", self.topic))
        })?;
        delivery
            .await
            .map(|_| ())
            .map_err(|e| ConnectError::Connector(format!("dead letter queue {}: {e}", self.topic)))
    }
}

/// Offsets the worker tracks per partition: the next offset to hand to the task, and the last
/// one committed to the group.
#[derive(Default)]
struct Progress {
    current: HashMap<TopicPartition, i64>,
    committed: HashMap<TopicPartition, i64>,
}

impl WorkerSinkTask {
    pub(crate) async fn run(mut self) {
        let (name, id) = (self.setup.connector.clone(), self.setup.id);
        match self.execute().await {
            Ok(()) => self.setup.statuses.task_stopped(&name, id),
            Err(e) => {
                tracing::error!(connector = %name, task = id, error = %e, "sink task failed");
                self.setup.statuses.task_failed(&name, id, &e.to_string());
            }
        }
    }

    async fn execute(&mut self) -> Result<()> {
        let s = &self.setup;
        let defaults = crate::connector::Props::from([
            // Kafka Connect's sink default: a new connector reads its topics from the start.
            ("auto.offset.reset".to_string(), "earliest".to_string()),
        ]);
        let group = crate::connector::Props::from([(
            "group.id".to_string(),
            format!("connect-{}", s.connector),
        )]);
        let mut client = s.config.client_config(
            &format!("connector-consumer-{}-{}", s.connector, s.id),
            &[
                &defaults,
                &s.config.consumer_overrides,
                &group,
                &s.connector_config.consumer_overrides,
            ],
        );
        // Offsets are committed by the worker after the task has made the data durable; an
        // automatic commit would run ahead of it.
        client.insert("enable.auto.commit", "false");
        let mut consumer = Consumer::new(client)
            .map_err(|e| ConnectError::Connector(format!("cannot create the consumer: {e}")))?;
        let rebalances = Arc::new(Mutex::new(Rebalances::default()));
        self.subscribe(&mut consumer, Recorder(rebalances.clone()))?;
        let context = SinkTaskContext::new(self.setup.props.clone());
        // Everything taken from the setup first: it is not shared across threads, and the
        // producer's creation awaits.
        let dead_letter = self
            .setup
            .connector_config
            .dead_letter_topic
            .clone()
            .map(|topic| {
                let s = &self.setup;
                let client = s.config.client_config(
                    &format!("connector-dlq-producer-{}-{}", s.connector, s.id),
                    &[
                        &s.config.producer_overrides,
                        &s.connector_config.producer_overrides,
                    ],
                );
                (
                    topic,
                    s.connector_config.dead_letter_context_headers,
                    client,
                )
            });
        let dead_letters = match dead_letter {
            Some((topic, context_headers, client)) => {
                let producer = Producer::new(client).await.map_err(|e| {
                    ConnectError::Connector(format!("cannot create the dead letter producer: {e}"))
                })?;
                Some(DeadLetterQueue {
                    topic,
                    context_headers,
                    producer,
                })
            }
            None => None,
        };
        let result = self
            .consume(&mut consumer, &context, &rebalances, dead_letters.as_ref())
            .await;
        if let Some(dlq) = dead_letters {
            dlq.producer.close().await;
        }
        if let Err(e) = consumer.close().await {
            tracing::warn!(connector = %self.setup.connector, error = %e, "closing the consumer");
        }
        result
    }

    fn subscribe(&self, consumer: &mut Consumer, recorder: Recorder) -> Result<()> {
        let props = &self.setup.props;
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let subscribed = match (get("topics"), get("topics.regex")) {
            (Some(topics), None) => {
                let topics: Vec<String> = topics
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect();
                consumer.subscribe_with_listener(topics, recorder)
            }
            (None, Some(regex)) => consumer.subscribe_pattern_with_listener(regex, recorder),
            _ => {
                return Err(ConnectError::Config(format!(
                    "sink connector {} needs exactly one of topics and topics.regex",
                    self.setup.connector
                )))
            }
        };
        subscribed.map_err(|e| ConnectError::Config(format!("cannot subscribe: {e}")))
    }

    async fn consume(
        &mut self,
        consumer: &mut Consumer,
        context: &SinkTaskContext,
        rebalances: &Arc<Mutex<Rebalances>>,
        dead_letters: Option<&DeadLetterQueue>,
    ) -> Result<()> {
        self.task
            .start(self.setup.props.clone(), context.clone())
            .await?;
        self.setup
            .statuses
            .task_running(&self.setup.connector, self.setup.id);
        let interval = self.setup.config.offset_flush_interval;
        let mut next_commit = Instant::now() + interval;
        let mut progress = Progress::default();
        let outcome: Result<()> = async {
            while !*self.setup.stop.borrow() {
                let wait = next_commit
                    .saturating_duration_since(Instant::now())
                    .min(MAX_POLL_WAIT);
                let polled = consumer
                    .poll(wait)
                    .await
                    .map_err(|e| ConnectError::Connector(format!("consumer poll: {e}")))?;
                self.apply_rebalances(consumer, rebalances, &mut progress)
                    .await?;
                let polled = self.hold_back_if_paused(consumer, polled)?;
                let (records, failed) = self.convert_all(&polled)?;
                if let Some(dlq) = dead_letters {
                    for (i, error) in &failed {
                        dlq.send(&polled[*i], error).await?;
                    }
                }
                self.task.put(records).await?;
                // Only what the task accepted counts as consumed. A poll returns each
                // partition's records as one run in offset order, so the end of a run is all
                // that needs noting.
                for (i, r) in polled.iter().enumerate() {
                    let run_ends = polled.get(i + 1).map_or(true, |next| {
                        next.partition != r.partition || next.topic != r.topic
                    });
                    if run_ends {
                        progress.current.insert(
                            TopicPartition::new(r.topic.clone(), r.partition),
                            r.offset + 1,
                        );
                    }
                }
                self.apply_context(consumer, context, &mut progress)?;
                if Instant::now() >= next_commit || context.take_commit_request() {
                    self.commit(consumer, &mut progress, None).await;
                    next_commit = Instant::now() + interval;
                }
            }
            Ok(())
        }
        .await;
        // After a failure nothing is committed: the task may not have written what it was
        // given, and the group's last commit is the safe restart point.
        if outcome.is_ok() {
            self.commit(consumer, &mut progress, None).await;
        }
        let assigned: Vec<TopicPartition> =
            consumer.assignment().iter().map(to_connect_tp).collect();
        let closed = self.task.close(&assigned).await;
        let stopped = self.task.stop().await;
        outcome.and(closed).and(stopped)
    }

    async fn apply_rebalances(
        &mut self,
        consumer: &mut Consumer,
        rebalances: &Arc<Mutex<Rebalances>>,
        progress: &mut Progress,
    ) -> Result<()> {
        let Rebalances { revoked, assigned } =
            std::mem::take(&mut *rebalances.lock().unwrap_or_else(|p| p.into_inner()));
        if !revoked.is_empty() {
            // Best effort: the group may already have moved on, in which case the new owner
            // starts from the previous commit and some records are delivered twice.
            let only: BTreeSet<TopicPartition> = revoked.iter().cloned().collect();
            self.commit(consumer, progress, Some(&only)).await;
            self.task.close(&revoked).await?;
            for tp in &revoked {
                progress.current.remove(tp);
                progress.committed.remove(tp);
            }
        }
        if !assigned.is_empty() {
            self.task.open(&assigned).await?;
        }
        Ok(())
    }

    /// A pause that lands while a poll is under way must still stop delivery at once: what
    /// that poll returned is rewound and given to the task after the resume instead.
    fn hold_back_if_paused(
        &self,
        consumer: &mut Consumer,
        polled: Vec<ConsumerRecord>,
    ) -> Result<Vec<ConsumerRecord>> {
        if polled.is_empty() || !*self.setup.paused.borrow() {
            return Ok(polled);
        }
        let mut first: BTreeMap<ClientPartition, i64> = BTreeMap::new();
        for r in &polled {
            first
                .entry(ClientPartition::new(r.topic.clone(), r.partition))
                .or_insert(r.offset);
        }
        let assigned = consumer.assignment();
        first.retain(|tp, _| assigned.contains(tp));
        for (tp, offset) in &first {
            consumer
                .seek(tp, *offset)
                .map_err(|e| ConnectError::Connector(e.to_string()))?;
        }
        Ok(Vec::new())
    }

    /// Honours the task's requests made through its context: rewinds and pauses.
    fn apply_context(
        &self,
        consumer: &mut Consumer,
        context: &SinkTaskContext,
        progress: &mut Progress,
    ) -> Result<()> {
        let fail = |e: sluice_client::ClientError| ConnectError::Connector(e.to_string());
        for (tp, offset) in context.take_offset_resets() {
            consumer.seek(&to_client_tp(&tp), offset).map_err(fail)?;
            progress.current.insert(tp, offset);
        }
        // A paused connector pauses every assigned partition, on top of the task's own wishes;
        // resuming gives back exactly what the task had not paused itself.
        let wanted: BTreeSet<ClientPartition> = if *self.setup.paused.borrow() {
            consumer.assignment().iter().cloned().collect()
        } else {
            context
                .paused()
                .iter()
                .map(to_client_tp)
                .filter(|tp| consumer.assignment().contains(tp))
                .collect()
        };
        let paused = consumer.paused();
        let resume: Vec<_> = paused.difference(&wanted).cloned().collect();
        let pause: Vec<_> = wanted.difference(&paused).cloned().collect();
        if !resume.is_empty() {
            consumer.resume(&resume).map_err(fail)?;
        }
        if !pause.is_empty() {
            consumer.pause(&pause).map_err(fail)?;
        }
        Ok(())
    }

    /// Asks the task what is durable, then commits it to the group. Failures are logged and
    /// retried at the next commit, as Kafka does; they never lose data, only repeat it.
    async fn commit(
        &mut self,
        consumer: &mut Consumer,
        progress: &mut Progress,
        only: Option<&BTreeSet<TopicPartition>>,
    ) {
        let name = self.setup.connector.clone();
        let offsets: HashMap<TopicPartition, i64> = progress
            .current
            .iter()
            .filter(|(tp, _)| match only {
                Some(o) => o.contains(*tp),
                None => true,
            })
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if offsets.is_empty() {
            return;
        }
        let durable = match self.task.pre_commit(offsets.clone()).await {
            Ok(d) => d,
            Err(e) => {
                // The task could not make its data durable: hand it those records again.
                tracing::warn!(connector = %name, error = %e, "pre_commit failed; rewinding to the last commit");
                for tp in offsets.keys() {
                    if let Some(&committed) = progress.committed.get(tp) {
                        let _ = consumer.seek(&to_client_tp(tp), committed);
                        progress.current.insert(tp.clone(), committed);
                    }
                }
                return;
            }
        };
        let assigned = consumer.assignment();
        let to_commit: BTreeMap<ClientPartition, OffsetAndMetadata> = durable
            .iter()
            .filter(|(tp, o)| {
                assigned.contains(&to_client_tp(tp)) && progress.committed.get(*tp) != Some(*o)
            })
            .map(|(tp, o)| (to_client_tp(tp), OffsetAndMetadata::new(*o)))
            .collect();
        if to_commit.is_empty() {
            return;
        }
        match consumer.commit_sync(Some(to_commit)).await {
            Ok(()) => {
                for (tp, o) in durable {
                    progress.committed.insert(tp, o);
                }
            }
            Err(e) => tracing::warn!(connector = %name, error = %e, "offset commit failed"),
        }
    }

    /// The records for the task, and the positions (in `polled`) and errors of those that were
    /// skipped under errors.tolerance=all, for the dead letter queue.
    fn convert_all(&self, polled: &[ConsumerRecord]) -> Result<Converted> {
        let mut out = Vec::with_capacity(polled.len());
        let mut failed = Vec::new();
        for (i, r) in polled.iter().enumerate() {
            let transformed =
                convert(&self.setup, r).and_then(|record| self.setup.transforms.apply_sink(record));
            match transformed {
                Ok(Some(record)) => out.push(record),
                // Dropped by a transform (Filter): consumed all the same.
                Ok(None) => {}
                Err(e) => {
                    self.setup.tolerate(
                        &e,
                        &format!("record {}-{}@{}", r.topic, r.partition, r.offset),
                    )?;
                    failed.push((i, e.to_string()));
                }
            }
        }
        Ok((out, failed))
    }
}

fn convert(s: &TaskSetup, r: &ConsumerRecord) -> Result<SinkRecord> {
    let key = s.key_converter.to_connect(&r.topic, r.key.as_deref())?;
    let value = s.value_converter.to_connect(&r.topic, r.value.as_deref())?;
    let headers = r
        .headers
        .iter()
        .map(|h| {
            // Kafka's default header converter reads text as strings; other bytes stay bytes.
            let (schema, value) = match &h.value {
                None => (Some(Schema::OPTIONAL_STRING), Value::Null),
                Some(b) => match std::str::from_utf8(b) {
                    Ok(text) => (Some(Schema::STRING), Value::from(text)),
                    Err(_) => (Some(Schema::BYTES), Value::Bytes(b.clone())),
                },
            };
            Header {
                key: h.key.clone(),
                schema,
                value,
            }
        })
        .collect();
    Ok(SinkRecord {
        topic: r.topic.clone(),
        partition: r.partition,
        offset: r.offset,
        key_schema: key.schema,
        key: key.value,
        value_schema: value.schema,
        value: value.value,
        timestamp: Some(r.timestamp),
        headers,
    })
}
