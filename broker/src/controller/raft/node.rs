//! `ControllerNode`: one member of the controller quorum, started from a `ControllerConfig`, and
//! `ControllerHandle`, through which the broker submits requests and watches the image.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::log_store::LogStore;
use super::network::{forward_submit, serve, LocalSubmit, NetworkFactory};
use super::state_machine::StateMachineStore;
use super::{MetadataBatch, Raft};
use crate::config::ControllerConfig;
use crate::controller::image::ClusterImage;
use crate::controller::quorum_controller::{ControllerReply, ControllerRequest, QuorumController};
use crate::controller::records::NodeId;
use crate::error::{BrokerError, Result};
use crate::metadata::random_bytes;
use crate::replica_manager::now_ms;

/// Snapshot chunks stay far below the frame limit: JSON spells each byte as up to four.
const SNAPSHOT_CHUNK_BYTES: u64 = 4 << 20;

pub struct ControllerNode;

/// The decision-making half of the node, used only while it leads.
struct Active {
    controller: QuorumController,
    /// The term the controller's sessions belong to; a new term starts them afresh.
    term: Option<u64>,
}

struct Inner {
    node_id: NodeId,
    raft: Raft,
    image: watch::Receiver<Arc<ClusterImage>>,
    local_addr: SocketAddr,
    /// Held across deciding and committing, so every decision sees the ones before it.
    active: Mutex<Active>,
    /// How long a submission may wait for the quorum before it is answered with an error.
    request_timeout: Duration,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// A running controller. Clones share the node; dropping the last one stops it (prefer
/// `shutdown`, which waits until it has stopped).
#[derive(Clone)]
pub struct ControllerHandle {
    inner: Arc<Inner>,
}

fn quorum_err(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Quorum(e.to_string())
}

fn leader_of(id: Option<u64>) -> Option<NodeId> {
    id.and_then(|id| NodeId::try_from(id).ok())
}

impl ControllerNode {
    /// Opens the metadata log, binds the CONTROLLER listener and joins the quorum. A node whose
    /// log is empty proposes the configured voters as the first membership; openraft makes that
    /// safe when several fresh nodes do it at once with the same voters, and refuses it on a node
    /// that already has a log, so it happens once per cluster.
    pub async fn start(config: ControllerConfig) -> Result<ControllerHandle> {
        if !config.voters.iter().any(|v| v.id == config.node_id) {
            return Err(BrokerError::InvalidConfig(format!(
                "node.id {} is not one of controller.quorum.voters",
                config.node_id
            )));
        }
        if config.voters.iter().any(|v| v.id < 0) || config.node_id < 0 {
            return Err(BrokerError::InvalidConfig(
                "controller ids must not be negative".into(),
            ));
        }
        let dir = config.metadata_log_dir.clone();
        let (log, sm) = tokio::task::spawn_blocking(move || -> Result<_> {
            let log = LogStore::open(&dir)?;
            let sm = StateMachineStore::open(log.dir())?;
            Ok((log, sm))
        })
        .await
        .map_err(quorum_err)??;
        let image = sm.subscribe();

        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;

        let election = config.election_timeout_ms.max(10);
        let raft_config = openraft::Config {
            cluster_name: "sluice-controllers".into(),
            election_timeout_min: election,
            election_timeout_max: election * 2,
            heartbeat_interval: (election / 4).max(1),
            // A snapshot chunk crosses the network and is fsynced; short election timeouts
            // (tests) must not make that time out.
            install_snapshot_timeout: election.max(1000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_interval_entries.max(1)),
            // A follower that fell a little behind catches up from the log rather than needing
            // the whole image sent again.
            max_in_snapshot_log_to_keep: config.snapshot_interval_entries,
            snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| BrokerError::InvalidConfig(format!("controller quorum: {e}")))?;

        let raft = Raft::new(
            config.node_id as u64,
            Arc::new(raft_config),
            NetworkFactory,
            log,
            sm,
        )
        .await
        .map_err(quorum_err)?;
        // The listener answers raft RPCs from the start, but forwarded submissions need the
        // node, which exists only once the quorum is joined; until then they are refused.
        let local = LocalSubmitter(Arc::new(OnceLock::new()));
        let server = tokio::spawn(serve(listener, raft.clone(), local.clone()));

        if let Err(e) = initialize(&raft, &config).await {
            server.abort();
            let _ = raft.shutdown().await;
            return Err(e);
        }

        let inner = Arc::new(Inner {
            node_id: config.node_id,
            raft,
            image,
            local_addr,
            active: Mutex::new(Active {
                controller: QuorumController::new(
                    config.settings.clone(),
                    u64::from_be_bytes(random_bytes()[..8].try_into().unwrap_or([7; 8])),
                ),
                term: None,
            }),
            request_timeout: Duration::from_millis(election * 10),
            tasks: std::sync::Mutex::new(vec![server]),
        });
        let _ = local.0.set(Arc::downgrade(&inner));
        let ticker = tokio::spawn(maintain(
            Arc::downgrade(&inner),
            config.settings.session_timeout_ms,
            config.leader_imbalance_check_interval_ms,
        ));
        inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ticker);
        Ok(ControllerHandle { inner })
    }
}

