//! The broker's settings, already validated: the `sluice` binary builds this from
//! `server.properties`, so the broker itself never parses files.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::group::service::OffsetsTopicConfig;
pub use crate::group::CoordinatorConfig;

/// An advertised endpoint: what Metadata tells clients to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// Where to listen; port 0 picks a free port (tests), reported by `Broker::local_addr`.
    pub listen: SocketAddr,
    /// What to advertise; `None` advertises the bound address (with its real port).
    pub advertised: Option<Endpoint>,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    /// min.insync.replicas: the default for topics without their own.
    pub min_insync_replicas: usize,
    pub auto_create_topics: bool,
    pub log_segment_bytes: u64,
    pub log_roll_ms: u64,
    /// `None` keeps data forever (-1 in the properties).
    pub log_retention_ms: Option<i64>,
    pub log_retention_bytes: Option<u64>,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_interval_messages: Option<u64>,
    pub log_flush_interval_ms: Option<u64>,
    pub log_index_interval_bytes: usize,
    /// log.cleaner.enable: whether a cleaner thread compacts topics with cleanup.policy=compact.
    pub log_cleaner_enable: bool,
    /// log.cleaner.backoff.ms: the pause between cleaner passes over all logs.
    pub log_cleaner_backoff_ms: u64,
    /// log.cleaner.dedupe.buffer.size: memory for one pass's key map.
    pub log_cleaner_dedupe_buffer_size: usize,
    pub message_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    /// Consumer group rules (group.* and offset settings).
    pub group_coordinator: CoordinatorConfig,
    /// How `__consumer_offsets` is created.
    pub offsets_topic: OffsetsTopicConfig,
    /// replica.lag.time.max.ms: a follower in the ISR that has not caught up with its leader for
    /// this long is proposed for removal.
    pub replica_lag_time_max_ms: u64,
    /// replica.fetch.wait.max.ms: how long a leader may hold a follower's fetch with nothing new.
    pub replica_fetch_wait_max_ms: u64,
    /// replica.fetch.backoff.ms: a follower's pause before fetching again after an error.
    pub replica_fetch_backoff_ms: u64,
    /// Every property as given, reported by DescribeConfigs for the broker resource.
    pub raw: BTreeMap<String, String>,
    /// Cluster mode (a combined broker and controller); `None` is the standalone broker.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl BrokerConfig {
    /// Kafka's defaults, one log dir, listening on `listen`.
    pub fn new(listen: SocketAddr, log_dir: PathBuf) -> BrokerConfig {
        BrokerConfig {
            node_id: 1,
            listen,
            advertised: None,
            log_dirs: vec![log_dir],
            num_partitions: 1,
            default_replication_factor: 1,
            min_insync_replicas: 1,
            auto_create_topics: true,
            log_segment_bytes: 1 << 30,
            log_roll_ms: 168 * 3_600_000,
            log_retention_ms: Some(168 * 3_600_000),
            log_retention_bytes: None,
            log_retention_check_interval_ms: 300_000,
            log_flush_interval_messages: None,
            log_flush_interval_ms: None,
            log_index_interval_bytes: 4096,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: crate::log::DEFAULT_BACKOFF_MS,
            log_cleaner_dedupe_buffer_size: crate::log::DEFAULT_DEDUPE_BUFFER_BYTES,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            group_coordinator: CoordinatorConfig::default(),
            offsets_topic: OffsetsTopicConfig {
                partitions: 50,
                segment_bytes: 100 << 20,
                replication_factor: 1,
            },
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            raw: BTreeMap::new(),
            cluster: None,
        }
    }
}

/// One `id@host:port` entry of `controller.quorum.voters`: a controller and its CONTROLLER
/// listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    /// Never bracketed; an IPv6 address is stored bare.
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// `host:port`, bracketing an IPv6 host, as a socket address string.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A controller node's settings (`process.roles` containing `controller`).
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// node.id; must be one of `voters`.
    pub node_id: i32,
    /// controller.quorum.voters: every controller, this one included.
    pub voters: Vec<QuorumVoter>,
    /// Where the CONTROLLER listener binds (the voters entry says where peers reach it).
    pub listen: SocketAddr,
    /// metadata.log.dir (Kafka falls back to the first log dir): the metadata log goes in its
    /// `__cluster_metadata-0` subdirectory.
    pub metadata_log_dir: PathBuf,
    /// broker.session.timeout.ms, unclean.leader.election.enable, default.replication.factor
    /// and num.partitions: what the active controller's decisions depend on.
    pub settings: crate::controller::ControllerSettings,
    /// controller.quorum.election.timeout.ms: how long a follower waits without hearing from a
    /// leader before it stands for election (openraft waits a random time up to twice this).
    pub election_timeout_ms: u64,
    /// Committed entries between snapshots of the image; the log before a snapshot is purged.
    pub snapshot_interval_entries: u64,
    /// leader.imbalance.check.interval.seconds when auto.leader.rebalance.enable is true: how
    /// often leadership moves back to preferred replicas. `None` never does it on its own.
    pub leader_imbalance_check_interval_ms: Option<u64>,
}

impl ControllerConfig {
    /// Kafka's defaults for a controller `node_id` among `voters`.
    pub fn new(
        node_id: i32,
        voters: Vec<QuorumVoter>,
        listen: SocketAddr,
        metadata_log_dir: PathBuf,
    ) -> ControllerConfig {
        ControllerConfig {
            node_id,
            voters,
            listen,
            metadata_log_dir,
            settings: crate::controller::ControllerSettings::default(),
            election_timeout_ms: 1000,
            snapshot_interval_entries: 1000,
            leader_imbalance_check_interval_ms: Some(300_000),
        }
    }
}
