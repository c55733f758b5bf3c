//! Per-topic configuration: which keys a topic may set, how each is validated, how
//! IncrementalAlterConfigs operations change a topic's overrides, and how the overrides combine
//! with the broker's defaults into the `LogConfig` its partitions use.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::log::{CleanupPolicy, LogConfig};

/// Kafka's config_source values, as CreateTopics and DescribeConfigs report them.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// How a topic config value must look.
#[derive(Clone, Copy)]
enum Kind {
    /// A whole number no smaller than the minimum.
    Long(i64),
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// A comma list of the listed words.
    List(&'static [&'static str]),
    /// A fraction from 0 to 1.
    Ratio,
    Bool,
}

/// The topic configs Sluice understands, each with the broker property that supplies its
/// default and its value kind. Unknown keys are rejected with INVALID_CONFIG.
const TOPIC_CONFIGS: &[(&str, Option<&str>, Kind)] = &[
    ("cleanup.policy", None, Kind::List(&["delete", "compact"])),
    ("retention.ms", Some("log.retention.ms"), Kind::Long(-1)),
    (
        "retention.bytes",
        Some("log.retention.bytes"),
        Kind::Long(-1),
    ),
    ("segment.bytes", Some("log.segment.bytes"), Kind::Long(14)),
    ("segment.ms", Some("log.roll.ms"), Kind::Long(1)),
    (
        "max.message.bytes",
        Some("message.max.bytes"),
        Kind::Long(0),
    ),
    ("min.insync.replicas", None, Kind::Long(1)),
    (
        "flush.messages",
        Some("log.flush.interval.messages"),
        Kind::Long(1),
    ),
    ("flush.ms", Some("log.flush.interval.ms"), Kind::Long(0)),
    (
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        Kind::Long(0),
    ),
    ("delete.retention.ms", None, Kind::Long(0)),
    ("min.compaction.lag.ms", None, Kind::Long(0)),
    ("max.compaction.lag.ms", None, Kind::Long(1)),
    ("min.cleanable.dirty.ratio", None, Kind::Ratio),
    (
        "compression.type",
        None,
        Kind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    ),
    (
        "message.timestamp.type",
        None,
        Kind::Choice(&["CreateTime"]),
    ),
    ("unclean.leader.election.enable", None, Kind::Bool),
    ("segment.index.bytes", None, Kind::Long(4)),
    ("file.delete.delay.ms", None, Kind::Long(0)),
    ("preallocate", None, Kind::Bool),
];

/// Checks one topic config; the error names the key and says what was expected.
pub fn validate(key: &str, value: &str) -> Result<()> {
    let Some((_, _, kind)) = TOPIC_CONFIGS.iter().find(|(k, _, _)| *k == key) else {
        return Err(BrokerError::InvalidConfig(format!(
            "unknown topic config {key}"
        )));
    };
    let ok = match kind {
        Kind::Long(min) => value.trim().parse::<i64>().is_ok_and(|v| v >= *min),
        Kind::Ratio => value
            .trim()
            .parse::<f64>()
            .is_ok_and(|r| (0.0..=1.0).contains(&r)),
        Kind::List(words) => value.split(',').all(|p| words.contains(&p.trim())),
        Kind::Choice(words) => words.contains(&value.trim()),
        Kind::Bool => matches!(value.trim(), "true" | "false"),
    };
    if ok {
        Ok(())
    } else {
        Err(BrokerError::InvalidConfig(format!(
            "invalid value {value:?} for topic config {key}"
        )))
    }
}

/// One IncrementalAlterConfigs operation on a topic config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    Set(String),
    /// Drops the override, so the default applies again.
    Delete,
    /// Adds the comma-separated items a list config does not have yet.
    Append(String),
    /// Removes the comma-separated items from a list config.
    Subtract(String),
}

