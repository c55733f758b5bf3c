//! `WorkerSourceTask`: polls a source task, converts its records and produces them; a record's
//! source offset is saved only once Kafka has acknowledged it, so a restart never skips data.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_client::producer::RecordHeader;
use sluice_client::{DeliveryFuture, Producer, ProducerRecord};
use tokio::time::Instant;

use super::offset_store::{FileOffsetBackingStore, OffsetBackingStore};
use super::worker::TaskSetup;
use crate::connector::{
    SourceOffset, SourcePartition, SourceRecord, SourceTask, SourceTaskContext,
};
use crate::converter::{Converter, StringConverter};
use crate::data::Value;
use crate::error::{ConnectError, Result};

/// A record on its way to Kafka, kept in poll order so offsets are saved only as a prefix of
/// what was acknowledged.
///
/// Records are boxed: a `SourceRecord` is several hundred bytes, and moving it in and out of
/// the queue cost more than the allocation.
enum InFlight {
    Sending(DeliveryFuture, Box<SourceRecord>),
    /// Dropped by `errors.tolerance=all`: handled, so its offset may be saved.
    Skipped(Box<SourceRecord>),
}

/// The producer batch size source tasks use unless `producer.batch.size` (or a connector's
/// `producer.override.batch.size`) says otherwise. A source polls records in bursts (a file
/// source reads thousands of lines at once), and with Kafka's 16 KB default every 60-odd lines
/// cost a produce request; on the 1 GB file pipeline 16 KB batches took a fifth more CPU and
/// ran at 164 MB/s against 209 MB/s (bench/RESULTS.md).
pub const SOURCE_PRODUCER_BATCH_SIZE: usize = 256 * 1024;

fn source_producer_defaults() -> crate::connector::Props {
    crate::connector::Props::from([(
        "batch.size".to_string(),
        SOURCE_PRODUCER_BATCH_SIZE.to_string(),
    )])
}

/// The latest acknowledged offset of each source partition, by the partition's JSON text
/// (JSON values have no ordering to key a map by).
#[derive(Default)]
struct Acked {
    by_partition: BTreeMap<String, (SourcePartition, SourceOffset)>,
    /// The key the previous record used. Records nearly always come in runs from one
    /// partition, and serialising a partition to find its key would cost more than
    /// everything else done per record here.
    last: Option<String>,
}

impl Acked {
    fn record(&mut self, partition: SourcePartition, offset: SourceOffset) {
        let last = self.last.as_ref();
        if let Some(slot) = last.and_then(|k| self.by_partition.get_mut(k)) {
            if slot.0 == partition {
                slot.1 = offset;
                return;
            }
        }
        let key = serde_json::to_string(&partition).expect("JSON maps serialise");
        self.by_partition.insert(key.clone(), (partition, offset));
        self.last = Some(key);
    }

    fn is_empty(&self) -> bool {
        self.by_partition.is_empty()
    }

    fn take(&mut self) -> Vec<(SourcePartition, SourceOffset)> {
        self.last = None;
        std::mem::take(&mut self.by_partition)
            .into_values()
            .collect()
    }
}

/// How long to wait before polling again after an empty batch, so an idle task does not spin.
const IDLE_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) struct WorkerSourceTask {
    pub(crate) setup: TaskSetup,
    pub(crate) task: Box<dyn SourceTask>,
    pub(crate) store: Arc<FileOffsetBackingStore>,
}

impl WorkerSourceTask {
    pub(crate) async fn run(mut self) {
        let (name, id) = (self.setup.connector.clone(), self.setup.id);
        match self.execute().await {
            Ok(()) => self.setup.statuses.task_stopped(&name, id),
            Err(e) => {
                tracing::error!(connector = %name, task = id, error = %e, "source task failed");
                self.setup.statuses.task_failed(&name, id, &e.to_string());
            }
        }
    }

