//! `ConsumerConfig`: the consumer's settings under Kafka's property names and defaults, checked
//! once at construction so that a bad value fails there, naming its key, rather than mid-poll.

use std::time::Duration;

use crate::config::{ClientConfig, CommonConfig, COMMON_KEYS};
use crate::error::Result;

/// Every key the consumer reads besides [`COMMON_KEYS`].
pub const CONSUMER_KEYS: &[&str] = &[
    "group.id",
    "group.instance.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "max.poll.records",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.max.wait.ms",
    "max.partition.fetch.bytes",
    "partition.assignment.strategy",
    "isolation.level",
    "client.rack",
    "default.api.timeout.ms",
    "allow.auto.create.topics",
    "exclude.internal.topics",
    // Java clients need these; records here are bytes, so they are accepted and unused, which
    // lets one properties file serve both.
    "key.deserializer",
    "value.deserializer",
];

/// Where a partition without a usable committed offset starts (auto.offset.reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail `poll` instead of guessing.
    None,
}

impl OffsetReset {
    /// The ListOffsets timestamp that asks for this position.
    pub(crate) fn timestamp(self) -> Option<i64> {
        match self {
            OffsetReset::Earliest => Some(-2),
            OffsetReset::Latest => Some(-1),
            OffsetReset::None => None,
        }
    }
}

/// isolation.level. Sluice has no transactions, so every record is committed and both levels
/// read the same records; against a broker with transactions, read_committed here does not
/// filter aborted records (Fetch is sent as read_uncommitted either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