/// A topic's overrides after `changes`, each touched key validated. APPEND and SUBTRACT start
/// from the effective value, so appending to a topic without an override extends the default.
/// The input is left alone: on error the caller still holds the overrides it had.
pub fn alter(
    broker: &BrokerConfig,
    current: &BTreeMap<String, String>,
    changes: &[(String, AlterOp)],
) -> Result<BTreeMap<String, String>> {
    let mut next = current.clone();
    for (key, op) in changes {
        let Some((_, _, kind)) = TOPIC_CONFIGS.iter().find(|(k, _, _)| k == key) else {
            return Err(BrokerError::InvalidConfig(format!(
                "unknown topic config {key}"
            )));
        };
        let value = match op {
            AlterOp::Delete => {
                next.remove(key);
                continue;
            }
            AlterOp::Set(v) => v.clone(),
            AlterOp::Append(items) | AlterOp::Subtract(items) => {
                if !matches!(kind, Kind::List(_)) {
                    return Err(BrokerError::InvalidConfig(format!(
                        "{key} is not a list config, so it cannot be appended to or subtracted \
                         from (value {items:?})"
                    )));
                }
                let base = next
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| default_value(broker, key));
                if matches!(op, AlterOp::Append(_)) {
                    append_to_list(&base, items)
                } else {
                    subtract_from_list(&base, items)
                }
            }
        };
        validate(key, &value)?;
        next.insert(key.clone(), value);
    }
    Ok(next)
}

fn list_items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `list` with the items of `items` it lacks added at the end, in their order, once each.
fn append_to_list(list: &str, items: &str) -> String {
    let mut out: Vec<&str> = list_items(list).collect();
    for item in list_items(items) {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out.join(",")
}

/// `list` without any of the items of `items`; may be empty, which validation then judges.
fn subtract_from_list(list: &str, items: &str) -> String {
    let gone: Vec<&str> = list_items(items).collect();
    list_items(list)
        .filter(|item| !gone.contains(item))
        .collect::<Vec<_>>()
        .join(",")
}

/// The effective value of every topic config for a topic: its override, else the broker's.
/// Returns (key, value, is_default) triples in a stable order, as DescribeConfigs lists them.
pub fn effective(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<(&'static str, String, bool)> {
    TOPIC_CONFIGS
        .iter()
        .map(|(key, _, _)| match overrides.get(*key) {
            Some(v) => (*key, v.clone(), false),
            None => (*key, default_value(broker, key), true),
        })
        .collect()
}

fn default_value(b: &BrokerConfig, key: &str) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-1".to_string());
    match key {
        "cleanup.policy" => "delete".into(),
        "retention.ms" => opt(b.log_retention_ms.map(|v| v.to_string())),
        "retention.bytes" => opt(b.log_retention_bytes.map(|v| v.to_string())),
        "segment.bytes" => b.log_segment_bytes.to_string(),
        "segment.ms" => b.log_roll_ms.to_string(),
        "max.message.bytes" => b.message_max_bytes.to_string(),
        "min.insync.replicas" => b.min_insync_replicas.to_string(),
        "flush.messages" => b
            .log_flush_interval_messages
            .map_or(i64::MAX.to_string(), |v| v.to_string()),
        "flush.ms" => b
            .log_flush_interval_ms
            .map_or(i64::MAX.to_string(), |v| v.to_string()),
        "index.interval.bytes" => b.log_index_interval_bytes.to_string(),
        "delete.retention.ms" => "86400000".into(),
        "min.compaction.lag.ms" => "0".into(),
        "max.compaction.lag.ms" => i64::MAX.to_string(),
        "min.cleanable.dirty.ratio" => "0.5".into(),
        "compression.type" => "producer".into(),
        "message.timestamp.type" => "CreateTime".into(),
        "unclean.leader.election.enable" => "false".into(),
        "segment.index.bytes" => "10485760".into(),
        "file.delete.delay.ms" => "60000".into(),
        "preallocate" => "false".into(),
        _ => String::new(),
    }
}

/// The storage settings for a topic's partitions.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let long = |key: &str| {
        overrides
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let positive = |v: i64| if v < 0 { None } else { Some(v as u64) };
    LogConfig {
        segment_bytes: long("segment.bytes").map_or(broker.log_segment_bytes, |v| v as u64),
        segment_ms: Some(long("segment.ms").map_or(broker.log_roll_ms, |v| v as u64)),
        retention_ms: match long("retention.ms") {
            Some(v) if v < 0 => None,
            Some(v) => Some(v),
            None => broker.log_retention_ms,
        },
        retention_bytes: match long("retention.bytes") {
            Some(v) => positive(v),
            None => broker.log_retention_bytes,
        },
        flush_interval_messages: long("flush.messages")
            .map_or(broker.log_flush_interval_messages, |v| {
                (v != i64::MAX).then_some(v as u64)
            }),
        flush_interval_ms: long("flush.ms").map_or(broker.log_flush_interval_ms, |v| {
            (v != i64::MAX).then_some(v as u64)
        }),
        index_interval_bytes: long("index.interval.bytes")
            .map_or(broker.log_index_interval_bytes, |v| v as usize),
        cleanup_policy: overrides
            .get("cleanup.policy")
            .and_then(|v| CleanupPolicy::parse(v))
            .unwrap_or_default(),
        delete_retention_ms: long("delete.retention.ms")
            .unwrap_or(LogConfig::default().delete_retention_ms),
        min_cleanable_dirty_ratio: overrides
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(LogConfig::default().min_cleanable_dirty_ratio),
        min_compaction_lag_ms: long("min.compaction.lag.ms")
            .unwrap_or(LogConfig::default().min_compaction_lag_ms),
        max_index_bytes: long("segment.index.bytes")
            .map_or(LogConfig::default().max_index_bytes, |v| v as usize),
    }
}