    async fn execute(&mut self) -> Result<()> {
        let s = &self.setup;
        let client = s.config.client_config(
            &format!("connector-producer-{}-{}", s.connector, s.id),
            &[
                &source_producer_defaults(),
                &s.config.producer_overrides,
                &s.connector_config.producer_overrides,
            ],
        );
        let producer = Producer::new(client)
            .await
            .map_err(|e| ConnectError::Connector(format!("cannot create the producer: {e}")))?;
        let result = self.produce(&producer).await;
        producer.close().await;
        result
    }

    async fn produce(&mut self, producer: &Producer) -> Result<()> {
        let context = SourceTaskContext {
            configs: self.setup.props.clone(),
            offset_storage_reader: self.store.reader(&self.setup.connector),
        };
        self.task.start(self.setup.props.clone(), context).await?;
        self.setup
            .statuses
            .task_running(&self.setup.connector, self.setup.id);

        let mut in_flight = VecDeque::new();
        let mut acked = Acked::default();
        let interval = self.setup.config.offset_flush_interval;
        let mut next_flush = Instant::now() + interval;
        let outcome = loop {
            if *self.setup.stop.borrow() {
                break Ok(());
            }
            if *self.setup.paused.borrow() {
                // Acknowledged records keep their offsets saved while paused; nothing is polled.
                tokio::select! {
                    _ = self.setup.stop.changed() => {}
                    _ = self.setup.paused.changed() => {}
                    _ = tokio::time::sleep_until(next_flush) => {}
                }
            }
            if Instant::now() >= next_flush {
                if let Err(e) = self
                    .commit_offsets(producer, &mut in_flight, &mut acked)
                    .await
                {
                    break Err(e);
                }
                next_flush = Instant::now() + interval;
            }
            if *self.setup.paused.borrow() {
                continue;
            }
            let polled = tokio::select! {
                biased;
                _ = self.setup.stop.changed() => break Ok(()),
                // Dropping a poll cut short by a stop is safe: nothing it read has an offset
                // saved, so a restart reads it again.
                polled = self.task.poll() => polled,
            };
            let records = match polled {
                Ok(records) => records,
                Err(e) => break Err(e),
            };
            if records.is_empty() {
                tokio::select! {
                    _ = self.setup.stop.changed() => {}
                    _ = tokio::time::sleep(IDLE_BACKOFF) => {}
                }
                continue;
            }
            if let Err(e) = self.send_all(producer, records, &mut in_flight).await {
                break Err(e);
            }
            if let Err(e) = self.take_acknowledged(&mut in_flight, &mut acked).await {
                break Err(e);
            }
        };
        // Kafka commits what was acknowledged even when the task failed: those records are in
        // the topic, and not saving their offsets would only duplicate them.
        let committed = self
            .commit_offsets(producer, &mut in_flight, &mut acked)
            .await;
        let stopped = self.task.stop().await;
        outcome.and(committed).and(stopped)
    }

    async fn send_all(
        &mut self,
        producer: &Producer,
        records: Vec<SourceRecord>,
        in_flight: &mut VecDeque<InFlight>,
    ) -> Result<()> {
        for record in records {
            // A transform may drop a record; its offset still counts as processed, as in Kafka.
            let record = if self.setup.transforms.is_empty() {
                record
            } else {
                match self.setup.transforms.apply_source(record.clone()) {
                    Ok(Some(transformed)) => transformed,
                    Ok(None) => {
                        in_flight.push_back(InFlight::Skipped(Box::new(record)));
                        continue;
                    }
                    Err(e) => {
                        self.setup
                            .tolerate(&e, &format!("source record for topic {}", record.topic))?;
                        in_flight.push_back(InFlight::Skipped(Box::new(record)));
                        continue;
                    }
                }
            };
            let converted = convert(&self.setup, &record);
            let producer_record = match converted {
                Ok(r) => r,
                Err(e) => {
                    self.setup
                        .tolerate(&e, &format!("source record for topic {}", record.topic))?;
                    in_flight.push_back(InFlight::Skipped(Box::new(record)));
                    continue;
                }
            };
            let delivery = producer.send(producer_record).await.map_err(|e| {
                ConnectError::Connector(format!("cannot send to topic {}: {e}", record.topic))
            })?;
            in_flight.push_back(InFlight::Sending(delivery, Box::new(record)));
        }
        Ok(())
    }

