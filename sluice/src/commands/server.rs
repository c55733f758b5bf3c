//! `sluice server`: reads server.properties (with --override), starts the broker, and shuts it
//! down cleanly on SIGINT or SIGTERM.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Args;
use sluice_broker::cluster::ClusterConfig;
use sluice_broker::controller::ControllerSettings;
use sluice_broker::{
    Broker, BrokerConfig, ControllerConfig, CoordinatorConfig, Endpoint, OffsetsTopicConfig,
    QuorumVoter,
};
use sluice_config::server::ProcessRole;
use sluice_config::{parse_override, ServerConfig};

#[derive(Args)]
pub struct ServerArgs {
    /// The broker's properties file (config/server.properties)
    config: PathBuf,
    /// Override a property: --override key=value (repeatable)
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub fn run(args: ServerArgs) -> Result<(), String> {
    let overrides = args
        .overrides
        .iter()
        .map(|o| parse_override(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let server = ServerConfig::from_file(&args.config, &overrides).map_err(|e| e.to_string())?;
    let mut config = broker_config(&server, &args.config)?;
    config.cluster = cluster_config(&server, &args.config)?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let broker = Broker::start(config)
            .await
            .map_err(|e| format!("cannot start the broker: {e}"))?;
        broker
            .run(shutdown_signal())
            .await
            .map_err(|e| format!("broker failed: {e}"))
    })
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Resolves a listener's bind address; an empty host binds every interface.
fn bind_address(host: &str, port: u16, file: &std::path::Path) -> Result<SocketAddr, String> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            format!(
                "cannot resolve listener host {host:?} in {}",
                file.display()
            )
        })
}

/// Cluster mode when controller.quorum.voters is set; `None` keeps the standalone broker.
/// Combined nodes (process.roles=broker,controller) vote; broker-only nodes follow the voters.
/// A controller-only node must not serve clients, which `Broker` cannot do yet.
fn cluster_config(
    s: &ServerConfig,
    file: &std::path::Path,
) -> Result<Option<ClusterConfig>, String> {
    let Some(voters) = &s.controller_quorum_voters else {
        return Ok(None);
    };
    let roles = s.process_roles.clone().unwrap_or_default();
    if !roles.contains(&ProcessRole::Broker) {
        let given = s.raw.get("process.roles").map_or("", String::as_str);
        return Err(format!(
            "process.roles={given:?} in {}: controller-only nodes are not supported yet; use broker,controller",
            file.display()
        ));
    }
    let voter = roles.contains(&ProcessRole::Controller);
    let listen = if voter {
        let controller_listener = s
            .listeners
            .iter()
            .find(|l| s.controller_listener_names.contains(&l.name))
            .ok_or_else(|| {
                format!(
                    "no listener named in controller.listener.names ({}) in listeners of {}",
                    s.controller_listener_names.join(","),
                    file.display()
                )
            })?;
        bind_address(&controller_listener.host, controller_listener.port, file)?
    } else {
        // A broker-only node has no CONTROLLER listener; it connects to the voters.
        std::net::SocketAddr::from(([0, 0, 0, 0], 0))
    };
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let voters = voters
        .iter()
        .map(|v| QuorumVoter {
            id: v.id,
            host: v.host.clone(),
            port: v.port,
        })
        .collect();
    let mut controller =
        ControllerConfig::new(s.node_id, voters, listen, s.metadata_log_dir.clone());
    controller.settings = ControllerSettings {
        session_timeout_ms: ms(s.broker_session_timeout) as i64,
        unclean_leader_election: s.unclean_leader_election_enable,
        default_replication_factor: s.default_replication_factor,
        default_num_partitions: s.num_partitions,
    };
    controller.election_timeout_ms = ms(s.controller_quorum_election_timeout);
    controller.leader_imbalance_check_interval_ms = s
        .auto_leader_rebalance_enable
        .then(|| ms(s.leader_imbalance_check_interval));
    Ok(Some(ClusterConfig {
        controller,
        voter,
        heartbeat_interval_ms: ms(s.broker_heartbeat_interval),
    }))
}

