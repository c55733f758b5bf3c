//! `StreamsConfig`: a streams app's settings under Kafka Streams' property names, checked once,
//! and the client configs (consumer, restore consumer, producer, admin) derived from them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_client::config::COMMON_KEYS;
use sluice_client::ClientConfig;

use super::partition_group::TaskIdle;
use crate::error::StreamsError;
use crate::record::{InputRecord, RecordTimestampExtractor, TimestampExtractor};
use crate::task::{DeserializationErrorPolicy, DEFAULT_CACHE_MAX_BYTES};

/// Every key read here; others are passed to the clients (see [`StreamsConfig`]).
pub const STREAMS_KEYS: &[&str] = &[
    "application.id",
    "bootstrap.servers",
    "num.stream.threads",
    "commit.interval.ms",
    "state.dir",
    "processing.guarantee",
    "default.timestamp.extractor",
    "default.deserialization.exception.handler",
    "replication.factor",
    "poll.ms",
    "statestore.cache.max.bytes",
    "cache.max.bytes.buffering",
    "max.task.idle.ms",
    "buffered.records.per.partition",
];

/// Settings by Kafka Streams' names:
///
/// - `application.id` (required): the consumer group id, and the prefix of internal topics and
///   of the state directory.
/// - `bootstrap.servers` (required).
/// - `num.stream.threads` (1): stream threads, each one consumer group member with its tasks.
/// - `commit.interval.ms` (30000): how often tasks are flushed, outputs awaited and offsets
///   committed.
/// - `state.dir` (`/tmp/sluice-streams`): tasks keep persistent stores and checkpoints in
///   `<state.dir>/<application.id>/<task>`.
/// - `processing.guarantee` (`at_least_once`): the only one offered; `exactly_once_v2` (or
///   `exactly_once`) is refused, since it needs transactions.
/// - `default.timestamp.extractor`: `FailOnInvalidTimestamp` (the record's timestamp; the
///   default), `UsePartitionTimeOnInvalidTimestamp`, or `WallclockTimestampExtractor` (Java
///   package prefixes accepted); or any extractor set in code with
///   [`StreamsConfig::default_timestamp_extractor`].
/// - `default.deserialization.exception.handler`: `LogAndFailExceptionHandler` (default) or
///   `LogAndContinueExceptionHandler`.
/// - `replication.factor` (-1, the broker's default): of the internal topics.
/// - `poll.ms` (100): the longest a stream thread waits in one poll.
/// - `statestore.cache.max.bytes` (or its older name `cache.max.bytes.buffering`; 10485760):
///   bytes of record cache for all threads, split evenly among them and each thread's share
///   among its tasks. Aggregations and tables hold their latest update per key there until a
///   commit (or until the task's share is full), so a busy key writes one changelog record and
///   one downstream update per commit instead of one per input record. 0 turns caching off.
/// - `max.task.idle.ms` (0): a task reading several partitions (a join's two sides) processes
///   their records in timestamp order, and while one of them is empty but has records on the
///   broker it waits for them (up to 2 s); a caught-up empty partition is waited for this long
///   for new records; -1 never waits.
/// - `buffered.records.per.partition` (1000): records fetched and not yet processed, per
///   partition, before its fetching pauses.
///
/// Client settings: `consumer.`, `producer.` and `admin.` prefixed keys go, unprefixed, to that
/// client only (`restore.consumer.` to the consumer restoring stores); the clients' common keys
/// (`client.id`, `request.timeout.ms`, `retry.backoff.ms`, ...) given without a prefix go to all.
/// The runtime fixes `group.id`, `enable.auto.commit` (false) and the range assignor, which
/// keeps partition `p` of co-partitioned topics on one member.
#[derive(Clone)]
pub struct StreamsConfig {
    props: BTreeMap<String, String>,
    extractor: Option<Arc<dyn TimestampExtractor>>,
}

/// The parsed settings the runtime runs with.
#[derive(Clone)]
pub(crate) struct Settings {
    pub application_id: String,
    pub num_threads: usize,
    pub commit_interval: Duration,
    pub state_dir: PathBuf,
    pub extractor: Arc<dyn TimestampExtractor>,
    pub deserialization_errors: DeserializationErrorPolicy,
    pub replication_factor: i16,
    pub poll: Duration,
    /// The record cache budget of all threads together.
    pub cache_max_bytes: usize,
    pub task_idle: TaskIdle,
    pub buffered_per_partition: usize,
}

/// The record's timestamp, or (when negative) the partition's latest timestamp.
struct PartitionTimeOnInvalid;

impl TimestampExtractor for PartitionTimeOnInvalid {
    fn extract(&self, record: &InputRecord, partition_time: i64) -> i64 {
        if record.timestamp >= 0 {
            record.timestamp
        } else {
            partition_time
        }
    }
}

struct WallClock;

impl TimestampExtractor for WallClock {
    fn extract(&self, _record: &InputRecord, _partition_time: i64) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig::new()
    }
}

