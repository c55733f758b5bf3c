//! `ServerConfig`: the broker's settings, typed from Kafka `server.properties` keys.
//! Owns Kafka's names, aliases, defaults, precedence rules and value validation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::properties::parse_override;
use crate::properties::Properties;
use crate::ConfigError;

/// One `NAME://host:port` entry of `listeners` or `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listener {
    /// Upper-cased, as Kafka normalises listener names.
    pub name: String,
    /// Never bracketed; an IPv6 address is stored bare (e.g. `::1`).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessRole {
    Broker,
    Controller,
}

/// One `id@host:port` entry of `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `node.id`, or its older name `broker.id`.
    pub node_id: i32,
    /// `process.roles`; `None` when unset or empty.
    pub process_roles: Option<Vec<ProcessRole>>,
    /// `controller.quorum.voters`; `None` means a standalone single-node cluster.
    pub controller_quorum_voters: Option<Vec<QuorumVoter>>,
    /// `controller.listener.names`, upper-cased like listener names.
    pub controller_listener_names: Vec<String>,
    /// Bind addresses; an empty host in the file becomes `0.0.0.0` (all interfaces).
    pub listeners: Vec<Listener>,
    /// Defaults to `listeners` minus controller listeners, with a wildcard host
    /// replaced by `localhost`. Kafka substitutes the machine's hostname instead;
    /// `localhost` is used so a standalone node works without any DNS setup.
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs`, or its older name `log.dir`.
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    /// `min.insync.replicas`: the default of topics that do not set their own.
    pub min_insync_replicas: i32,
    pub auto_create_topics_enable: bool,
    pub log_segment_bytes: u32,
    /// `log.roll.ms`, else `log.roll.hours`.
    pub log_roll: Duration,
    /// `log.retention.ms`, else `.minutes`, else `.hours`; `None` keeps data forever.
    pub log_retention: Option<Duration>,
    /// `None` means no size limit.
    pub log_retention_bytes: Option<u64>,
    pub log_retention_check_interval: Duration,
    pub message_max_bytes: u32,
    pub socket_request_max_bytes: u32,
    /// `None` means never flush because of a message count.
    pub log_flush_interval_messages: Option<u64>,
    /// `None` means never flush because of elapsed time.
    pub log_flush_interval: Option<Duration>,
    pub log_index_interval_bytes: u32,
    /// `log.cleaner.enable`: whether compacted topics are cleaned at all.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: the pause between cleaner passes over all logs.
    pub log_cleaner_backoff: Duration,
    /// `log.cleaner.dedupe.buffer.size`: memory for one cleaner pass's key map.
    pub log_cleaner_dedupe_buffer_size: u64,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_num_partitions: i32,
    pub group_initial_rebalance_delay: Duration,
    pub group_min_session_timeout: Duration,
    pub group_max_session_timeout: Duration,
    pub group_max_size: i32,
    /// `offsets.retention.minutes`: how long committed offsets of an unused group are kept.
    pub offsets_retention: Duration,
    pub offsets_retention_check_interval: Duration,
    pub offsets_topic_segment_bytes: u32,
    pub offset_metadata_max_bytes: u32,
    /// `listener.security.protocol.map`, upper-cased, covering every listener. When the key is
    /// absent, a listener named after a protocol uses it and any other listener (CONTROLLER
    /// among them) is PLAINTEXT, so configs written before the key mattered keep working.
    pub listener_security_protocol_map: BTreeMap<String, String>,
    /// `metadata.log.dir`; Kafka puts the metadata log in the first of `log.dirs` without it.
    pub metadata_log_dir: PathBuf,
    /// `broker.session.timeout.ms`: a broker the controller has not heard from for this long is
    /// fenced.
    pub broker_session_timeout: Duration,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats to the controller.
    pub broker_heartbeat_interval: Duration,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `controller.quorum.election.timeout.ms`.
    pub controller_quorum_election_timeout: Duration,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval: Duration,
    /// Every key/value the config was built from, overrides applied.
    pub raw: BTreeMap<String, String>,
    /// Human-readable notes about keys that were ignored (each also logged).
    pub warnings: Vec<String>,
}

/// Keys this module interprets; anything else is either in `ACCEPTED_UNUSED` or unknown.
const USED_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "controller.quorum.voters",
    "controller.listener.names",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "num.partitions",
    "default.replication.factor",
    "auto.create.topics.enable",
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.hours",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "message.max.bytes",
    "socket.request.max.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.index.interval.bytes",
    "log.cleaner.enable",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "offsets.topic.replication.factor",
    "offsets.topic.num.partitions",
    "group.initial.rebalance.delay.ms",
    "offset.metadata.max.bytes",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offsets.topic.segment.bytes",
    "listener.security.protocol.map",
    "metadata.log.dir",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "unclean.leader.election.enable",
    "controller.quorum.election.timeout.ms",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
];

/// Real Kafka broker keys that have no effect here yet. Accepting them quietly lets
/// people point the server at the `server.properties` they already have; warning
/// about them would train users to ignore warnings that matter (typos).
const ACCEPTED_UNUSED: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "num.replica.fetchers",
    "num.recovery.threads.per.data.dir",
    "background.threads",
    "queued.max.requests",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "socket.listen.backlog.size",
    "connections.max.idle.ms",
    "max.connections",
    "max.connections.per.ip",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "transaction.state.log.segment.bytes",
    "transactional.id.expiration.ms",
    "transaction.max.timeout.ms",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "inter.broker.listener.name",
    "security.inter.broker.protocol",
    "inter.broker.protocol.version",
    "log.message.format.version",
    "log.message.timestamp.type",
    "log.segment.delete.delay.ms",
    "log.cleanup.policy",
    "log.cleaner.threads",
    "log.cleaner.delete.retention.ms",
    "log.flush.scheduler.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "log.preallocate",
    "log.index.size.max.bytes",
    "delete.topic.enable",
    "compression.type",
    "broker.rack",
    "replica.lag.time.max.ms",
    "replica.fetch.max.bytes",
    "replica.socket.timeout.ms",
    "replica.fetch.wait.max.ms",
    "offsets.commit.timeout.ms",
    "offsets.load.buffer.size",
    "metadata.log.segment.bytes",
    "metadata.max.retention.ms",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.fetch.timeout.ms",
    "authorizer.class.name",
    "super.users",
    "allow.everyone.if.no.acl.found",
    "sasl.enabled.mechanisms",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.mechanism.controller.protocol",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.sample.window.ms",
    "metrics.recording.level",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "zookeeper.session.timeout.ms",
];

/// Families of keys that are per-listener or per-plugin settings in Kafka; there are
/// too many to list and all are equally unused here.
const ACCEPTED_UNUSED_PREFIXES: &[&str] = &["listener.name.", "ssl.", "sasl.", "log.cleaner."];

const DEFAULT_LISTENERS: &str = "PLAINTEXT://:9092";
const DEFAULT_LOG_DIR: &str = "/tmp/kraft-combined-logs";
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// The smallest segment that can hold a record at all (a v0 record's overhead);
/// Kafka rejects anything below it.
const MIN_SEGMENT_BYTES: i64 = 14;

/// What to build the config from. Values are trimmed before parsing because Java
/// property files keep trailing blanks and Kafka's own parser trims them.
struct Reader<'a> {
    props: &'a Properties,
}

impl<'a> Reader<'a> {
    fn raw(&self, key: &str) -> Option<&'a str> {
        self.props.get(key)
    }

    fn value(&self, key: &str) -> Option<&'a str> {
        self.raw(key).map(str::trim)
    }

    fn invalid(&self, key: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            key: key.to_string(),
            value: self.raw(key).unwrap_or_default().to_string(),
            file: self.props.source_of(key),
            expected: expected.into(),
        }
    }

    /// The first of `keys` that is present, so aliases and precedence chains read
    /// as a list in priority order.
    fn first_present(&self, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
        keys.iter().find_map(|k| self.value(k).map(|v| (*k, v)))
    }

    /// An integer in `[min, max]`. The "not a number" wording depends only on the
    /// sign of `min`; the bounds are spelled out once the value is at least numeric.
    fn int_in(&self, key: &str, value: &str, min: i64, max: i64) -> Result<i64, ConfigError> {
        let kind = match min {
            m if m > 0 => "a positive integer",
            0 => "a non-negative integer",
            _ => "an integer",
        };
        let n: i64 = value.parse().map_err(|_| self.invalid(key, kind))?;
        if n < min || n > max {
            let expected = if max == i64::MAX {
                format!("an integer >= {min}")
            } else {
                format!("an integer between {min} and {max}")
            };
            return Err(self.invalid(key, expected));
        }
        Ok(n)
    }

    fn int_or(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
        match self.value(key) {
            Some(v) => self.int_in(key, v, min, max),
            None => Ok(default),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.value(key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(_) => Err(self.invalid(key, "true or false")),
        }
    }

    /// Comma list with blanks dropped, as Kafka's LIST type does.
    fn list(&self, key: &str) -> Option<Vec<&'a str>> {
        self.value(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
    }
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

impl ServerConfig {
    /// Loads `path`, applies `overrides` on top, and types the result.
    pub fn from_file(
        path: &Path,
        overrides: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let mut props = Properties::load(path)?;
        props.apply_overrides(overrides);
        Self::build(&props)
    }

    /// Types an already-assembled map; `source` names it in error messages.
    pub fn from_properties(
        props: BTreeMap<String, String>,
        source: &str,
    ) -> Result<ServerConfig, ConfigError> {
        Self::build(&Properties::from_map(source, props))
    }

    /// Types a loaded [`Properties`], keeping its per-key origins for error messages.
    pub fn build(props: &Properties) -> Result<ServerConfig, ConfigError> {
        let r = Reader { props };
        let source = props.path().display().to_string();

        let node_id = node_id(&r)?;
        let process_roles = process_roles(&r)?;
        let controller_quorum_voters = quorum_voters(&r)?;
        let controller_listener_names: Vec<String> = r
            .list("controller.listener.names")
            .unwrap_or_default()
            .into_iter()
            .map(str::to_ascii_uppercase)
            .collect();

        if controller_quorum_voters.is_some() && process_roles.is_none() {
            // Joining a quorum without knowing what this node is in it would leave
            // the node's behaviour undefined; Kafka refuses this too.
            return Err(ConfigError::Missing {
                key: "process.roles".into(),
                file: props.source_of("controller.quorum.voters"),
            });
        }
        let is_controller = process_roles
            .as_ref()
            .is_some_and(|roles| roles.contains(&ProcessRole::Controller));
        if is_controller && controller_listener_names.is_empty() {
            return Err(ConfigError::Missing {
                key: "controller.listener.names".into(),
                file: source.clone(),
            });
        }

        let listeners: Vec<Listener> = parse_listeners(
            &r,
            "listeners",
            r.value("listeners").unwrap_or(DEFAULT_LISTENERS),
        )?
        .into_iter()
        .map(|mut l| {
            if l.host.is_empty() {
                l.host = "0.0.0.0".to_string();
            }
            l
        })
        .collect();
        let advertised_listeners =
            advertised_listeners(&r, &listeners, &controller_listener_names)?;
        let listener_security_protocol_map =
            security_protocol_map(&r, &listeners, &controller_listener_names)?;
        if let (Some(voters), Some(roles)) = (&controller_quorum_voters, &process_roles) {
            quorum_membership(
                &r,
                node_id,
                voters,
                roles,
                &listeners,
                &controller_listener_names,
            )?;
        }

        let log_dirs = match r.first_present(&["log.dirs", "log.dir"]) {
            Some((key, _)) => {
                let dirs = r.list(key).unwrap_or_default();
                if dirs.is_empty() {
                    return Err(r.invalid(key, "a comma-separated list of directories"));
                }
                dirs.into_iter().map(PathBuf::from).collect()
            }
            None => vec![PathBuf::from(DEFAULT_LOG_DIR)],
        };

        let i32_max = i32::MAX as i64;
        let i16_max = i16::MAX as i64;

        let metadata_log_dir = match r.value("metadata.log.dir") {
            Some("") => return Err(r.invalid("metadata.log.dir", "a directory")),
            Some(dir) => PathBuf::from(dir),
            None => log_dirs[0].clone(),
        };
        let broker_session_timeout_ms = r.int_or("broker.session.timeout.ms", 9000, 1, i32_max)?;
        let broker_heartbeat_interval_ms =
            r.int_or("broker.heartbeat.interval.ms", 2000, 1, i32_max)?;
        if broker_heartbeat_interval_ms >= broker_session_timeout_ms {
            // Every broker would be fenced between two of its own heartbeats.
            return Err(r.invalid(
                "broker.heartbeat.interval.ms",
                format!("less than broker.session.timeout.ms ({broker_session_timeout_ms})"),
            ));
        }

        let log_roll = match r.first_present(&["log.roll.ms", "log.roll.hours"]) {
            Some((key @ "log.roll.ms", v)) => ms(r.int_in(key, v, 1, i64::MAX)?),
            Some((key, v)) => ms(r.int_in(key, v, 1, i32_max)? * HOUR_MS),
            None => ms(168 * HOUR_MS),
        };

        Ok(ServerConfig {
            node_id,
            process_roles,
            controller_quorum_voters,
            controller_listener_names,
            listeners,
            advertised_listeners,
            log_dirs,
            num_partitions: r.int_or("num.partitions", 1, 1, i32_max)? as i32,
            default_replication_factor: r.int_or("default.replication.factor", 1, 1, i16_max)?
                as i16,
            min_insync_replicas: r.int_or("min.insync.replicas", 1, 1, i32_max)? as i32,
            auto_create_topics_enable: r.bool_or("auto.create.topics.enable", true)?,
            log_segment_bytes: r.int_or(
                "log.segment.bytes",
                1_073_741_824,
                MIN_SEGMENT_BYTES,
                i32_max,
            )? as u32,
            log_roll,
            log_retention: log_retention(&r)?,
            log_retention_bytes: unlimited_or(&r, "log.retention.bytes", 0)?,
            log_retention_check_interval: ms(r.int_or(
                "log.retention.check.interval.ms",
                300_000,
                1,
                i64::MAX,
            )?),
            message_max_bytes: r.int_or("message.max.bytes", 1_048_588, 0, i32_max)? as u32,
            socket_request_max_bytes: r.int_or(
                "socket.request.max.bytes",
                104_857_600,
                1,
                i32_max,
            )? as u32,
            // Kafka's default for both flush settings is "effectively never" (Long.MAX
            // or unset), which callers are better served seeing as None.
            log_flush_interval_messages: never_if_max(&r, "log.flush.interval.messages", 1)?,
            log_flush_interval: never_if_max(&r, "log.flush.interval.ms", 0)?.map(|n| ms(n as i64)),
            log_index_interval_bytes: r.int_or("log.index.interval.bytes", 4096, 0, i32_max)?
                as u32,
            log_cleaner_enable: r.bool_or("log.cleaner.enable", true)?,
            log_cleaner_backoff: ms(r.int_or("log.cleaner.backoff.ms", 15_000, 0, i64::MAX)?),
            log_cleaner_dedupe_buffer_size: r.int_or(
                "log.cleaner.dedupe.buffer.size",
                134_217_728,
                1,
                i64::MAX,
            )? as u64,
            offsets_topic_replication_factor: r.int_or(
                "offsets.topic.replication.factor",
                1,
                1,
                i16_max,
            )? as i16,
            offsets_topic_num_partitions: r.int_or(
                "offsets.topic.num.partitions",
                50,
                1,
                i32_max,
            )? as i32,
            group_initial_rebalance_delay: ms(r.int_or(
                "group.initial.rebalance.delay.ms",
                3000,
                0,
                i32_max,
            )?),
            group_min_session_timeout: ms(r.int_or(
                "group.min.session.timeout.ms",
                6000,
                0,
                i32_max,
            )?),
            group_max_session_timeout: ms(r.int_or(
                "group.max.session.timeout.ms",
                1_800_000,
                0,
                i32_max,
            )?),
            group_max_size: r.int_or("group.max.size", i32_max, 1, i32_max)? as i32,
            offsets_retention: ms(
                r.int_or("offsets.retention.minutes", 10_080, 1, i32_max)? * MINUTE_MS
            ),
            offsets_retention_check_interval: ms(r.int_or(
                "offsets.retention.check.interval.ms",
                600_000,
                1,
                i64::MAX,
            )?),
            offsets_topic_segment_bytes: r.int_or(
                "offsets.topic.segment.bytes",
                104_857_600,
                MIN_SEGMENT_BYTES,
                i32_max,
            )? as u32,
            offset_metadata_max_bytes: r.int_or("offset.metadata.max.bytes", 4096, 0, i32_max)?
                as u32,
            listener_security_protocol_map,
            metadata_log_dir,
            broker_session_timeout: ms(broker_session_timeout_ms),
            broker_heartbeat_interval: ms(broker_heartbeat_interval_ms),
            unclean_leader_election_enable: r.bool_or("unclean.leader.election.enable", false)?,
            controller_quorum_election_timeout: ms(r.int_or(
                "controller.quorum.election.timeout.ms",
                1000,
                1,
                i32_max,
            )?),
            auto_leader_rebalance_enable: r.bool_or("auto.leader.rebalance.enable", true)?,
            leader_imbalance_check_interval: ms(r.int_or(
                "leader.imbalance.check.interval.seconds",
                300,
                1,
                i32_max,
            )? * 1000),
            warnings: unknown_key_warnings(props),
            raw: props.entries().clone(),
        })
    }

    /// The cluster is standalone when no quorum is configured: this node is then the
    /// only broker and its own controller.
    pub fn is_standalone(&self) -> bool {
        self.controller_quorum_voters.is_none()
    }
}

impl Default for ServerConfig {
    /// Kafka's defaults for every key; cannot fail because no value is supplied.
    fn default() -> Self {
        ServerConfig::from_properties(BTreeMap::new(), "<defaults>")
            .expect("built-in defaults are valid")
    }
}

fn node_id(r: &Reader) -> Result<i32, ConfigError> {
    let max = i32::MAX as i64;
    let node = r
        .value("node.id")
        .map(|v| r.int_in("node.id", v, 0, max))
        .transpose()?;
    let broker = r
        .value("broker.id")
        .map(|v| r.int_in("broker.id", v, 0, max))
        .transpose()?;
    match (node, broker) {
        (Some(n), Some(b)) if n != b => Err(r.invalid(
            "broker.id",
            format!("the same id as node.id ({n}), since both name this node"),
        )),
        (Some(n), _) | (None, Some(n)) => Ok(n as i32),
        (None, None) => Ok(1),
    }
}

fn process_roles(r: &Reader) -> Result<Option<Vec<ProcessRole>>, ConfigError> {
    let Some(items) = r.list("process.roles") else {
        return Ok(None);
    };
    let mut roles = Vec::new();
    for item in items {
        let role = match item.to_ascii_lowercase().as_str() {
            "broker" => ProcessRole::Broker,
            "controller" => ProcessRole::Controller,
            _ => {
                return Err(r.invalid(
                    "process.roles",
                    "a comma-separated list of broker and/or controller",
                ))
            }
        };
        if roles.contains(&role) {
            return Err(r.invalid("process.roles", "each role at most once"));
        }
        roles.push(role);
    }
    Ok((!roles.is_empty()).then_some(roles))
}

fn quorum_voters(r: &Reader) -> Result<Option<Vec<QuorumVoter>>, ConfigError> {
    const KEY: &str = "controller.quorum.voters";
    const EXPECTED: &str = "a comma-separated list of id@host:port";
    let Some(items) = r.list(KEY) else {
        return Ok(None);
    };
    let mut voters = Vec::new();
    for item in items {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| r.invalid(KEY, EXPECTED))?;
        let id: i32 = id.trim().parse().map_err(|_| r.invalid(KEY, EXPECTED))?;
        let (host, port) = split_host_port(addr).ok_or_else(|| r.invalid(KEY, EXPECTED))?;
        if id < 0 || host.is_empty() {
            return Err(r.invalid(KEY, EXPECTED));
        }
        voters.push(QuorumVoter { id, host, port });
    }
    Ok((!voters.is_empty()).then_some(voters))
}

/// `host:port` or `[v6addr]:port`; the host may be empty.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        // A bare IPv6 address is ambiguous about where the port starts.
        None if host.contains(':') => return None,
        None => host,
    };
    let port: u16 = port.parse().ok()?;
    Some((host.to_string(), port))
}

/// Hosts are returned as written (possibly empty); what an empty host means differs
/// between binding and advertising.
fn parse_listeners(r: &Reader, key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    const EXPECTED: &str = "a comma-separated list of NAME://host:port";
    let mut out: Vec<Listener> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = item
            .split_once("://")
            .ok_or_else(|| r.invalid(key, EXPECTED))?;
        let name = name.trim().to_ascii_uppercase();
        let (host, port) = split_host_port(addr).ok_or_else(|| r.invalid(key, EXPECTED))?;
        if name.is_empty() {
            return Err(r.invalid(key, EXPECTED));
        }
        if out.iter().any(|l| l.name == name) {
            return Err(r.invalid(key, format!("unique listener names ({name} appears twice)")));
        }
        out.push(Listener { name, host, port });
    }
    if out.is_empty() {
        return Err(r.invalid(key, EXPECTED));
    }
    Ok(out)
}

fn advertised_listeners(
    r: &Reader,
    listeners: &[Listener],
    controller_names: &[String],
) -> Result<Vec<Listener>, ConfigError> {
    const KEY: &str = "advertised.listeners";
    // Clients must be handed an address they can connect to; a wildcard bind address
    // is not one, so the local name stands in for it.
    let routable = |l: &Listener| {
        let mut l = l.clone();
        if l.host.is_empty() || l.host == "0.0.0.0" {
            l.host = "localhost".to_string();
        }
        l
    };
    let Some(value) = r.value(KEY) else {
        // Controller endpoints are for the quorum, never handed to clients.
        return Ok(listeners
            .iter()
            .filter(|l| !controller_names.contains(&l.name))
            .map(routable)
            .collect());
    };
    let parsed = parse_listeners(r, KEY, value)?;
    for l in &parsed {
        if l.host == "0.0.0.0" || l.host == "::" {
            return Err(r.invalid(
                KEY,
                "routable addresses (0.0.0.0 and :: cannot be advertised)",
            ));
        }
        if !listeners.iter().any(|b| b.name == l.name) {
            return Err(r.invalid(
                KEY,
                format!(
                    "listener names that appear in listeners ({} does not)",
                    l.name
                ),
            ));
        }
    }
    Ok(parsed.iter().map(routable).collect())
}

const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

fn security_protocol_map(
    r: &Reader,
    listeners: &[Listener],
    controller_names: &[String],
) -> Result<BTreeMap<String, String>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    let Some(items) = r.list(KEY) else {
        let mut map = BTreeMap::new();
        for name in listeners.iter().map(|l| &l.name).chain(controller_names) {
            let protocol = if SECURITY_PROTOCOLS.contains(&name.as_str()) {
                name.clone()
            } else {
                "PLAINTEXT".to_string()
            };
            map.insert(name.clone(), protocol);
        }
        return Ok(map);
    };
    let mut map = BTreeMap::new();
    for item in items {
        let (name, protocol) = item
            .split_once(':')
            .map(|(n, p)| (n.trim().to_ascii_uppercase(), p.trim().to_ascii_uppercase()))
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| r.invalid(KEY, "a comma-separated list of LISTENER:PROTOCOL"))?;
        if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
            return Err(r.invalid(
                KEY,
                format!("protocols among {}", SECURITY_PROTOCOLS.join(", ")),
            ));
        }
        map.insert(name, protocol);
    }
    if let Some(missing) = listeners.iter().find(|l| !map.contains_key(&l.name)) {
        return Err(r.invalid(
            KEY,
            format!("a protocol for every listener ({} has none)", missing.name),
        ));
    }
    Ok(map)
}

/// What a node in a quorum must agree with: a controller is one of the voters and listens on a
/// controller listener; a broker-only node is not a voter (it would be waited for in elections
/// it never takes part in).
fn quorum_membership(
    r: &Reader,
    node_id: i32,
    voters: &[QuorumVoter],
    roles: &[ProcessRole],
    listeners: &[Listener],
    controller_names: &[String],
) -> Result<(), ConfigError> {
    let is_voter = voters.iter().any(|v| v.id == node_id);
    if roles.contains(&ProcessRole::Controller) {
        if !is_voter {
            return Err(r.invalid(
                "controller.quorum.voters",
                format!("an entry for this controller's node.id ({node_id})"),
            ));
        }
        if !listeners.iter().any(|l| controller_names.contains(&l.name)) {
            return Err(r.invalid(
                "listeners",
                format!(
                    "a listener named in controller.listener.names ({})",
                    controller_names.join(", ")
                ),
            ));
        }
    } else if is_voter {
        return Err(r.invalid(
            "controller.quorum.voters",
            format!("no entry for node.id {node_id}, which has only the broker role"),
        ));
    }
    Ok(())
}

/// Kafka's chain: `.ms` beats `.minutes` beats `.hours`, and -1 at the winning level
/// means keep forever.
fn log_retention(r: &Reader) -> Result<Option<Duration>, ConfigError> {
    const EXPECTED: &str = "a positive integer, or -1 to keep forever";
    let chain = [
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    let Some((key, value)) = r.first_present(&chain) else {
        return Ok(Some(ms(168 * HOUR_MS)));
    };
    let n: i64 = value.parse().map_err(|_| r.invalid(key, EXPECTED))?;
    if n == -1 {
        return Ok(None);
    }
    if n < 1 {
        return Err(r.invalid(key, EXPECTED));
    }
    let unit = match key {
        "log.retention.ms" => 1,
        "log.retention.minutes" => MINUTE_MS,
        _ => HOUR_MS,
    };
    let millis = n
        .checked_mul(unit)
        .ok_or_else(|| r.invalid(key, "a value whose length in milliseconds fits in 64 bits"))?;
    Ok(Some(ms(millis)))
}

/// A limit where -1 (Kafka's default) means none.
fn unlimited_or(r: &Reader, key: &str, min: i64) -> Result<Option<u64>, ConfigError> {
    let Some(value) = r.value(key) else {
        return Ok(None);
    };
    let expected = format!("an integer >= {min}, or -1 for no limit");
    let n: i64 = value
        .parse()
        .map_err(|_| r.invalid(key, expected.clone()))?;
    match n {
        -1 => Ok(None),
        n if n >= min => Ok(Some(n as u64)),
        _ => Err(r.invalid(key, expected)),
    }
}

/// A threshold where Long.MAX (Kafka's spelling of "never") or absence means none.
fn never_if_max(r: &Reader, key: &str, min: i64) -> Result<Option<u64>, ConfigError> {
    match r.value(key) {
        None => Ok(None),
        Some(v) => match r.int_in(key, v, min, i64::MAX)? {
            i64::MAX => Ok(None),
            n => Ok(Some(n as u64)),
        },
    }
}

fn unknown_key_warnings(props: &Properties) -> Vec<String> {
    let mut warnings = Vec::new();
    for key in props.entries().keys() {
        let known = USED_KEYS.contains(&key.as_str())
            || ACCEPTED_UNUSED.contains(&key.as_str())
            || ACCEPTED_UNUSED_PREFIXES.iter().any(|p| key.starts_with(p));
        if known {
            continue;
        }
        let source = props.source_of(key);
        tracing::warn!(key = %key, source = %source, "unknown config key ignored");
        warnings.push(format!("unknown config key {key} in {source} (ignored)"));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cfg(pairs: &[(&str, &str)]) -> Result<ServerConfig, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServerConfig::from_properties(map, "test.properties")
    }

    fn invalid_key(err: ConfigError) -> String {
        match err {
            ConfigError::InvalidValue { key, .. } => key,
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    fn listener(name: &str, host: &str, port: u16) -> Listener {
        Listener {
            name: name.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn defaults_match_kafka() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.process_roles, None);
        assert!(c.is_standalone());
        assert!(c.controller_listener_names.is_empty());
        assert_eq!(c.listeners, vec![listener("PLAINTEXT", "0.0.0.0", 9092)]);
        assert_eq!(
            c.advertised_listeners,
            vec![listener("PLAINTEXT", "localhost", 9092)]
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kraft-combined-logs")]);
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.default_replication_factor, 1);
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.log_segment_bytes, 1_073_741_824);
        assert_eq!(c.log_roll, Duration::from_secs(168 * 3600));
        assert_eq!(c.log_retention, Some(Duration::from_secs(168 * 3600)));
        assert_eq!(c.log_retention_bytes, None);
        assert_eq!(
            c.log_retention_check_interval,
            Duration::from_millis(300_000)
        );
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.log_flush_interval_messages, None);
        assert_eq!(c.log_flush_interval, None);
        assert_eq!(c.log_index_interval_bytes, 4096);
        assert!(c.log_cleaner_enable);
        assert_eq!(c.log_cleaner_backoff, Duration::from_millis(15_000));
        assert_eq!(c.log_cleaner_dedupe_buffer_size, 134_217_728);
        assert_eq!(c.offsets_topic_replication_factor, 1);
        assert_eq!(c.offsets_topic_num_partitions, 50);
        assert_eq!(c.group_initial_rebalance_delay, Duration::from_millis(3000));
        assert_eq!(
            c.listener_security_protocol_map,
            BTreeMap::from([("PLAINTEXT".to_string(), "PLAINTEXT".to_string())])
        );
        assert_eq!(
            c.metadata_log_dir,
            PathBuf::from("/tmp/kraft-combined-logs")
        );
        assert_eq!(c.broker_session_timeout, Duration::from_millis(9000));
        assert_eq!(c.broker_heartbeat_interval, Duration::from_millis(2000));
        assert!(!c.unclean_leader_election_enable);
        assert_eq!(
            c.controller_quorum_election_timeout,
            Duration::from_millis(1000)
        );
        assert!(c.auto_leader_rebalance_enable);
        assert_eq!(c.leader_imbalance_check_interval, Duration::from_secs(300));
        assert!(c.warnings.is_empty());
        assert!(c.raw.is_empty());
        assert_eq!(ServerConfig::default(), c);
    }

    #[test]
    fn log_cleaner_settings() {
        let c = cfg(&[
            ("log.cleaner.enable", "false"),
            ("log.cleaner.backoff.ms", "500"),
            ("log.cleaner.dedupe.buffer.size", "1048576"),
        ])
        .unwrap();
        assert!(!c.log_cleaner_enable);
        assert_eq!(c.log_cleaner_backoff, Duration::from_millis(500));
        assert_eq!(c.log_cleaner_dedupe_buffer_size, 1 << 20);
        assert!(c.warnings.is_empty());
        let err = cfg(&[("log.cleaner.backoff.ms", "-1")]).unwrap_err();
        assert_eq!(invalid_key(err), "log.cleaner.backoff.ms");
    }

    #[test]
    fn node_id_and_broker_id_alias() {
        assert_eq!(cfg(&[("broker.id", "7")]).unwrap().node_id, 7);
        assert_eq!(cfg(&[("node.id", "3")]).unwrap().node_id, 3);
        assert_eq!(
            cfg(&[("node.id", "4"), ("broker.id", "4")])
                .unwrap()
                .node_id,
            4
        );
        let err = cfg(&[("node.id", "4"), ("broker.id", "5")]).unwrap_err();
        assert_eq!(invalid_key(err), "broker.id");
        assert_eq!(
            invalid_key(cfg(&[("node.id", "-1")]).unwrap_err()),
            "node.id"
        );
    }

    #[test]
    fn log_dirs_alias_and_list() {
        let c = cfg(&[("log.dir", "/a")]).unwrap();
        assert_eq!(c.log_dirs, vec![PathBuf::from("/a")]);
        let c = cfg(&[("log.dir", "/a"), ("log.dirs", " /b , /c,")]).unwrap();
        assert_eq!(c.log_dirs, vec![PathBuf::from("/b"), PathBuf::from("/c")]);
        assert_eq!(
            invalid_key(cfg(&[("log.dirs", " , ")]).unwrap_err()),
            "log.dirs"
        );
    }

    #[test]
    fn retention_precedence_ms_minutes_hours() {
        let hours = cfg(&[("log.retention.hours", "2")]).unwrap();
        assert_eq!(hours.log_retention, Some(Duration::from_secs(7200)));
        let minutes = cfg(&[("log.retention.hours", "2"), ("log.retention.minutes", "3")]).unwrap();
        assert_eq!(minutes.log_retention, Some(Duration::from_secs(180)));
        let millis = cfg(&[
            ("log.retention.hours", "2"),
            ("log.retention.minutes", "3"),
            ("log.retention.ms", "1500"),
        ])
        .unwrap();
        assert_eq!(millis.log_retention, Some(Duration::from_millis(1500)));
        // -1 at the winning level means forever even if a lower level says otherwise.
        let forever = cfg(&[("log.retention.hours", "2"), ("log.retention.ms", "-1")]).unwrap();
        assert_eq!(forever.log_retention, None);
        assert_eq!(
            cfg(&[("log.retention.hours", "-1")]).unwrap().log_retention,
            None
        );
        assert_eq!(
            invalid_key(cfg(&[("log.retention.ms", "0")]).unwrap_err()),
            "log.retention.ms"
        );
        assert_eq!(
            invalid_key(cfg(&[("log.retention.hours", "9223372036854775807")]).unwrap_err()),
            "log.retention.hours"
        );
    }

    #[test]
    fn roll_ms_beats_hours() {
        let c = cfg(&[("log.roll.hours", "1")]).unwrap();
        assert_eq!(c.log_roll, Duration::from_secs(3600));
        let c = cfg(&[("log.roll.hours", "1"), ("log.roll.ms", "250")]).unwrap();
        assert_eq!(c.log_roll, Duration::from_millis(250));
        assert_eq!(
            invalid_key(cfg(&[("log.roll.ms", "0")]).unwrap_err()),
            "log.roll.ms"
        );
    }

    #[test]
    fn sentinel_values_become_none() {
        let c = cfg(&[
            ("log.retention.bytes", "-1"),
            ("log.flush.interval.messages", "9223372036854775807"),
            ("log.flush.interval.ms", "9223372036854775807"),
        ])
        .unwrap();
        assert_eq!(c.log_retention_bytes, None);
        assert_eq!(c.log_flush_interval_messages, None);
        assert_eq!(c.log_flush_interval, None);
        let c = cfg(&[
            ("log.retention.bytes", "1000"),
            ("log.flush.interval.messages", "10"),
            ("log.flush.interval.ms", "20"),
        ])
        .unwrap();
        assert_eq!(c.log_retention_bytes, Some(1000));
        assert_eq!(c.log_flush_interval_messages, Some(10));
        assert_eq!(c.log_flush_interval, Some(Duration::from_millis(20)));
        assert!(cfg(&[("log.retention.bytes", "-2")]).is_err());
        assert!(cfg(&[("log.flush.interval.messages", "0")]).is_err());
    }

    #[test]
    fn invalid_value_message_is_one_line_naming_key_value_file() {
        let err = cfg(&[("log.segment.bytes", "abc")]).unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            "invalid value \"abc\" for log.segment.bytes in test.properties: expected a positive integer"
        );
        let msg = cfg(&[("log.segment.bytes", "13")]).unwrap_err().to_string();
        assert_eq!(
            msg,
            "invalid value \"13\" for log.segment.bytes in test.properties: expected an integer between 14 and 2147483647"
        );
        let msg = cfg(&[("num.partitions", "2147483648")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("between 1 and 2147483647"), "{msg}");
        let msg = cfg(&[("auto.create.topics.enable", "yes")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "invalid value \"yes\" for auto.create.topics.enable in test.properties: expected true or false"
        );
    }

    #[test]
    fn values_are_trimmed_and_bools_case_insensitive() {
        let c = cfg(&[
            ("num.partitions", " 3 "),
            ("auto.create.topics.enable", "FALSE "),
        ])
        .unwrap();
        assert_eq!(c.num_partitions, 3);
        assert!(!c.auto_create_topics_enable);
    }

    #[test]
    fn listeners_parse_and_advertise() {
        let c = cfg(&[(
            "listeners",
            "plaintext://:9092, INTERNAL://127.0.0.1:9093,EXTERNAL://[::1]:0",
        )])
        .unwrap();
        assert_eq!(
            c.listeners,
            vec![
                listener("PLAINTEXT", "0.0.0.0", 9092),
                listener("INTERNAL", "127.0.0.1", 9093),
                listener("EXTERNAL", "::1", 0),
            ]
        );
        assert_eq!(
            c.advertised_listeners,
            vec![
                listener("PLAINTEXT", "localhost", 9092),
                listener("INTERNAL", "127.0.0.1", 9093),
                listener("EXTERNAL", "::1", 0),
            ]
        );
        assert_eq!(c.listeners[2].to_string(), "EXTERNAL://[::1]:0");

        let c = cfg(&[
            ("listeners", "PLAINTEXT://0.0.0.0:9092"),
            ("advertised.listeners", "PLAINTEXT://broker1.example:19092"),
        ])
        .unwrap();
        assert_eq!(
            c.advertised_listeners,
            vec![listener("PLAINTEXT", "broker1.example", 19092)]
        );

        for bad in [
            "PLAINTEXT//:9092",
            "PLAINTEXT://host",
            "PLAINTEXT://host:99999",
            "://host:1",
            "A://h:1,a://h:2",
            "",
        ] {
            assert_eq!(
                invalid_key(cfg(&[("listeners", bad)]).unwrap_err()),
                "listeners",
                "{bad:?} accepted"
            );
        }
        for bad in ["PLAINTEXT://0.0.0.0:9092", "OTHER://h:1"] {
            let err = cfg(&[("advertised.listeners", bad)]).unwrap_err();
            assert_eq!(invalid_key(err), "advertised.listeners", "{bad:?} accepted");
        }
    }

    #[test]
    fn kraft_roles_voters_and_controller_listener() {
        let c = cfg(&[
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", "1@localhost:9093,2@[::1]:9094"),
            ("controller.listener.names", "controller"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ])
        .unwrap();
        assert_eq!(
            c.process_roles,
            Some(vec![ProcessRole::Broker, ProcessRole::Controller])
        );
        assert!(!c.is_standalone());
        assert_eq!(
            c.controller_quorum_voters.as_deref().unwrap()[1],
            QuorumVoter {
                id: 2,
                host: "::1".into(),
                port: 9094
            }
        );
        assert_eq!(c.controller_listener_names, vec!["CONTROLLER"]);
        // The controller endpoint is for the quorum only, so it is not advertised.
        assert_eq!(
            c.advertised_listeners,
            vec![listener("PLAINTEXT", "localhost", 9092)]
        );

        let err = cfg(&[("process.roles", "controller")]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Missing { key, .. } if key == "controller.listener.names"),
            "{err:?}"
        );
        let err = cfg(&[("controller.quorum.voters", "1@h:1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required config process.roles in test.properties"
        );
        assert_eq!(
            invalid_key(cfg(&[("process.roles", "broker,zookeeper")]).unwrap_err()),
            "process.roles"
        );
        for bad in ["h:1", "x@h:1", "1@h", "1@:9093"] {
            let err = cfg(&[
                ("process.roles", "broker"),
                ("controller.quorum.voters", bad),
            ])
            .unwrap_err();
            assert_eq!(
                invalid_key(err),
                "controller.quorum.voters",
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn controller_and_session_settings() {
        let c = cfg(&[
            ("log.dirs", "/a,/b"),
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
            ("unclean.leader.election.enable", "true"),
            ("controller.quorum.election.timeout.ms", "250"),
            ("auto.leader.rebalance.enable", "false"),
            ("leader.imbalance.check.interval.seconds", "10"),
            ("default.replication.factor", "3"),
        ])
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // Without metadata.log.dir the metadata log shares the first log dir, as in Kafka.
        assert_eq!(c.metadata_log_dir, PathBuf::from("/a"));
        assert_eq!(c.broker_session_timeout, Duration::from_millis(3000));
        assert_eq!(c.broker_heartbeat_interval, Duration::from_millis(500));
        assert!(c.unclean_leader_election_enable);
        assert_eq!(
            c.controller_quorum_election_timeout,
            Duration::from_millis(250)
        );
        assert!(!c.auto_leader_rebalance_enable);
        assert_eq!(c.leader_imbalance_check_interval, Duration::from_secs(10));
        assert_eq!(c.default_replication_factor, 3);
        let c = cfg(&[("metadata.log.dir", "/meta"), ("log.dirs", "/a")]).unwrap();
        assert_eq!(c.metadata_log_dir, PathBuf::from("/meta"));

        let err = cfg(&[
            ("broker.session.timeout.ms", "1000"),
            ("broker.heartbeat.interval.ms", "1000"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"1000\" for broker.heartbeat.interval.ms in test.properties: \
             expected less than broker.session.timeout.ms (1000)"
        );
        for (key, bad) in [
            ("unclean.leader.election.enable", "maybe"),
            ("broker.session.timeout.ms", "0"),
            ("controller.quorum.election.timeout.ms", "-5"),
            ("leader.imbalance.check.interval.seconds", "x"),
            ("metadata.log.dir", " "),
        ] {
            assert_eq!(invalid_key(cfg(&[(key, bad)]).unwrap_err()), key, "{bad:?}");
        }
    }

    #[test]
    fn security_protocol_map_covers_every_listener() {
        let listeners = (
            "listeners",
            "PLAINTEXT://:9092,CONTROLLER://:9093,INTERNAL://:9094",
        );
        let c = cfg(&[
            listeners,
            (
                "listener.security.protocol.map",
                "controller:PLAINTEXT, PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL",
            ),
        ])
        .unwrap();
        assert_eq!(c.listener_security_protocol_map["CONTROLLER"], "PLAINTEXT");
        assert_eq!(c.listener_security_protocol_map["INTERNAL"], "SASL_SSL");

        // Absent, listeners named after a protocol use it and the rest are plaintext.
        let c = cfg(&[("listeners", "SSL://:9093,INTERNAL://:9094")]).unwrap();
        assert_eq!(c.listener_security_protocol_map["SSL"], "SSL");
        assert_eq!(c.listener_security_protocol_map["INTERNAL"], "PLAINTEXT");

        for bad in [
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:TLS",
            "PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:SSL",
            ":SSL",
        ] {
            let err = cfg(&[listeners, ("listener.security.protocol.map", bad)]).unwrap_err();
            assert_eq!(
                invalid_key(err),
                "listener.security.protocol.map",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn quorum_members_must_match_their_roles() {
        let controller = |node: &str, listeners: &str| {
            cfg(&[
                ("node.id", node),
                ("process.roles", "broker,controller"),
                (
                    "controller.quorum.voters",
                    "1@localhost:9093,2@localhost:9094",
                ),
                ("controller.listener.names", "CONTROLLER"),
                ("listeners", listeners),
            ])
        };
        let both = "PLAINTEXT://:9092,CONTROLLER://:9093";
        assert!(controller("2", both).is_ok());
        let err = controller("3", both).unwrap_err();
        assert_eq!(invalid_key(err), "controller.quorum.voters");
        let err = controller("1", "PLAINTEXT://:9092").unwrap_err();
        assert_eq!(invalid_key(err), "listeners");

        let broker = |node: &str| {
            cfg(&[
                ("node.id", node),
                ("process.roles", "broker"),
                ("controller.quorum.voters", "1@localhost:9093"),
            ])
        };
        assert!(broker("4").is_ok());
        assert_eq!(
            invalid_key(broker("1").unwrap_err()),
            "controller.quorum.voters"
        );

        // Kafka 4's sample names its quorum by bootstrap servers only; that still runs
        // standalone, as before.
        let c = cfg(&[
            ("process.roles", "broker,controller"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", both),
        ])
        .unwrap();
        assert!(c.is_standalone());
    }

    #[test]
    fn unknown_keys_warn_but_known_unused_keys_do_not() {
        let c = cfg(&[
            ("num.network.threads", "3"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT"),
            ("listener.name.internal.ssl.keystore.location", "/x"),
            ("log.segmnet.bytes", "5"),
            ("num.partitions", "2"),
        ])
        .unwrap();
        assert_eq!(c.num_partitions, 2);
        assert_eq!(
            c.warnings,
            vec!["unknown config key log.segmnet.bytes in test.properties (ignored)"]
        );
        assert_eq!(
            c.raw.get("log.segmnet.bytes").map(String::as_str),
            Some("5")
        );
    }

    fn write_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn from_file_applies_overrides_and_attributes_errors() {
        let f = write_file("num.partitions=2\nlog.segment.bytes=1000\n");
        let c = ServerConfig::from_file(f.path(), &[parse_override("num.partitions=8").unwrap()])
            .unwrap();
        assert_eq!(c.num_partitions, 8);
        assert_eq!(c.log_segment_bytes, 1000);
        assert_eq!(c.raw["num.partitions"], "8");

        let err =
            ServerConfig::from_file(f.path(), &[("log.roll.ms".into(), "x".into())]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"x\" for log.roll.ms in --override: expected a positive integer"
        );

        let f = write_file("log.segment.bytes=abc\n");
        let err = ServerConfig::from_file(f.path(), &[]).unwrap_err();
        assert!(err
            .to_string()
            .contains(&format!(" in {}: ", f.path().display())));
    }

    #[test]
    fn unknown_override_is_attributed_to_the_command_line() {
        let f = write_file("");
        let c =
            ServerConfig::from_file(f.path(), &[("nmu.partitions".into(), "3".into())]).unwrap();
        assert_eq!(
            c.warnings,
            vec!["unknown config key nmu.partitions in --override (ignored)"]
        );
    }

    fn repo_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    #[test]
    fn shipped_server_properties_loads_cleanly() {
        let c = ServerConfig::from_file(&repo_file("server.properties"), &[]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.node_id, 1);
        assert!(c.is_standalone());
        assert_eq!(c.listeners, vec![listener("PLAINTEXT", "localhost", 9092)]);
        assert_eq!(
            c.advertised_listeners,
            vec![listener("PLAINTEXT", "localhost", 9092)]
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/sluice-logs")]);
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.log_retention, Some(Duration::from_secs(168 * 3600)));
        assert_eq!(c.log_segment_bytes, 1_073_741_824);
        assert_eq!(
            c.log_retention_check_interval,
            Duration::from_millis(300_000)
        );
    }

    /// The key set of Kafka's KRaft sample `server.properties` (values are ours):
    /// pointing the server at an unmodified Kafka file must not warn.
    #[test]
    fn kafka_sample_key_set_warns_about_nothing() {
        let f = write_file(
            "process.roles=broker,controller\nnode.id=1\n\
             controller.quorum.voters=1@localhost:9093\n\
             controller.quorum.bootstrap.servers=localhost:9093\n\
             listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n\
             inter.broker.listener.name=PLAINTEXT\n\
             advertised.listeners=PLAINTEXT://localhost:9092\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             num.network.threads=3\nnum.io.threads=8\n\
             socket.send.buffer.bytes=102400\nsocket.receive.buffer.bytes=102400\n\
             socket.request.max.bytes=104857600\nlog.dirs=/tmp/kraft-combined-logs\n\
             num.partitions=1\nnum.recovery.threads.per.data.dir=1\n\
             offsets.topic.replication.factor=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
             log.flush.interval.messages=10000\nlog.flush.interval.ms=1000\n\
             log.retention.hours=168\nlog.retention.bytes=1073741824\n\
             log.segment.bytes=1073741824\nlog.retention.check.interval.ms=300000\n\
             group.initial.rebalance.delay.ms=0\nbroker.id=1\n\
             zookeeper.connect=localhost:2181\nzookeeper.connection.timeout.ms=18000\n",
        );
        let c = ServerConfig::from_file(f.path(), &[]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.group_initial_rebalance_delay, Duration::ZERO);
        assert_eq!(c.log_flush_interval_messages, Some(10_000));
    }
}