    /// Takes the acknowledged prefix of `in_flight` without waiting for the rest.
    async fn take_acknowledged(
        &mut self,
        in_flight: &mut VecDeque<InFlight>,
        acked: &mut Acked,
    ) -> Result<()> {
        while let Some(front) = in_flight.front_mut() {
            let done = match front {
                InFlight::Skipped(_) => true,
                InFlight::Sending(delivery, _) => delivery.is_resolved(),
            };
            if !done {
                break;
            }
            let entry = in_flight.pop_front().expect("front exists");
            self.settle(entry, acked).await?;
        }
        Ok(())
    }

    async fn settle(&mut self, entry: InFlight, acked: &mut Acked) -> Result<()> {
        let record = match entry {
            InFlight::Skipped(record) => record,
            InFlight::Sending(delivery, record) => {
                delivery.stored().await.map_err(|e| {
                    ConnectError::Connector(format!(
                        "Kafka did not accept a record for topic {}: {e}",
                        record.topic
                    ))
                })?;
                if let Err(e) = self.task.commit_record(&record) {
                    tracing::warn!(connector = %self.setup.connector, error = %e, "commit_record failed");
                }
                record
            }
        };
        acked.record(record.source_partition, record.source_offset);
        Ok(())
    }

    /// Flushes the producer, saves the offsets of everything acknowledged, then tells the task.
    async fn commit_offsets(
        &mut self,
        producer: &Producer,
        in_flight: &mut VecDeque<InFlight>,
        acked: &mut Acked,
    ) -> Result<()> {
        producer.flush().await;
        let mut failure = None;
        while let Some(entry) = in_flight.pop_front() {
            if let Err(e) = self.settle(entry, acked).await {
                // What follows a failed record is not saved: the prefix rule holds.
                in_flight.clear();
                failure = Some(e);
            }
        }
        let name = &self.setup.connector;
        if !acked.is_empty() {
            self.store.set(name, acked.take());
        }
        // A failed write keeps the offsets in memory for the next flush, as Kafka does.
        if let Err(e) = self.store.flush() {
            tracing::error!(connector = %name, error = %e, "cannot save source offsets");
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if let Err(e) = self.task.commit().await {
            tracing::warn!(connector = %name, error = %e, "source task commit failed");
        }
        Ok(())
    }
}

fn convert(s: &TaskSetup, record: &SourceRecord) -> Result<ProducerRecord> {
    let topic = &record.topic;
    let key = s
        .key_converter
        .from_connect(topic, record.key_schema.as_ref(), &record.key)?;
    let value =
        s.value_converter
            .from_connect(topic, record.value_schema.as_ref(), &record.value)?;
    let headers = record
        .headers
        .iter()
        .map(|h| {
            Ok(RecordHeader {
                key: h.key.clone(),
                value: header_bytes(topic, h.schema.as_ref(), &h.value)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ProducerRecord {
        topic: topic.clone(),
        partition: record.partition,
        key,
        value,
        headers,
        timestamp: record.timestamp,
    })
}

/// Header values as Kafka's default `SimpleHeaderConverter` writes its common cases: bytes as
/// they are, everything else as text.
fn header_bytes(
    topic: &str,
    schema: Option<&crate::data::Schema>,
    value: &Value,
) -> Result<Option<Bytes>> {
    match value {
        Value::Null => Ok(None),
        Value::Bytes(b) => Ok(Some(b.clone())),
        other => StringConverter::default().from_connect(topic, schema, other),
    }
}