/// A partition assignment strategy, by its protocol name in JoinGroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStrategy {
    Range,
    RoundRobin,
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// The protocol name shared with every Kafka client.
    pub fn protocol_name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Reads a strategy by protocol name or by the Java class name Kafka configs use.
    fn parse(name: &str) -> Option<AssignmentStrategy> {
        let short = name
            .strip_prefix("org.apache.kafka.clients.consumer.")
            .unwrap_or(name);
        match short.to_ascii_lowercase().as_str() {
            "range" | "rangeassignor" => Some(AssignmentStrategy::Range),
            "roundrobin" | "roundrobinassignor" => Some(AssignmentStrategy::RoundRobin),
            "cooperative-sticky" | "cooperativestickyassignor" => {
                Some(AssignmentStrategy::CooperativeSticky)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub common: CommonConfig,
    pub group_id: Option<String>,
    pub group_instance_id: Option<String>,
    pub auto_offset_reset: OffsetReset,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    pub max_poll_records: usize,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub fetch_max_wait: Duration,
    pub max_partition_fetch_bytes: i32,
    /// In preference order.
    pub assignment_strategies: Vec<AssignmentStrategy>,
    pub isolation_level: IsolationLevel,
    pub client_rack: Option<String>,
    /// How long blocking calls (commit_sync, committed, position) keep retrying.
    pub default_api_timeout: Duration,
    pub allow_auto_create_topics: bool,
    pub exclude_internal_topics: bool,
}

impl ConsumerConfig {
    pub fn from_config(config: &ClientConfig) -> Result<ConsumerConfig> {
        config.warn_unknown(&[COMMON_KEYS, CONSUMER_KEYS], "consumer");
        let common = CommonConfig::from_config(config, "sluice-consumer")?;
        let invalid = |key: &str, reason: &str| config.invalid(key, reason);
        let group_id = config
            .get("group.id")
            .filter(|g| !g.is_empty())
            .map(str::to_string);
        let group_instance_id = match config.get("group.instance.id") {
            Some("") => return Err(invalid("group.instance.id", "must not be empty")),
            Some(_) if group_id.is_none() => {
                return Err(invalid("group.instance.id", "needs a group.id"))
            }
            other => other.map(str::to_string),
        };
        let enable_auto_commit = match (config.get("enable.auto.commit"), &group_id) {
            // Kafka's rule: auto-commit defaults on only for group members, and asking for it
            // without a group is a mistake worth reporting.
            (None, None) => false,
            (Some(_), None) if config.bool("enable.auto.commit", false)? => {
                return Err(invalid(
                    "enable.auto.commit",
                    "needs a group.id to commit to",
                ))
            }
            _ => config.bool("enable.auto.commit", true)?,
        };
        let auto_offset_reset = match config
            .choice(
                "auto.offset.reset",
                "latest",
                &["earliest", "latest", "none"],
            )?
            .as_str()
        {
            "earliest" => OffsetReset::Earliest,
            "latest" => OffsetReset::Latest,
            _ => OffsetReset::None,
        };
        let session_timeout = config.millis("session.timeout.ms", 45_000)?;
        let heartbeat_interval = config.millis("heartbeat.interval.ms", 3_000)?;
        if heartbeat_interval.is_zero() || heartbeat_interval >= session_timeout {
            return Err(invalid(
                "heartbeat.interval.ms",
                "must be above 0 and below session.timeout.ms",
            ));
        }
        let max_poll_interval = config.millis("max.poll.interval.ms", 300_000)?;
        if max_poll_interval.is_zero() || max_poll_interval.as_millis() > i32::MAX as u128 {
            return Err(invalid(
                "max.poll.interval.ms",
                "expected 1 to 2147483647 milliseconds",
            ));
        }
        if session_timeout.as_millis() > i32::MAX as u128 {
            return Err(invalid(
                "session.timeout.ms",
                "expected at most 2147483647 milliseconds",
            ));
        }
        let strategy_names = match config.get("partition.assignment.strategy") {
            None => vec!["range".to_string(), "cooperative-sticky".to_string()],
            Some(_) => config.list("partition.assignment.strategy"),
        };
        let mut assignment_strategies = Vec::new();
        for name in &strategy_names {
            let s = AssignmentStrategy::parse(name).ok_or_else(|| {
                invalid(
                    "partition.assignment.strategy",
                    &format!("unknown assignor {name:?}: expected range, roundrobin or cooperative-sticky (or their Java class names)"),
                )
            })?;
            if !assignment_strategies.contains(&s) {
                assignment_strategies.push(s);
            }
        }
        if assignment_strategies.is_empty() {
            return Err(invalid(
                "partition.assignment.strategy",
                "at least one assignor is needed",
            ));
        }
        let isolation_level = match config
            .choice(
                "isolation.level",
                "read_uncommitted",
                &["read_uncommitted", "read_committed"],
            )?
            .as_str()
        {
            "read_committed" => IsolationLevel::ReadCommitted,
            _ => IsolationLevel::ReadUncommitted,
        };
        let fetch_max_wait = config.millis("fetch.max.wait.ms", 500)?;
        if fetch_max_wait.as_millis() > i32::MAX as u128 {
            return Err(invalid(
                "fetch.max.wait.ms",
                "expected at most 2147483647 milliseconds",
            ));
        }
        Ok(ConsumerConfig {
            group_id,
            group_instance_id,
            auto_offset_reset,
            enable_auto_commit,
            auto_commit_interval: config.millis("auto.commit.interval.ms", 5_000)?,
            session_timeout,
            heartbeat_interval,
            max_poll_interval,
            max_poll_records: config.number("max.poll.records", 500usize, 1, i32::MAX as usize)?,
            fetch_min_bytes: config.number("fetch.min.bytes", 1, 0, i32::MAX)?,
            fetch_max_bytes: config.number("fetch.max.bytes", 52_428_800, 0, i32::MAX)?,
            fetch_max_wait,
            max_partition_fetch_bytes: config.number(
                "max.partition.fetch.bytes",
                1_048_576,
                0,
                i32::MAX,
            )?,
            assignment_strategies,
            isolation_level,
            client_rack: config
                .get("client.rack")
                .filter(|r| !r.is_empty())
                .map(str::to_string),
            default_api_timeout: config.millis("default.api.timeout.ms", 60_000)?,
            allow_auto_create_topics: config.bool("allow.auto.create.topics", true)?,
            exclude_internal_topics: config.bool("exclude.internal.topics", true)?,
            common,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ClientConfig {
        ClientConfig::new().set("bootstrap.servers", "localhost:9092")
    }

    #[test]
    fn kafka_defaults() {
        let c = ConsumerConfig::from_config(&base().set("group.id", "g")).unwrap();
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert!(c.enable_auto_commit);
        assert_eq!(c.auto_commit_interval, Duration::from_secs(5));
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(c.max_poll_interval, Duration::from_secs(300));
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.fetch_min_bytes, 1);
        assert_eq!(c.fetch_max_bytes, 52_428_800);
        assert_eq!(c.fetch_max_wait, Duration::from_millis(500));
        assert_eq!(c.max_partition_fetch_bytes, 1_048_576);
        assert_eq!(
            c.assignment_strategies,
            [
                AssignmentStrategy::Range,
                AssignmentStrategy::CooperativeSticky
            ]
        );
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert_eq!(c.group_instance_id, None);
    }

    #[test]
    fn strategies_by_protocol_or_class_name() {
        let c = ConsumerConfig::from_config(&base().set(
            "partition.assignment.strategy",
            "org.apache.kafka.clients.consumer.RoundRobinAssignor, cooperative-sticky,\
             org.apache.kafka.clients.consumer.RangeAssignor",
        ))
        .unwrap();
        assert_eq!(
            c.assignment_strategies,
            [
                AssignmentStrategy::RoundRobin,
                AssignmentStrategy::CooperativeSticky,
                AssignmentStrategy::Range
            ]
        );
        let e = ConsumerConfig::from_config(&base().set(
            "partition.assignment.strategy",
            "org.apache.kafka.clients.consumer.StickyAssignor",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("partition.assignment.strategy"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("auto.offset.reset", "smallest"),
            ("max.poll.records", "0"),
            ("heartbeat.interval.ms", "50000"),
            ("isolation.level", "serializable"),
            ("enable.auto.commit", "yes"),
        ] {
            let e = ConsumerConfig::from_config(&base().set("group.id", "g").set(key, value))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn group_settings_need_a_group() {
        let c = ConsumerConfig::from_config(&base()).unwrap();
        assert_eq!(c.group_id, None);
        assert!(!c.enable_auto_commit, "nothing to auto-commit to");
        assert!(ConsumerConfig::from_config(&base().set("enable.auto.commit", "true")).is_err());
        assert!(ConsumerConfig::from_config(&base().set("group.instance.id", "i")).is_err());
        let c = ConsumerConfig::from_config(
            &base()
                .set("group.id", "g")
                .set("group.instance.id", "i-1")
                .set("isolation.level", "read_committed"),
        )
        .unwrap();
        assert_eq!(c.group_instance_id.as_deref(), Some("i-1"));
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
    }
}
