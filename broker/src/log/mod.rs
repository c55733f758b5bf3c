//! Durable partition storage: segmented logs of v2 record batches kept in wire format, their
//! indexes, idempotent-producer state, leader epochs, recovery after crashes and the
//! per-directory log manager.

mod checkpoint;
mod cleaner;
mod index;
mod leader_epoch;
mod manager;
mod partition_log;
mod producer_state;
mod scan;
mod segment;
#[cfg(test)]
pub(crate) mod test_util;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use checkpoint::Checkpoint;
pub use cleaner::{
    CleanOutcome, CleanStats, CleanerConfig, OffsetMap, DEFAULT_BACKOFF_MS,
    DEFAULT_DEDUPE_BUFFER_BYTES,
};
pub use index::{OffsetIndex, TimeIndex};
pub use leader_epoch::{
    EpochEntry, LeaderEpochFileCache, LEADER_EPOCH_CHECKPOINT, UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
};
pub use manager::LogManager;
pub use partition_log::Log;
pub use producer_state::{BatchMetadata, ProducerStateManager};
pub use segment::LogSegment;

/// cleanup.policy: what happens to data that is no longer needed. Retention deletes old segments;
/// compaction keeps only the latest record per key. Kafka allows both at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Compact,
    CompactAndDelete,
}

impl CleanupPolicy {
    /// Parses Kafka's comma list ("delete", "compact", "compact,delete"); `None` when it names
    /// anything else or nothing.
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let (mut delete, mut compact) = (false, false);
        for word in value.split(',').map(str::trim) {
            match word {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return None,
            }
        }
        match (delete, compact) {
            (true, false) => Some(CleanupPolicy::Delete),
            (false, true) => Some(CleanupPolicy::Compact),
            (true, true) => Some(CleanupPolicy::CompactAndDelete),
            (false, false) => None,
        }
    }

    /// Time and size retention apply.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
        )
    }

    /// The log cleaner keeps the latest record per key.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }
}

/// Per-log settings, named after Kafka's topic configs. `Default` gives Kafka's broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// segment.bytes
    pub segment_bytes: u64,
    /// segment.ms
    pub segment_ms: Option<u64>,
    /// retention.ms; `None` keeps data forever.
    pub retention_ms: Option<i64>,
    /// retention.bytes; `None` means no size limit.
    pub retention_bytes: Option<u64>,
    /// flush.messages
    pub flush_interval_messages: Option<u64>,
    /// flush.ms
    pub flush_interval_ms: Option<u64>,
    /// index.interval.bytes
    pub index_interval_bytes: usize,
    /// segment.index.bytes
    pub max_index_bytes: usize,
    /// cleanup.policy
    pub cleanup_policy: CleanupPolicy,
    /// delete.retention.ms: how long a tombstone outlives its batch's timestamp in a compacted log.
    pub delete_retention_ms: i64,
    /// min.cleanable.dirty.ratio: the share of not-yet-cleaned bytes that makes cleaning worth it.
    pub min_cleanable_dirty_ratio: f64,
    /// min.compaction.lag.ms: segments with newer records than this are left uncompacted.
    pub min_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        const WEEK_MS: u64 = 7 * 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: Some(WEEK_MS),
            retention_ms: Some(WEEK_MS as i64),
            retention_bytes: None,
            flush_interval_messages: None,
            flush_interval_ms: None,
            index_interval_bytes: 4096,
            max_index_bytes: 10 * 1024 * 1024,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
        }
    }
}