impl StreamsConfig {
    pub fn new() -> StreamsConfig {
        StreamsConfig {
            props: BTreeMap::new(),
            extractor: None,
        }
    }

    /// Sets a property (builder style).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> StreamsConfig {
        self.props.insert(key.into(), value.into());
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(|v| v.trim())
    }

    /// The extractor for sources that name none, overriding `default.timestamp.extractor`.
    pub fn default_timestamp_extractor(
        mut self,
        extractor: impl TimestampExtractor,
    ) -> StreamsConfig {
        self.extractor = Some(Arc::new(extractor));
        self
    }

    fn invalid(&self, key: &str, why: &str) -> StreamsError {
        StreamsError::Config(format!(
            "{key}={:?}: {why}",
            self.get(key).unwrap_or_default()
        ))
    }

    fn number<T: std::str::FromStr + PartialOrd + Copy>(
        &self,
        key: &str,
        default: T,
        min: T,
    ) -> Result<T, StreamsError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<T>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(self.invalid(key, "not a number in range")),
            },
        }
    }

    pub(crate) fn settings(&self) -> Result<Settings, StreamsError> {
        let application_id = self.get("application.id").unwrap_or_default().to_string();
        if application_id.is_empty() {
            return Err(StreamsError::Config("application.id is required".into()));
        }
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !application_id.chars().all(ok_char) {
            return Err(self.invalid(
                "application.id",
                "only ASCII letters, digits, '.', '_' and '-' (it prefixes topic names)",
            ));
        }
        if self.get("bootstrap.servers").map_or(true, str::is_empty) {
            return Err(StreamsError::Config("bootstrap.servers is required".into()));
        }
        match self.get("processing.guarantee").unwrap_or("at_least_once") {
            "at_least_once" => {}
            "exactly_once" | "exactly_once_beta" | "exactly_once_v2" => {
                return Err(self.invalid(
                    "processing.guarantee",
                    "exactly-once needs transactions, which Sluice Streams does not offer yet; \
                     use at_least_once",
                ))
            }
            _ => return Err(self.invalid("processing.guarantee", "expected at_least_once")),
        }
        let extractor: Arc<dyn TimestampExtractor> =
            match &self.extractor {
                Some(e) => e.clone(),
                None => {
                    let name = self
                        .get("default.timestamp.extractor")
                        .unwrap_or("FailOnInvalidTimestamp");
                    match name.rsplit('.').next().unwrap_or(name) {
                        "FailOnInvalidTimestamp" => Arc::new(RecordTimestampExtractor),
                        "UsePartitionTimeOnInvalidTimestamp" => Arc::new(PartitionTimeOnInvalid),
                        "WallclockTimestampExtractor" => Arc::new(WallClock),
                        _ => return Err(self.invalid(
                            "default.timestamp.extractor",
                            "unknown extractor (set one in code with default_timestamp_extractor)",
                        )),
                    }
                }
            };
        let handler = self
            .get("default.deserialization.exception.handler")
            .unwrap_or("LogAndFailExceptionHandler");
        let deserialization_errors = match handler.rsplit('.').next().unwrap_or(handler) {
            "LogAndFailExceptionHandler" => DeserializationErrorPolicy::Fail,
            "LogAndContinueExceptionHandler" => DeserializationErrorPolicy::LogAndContinue,
            _ => {
                return Err(self.invalid(
                    "default.deserialization.exception.handler",
                    "expected LogAndFailExceptionHandler or LogAndContinueExceptionHandler",
                ))
            }
        };
        Ok(Settings {
            num_threads: self.number("num.stream.threads", 1usize, 1)?,
            commit_interval: Duration::from_millis(self.number(
                "commit.interval.ms",
                30_000u64,
                0,
            )?),
            state_dir: PathBuf::from(self.get("state.dir").unwrap_or("/tmp/sluice-streams")),
            extractor,
            deserialization_errors,
            replication_factor: self.number("replication.factor", -1i16, -1)?,
            poll: Duration::from_millis(self.number("poll.ms", 100u64, 1)?),
            task_idle: match self.number("max.task.idle.ms", 0i64, -1)? {
                -1 => TaskIdle::Never,
                ms => TaskIdle::Up(Duration::from_millis(ms as u64)),
            },
            buffered_per_partition: self.number("buffered.records.per.partition", 1000usize, 1)?,
            cache_max_bytes: match self.get("statestore.cache.max.bytes") {
                Some(_) => self.number("statestore.cache.max.bytes", 0usize, 0)?,
                None => self.number("cache.max.bytes.buffering", DEFAULT_CACHE_MAX_BYTES, 0)?,
            },
            application_id,
        })
    }

    /// Common client keys given unprefixed, then `prefix`ed ones (which win).
    fn client(&self, prefixes: &[&str], client_id: String) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.props {
            if COMMON_KEYS.contains(&k.as_str()) {
                c.insert(k.clone(), v.clone());
            }
        }
        c.insert("client.id", client_id);
        for prefix in prefixes {
            for (k, v) in &self.props {
                if let Some(rest) = k.strip_prefix(prefix) {
                    c.insert(rest, v.clone());
                }
            }
        }
        c
    }

    /// The group member of stream thread `thread`.
    pub(crate) fn main_consumer(&self, app: &str, thread: usize) -> ClientConfig {
        let mut c = self
            .client(
                &["consumer."],
                format!("{app}-StreamThread-{thread}-consumer"),
            )
            .set_default("auto.offset.reset", "earliest");
        c.insert("group.id", app);
        c.insert("enable.auto.commit", "false");
        c.insert("partition.assignment.strategy", "range");
        c
    }

    /// The assign-mode consumer that reads changelogs into stores; it never commits.
    pub(crate) fn restore_consumer(&self, app: &str, thread: usize) -> ClientConfig {
        let mut c = self.client(
            &["consumer.", "restore.consumer."],
            format!("{app}-StreamThread-{thread}-restore-consumer"),
        );
        for k in [
            "group.id",
            "group.instance.id",
            "partition.assignment.strategy",
        ] {
            c = c.without(k);
        }
        c.insert("enable.auto.commit", "false");
        c.insert("auto.offset.reset", "earliest");
        // Restoring reads whole changelogs: bigger polls than the processing consumer's.
        c.set_default("max.poll.records", "10000")
    }

    pub(crate) fn producer(&self, app: &str, thread: usize) -> ClientConfig {
        self.client(
            &["producer."],
            format!("{app}-StreamThread-{thread}-producer"),
        )
        // Kafka Streams' producer default: records must reach every in-sync replica before
        // the offsets of their inputs are committed.
        .set_default("acks", "all")
        .set_default("linger.ms", "100")
    }

    pub(crate) fn admin(&self, app: &str) -> ClientConfig {
        self.client(&["admin."], format!("{app}-admin"))
    }
}

