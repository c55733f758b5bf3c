//! `sluice connect-standalone WORKER.properties CONNECTOR.properties...`: runs a Connect worker
//! in this process (connect-standalone.sh) until SIGINT or SIGTERM, then stops every task
//! cleanly so source offsets are saved and sink offsets committed.
//!
//! Sluice setting: `sluice.embedded.broker=true` in the worker file first starts a broker in
//! the same process, listening on the `bootstrap.servers` address, with its logs under
//! `sluice.embedded.broker.log.dirs` (default /tmp/sluice-connect-broker), so the Kafka
//! quickstart needs nothing else running. Leave it unset (false) to use an existing cluster.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use sluice_broker::{Broker, BrokerConfig};
use sluice_connect::connector::ConnectorRegistry;
use sluice_connect::runtime::{ConnectorConfig, Worker, WorkerConfig};
use tokio::sync::oneshot;

#[derive(Args)]
pub struct ConnectStandaloneArgs {
    /// The worker's properties file (config/connect-standalone.properties)
    worker: PathBuf,
    /// One properties file per connector (name, connector.class, tasks.max, ...)
    #[arg(required = true)]
    connectors: Vec<PathBuf>,
}

/// The connectors this binary can run, by class name.
pub fn register_builtin_connectors(registry: &mut ConnectorRegistry) {
    sluice_connectors::register(registry);
}

pub fn run(args: ConnectStandaloneArgs) -> Result<(), String> {
    // Every file is read before anything starts, so a typo costs no half-started worker.
    let worker_config = WorkerConfig::from_file(&args.worker).map_err(message)?;
    let connectors = args
        .connectors
        .iter()
        .map(|path| ConnectorConfig::from_file(path).map_err(message))
        .collect::<Result<Vec<_>, _>>()?;
    let mut registry = ConnectorRegistry::new();
    register_builtin_connectors(&mut registry);
    for (config, path) in connectors.iter().zip(&args.connectors) {
        registry
            .resolve(&config.class)
            .map_err(|e| format!("connector.class in {}: {}", path.display(), message(e)))?;
    }
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let broker = match worker_config.embedded_broker {
            true => Some(start_embedded_broker(&worker_config, &args.worker).await?),
            false => None,
        };
        let listeners = worker_config.listeners.join(",");
        let worker = Arc::new(Worker::new(worker_config, registry).map_err(message)?);
        let (rest_stop, rest_stopped) = oneshot::channel::<()>();
        let mut started = match sluice_connect::rest::serve(worker.clone(), &listeners, async {
            let _ = rest_stopped.await;
        })
        .await
        {
            Ok(addr) => {
                tracing::info!(%addr, "Connect REST API listening");
                Ok(())
            }
            Err(e) => Err(message(e)),
        };
        for config in connectors {
            if started.is_err() {
                break;
            }
            let name = config.name.clone();
            if let Err(e) = worker.start(config).await {
                started = Err(format!("connector {name}: {}", message(e)));
                break;
            }
            tracing::info!(connector = %name, "connector started");
        }
        if started.is_ok() {
            shutdown_signal().await;
            tracing::info!("stopping the worker");
        }
        let _ = rest_stop.send(());
        worker.stop().await;
        if let Some((stop, task)) = broker {
            let _ = stop.send(());
            let _ = task.await;
        }
        started
    })
}

/// The error text without the "config error: " prefix the library adds: the message already
/// names the key and the file.
fn message(e: sluice_connect::ConnectError) -> String {
    match e {
        sluice_connect::ConnectError::Config(m) => m,
        e => e.to_string(),
    }
}

type EmbeddedBroker = (oneshot::Sender<()>, tokio::task::JoinHandle<()>);

async fn start_embedded_broker(
    config: &WorkerConfig,
    file: &std::path::Path,
) -> Result<EmbeddedBroker, String> {
    let first = &config.bootstrap_servers[0];
    let listen: SocketAddr = first
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            format!(
                "cannot resolve bootstrap.servers address {first:?} in {} for the embedded broker",
                file.display()
            )
        })?;
    let mut broker_config = BrokerConfig::new(listen, config.embedded_broker_log_dirs.clone());
    // One worker, one broker: no other members to wait for before a group's first rebalance.
    broker_config.group_coordinator.initial_rebalance_delay_ms = 0;
    let broker = Broker::start(broker_config)
        .await
        .map_err(|e| format!("cannot start the embedded broker on {listen}: {e}"))?;
    tracing::info!(%listen, "embedded broker started");
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let stopped = broker
            .run(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = stopped {
            tracing::error!(error = %e, "embedded broker failed");
        }
    });
    Ok((stop, task))
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