fn broker_config(s: &ServerConfig, file: &std::path::Path) -> Result<BrokerConfig, String> {
    // The broker listens on the first non-controller listener; more listeners (and security
    // protocols) come with the replication and security issues.
    let listener = s
        .listeners
        .iter()
        .find(|l| !s.controller_listener_names.contains(&l.name))
        .ok_or_else(|| format!("no broker listener in listeners of {}", file.display()))?;
    let listen = bind_address(&listener.host, listener.port, file)?;
    let advertised = s
        .advertised_listeners
        .iter()
        .find(|l| l.name == listener.name)
        .map(|l| Endpoint {
            host: l.host.clone(),
            port: l.port,
        });
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    // The properties parser does not type the replica.* settings yet (it lists them as accepted
    // or warns of them as unknown); they are read from the raw properties here, and a value
    // that is not a number is an error rather than silently the default.
    let replica_ms = |key: &str, default: u64| -> Result<u64, String> {
        match s.raw.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                format!(
                    "{key} must be a whole number of milliseconds, got {v:?} in {}",
                    file.display()
                )
            }),
        }
    };
    let defaults = BrokerConfig::new(listen, PathBuf::new());
    Ok(BrokerConfig {
        node_id: s.node_id,
        listen,
        advertised,
        log_dirs: s.log_dirs.clone(),
        num_partitions: s.num_partitions,
        default_replication_factor: s.default_replication_factor,
        min_insync_replicas: s.min_insync_replicas.max(1) as usize,
        auto_create_topics: s.auto_create_topics_enable,
        log_segment_bytes: s.log_segment_bytes as u64,
        log_roll_ms: ms(s.log_roll),
        log_retention_ms: s.log_retention.map(|d| ms(d) as i64),
        log_retention_bytes: s.log_retention_bytes,
        log_retention_check_interval_ms: ms(s.log_retention_check_interval),
        log_flush_interval_messages: s.log_flush_interval_messages,
        log_flush_interval_ms: s.log_flush_interval.map(ms),
        log_index_interval_bytes: s.log_index_interval_bytes as usize,
        log_cleaner_enable: s.log_cleaner_enable,
        log_cleaner_backoff_ms: ms(s.log_cleaner_backoff),
        log_cleaner_dedupe_buffer_size: s.log_cleaner_dedupe_buffer_size as usize,
        message_max_bytes: s.message_max_bytes as usize,
        socket_request_max_bytes: s.socket_request_max_bytes as usize,
        group_coordinator: CoordinatorConfig {
            initial_rebalance_delay_ms: ms(s.group_initial_rebalance_delay) as i64,
            min_session_timeout_ms: ms(s.group_min_session_timeout) as i32,
            max_session_timeout_ms: ms(s.group_max_session_timeout) as i32,
            max_group_size: s.group_max_size as usize,
            offset_metadata_max_bytes: s.offset_metadata_max_bytes as usize,
            offsets_retention_ms: ms(s.offsets_retention) as i64,
            offsets_retention_check_interval_ms: ms(s.offsets_retention_check_interval) as i64,
        },
        offsets_topic: OffsetsTopicConfig {
            partitions: s.offsets_topic_num_partitions,
            segment_bytes: s.offsets_topic_segment_bytes as u64,
            replication_factor: s.offsets_topic_replication_factor,
        },
        replica_lag_time_max_ms: replica_ms(
            "replica.lag.time.max.ms",
            defaults.replica_lag_time_max_ms,
        )?,
        replica_fetch_wait_max_ms: replica_ms(
            "replica.fetch.wait.max.ms",
            defaults.replica_fetch_wait_max_ms,
        )?,
        replica_fetch_backoff_ms: replica_ms(
            "replica.fetch.backoff.ms",
            defaults.replica_fetch_backoff_ms,
        )?,
        raw: s.raw.clone(),
        cluster: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn server(extra: &[(&str, &str)]) -> ServerConfig {
        let mut props: BTreeMap<String, String> = [
            ("node.id", "2"),
            ("controller.quorum.voters", "1@h1:9093,2@h2:9093,3@h3:9093"),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("advertised.listeners", "PLAINTEXT://h2:9092"),
            ("log.dirs", "/tmp/sluice-test-logs"),
            ("broker.heartbeat.interval.ms", "1500"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        props
            .entry("process.roles".into())
            .or_insert_with(|| "broker,controller".into());
        ServerConfig::from_properties(props, "test.properties").unwrap()
    }

    #[test]
    fn a_combined_node_runs_its_controller_on_the_controller_listener() {
        let s = server(&[]);
        let file = Path::new("test.properties");
        let cluster = cluster_config(&s, file).unwrap().expect("cluster mode");
        assert_eq!(cluster.heartbeat_interval_ms, 1500);
        assert_eq!(cluster.controller.node_id, 2);
        assert_eq!(cluster.controller.listen.port(), 9093);
        let voters: Vec<String> = cluster
            .controller
            .voters
            .iter()
            .map(|v| v.address())
            .collect();
        assert_eq!(voters, ["h1:9093", "h2:9093", "h3:9093"]);
        // The broker itself still serves clients on the other listener.
        assert_eq!(broker_config(&s, file).unwrap().listen.port(), 9092);
    }

    #[test]
    fn broker_only_nodes_follow_the_voters_and_standalone_stays_standalone() {
        let file = Path::new("test.properties");
        // A broker-only node is not a voter (the parser insists) and has no controller listener.
        let broker_only = server(&[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
        ]);
        let cluster = cluster_config(&broker_only, file)
            .unwrap()
            .expect("cluster mode");
        assert!(!cluster.voter);
        assert_eq!(cluster.controller.node_id, 4);
        assert_eq!(cluster.controller.voters.len(), 3);
        let combined = cluster_config(&server(&[]), file)
            .unwrap()
            .expect("cluster mode");
        assert!(combined.voter);
        let standalone = ServerConfig::from_properties(BTreeMap::new(), "empty").unwrap();
        assert!(cluster_config(&standalone, file).unwrap().is_none());
    }
}
