//! `Broker`: opens storage, binds the listener, serves connections, runs log maintenance and the
//! log cleaner, and shuts everything down in order (stop accepting, finish in-flight requests,
//! close the logs).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::cluster::{ClusterMember, ProducerIdAllocator, INTER_BROKER_LISTENER};
use crate::config::{BrokerConfig, Endpoint};
use crate::controller::{BrokerEndpoint, ControllerHandle, ControllerNode};
use crate::error::{BrokerError, Result};
use crate::group::service::GroupCoordinatorService;
use crate::log::{CleanerConfig, LogManager};
use crate::metadata::MetadataStore;
use crate::network::{FrameReader, FrameWriter, ReadError};
use crate::replica_manager::{now_ms, ReplicaManager};
use crate::request;
use crate::shutdown::Shutdown;
use crate::topic_config;

/// What every request handler may use.
pub struct Context {
    pub config: Arc<BrokerConfig>,
    pub replicas: Arc<ReplicaManager>,
    pub groups: Arc<GroupCoordinatorService>,
    pub advertised: Endpoint,
    pub shutdown: Shutdown,
    /// This process's controller node in cluster mode; `None` for the standalone broker.
    pub controller: Option<ControllerHandle>,
    /// Producer ids from the controller's blocks, in cluster mode.
    pub producer_ids: Option<ProducerIdAllocator>,
    /// The cluster id clients see: the local store's standalone, the quorum's in a cluster.
    pub cluster_id: String,
}

impl Context {
    /// Whether a partition exists: in the committed metadata in a cluster (where this broker
    /// hosts only some replicas), among the hosted ones standalone.
    pub fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        match &self.controller {
            Some(c) => c
                .image()
                .borrow()
                .partition_by_name(topic, partition)
                .is_some(),
            None => self.replicas.partition(topic, partition).is_some(),
        }
    }
}

pub struct Broker {
    ctx: Arc<Context>,
    logs: Arc<LogManager>,
    listener: TcpListener,
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    member: Option<ClusterMember>,
}