/// The listener's way to the node for forwarded submissions. Weak, so the listener task (owned
/// by the node) does not keep the node alive.
#[derive(Clone)]
struct LocalSubmitter(Arc<OnceLock<Weak<Inner>>>);

impl LocalSubmit for LocalSubmitter {
    async fn submit_here(&self, request: ControllerRequest) -> Result<ControllerReply> {
        let Some(inner) = self.0.get().and_then(Weak::upgrade) else {
            return Err(BrokerError::Quorum(
                "this controller is starting or stopping".into(),
            ));
        };
        let handle = ControllerHandle { inner };
        let timeout = handle.inner.request_timeout;
        tokio::time::timeout(timeout, handle.decide_and_commit(request))
            .await
            .map_err(|_| BrokerError::Quorum(format!("no quorum answered within {timeout:?}")))?
    }
}

async fn initialize(raft: &Raft, config: &ControllerConfig) -> Result<()> {
    if raft.is_initialized().await.map_err(quorum_err)? {
        return Ok(());
    }
    let members: BTreeMap<u64, BasicNode> = config
        .voters
        .iter()
        .map(|v| (v.id as u64, BasicNode::new(v.address())))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => {
            info!(
                node = config.node_id,
                "proposed the initial controller quorum"
            );
            Ok(())
        }
        // Another voter's vote or entries got here first: this node is already in the quorum.
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(quorum_err(e)),
    }
}

/// The active controller's timers: fence brokers whose sessions expired, and now and then move
/// leadership back to preferred replicas. Runs on every node; only the leader acts.
async fn maintain(node: Weak<Inner>, session_timeout_ms: i64, rebalance_every_ms: Option<u64>) {
    // A quarter of the timeout fences a silent broker at most 1.25 timeouts after it went quiet.
    let period = Duration::from_millis((session_timeout_ms / 4).clamp(10, 1000) as u64);
    let mut last_rebalance = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = node.upgrade() else { return };
        let handle = ControllerHandle { inner };
        if !handle.is_leader() {
            continue;
        }
        match handle.submit(ControllerRequest::CheckSessions).await {
            Ok(ControllerReply::SessionsChecked { fenced }) if !fenced.is_empty() => {
                info!(brokers = ?fenced, "fenced brokers whose sessions expired");
            }
            Ok(_) => {}
            Err(e) => debug!(error = %e, "session check not committed"),
        }
        if let Some(every) = rebalance_every_ms {
            if last_rebalance.elapsed() >= Duration::from_millis(every) {
                last_rebalance = tokio::time::Instant::now();
                let request = ControllerRequest::ElectPreferredLeaders { partitions: None };
                if let Err(e) = handle.submit(request).await {
                    debug!(error = %e, "preferred leader election not committed");
                }
            }
        }
    }
}

impl ControllerHandle {
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// The bound CONTROLLER listener (its real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The committed cluster metadata as this node has applied it; every change is sent.
    pub fn image(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.inner.image.clone()
    }