trait Without {
    fn without(self, key: &str) -> Self;
}

impl Without for ClientConfig {
    /// ClientConfig has no removal: rebuild without `key`.
    fn without(self, key: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in self.entries() {
            if k != key {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> StreamsConfig {
        StreamsConfig::new()
            .set("application.id", "app")
            .set("bootstrap.servers", "127.0.0.1:9092")
    }

    #[test]
    fn defaults_follow_kafka() {
        let s = base().settings().unwrap();
        assert_eq!(s.commit_interval, Duration::from_secs(30));
        assert_eq!(s.num_threads, 1);
        assert_eq!(s.state_dir, PathBuf::from("/tmp/sluice-streams"));
        assert_eq!(s.cache_max_bytes, 10 * 1024 * 1024);
        assert_eq!(s.task_idle, TaskIdle::Up(Duration::ZERO));
        assert_eq!(s.buffered_per_partition, 1000);
        let never = base().set("max.task.idle.ms", "-1").settings().unwrap();
        assert_eq!(never.task_idle, TaskIdle::Never);
        assert!(base().set("max.task.idle.ms", "-2").settings().is_err());
    }

    #[test]
    fn the_cache_size_takes_either_name_the_newer_winning() {
        let old = base()
            .set("cache.max.bytes.buffering", "0")
            .settings()
            .unwrap();
        assert_eq!(old.cache_max_bytes, 0);
        let both = base()
            .set("cache.max.bytes.buffering", "0")
            .set("statestore.cache.max.bytes", "4096")
            .settings()
            .unwrap();
        assert_eq!(both.cache_max_bytes, 4096);
        let bad = base().set("statestore.cache.max.bytes", "-1").settings();
        assert!(bad
            .err()
            .unwrap()
            .to_string()
            .contains("statestore.cache.max.bytes"));
    }

    #[test]
    fn exactly_once_is_refused_with_the_reason() {
        let e = base()
            .set("processing.guarantee", "exactly_once_v2")
            .settings()
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("transactions"), "{e}");
        assert!(base().set("application.id", "").settings().is_err());
    }

    #[test]
    fn prefixed_client_settings_reach_their_client_only() {
        let c = base()
            .set("consumer.session.timeout.ms", "6000")
            .set("producer.linger.ms", "5")
            .set("request.timeout.ms", "7000")
            .set("consumer.group.id", "ignored");
        let consumer = c.main_consumer("app", 1);
        assert_eq!(consumer.get("session.timeout.ms"), Some("6000"));
        assert_eq!(consumer.get("group.id"), Some("app"));
        assert_eq!(consumer.get("linger.ms"), None);
        assert_eq!(consumer.get("request.timeout.ms"), Some("7000"));
        let producer = c.producer("app", 1);
        assert_eq!(producer.get("linger.ms"), Some("5"));
        assert_eq!(producer.get("session.timeout.ms"), None);
        assert_eq!(c.restore_consumer("app", 1).get("group.id"), None);
    }
}
