//! `Producer`: sends records to topics like Kafka's Java producer — batched per partition,
//! lingering, compressed, retried, idempotent by default — configured by Kafka property names.

mod accumulator;
mod config;
mod outcome;
mod partitioner;
mod sender;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice_protocol::records::BATCH_HEADER_SIZE;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

pub use self::config::{Acks, ProducerConfig, MAX_IN_FLIGHT_IDEMPOTENT, PRODUCER_KEYS};
pub use self::outcome::DeliveryFuture;
pub use self::partitioner::{murmur2, partition_for_key};
pub use sluice_protocol::records::RecordHeader;

use self::accumulator::{max_record_size, Appended, Appending, RecordAccumulator};
use crate::cluster::{Cluster, TopicInfo};
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};

/// A record to send: a topic, optionally a partition, and the record's parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// Chosen by the partitioner when `None`.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
    /// CreateTime in milliseconds since the epoch; the time of `send` when `None`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            ..Default::default()
        }
    }

    pub fn partition(mut self, partition: i32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    pub fn key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    pub fn value(mut self, value: impl Into<Bytes>) -> ProducerRecord {
        self.value = Some(value.into());
        self
    }

    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> ProducerRecord {
        self.headers.push(RecordHeader {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    pub fn headers(mut self, headers: Vec<RecordHeader>) -> ProducerRecord {
        self.headers = headers;
        self
    }

    pub fn timestamp(mut self, millis: i64) -> ProducerRecord {
        self.timestamp = Some(millis);
        self
    }
}

/// Where a record landed. `offset` is -1 when it cannot be known (acks=0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's CreateTime, or the broker's time for topics with LogAppendTime.
    pub timestamp: i64,
}

/// What `send` and the sender task share.
pub(crate) struct Shared {
    config: ProducerConfig,
    cluster: Arc<Cluster>,
    accumulator: Mutex<RecordAccumulator>,
    /// buffer.memory, in bytes: batches hold permits until they are resolved.
    memory: Arc<Semaphore>,
    /// Wakes the sender: a new batch, a flush, a close.
    wake: Notify,
    /// Signalled whenever batches are resolved, for flushes.
    resolved: Notify,
    /// Flushes under way: every batch is ready meanwhile, lingering or not.
    flushing: AtomicUsize,
}

impl Shared {
    fn accumulator(&self) -> MutexGuard<'_, RecordAccumulator> {
        self.accumulator.lock().expect("accumulator lock")
    }
}

pub struct Producer {
    shared: Arc<Shared>,
    sender: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("client_id", &self.shared.config.common.client_id)
            .finish()
    }
}

/// The longest a send places records by the topic metadata it has before checking it with the
/// cluster again; the sender refreshes it meanwhile for topics it sends to.
const METADATA_REUSE: Duration = Duration::from_secs(1);

/// buffer.memory a send took while waiting and has yet to hand to a batch; given back if the
/// send fails instead.
struct HeldMemory<'a> {
    pool: &'a Semaphore,
    bytes: usize,
}