    /// Whether this node is the active controller as far as it knows.
    pub fn is_leader(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.node_id as u64)
    }

    /// The active controller this node knows of.
    pub fn leader_id(&self) -> Option<NodeId> {
        leader_of(self.inner.raft.metrics().borrow().current_leader)
    }

    /// Waits until some node is known to lead, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let mut metrics = self.inner.raft.metrics();
        let wait = async {
            loop {
                if let Some(leader) = leader_of(metrics.borrow_and_update().current_leader) {
                    return Ok(leader);
                }
                if metrics.changed().await.is_err() {
                    return Err(BrokerError::Quorum("the controller has stopped".into()));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| BrokerError::Quorum(format!("no controller leader within {timeout:?}")))?
    }

    /// Has the active controller decide `request` and commit its records; the reply comes once
    /// they are committed. Any node may submit: one that does not lead forwards the request to
    /// the leader over the controller listener. Should leadership move meanwhile, the request
    /// is tried once more with the new leader; after that the caller gets NOT_CONTROLLER (or a
    /// quorum error) and decides itself whether to retry.
    pub async fn submit(&self, request: ControllerRequest) -> Result<ControllerReply> {
        let timeout = self.inner.request_timeout;
        tokio::time::timeout(timeout, self.route(request))
            .await
            .map_err(|_| BrokerError::Quorum(format!("no quorum answered within {timeout:?}")))?
    }

    async fn route(&self, request: ControllerRequest) -> Result<ControllerReply> {
        let mut hint = None;
        let mut retried = false;
        loop {
            let leader = match hint.or_else(|| self.leader_id()) {
                Some(leader) => leader,
                None => self.wait_for_leader(self.inner.request_timeout).await?,
            };
            let result = if leader == self.inner.node_id {
                self.decide_and_commit(request.clone()).await
            } else {
                match self.controller_addr(leader) {
                    Some(addr) => {
                        forward_submit(&addr, request.clone(), self.inner.request_timeout).await
                    }
                    None => Err(BrokerError::Quorum(format!(
                        "controller {leader} is not in the quorum's membership"
                    ))),
                }
            };
            if retried {
                return result;
            }
            match result {
                // Refused without a commit: the node asked no longer leads.
                Err(BrokerError::NotController { leader: next }) => {
                    hint = next.filter(|n| *n != leader);
                }
                // The leader could not be reached or failed mid-request. Only worth repeating
                // when another node now leads; the same leader would most likely fail again.
                Err(BrokerError::Quorum(_))
                    if leader != self.inner.node_id
                        && self.leader_id().is_some_and(|now| now != leader) =>
                {
                    hint = None;
                }
                other => return other,
            }
            retried = true;
        }
    }

    /// The CONTROLLER listener address of `id`, from the quorum's membership.
    fn controller_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let addr = m
            .membership_config
            .membership()
            .get_node(&(id as u64))
            .map(|n| n.addr.clone());
        addr
    }

    async fn decide_and_commit(&self, request: ControllerRequest) -> Result<ControllerReply> {
        let raft = &self.inner.raft;
        let mut active = self.inner.active.lock().await;
        if !self.is_leader() {
            return Err(BrokerError::NotController {
                leader: self.leader_id(),
            });
        }
        // Leadership confirmed by a quorum, and everything committed before it applied here,
        // so the decision below reads the latest image.
        raft.ensure_linearizable().await.map_err(|e| match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
                BrokerError::NotController {
                    leader: leader_of(f.leader_id),
                }
            }
            other => quorum_err(other),
        })?;
        let term = raft.metrics().borrow().current_term;
        if active.term != Some(term) {
            active.controller.reset_sessions();
            active.term = Some(term);
        }
        let image = self.inner.image.borrow().clone();
        let outcome = active.controller.handle(&image, request, now_ms())?;
        if !outcome.records.is_empty() {
            raft.client_write(MetadataBatch(outcome.records))
                .await
                .map_err(|e| match e {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                        BrokerError::NotController {
                            leader: leader_of(f.leader_id),
                        }
                    }
                    other => quorum_err(other),
                })?;
        }
        Ok(outcome.reply)
    }

    /// Stops the node: its listener closes, its timers stop and openraft shuts down. Its log
    /// stays on disk, so starting again from the same directory rejoins the quorum.
    pub async fn shutdown(&self) -> Result<()> {
        let tasks: Vec<JoinHandle<()>> = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.inner.raft.shutdown().await.map_err(quorum_err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
        // openraft stops on its own only once every handle to it is gone; a node dropped
        // without `shutdown` must not keep voting and leading in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let raft = self.raft.clone();
            runtime.spawn(async move {
                if let Err(e) = raft.shutdown().await {
                    warn!(error = %e, "controller did not stop cleanly");
                }
            });
        }
    }
}
