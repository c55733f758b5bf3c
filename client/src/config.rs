//! `ClientConfig`: client settings by Kafka's property names, from code or a `.properties`
//! file, with typed readers whose errors name the key, the value and where it came from.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sluice_config::Properties;

use crate::error::{ClientError, Result};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    entries: BTreeMap<String, String>,
    /// Where each key came from, for error messages: "code" or a file path.
    sources: BTreeMap<String, String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig::new()
    }
}

impl ClientConfig {
    pub fn new() -> ClientConfig {
        ClientConfig {
            entries: BTreeMap::new(),
            sources: BTreeMap::new(),
        }
    }

    /// Reads a Kafka-style properties file (Java escaping rules, as Kafka's tools read them).
    pub fn from_file(path: &Path) -> Result<ClientConfig> {
        let props = Properties::load(path).map_err(|e| ClientError::ConfigFile(e.to_string()))?;
        let source = path.display().to_string();
        let mut config = ClientConfig::new();
        for (k, v) in props.into_entries() {
            config.sources.insert(k.clone(), source.clone());
            config.entries.insert(k, v);
        }
        Ok(config)
    }

    /// Sets a property (builder style).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> ClientConfig {
        self.insert(key, value);
        self
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.sources.insert(key.clone(), "code".into());
        self.entries.insert(key, value.into());
    }

    /// Sets a property only if it is not set yet: for a tool's defaults under user settings.
    pub fn set_default(mut self, key: &str, value: impl Into<String>) -> ClientConfig {
        if !self.entries.contains_key(key) {
            self.insert(key, value);
        }
        self
    }

    /// Adds every property of `other`, which wins on conflicts.
    pub fn merge(mut self, other: &ClientConfig) -> ClientConfig {
        for (k, v) in &other.entries {
            self.entries.insert(k.clone(), v.clone());
            if let Some(s) = other.sources.get(k) {
                self.sources.insert(k.clone(), s.clone());
            }
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(|s| s.trim())
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// A config error for `key`, naming its value and where it came from.
    pub(crate) fn invalid(&self, key: &str, reason: impl Into<String>) -> ClientError {
        ClientError::Config {
            key: key.to_string(),
            value: self.get(key).unwrap_or_default().to_string(),
            source_name: self
                .sources
                .get(key)
                .cloned()
                .unwrap_or_else(|| "code".into()),
            reason: reason.into(),
        }
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    /// A number in `[min, max]`.
    pub fn number<T>(&self, key: &str, default: T, min: T, max: T) -> Result<T>
    where
        T: FromStr + PartialOrd + Copy + std::fmt::Display,
    {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        match raw.parse::<T>() {
            Ok(v) if v >= min && v <= max => Ok(v),
            _ => Err(self.invalid(key, format!("expected a number from {min} to {max}"))),
        }
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(self.invalid(key, "expected true or false")),
        }
    }

    /// A non-negative millisecond setting.
    pub fn millis(&self, key: &str, default_ms: u64) -> Result<Duration> {
        self.number(key, default_ms, 0, u64::MAX)
            .map(Duration::from_millis)
    }

    /// One of `allowed` (case-insensitive), returned in its canonical spelling.
    pub fn choice(&self, key: &str, default: &str, allowed: &[&str]) -> Result<String> {
        let Some(raw) = self.get(key) else {
            return Ok(default.to_string());
        };
        allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(raw))
            .map(|a| a.to_string())
            .ok_or_else(|| self.invalid(key, format!("expected one of {}", allowed.join(", "))))
    }

    /// A comma-separated list, trimmed, empty items dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Logs the keys no part of the client reads, as the Java client does: a typo would
    /// otherwise silently do nothing.
    pub fn warn_unknown(&self, known: &[&[&str]], component: &str) {
        for key in self.entries.keys() {
            if !known.iter().any(|set| set.contains(&key.as_str())) {
                tracing::warn!(key = %key, component, "unknown config key ignored");
            }
        }
    }
}

/// Settings every client (producer, consumer, admin) reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub bootstrap_servers: Vec<String>,
    pub client_id: String,
    pub request_timeout: Duration,
    pub metadata_max_age: Duration,
    pub retry_backoff: Duration,
    pub reconnect_backoff: Duration,
    pub connection_setup_timeout: Duration,
}

pub const COMMON_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "metadata.max.age.ms",
    "retry.backoff.ms",
    "reconnect.backoff.ms",
    "socket.connection.setup.timeout.ms",
];

impl CommonConfig {
    pub fn from_config(config: &ClientConfig, default_client_id: &str) -> Result<CommonConfig> {
        let bootstrap_servers = config.list("bootstrap.servers");
        if bootstrap_servers.is_empty() {
            return Err(ClientError::Config {
                key: "bootstrap.servers".into(),
                value: String::new(),
                source_name: "code".into(),
                reason: "required: host:port[,host:port...]".into(),
            });
        }
        for server in &bootstrap_servers {
            if split_host_port(server).is_none() {
                return Err(config.invalid("bootstrap.servers", "expected host:port entries"));
            }
        }
        Ok(CommonConfig {
            bootstrap_servers,
            client_id: config.string("client.id", default_client_id),
            request_timeout: config.millis("request.timeout.ms", 30_000)?,
            metadata_max_age: config.millis("metadata.max.age.ms", 300_000)?,
            retry_backoff: config.millis("retry.backoff.ms", 100)?,
            reconnect_backoff: config.millis("reconnect.backoff.ms", 50)?,
            connection_setup_timeout: config
                .millis("socket.connection.setup.timeout.ms", 10_000)?,
        })
    }
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_reads_name_the_key_and_source() {
        let c = ClientConfig::new()
            .set("linger.ms", "5")
            .set("acks", "ALL")
            .set("batch.size", "-3");
        assert_eq!(c.millis("linger.ms", 0).unwrap(), Duration::from_millis(5));
        assert_eq!(
            c.choice("acks", "all", &["all", "0", "1", "-1"]).unwrap(),
            "all"
        );
        let e = c
            .number("batch.size", 16384i64, 0, i32::MAX as i64)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "batch.size = \"-3\" in code: expected a number from 0 to 2147483647"
        );
        assert!(c.bool("enable.idempotence", true).unwrap());
    }

    #[test]
    fn files_are_named_in_errors_and_code_overrides_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("producer.properties");
        std::fs::write(&path, "bootstrap.servers=a:9092, b:9093\nlinger.ms=soon\n").unwrap();
        let file = ClientConfig::from_file(&path).unwrap();
        let e = file.millis("linger.ms", 0).unwrap_err().to_string();
        assert!(e.contains("producer.properties"), "{e}");
        let common = CommonConfig::from_config(&file, "x").unwrap();
        assert_eq!(common.bootstrap_servers, ["a:9092", "b:9093"]);
        let merged = file.merge(&ClientConfig::new().set("linger.ms", "7"));
        assert_eq!(
            merged.millis("linger.ms", 0).unwrap(),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn bootstrap_servers_are_required_and_checked() {
        assert!(CommonConfig::from_config(&ClientConfig::new(), "x").is_err());
        let bad = ClientConfig::new().set("bootstrap.servers", "nohostport");
        assert!(CommonConfig::from_config(&bad, "x").is_err());
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1".into(), 9092)));
    }
}
