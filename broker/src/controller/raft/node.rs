//! `ControllerNode`: one member of the controller quorum (or, for a broker-only node, an observer
//! that follows the quorum's image), and `ControllerHandle`, through which the broker submits
//! requests and watches the image.

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
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// A voter of the quorum, running openraft.
    Voter(Arc<Inner>),
    /// A broker-only node: it fetches the image from the voters and forwards submissions.
    Observer(Arc<Observer>),
}

/// A broker-only node's view of the quorum, kept current by `follow_metadata`.
struct Observer {
    node_id: NodeId,
    /// Each voter's CONTROLLER address, from controller.quorum.voters.
    voters: Vec<(NodeId, String)>,
    image: watch::Receiver<Arc<ClusterImage>>,
    leader: watch::Receiver<Option<NodeId>>,
    request_timeout: Duration,
    task: JoinHandle<()>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
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
        Ok(ControllerHandle {
            kind: Kind::Voter(inner),
        })
    }
}

/// How long an observer's metadata fetch waits for a change before asking again.
const OBSERVER_POLL: Duration = Duration::from_millis(1_000);

impl ControllerNode {
    /// A broker-only node's handle: no vote and no metadata log of its own; it long-polls the
    /// voters for the committed image (preferring the active controller, which has the newest)
    /// and forwards submissions to the leader, as Kafka's brokers fetch the metadata log from
    /// the controller quorum.
    pub fn observe(
        node_id: NodeId,
        voters: Vec<(NodeId, String)>,
        request_timeout: Duration,
    ) -> Result<ControllerHandle> {
        if voters.is_empty() {
            return Err(BrokerError::InvalidConfig(
                "controller.quorum.voters lists no controller".into(),
            ));
        }
        if voters.iter().any(|(id, _)| *id == node_id) {
            return Err(BrokerError::InvalidConfig(format!(
                "node.id {node_id} is a voter of controller.quorum.voters but has no controller role"
            )));
        }
        let (image_tx, image) = watch::channel(Arc::new(ClusterImage::new()));
        let (leader_tx, leader) = watch::channel(None);
        let task = tokio::spawn(follow_metadata(voters.clone(), image_tx, leader_tx));
        Ok(ControllerHandle {
            kind: Kind::Observer(Arc::new(Observer {
                node_id,
                voters,
                image,
                leader,
                request_timeout,
                task,
            })),
        })
    }
}