impl Broker {
    /// Recovers the logs and binds the listener; serving starts with `run`.
    pub async fn start(config: BrokerConfig) -> Result<Broker> {
        let config = Arc::new(config);
        let first_dir = config
            .log_dirs
            .first()
            .ok_or_else(|| BrokerError::Metadata("no log.dirs configured".into()))?
            .clone();
        let (logs, metadata) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let metadata = MetadataStore::open(&first_dir, config.node_id)?;
                let defaults = topic_config::log_config(&config, &Default::default());
                let logs = LogManager::open(config.log_dirs.clone(), defaults)?;
                Ok((Arc::new(logs), Arc::new(metadata)))
            })
            .await
            .map_err(|e| BrokerError::Metadata(format!("start-up task failed: {e}")))??
        };
        let replicas = Arc::new(ReplicaManager::open(
            config.clone(),
            metadata,
            logs.clone(),
        )?);
        let groups = GroupCoordinatorService::open(
            replicas.clone(),
            config.group_coordinator.clone(),
            config.offsets_topic.clone(),
            config.cluster.is_some(),
        )?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        // An advertised port 0 (listen on any free port) means the port actually bound.
        let advertised = config
            .advertised
            .clone()
            .filter(|e| e.port != 0)
            .unwrap_or_else(|| Endpoint {
                host: match local_addr.ip() {
                    ip if ip.is_unspecified() => "localhost".to_string(),
                    ip => ip.to_string(),
                },
                port: local_addr.port(),
            });
        let member = match &config.cluster {
            None => None,
            Some(cluster) => {
                let handle = if cluster.voter {
                    ControllerNode::start(cluster.controller.clone()).await?
                } else {
                    let c = &cluster.controller;
                    ControllerNode::observe(
                        c.node_id,
                        c.voters.iter().map(|v| (v.id, v.address())).collect(),
                        Duration::from_millis(c.election_timeout_ms.max(10) * 10),
                    )?
                };
                let member = ClusterMember {
                    handle,
                    broker_id: config.node_id,
                    listener: BrokerEndpoint {
                        name: INTER_BROKER_LISTENER.into(),
                        host: advertised.host.clone(),
                        port: advertised.port,
                        security_protocol: "PLAINTEXT".into(),
                    },
                    heartbeat_interval: Duration::from_millis(cluster.heartbeat_interval_ms.max(1)),
                    broker_epoch: Default::default(),
                    offsets_topic: config.offsets_topic.clone(),
                };
                replicas.set_isr_channel(Some(Arc::new(member.isr_channel())));
                Some(member)
            }
        };
        let cluster_id = match &config.cluster {
            Some(cluster) => crate::metadata::cluster_id_for_voters(
                &cluster
                    .controller
                    .voters
                    .iter()
                    .map(|v| (v.id, v.address()))
                    .collect::<Vec<_>>(),
            ),
            None => replicas.metadata().cluster_id(),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let ctx = Arc::new(Context {
            config,
            replicas,
            groups,
            advertised,
            shutdown: Shutdown::new(shutdown_rx),
            controller: member.as_ref().map(|m| m.handle.clone()),
            producer_ids: member.as_ref().map(|m| m.producer_ids()),
            cluster_id,
        });
        info!(
            node_id = ctx.config.node_id,
            listen = %local_addr,
            advertised = %format!("{}:{}", ctx.advertised.host, ctx.advertised.port),
            cluster_id = %ctx.cluster_id,
            "broker started"
        );
        Ok(Broker {
            ctx,
            logs,
            listener,
            local_addr,
            shutdown_tx,
            member,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The partitions this broker hosts; replication is driven through it.
    pub fn replicas(&self) -> Arc<ReplicaManager> {
        self.ctx.replicas.clone()
    }

    /// The controller node this broker runs in cluster mode.
    pub fn controller(&self) -> Option<ControllerHandle> {
        self.ctx.controller.clone()
    }

    /// Serves until `signal` resolves, then shuts down cleanly.
    pub async fn run(mut self, signal: impl Future<Output = ()>) -> Result<()> {
        let member = self.member.take().map(|m| {
            tokio::spawn(m.run(
                self.ctx.replicas.clone(),
                self.ctx.groups.clone(),
                self.ctx.shutdown.clone(),
            ))
        });
        let mut connections = JoinSet::new();
        let maintenance = tokio::spawn(maintain(self.ctx.clone(), self.logs.clone()));
        let coordinator = tokio::spawn(self.ctx.groups.clone().run(self.ctx.shutdown.clone()));
        let lag_check = tokio::spawn(check_isr_lag(self.ctx.clone()));
        let cleaner = self
            .ctx
            .config
            .log_cleaner_enable
            .then(|| tokio::spawn(clean_logs(self.ctx.clone(), self.logs.clone())));
        tokio::pin!(signal);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let ctx = self.ctx.clone();
                        connections.spawn(serve_connection(ctx, stream, peer));
                    }
                    // Out of file descriptors and the like: back off instead of spinning.
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                _ = &mut signal => break,
            }
        }
        info!("shutting down");
        let _ = self.shutdown_tx.send(true);
        drop(self.listener);
        // Parked JoinGroup/SyncGroup requests are answered first, so connections can drain.
        let _ = coordinator.await;
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            warn!("connections still busy after 10s; closing them");
            connections.shutdown().await;
        }
        let _ = maintenance.await;
        let _ = lag_check.await;
        // No image may start new fetchers once they are being stopped.
        if let Some(member) = member {
            let _ = member.await;
        }
        // Fetchers write to the logs; they stop before the logs close.
        self.ctx.replicas.stop_replication();
        self.ctx.replicas.set_isr_channel(None);
        if let Some(controller) = &self.ctx.controller {
            if let Err(e) = controller.shutdown().await {
                warn!(error = %e, "controller did not stop cleanly");
            }
        }
        let logs = self.logs.clone();
        // Closing the logs also stops a cleaner pass that is under way, at its next batch.
        let closed = tokio::task::spawn_blocking(move || logs.shutdown()).await;
        if let Some(cleaner) = cleaner {
            let _ = cleaner.await;
        }
        closed.map_err(|e| BrokerError::Metadata(format!("shutdown task failed: {e}")))??;
        info!("shut down cleanly");
        Ok(())
    }
}