/// A topic partition; its `Display` form ("topic-0") is also its directory name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Parses a partition directory name. Topic names may contain '-', so the partition number
    /// is whatever follows the last one.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let partition = partition.parse::<i32>().ok()?;
        Some(TopicPartition::new(topic, partition))
    }

    pub fn dir_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl FromStr for TopicPartition {
    type Err = LogError;

    fn from_str(s: &str) -> Result<TopicPartition, LogError> {
        TopicPartition::from_dir_name(s)
            .ok_or_else(|| LogError::Corrupt(format!("not a topic-partition name: {s:?}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("offset {offset} is out of range: log start {log_start}, log end {log_end}")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("out of order sequence for producer {producer_id}: expected {expected}, received {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("producer epoch is older than the current one")]
    InvalidProducerEpoch,
    /// A leader append under an epoch older than the newest one already in the log.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch { epoch: i32, latest: i32 },
    /// Malformed input handed to `append` (the caller's fault, not the disk's).
    #[error("invalid record batch: {0}")]
    InvalidBatch(String),
    #[error("record batch of {size} bytes exceeds the segment size {max}")]
    BatchTooLarge { size: usize, max: u64 },
    /// On-disk data that cannot be repaired by truncation.
    #[error("corrupt log data: {0}")]
    Corrupt(String),
    #[error("log is closed")]
    Closed,
}

/// What `Log::append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Always -1: only CreateTime is supported, so the broker never stamps batches.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The batch had already been appended (idempotent retry); offsets are the original ones.
    pub duplicate: bool,
}

/// What `Log::read` returns: stored batches, byte for byte, plus the log's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub records: bytes::Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";

/// Kafka's 20-digit zero-padded file name for a segment (or snapshot) starting at `offset`.
pub(crate) fn offset_file_name(offset: i64, extension: &str) -> String {
    format!("{offset:020}.{extension}")
}

/// The base offset encoded in a file name made by `offset_file_name`, if it has `extension`.
pub(crate) fn parse_offset_file_name(path: &Path, extension: &str) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(extension)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Makes a rename or file creation inside `dir` durable.
pub(crate) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partition_dir_names_round_trip() {
        let tp = TopicPartition::new("my-topic-with-dashes", 12);
        assert_eq!(tp.dir_name(), "my-topic-with-dashes-12");
        assert_eq!(TopicPartition::from_dir_name(&tp.dir_name()), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(TopicPartition::from_dir_name("t-"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("t-x1"), None);
        assert_eq!(TopicPartition::from_dir_name("t-0.abc-delete"), None);
        assert!("a-1".parse::<TopicPartition>().is_ok());
    }

    #[test]
    fn offset_file_names() {
        let name = offset_file_name(42, LOG_SUFFIX);
        assert_eq!(name, "00000000000000000042.log");
        assert_eq!(
            parse_offset_file_name(Path::new(&name), LOG_SUFFIX),
            Some(42)
        );
        assert_eq!(parse_offset_file_name(Path::new(&name), INDEX_SUFFIX), None);
        assert_eq!(
            parse_offset_file_name(Path::new("42.log"), LOG_SUFFIX),
            None
        );
    }

    #[test]
    fn default_config_matches_kafka() {
        let c = LogConfig::default();
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.retention_ms, Some(604_800_000));
        assert_eq!(c.index_interval_bytes, 4096);
        assert_eq!(c.max_index_bytes, 10 << 20);
        assert_eq!(c.flush_interval_messages, None);
        assert_eq!(c.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(c.min_compaction_lag_ms, 0);
    }

    #[test]
    fn cleanup_policies() {
        assert_eq!(CleanupPolicy::parse("delete"), Some(CleanupPolicy::Delete));
        assert_eq!(
            CleanupPolicy::parse("compact"),
            Some(CleanupPolicy::Compact)
        );
        for both in ["compact,delete", "delete, compact"] {
            assert_eq!(
                CleanupPolicy::parse(both),
                Some(CleanupPolicy::CompactAndDelete)
            );
        }
        assert_eq!(CleanupPolicy::parse(""), None);
        assert_eq!(CleanupPolicy::parse("compact,nope"), None);
        assert!(CleanupPolicy::CompactAndDelete.deletes());
        assert!(CleanupPolicy::CompactAndDelete.compacts());
        assert!(!CleanupPolicy::Compact.deletes());
        assert!(!CleanupPolicy::Delete.compacts());
    }
}