/// Whether the topic's records must carry keys: compaction has nothing to keep a keyless record
/// by, so Kafka refuses them at produce time.
pub fn is_compacted(overrides: &BTreeMap<String, String>) -> bool {
    overrides
        .get("cleanup.policy")
        .and_then(|v| CleanupPolicy::parse(v))
        .is_some_and(CleanupPolicy::compacts)
}

/// The largest batch a topic accepts.
pub fn max_message_bytes(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> usize {
    overrides
        .get("max.message.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(broker.message_max_bytes)
}

/// min.insync.replicas: how many ISR members an acks=all write needs. Validation keeps it at
/// least 1; a broker-wide default is not configurable yet, so Kafka's default of 1 applies.
pub fn min_insync_replicas(b: &BrokerConfig, overrides: &BTreeMap<String, String>) -> usize {
    overrides
        .get("min.insync.replicas")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(b.min_insync_replicas)
        .max(1)
}

/// Kafka's topic name rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<()> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name == "." || name == ".." {
        return Err(BrokerError::InvalidTopic(format!(
            "topic name {name:?} is illegal"
        )));
    }
    if name.len() > 249 {
        return Err(BrokerError::InvalidTopic(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        )));
    }
    if !name.chars().all(legal) {
        return Err(BrokerError::InvalidTopic(format!(
            "topic name {name:?} has characters other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("my-topic_1.x").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad/name").is_err());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn config_validation_names_the_key() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        let e = validate("retention.ms", "soon").unwrap_err().to_string();
        assert!(e.contains("retention.ms"), "{e}");
        assert!(validate("no.such.config", "1").is_err());
    }

    #[test]
    fn list_append_adds_only_what_is_missing() {
        assert_eq!(append_to_list("delete", "compact"), "delete,compact");
        assert_eq!(
            append_to_list("delete, compact", "compact"),
            "delete,compact"
        );
        assert_eq!(append_to_list("", "compact,delete"), "compact,delete");
        assert_eq!(
            append_to_list("delete", "compact,compact"),
            "delete,compact"
        );
        assert_eq!(append_to_list("delete", ""), "delete");
    }

    #[test]
    fn list_subtract_removes_every_occurrence() {
        assert_eq!(subtract_from_list("delete,compact", "delete"), "compact");
        assert_eq!(subtract_from_list("delete, compact ", " compact"), "delete");
        assert_eq!(subtract_from_list("delete", "compact"), "delete");
        assert_eq!(subtract_from_list("delete,delete", "delete"), "");
        assert_eq!(subtract_from_list("delete,compact", "compact,delete"), "");
    }

    #[test]
    fn alter_applies_each_operation_and_validates_the_result() {
        let b = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), "/tmp/x".into());
        let set = |k: &str, v: &str| (k.to_string(), AlterOp::Set(v.to_string()));
        let none = BTreeMap::new();

        let o = alter(&b, &none, &[set("retention.ms", "1000")]).unwrap();
        assert_eq!(o.get("retention.ms").map(String::as_str), Some("1000"));
        let o = alter(&b, &o, &[("retention.ms".into(), AlterOp::Delete)]).unwrap();
        assert!(o.is_empty());
        // Deleting what was never set is no error.
        assert!(alter(&b, &o, &[("segment.ms".into(), AlterOp::Delete)]).is_ok());

        // Without an override, APPEND extends the default (delete).
        let append = (
            "cleanup.policy".to_string(),
            AlterOp::Append("compact".into()),
        );
        let o = alter(&b, &none, std::slice::from_ref(&append)).unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        let o = alter(&b, &o, &[append]).unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        let sub = |v: &str| ("cleanup.policy".to_string(), AlterOp::Subtract(v.into()));
        let o = alter(&b, &o, &[sub("delete")]).unwrap();
        assert_eq!(o["cleanup.policy"], "compact");
        // An empty cleanup.policy is not one Sluice can run.
        let e = alter(&b, &o, &[sub("compact")]).unwrap_err();
        assert!(matches!(e, BrokerError::InvalidConfig(_)), "{e}");

        let e = alter(
            &b,
            &none,
            &[("retention.ms".into(), AlterOp::Append("5".into()))],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("retention.ms") && e.contains("list"), "{e}");
        let e = alter(&b, &none, &[set("cleanup.policy", "shred")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cleanup.policy") && e.contains("shred"), "{e}");
        let e = alter(&b, &none, &[set("no.such.config", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no.such.config"), "{e}");
        // One bad change fails the whole set, whatever came before it.
        let r = alter(
            &b,
            &none,
            &[set("retention.ms", "5"), set("segment.bytes", "tiny")],
        );
        assert!(r.is_err());
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let b = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), "/tmp/x".into());
        let mut o = BTreeMap::new();
        o.insert("segment.bytes".to_string(), "1024".to_string());
        o.insert("retention.ms".to_string(), "-1".to_string());
        let c = log_config(&b, &o);
        assert_eq!(c.segment_bytes, 1024);
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.max_index_bytes, 10 << 20);
        o.insert("segment.index.bytes".to_string(), "4096".to_string());
        assert_eq!(log_config(&b, &o).max_index_bytes, 4096);
        assert_eq!(c.cleanup_policy, CleanupPolicy::Delete);
        assert!(!is_compacted(&o));
    }

    #[test]
    fn compaction_configs_reach_the_log_config() {
        let b = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), "/tmp/x".into());
        let mut o = BTreeMap::new();
        for (k, v) in [
            ("cleanup.policy", "compact,delete"),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("min.compaction.lag.ms", "60000"),
        ] {
            validate(k, v).unwrap();
            o.insert(k.to_string(), v.to_string());
        }
        let c = log_config(&b, &o);
        assert_eq!(c.cleanup_policy, CleanupPolicy::CompactAndDelete);
        assert_eq!(c.delete_retention_ms, 1000);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(c.min_compaction_lag_ms, 60_000);
        assert!(is_compacted(&o));
        o.insert("cleanup.policy".into(), "compact".into());
        assert_eq!(log_config(&b, &o).cleanup_policy, CleanupPolicy::Compact);
        let d = log_config(&b, &BTreeMap::new());
        assert_eq!(d.delete_retention_ms, 86_400_000);
        assert_eq!(d.min_cleanable_dirty_ratio, 0.5);
    }

    #[test]
    fn min_insync_replicas_defaults_to_the_brokers_value() {
        let mut b = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), "/tmp/unused".into());
        b.min_insync_replicas = 2;
        assert_eq!(min_insync_replicas(&b, &BTreeMap::new()), 2);
        let own = BTreeMap::from([("min.insync.replicas".to_string(), "3".to_string())]);
        assert_eq!(min_insync_replicas(&b, &own), 3);
        assert_eq!(default_value(&b, "min.insync.replicas"), "2");
    }
}