async fn serve_connection(ctx: Arc<Context>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = FrameReader::new(read, ctx.config.socket_request_max_bytes);
    let (writer, writer_task) = FrameWriter::spawn(write);
    let mut shutdown = ctx.shutdown.clone();
    debug!(%peer, "connection opened");
    loop {
        let frame = tokio::select! {
            frame = reader.read_frame() => frame,
            _ = shutdown.recv() => break,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            // A client that vanished (killed, or closed without a goodbye) is routine.
            Err(ReadError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                debug!(%peer, error = %e, "connection reset by peer");
                break;
            }
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: unreadable frame");
                break;
            }
        };
        // Requests on one connection are handled one after another, as Kafka does, so responses
        // leave in request order and a producer's pipelined batches append in order.
        match request::handle_frame(&ctx, Some(peer), frame).await {
            Ok(Some(response)) => {
                if !writer.send(response).await {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: bad request");
                break;
            }
        }
    }
    drop(writer);
    let _ = writer_task.await;
    debug!(%peer, "connection closed");
}

/// Retention, time-based rolls, interval flushes and checkpoints, about once a second.
async fn maintain(ctx: Arc<Context>, logs: Arc<LogManager>) {
    let mut shutdown = ctx.shutdown.clone();
    let check_every = ctx.config.log_retention_check_interval_ms.max(1) as i64;
    let mut next_retention = now_ms() + check_every;
    let tick = Duration::from_millis(check_every.clamp(1, 1000) as u64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.recv() => return,
        }
        let now = now_ms();
        let retention_due = now >= next_retention;
        if retention_due {
            next_retention = now + check_every;
        }
        let logs = logs.clone();
        match tokio::task::spawn_blocking(move || logs.run_maintenance(now, retention_due)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "log maintenance failed"),
            Err(e) => error!(error = %e, "log maintenance task panicked"),
        }
    }
}

/// Kafka's ISR shrink check: every half replica.lag.time.max.ms, each led partition proposes
/// dropping followers that have not caught up within the lag time.
async fn check_isr_lag(ctx: Arc<Context>) {
    let mut shutdown = ctx.shutdown.clone();
    let every = Duration::from_millis((ctx.config.replica_lag_time_max_ms / 2).max(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.recv() => return,
        }
        ctx.replicas.check_lagging(now_ms());
    }
}

/// The log cleaner: compacts every log with cleanup.policy=compact. It runs apart from `maintain`
/// because a pass reads and rewrites whole segments, which must not hold up flushes and
/// retention; like Kafka's cleaner thread it goes straight on while passes find work and waits
/// `log.cleaner.backoff.ms` once they do not.
async fn clean_logs(ctx: Arc<Context>, logs: Arc<LogManager>) {
    let mut shutdown = ctx.shutdown.clone();
    // A zero backoff would spin on idle logs; Kafka's own floor is one tick of its scheduler.
    let backoff = Duration::from_millis(ctx.config.log_cleaner_backoff_ms.max(100));
    let config = CleanerConfig {
        dedupe_buffer_bytes: ctx.config.log_cleaner_dedupe_buffer_size,
        ..CleanerConfig::default()
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.recv() => return,
        }
        while !shutdown.is_shutdown() {
            let (logs, config) = (logs.clone(), config.clone());
            let now = now_ms();
            match tokio::task::spawn_blocking(move || logs.clean_compacted(now, &config)).await {
                Ok(Ok(cleaned)) if !cleaned.is_empty() => continue,
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    error!(error = %e, "log cleaning failed");
                    break;
                }
                Err(e) => {
                    error!(error = %e, "log cleaner task panicked");
                    break;
                }
            }
        }
    }
}
