//! `sluice server`: reads server.properties (with --override), starts the broker, and shuts it
//! down cleanly on SIGINT or SIGTERM.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Args;
use sluice_broker::{Broker, BrokerConfig, CoordinatorConfig, Endpoint, OffsetsTopicConfig};
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
    if server.controller_quorum_voters.is_some() {
        return Err(format!(
            "controller.quorum.voters is set in {}, but multi-node clusters are not implemented yet; remove it to run a standalone broker",
            args.config.display()
        ));
    }
    let config = broker_config(&server, &args.config)?;
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

fn broker_config(s: &ServerConfig, file: &std::path::Path) -> Result<BrokerConfig, String> {
    // The broker listens on the first non-controller listener; more listeners (and security
    // protocols) come with the replication and security issues.
    let listener = s
        .listeners
        .iter()
        .find(|l| !s.controller_listener_names.contains(&l.name))
        .ok_or_else(|| format!("no broker listener in listeners of {}", file.display()))?;
    let host = if listener.host.is_empty() {
        "0.0.0.0"
    } else {
        listener.host.as_str()
    };
    let listen: SocketAddr = (host, listener.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            format!(
                "cannot resolve listener host {host:?} in {}",
                file.display()
            )
        })?;
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
    })
}