impl Drop for HeldMemory<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.pool.add_permits(self.bytes);
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    /// Reads and checks the settings and starts the sender task. Connects to nothing yet: the
    /// first `send` fetches metadata (must run inside a Tokio runtime).
    pub async fn new(config: ClientConfig) -> Result<Producer> {
        let parsed = ProducerConfig::from_config(&config)?;
        ProducerConfig::warn_unknown(&config);
        Ok(Producer::with_config(parsed))
    }

    /// `new` for settings already read; must run inside a Tokio runtime (it spawns the sender).
    pub fn with_config(config: ProducerConfig) -> Producer {
        let cluster = Cluster::new(config.common.clone(), config.allow_auto_create_topics);
        let memory = Arc::new(Semaphore::new(config.buffer_memory));
        let shared = Arc::new(Shared {
            accumulator: Mutex::new(RecordAccumulator::new(
                config.batch_size,
                config.linger,
                config.delivery_timeout,
                config.common.metadata_max_age.min(METADATA_REUSE),
                memory.clone(),
            )),
            memory,
            wake: Notify::new(),
            resolved: Notify::new(),
            flushing: AtomicUsize::new(0),
            cluster,
            config,
        });
        let sender = tokio::spawn(sender::run(shared.clone()));
        Producer {
            shared,
            sender: Mutex::new(Some(sender)),
        }
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.shared.config
    }

    /// The metadata cache and connections the producer uses.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.shared.cluster
    }

    /// Bytes of buffer.memory free now.
    pub fn available_memory(&self) -> usize {
        self.shared.memory.available_permits()
    }

    /// Queues `record` and returns at once with its `DeliveryFuture`. Waits only for what
    /// `send` cannot do without: the topic's metadata and room in buffer.memory, each for at
    /// most max.block.ms together. Fails for a closed producer, a record larger than
    /// max.request.size or buffer.memory, or a partition the topic does not have.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let shared = &self.shared;
        let config = &shared.config;
        let size = max_record_size(&record.key, &record.value, &record.headers);
        // The most the record can add to buffer.memory: a batch of its own.
        let most = size + BATCH_HEADER_SIZE;
        if most > config.max_request_size {
            return Err(ClientError::Invalid(format!(
                "a record of {most} bytes is larger than max.request.size ({} bytes)",
                config.max_request_size
            )));
        }
        if most > config.buffer_memory {
            return Err(ClientError::Invalid(format!(
                "a record of {most} bytes is larger than buffer.memory ({} bytes)",
                config.buffer_memory
            )));
        }
        // The one clock a send always reads: for the record's CreateTime and the age of the
        // topic's metadata. The monotonic clock is read only to open a batch or to wait.
        let mut now_ms = now_millis();
        let key_hash = match (&record.partition, &record.key) {
            (None, Some(key)) if !config.partitioner_ignore_keys => Some(murmur2(key)),
            _ => None,
        };
        let appending = Appending {
            topic: &record.topic,
            partition: record.partition,
            key_hash,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &record.headers,
            timestamp: record.timestamp.unwrap_or(now_ms),
            max_size: size,
        };
        let mut held = HeldMemory {
            pool: &shared.memory,
            bytes: 0,
        };
        let mut deadline = None;
        loop {
            let appended =
                shared
                    .accumulator()
                    .append(&appending, now_ms, &mut held.bytes, Instant::now)?;
            // Only waits need a deadline, so a send that does not wait reads no more clocks.
            let mut deadline =
                || *deadline.get_or_insert_with(|| Instant::now() + config.max_block);
            match appended {
                Appended::Done { delivery, wake } => {
                    if wake {
                        shared.wake.notify_one();
                    }
                    return Ok(delivery);
                }
                Appended::NeedMetadata => {
                    let topic = self.wait_for_topic(&record.topic, deadline()).await?;
                    now_ms = now_millis();
                    shared
                        .accumulator()
                        .remember_topic(&record.topic, topic, now_ms);
                }
                Appended::NeedMemory => {
                    // A batch this record did not fit in was just sealed: it is ready to go,
                    // and sending it is what frees memory.
                    shared.wake.notify_one();
                    held.bytes += self.wait_for_memory(most, deadline()).await?;
                }
            }
        }
    }

    /// Takes `bytes` of buffer.memory once they are free, waiting until `deadline` at most.
    async fn wait_for_memory(&self, bytes: usize, deadline: Instant) -> Result<usize> {
        let shared = &self.shared;
        let config = &shared.config;
        let n =
            u32::try_from(bytes).map_err(|_| ClientError::Invalid("record too large".into()))?;
        match tokio::time::timeout_at(deadline.into(), shared.memory.acquire_many(n)).await {
            Ok(Ok(permit)) => {
                // Counted by the batch from now on, not by the permit.
                permit.forget();
                Ok(bytes)
            }
            // The semaphore closes with the producer.
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(format!(
                "waiting for {bytes} bytes of buffer.memory ({} bytes) for max.block.ms ({} ms)",
                config.buffer_memory,
                config.max_block.as_millis()
            ))),
        }
    }

    /// `send`, then waits for the outcome.
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.send(record).await?.await
    }

    /// The topic's partitions, waiting up to `deadline` for a topic being created or a broker
    /// coming back; errors other than retriable ones are final.
    async fn wait_for_topic(&self, name: &str, deadline: Instant) -> Result<Arc<TopicInfo>> {
        let cluster = &self.shared.cluster;
        loop {
            let last = match cluster.topic(name).await {
                Ok(t) if !t.partitions.is_empty() => return Ok(t),
                Ok(_) => {
                    cluster.invalidate(name);
                    format!("{name} has no partitions yet")
                }
                Err(e) if e.is_retriable() => e.to_string(),
                Err(e) => return Err(e),
            };
            let backoff = cluster.config().retry_backoff;
            if Instant::now() + backoff >= deadline {
                return Err(ClientError::Timeout(format!(
                    "metadata for topic {name} within max.block.ms ({} ms; last: {last})",
                    self.shared.config.max_block.as_millis()
                )));
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// Sends everything queued now, lingering or not, and waits until each of those records is
    /// acknowledged or has failed (their futures say which). Records sent meanwhile go too.
    pub async fn flush(&self) {
        let shared = &self.shared;
        let _flushing = FlushGuard::new(shared);
        let marker = shared.accumulator().flush_marker();
        shared.wake.notify_one();
        loop {
            let resolved = shared.resolved.notified();
            tokio::pin!(resolved);
            // Registered before checking, so a resolution in between is not missed.
            resolved.as_mut().enable();
            if shared.accumulator().resolved_before(marker) {
                return;
            }
            resolved.await;
        }
    }

    /// Stops taking records, sends everything queued (within delivery.timeout.ms) and stops
    /// the sender. Later sends fail with `ClientError::Closed`.
    pub async fn close(&self) {
        self.begin_close();
        self.flush().await;
        let sender = self.sender.lock().expect("sender handle").take();
        if let Some(sender) = sender {
            if let Err(e) = sender.await {
                tracing::warn!(error = %e, "producer sender task failed");
            }
        }
    }

    fn begin_close(&self) {
        self.shared.accumulator().close();
        // Sends waiting for memory fail now rather than at max.block.ms.
        self.shared.memory.close();
        self.shared.wake.notify_one();
    }
}

impl Drop for Producer {
    /// Dropping without `close` still delivers what was queued: the sender finishes in the
    /// background, as the records' futures may still be awaited.
    fn drop(&mut self) {
        self.begin_close();
    }
}

/// Counts a flush as under way until it ends, even if its caller gives up on it.
struct FlushGuard<'a>(&'a Shared);

impl<'a> FlushGuard<'a> {
    fn new(shared: &'a Shared) -> FlushGuard<'a> {
        shared.flushing.fetch_add(1, Ordering::AcqRel);
        FlushGuard(shared)
    }
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.flushing.fetch_sub(1, Ordering::AcqRel);
    }
}