/// An observer's loop: long-polls one voter at a time for images newer than the one it has,
/// moving to the leader a voter names, or to the next voter when one fails.
async fn follow_metadata(
    voters: Vec<(NodeId, String)>,
    image: watch::Sender<Arc<ClusterImage>>,
    leader: watch::Sender<Option<NodeId>>,
) {
    let mut next = 0usize;
    loop {
        let known = *leader.borrow();
        let (target, addr) = known
            .and_then(|l| voters.iter().find(|(id, _)| *id == l))
            .cloned()
            .unwrap_or_else(|| {
                next += 1;
                voters[next % voters.len()].clone()
            });
        match fetch_images_from(&addr, target, &image, &leader).await {
            Ok(()) => {}
            Err(e) => {
                debug!(controller = target, %addr, error = %e, "metadata fetch failed");
                // This voter is unreachable: forget it as leader so the next try moves on.
                leader.send_if_modified(|l| {
                    let changed = *l == Some(target);
                    if changed {
                        *l = None;
                    }
                    changed
                });
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Fetches from one voter until it fails, or names another node as leader (`Ok`).
async fn fetch_images_from(
    addr: &str,
    target: NodeId,
    image: &watch::Sender<Arc<ClusterImage>>,
    leader: &watch::Sender<Option<NodeId>>,
) -> std::io::Result<()> {
    use super::network::{decode, encode, read_frame, write_frame, RaftRequest, RaftResponse};
    use std::io::{Error, ErrorKind};
    let timeout = |what: &str| Error::new(ErrorKind::TimedOut, what.to_string());
    let mut conn = tokio::time::timeout(OBSERVER_POLL * 5, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| timeout("connect timed out"))??;
    conn.set_nodelay(true)?;
    loop {
        let after = image.borrow().offset();
        let request = RaftRequest::FetchImage {
            after,
            max_wait_ms: OBSERVER_POLL.as_millis() as u64,
        };
        write_frame(&mut conn, &encode(&request)?).await?;
        let frame = tokio::time::timeout(OBSERVER_POLL * 5, read_frame(&mut conn))
            .await
            .map_err(|_| timeout("no answer to a metadata fetch"))??
            .ok_or_else(|| Error::new(ErrorKind::ConnectionAborted, "controller closed"))?;
        let RaftResponse::Image {
            leader: named,
            snapshot,
        } = decode::<RaftResponse>(&frame)?
        else {
            return Err(Error::new(ErrorKind::InvalidData, "unexpected response"));
        };
        if let Some(json) = snapshot {
            let fetched = ClusterImage::from_snapshot(json.as_bytes())
                .map_err(|e| Error::new(ErrorKind::InvalidData, e.to_string()))?;
            // Voters apply at different paces: never step back to an older image.
            if fetched.offset() > image.borrow().offset() {
                image.send_replace(Arc::new(fetched));
            }
        }
        leader.send_if_modified(|l| {
            let changed = *l != named;
            *l = named;
            changed
        });
        if named.is_some_and(|n| n != target) {
            return Ok(());
        }
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
        let timeout = inner.request_timeout;
        let handle = ControllerHandle {
            kind: Kind::Voter(inner),
        };
        tokio::time::timeout(timeout, handle.decide_and_commit(request))
            .await
            .map_err(|_| BrokerError::Quorum(format!("no quorum answered within {timeout:?}")))?
    }

    async fn image_after(
        &self,
        after: u64,
        wait: Duration,
    ) -> (Option<NodeId>, Option<Arc<ClusterImage>>) {
        let Some(inner) = self.0.get().and_then(Weak::upgrade) else {
            return (None, None);
        };
        let leader = leader_of(inner.raft.metrics().borrow().current_leader);
        let mut image = inner.image.clone();
        drop(inner);
        let newer = async {
            loop {
                let current = image.borrow_and_update().clone();
                if current.offset() > after {
                    return Some(current);
                }
                if image.changed().await.is_err() {
                    return None;
                }
            }
        };
        let found = tokio::time::timeout(wait, newer).await.ok().flatten();
        (leader, found)
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
        let handle = ControllerHandle {
            kind: Kind::Voter(inner),
        };
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
        match &self.kind {
            Kind::Voter(v) => v.node_id,
            Kind::Observer(o) => o.node_id,
        }
    }

    /// The bound CONTROLLER listener (its real port when the config asked for port 0); a
    /// broker-only node has none and answers the unspecified address.
    pub fn local_addr(&self) -> SocketAddr {
        match &self.kind {
            Kind::Voter(v) => v.local_addr,
            Kind::Observer(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// The committed cluster metadata as this node has applied (or fetched) it; every change
    /// is sent.
    pub fn image(&self) -> watch::Receiver<Arc<ClusterImage>> {
        match &self.kind {
            Kind::Voter(v) => v.image.clone(),
            Kind::Observer(o) => o.image.clone(),
        }
    }

    /// Whether this node is the active controller as far as it knows.
    pub fn is_leader(&self) -> bool {
        let Kind::Voter(v) = &self.kind else {
            return false;
        };
        let metrics = v.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(v.node_id as u64)
    }

    /// The active controller this node knows of.
    pub fn leader_id(&self) -> Option<NodeId> {
        match &self.kind {
            Kind::Voter(v) => leader_of(v.raft.metrics().borrow().current_leader),
            Kind::Observer(o) => *o.leader.borrow(),
        }
    }

    fn request_timeout(&self) -> Duration {
        match &self.kind {
            Kind::Voter(v) => v.request_timeout,
            Kind::Observer(o) => o.request_timeout,
        }
    }

    /// Waits until some node is known to lead, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        let wait = async {
            match &self.kind {
                Kind::Voter(v) => {
                    let mut metrics = v.raft.metrics();
                    loop {
                        if let Some(leader) = leader_of(metrics.borrow_and_update().current_leader)
                        {
                            return Ok(leader);
                        }
                        if metrics.changed().await.is_err() {
                            return Err(BrokerError::Quorum("the controller has stopped".into()));
                        }
                    }
                }
                Kind::Observer(o) => {
                    let mut leader = o.leader.clone();
                    loop {
                        if let Some(id) = *leader.borrow_and_update() {
                            return Ok(id);
                        }
                        if leader.changed().await.is_err() {
                            return Err(BrokerError::Quorum("the node has stopped".into()));
                        }
                    }
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
        let timeout = self.request_timeout();
        tokio::time::timeout(timeout, self.route(request))
            .await
            .map_err(|_| BrokerError::Quorum(format!("no quorum answered within {timeout:?}")))?
    }

    async fn route(&self, request: ControllerRequest) -> Result<ControllerReply> {
        let timeout = self.request_timeout();
        let local = self.node_id();
        let voter = matches!(self.kind, Kind::Voter(_));
        let mut hint = None;
        let mut retried = false;
        loop {
            let leader = match hint.or_else(|| self.leader_id()) {
                Some(leader) => leader,
                None => self.wait_for_leader(timeout).await?,
            };
            let result = if voter && leader == local {
                self.decide_and_commit(request.clone()).await
            } else {
                match self.controller_addr(leader) {
                    Some(addr) => forward_submit(&addr, request.clone(), timeout).await,
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
                    if leader != local && self.leader_id().is_some_and(|now| now != leader) =>
                {
                    hint = None;
                }
                other => return other,
            }
            retried = true;
        }
    }

    /// The CONTROLLER listener address of `id`: from the quorum's membership on a voter, from
    /// controller.quorum.voters on an observer.
    fn controller_addr(&self, id: NodeId) -> Option<String> {
        match &self.kind {
            Kind::Voter(v) => {
                let metrics = v.raft.metrics();
                let m = metrics.borrow();
                let addr = m
                    .membership_config
                    .membership()
                    .get_node(&(id as u64))
                    .map(|n| n.addr.clone());
                addr
            }
            Kind::Observer(o) => o
                .voters
                .iter()
                .find(|(v, _)| *v == id)
                .map(|(_, a)| a.clone()),
        }
    }

    async fn decide_and_commit(&self, request: ControllerRequest) -> Result<ControllerReply> {
        let Kind::Voter(inner) = &self.kind else {
            return Err(BrokerError::NotController {
                leader: self.leader_id(),
            });
        };
        let raft = &inner.raft;
        let mut active = inner.active.lock().await;
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
        let image = inner.image.borrow().clone();
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
    /// stays on disk, so starting again from the same directory rejoins the quorum. An observer
    /// stops following the image.
    pub async fn shutdown(&self) -> Result<()> {
        let inner = match &self.kind {
            Kind::Voter(v) => v,
            Kind::Observer(o) => {
                o.task.abort();
                return Ok(());
            }
        };
        let tasks: Vec<JoinHandle<()>> = inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        inner.raft.shutdown().await.map_err(quorum_err)
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
