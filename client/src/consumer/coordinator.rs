//! `ConsumerCoordinator`: this member's side of the classic group protocol: coordinator lookup,
//! JoinGroup/SyncGroup (running the assignor when leading), heartbeats, commits, offset lookups.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sluice_protocol::consumer_protocol::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, ConsumerProtocolTopicPartition,
    CONSUMER_PROTOCOL_MAX_VERSION,
};
use sluice_protocol::messages::{
    FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, JoinGroupRequestProtocol,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupRequestMember, OffsetCommitRequest,
    OffsetCommitRequestPartition, OffsetCommitRequestTopic, OffsetFetchRequest,
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, SyncGroupRequest, SyncGroupRequestAssignment,
};
use sluice_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::assignor::{self, MemberSubscription, PartitionAssignor};
use super::config::ConsumerConfig;
use super::{OffsetAndMetadata, TopicPartition};
use crate::cluster::{Cluster, Lane};
use crate::connection::Connection;
use crate::error::{ClientError, Result};

const PROTOCOL_TYPE: &str = "consumer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not in a generation: must (re)join before anything else.
    Unjoined,
    /// A JoinGroup/SyncGroup exchange is under way.
    Joining,
    /// In a generation, heartbeating.
    Stable,
}

#[derive(Debug)]
pub(crate) struct MemberState {
    pub member_id: String,
    /// The last generation this member completed a SyncGroup in; -1 when none.
    pub generation: i32,
    pub phase: Phase,
    /// The group is rebalancing (or the subscription changed): join again.
    pub rejoin_needed: bool,
    /// The membership ended without a rebalance (session expired, fenced): the partitions are
    /// lost, not revoked.
    pub lost: bool,
    pub fatal: Option<(ErrorCode, String)>,
    pub coordinator: Option<i32>,
    pub last_poll: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupSettings {
    pub group_id: String,
    pub instance_id: Option<String>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub retry_backoff: Duration,
    pub request_timeout: Duration,
    pub rack: Option<String>,
}

/// What the group tasks share. The join/sync exchange runs on a task per rebalance, heartbeats
/// on a task of their own and commits on a third that sends them one after the other, in the
/// order they were asked for. The member state sits under a plain mutex never held across an
/// await; what the application must react to (rejoin, lost partitions, a fatal error) is left
/// there as flags for `poll`, which is woken through `wake`.
pub(crate) struct GroupShared {
    cluster: Arc<Cluster>,
    pub settings: GroupSettings,
    state: Mutex<MemberState>,
    pub wake: Notify,
}

impl GroupShared {
    pub fn lock(&self) -> MutexGuard<'_, MemberState> {
        self.state.lock().expect("member state lock")
    }

    pub fn request_rejoin(&self, why: &str) {
        let mut s = self.lock();
        if !s.rejoin_needed {
            tracing::debug!(group = %self.settings.group_id, reason = why, "rejoin requested");
        }
        s.rejoin_needed = true;
        drop(s);
        self.wake.notify_one();
    }

    /// Forgets the generation (and, for a dynamic member that the coordinator no longer knows,
    /// the member id): whatever this member held is lost.
    fn reset_membership(&self, forget_member_id: bool) {
        let mut s = self.lock();
        s.generation = -1;
        s.phase = Phase::Unjoined;
        s.lost = true;
        if forget_member_id {
            s.member_id.clear();
        }
        drop(s);
        self.wake.notify_one();
    }

    pub fn fatal(&self) -> Option<ClientError> {
        self.lock()
            .fatal
            .as_ref()
            .map(|(code, context)| ClientError::broker(*code, None, context.clone()))
    }

    fn set_fatal(&self, code: ErrorCode, context: String) {
        self.lock().fatal = Some((code, context));
        self.wake.notify_one();
    }

    fn coordinator_failed(&self) {
        self.lock().coordinator = None;
    }

    async fn backoff(&self) {
        tokio::time::sleep(self.settings.retry_backoff).await;
    }

    /// A connection to the group's coordinator on `lane`, found with FindCoordinator if it is
    /// not known.
    async fn coordinator(&self, lane: Lane) -> Result<Arc<Connection>> {
        let known = self.lock().coordinator;
        let node = match known {
            Some(node) => node,
            None => self.find_coordinator().await?,
        };
        match self.cluster.connection(node, lane).await {
            Ok(c) => Ok(c),
            Err(e) => {
                self.coordinator_failed();
                Err(e)
            }
        }
    }

    async fn find_coordinator(&self) -> Result<i32> {
        let conn = self.cluster.any_connection().await?;
        let version = conn.version_for::<FindCoordinatorRequest>()?;
        let group = &self.settings.group_id;
        let request = if version >= 4 {
            FindCoordinatorRequest {
                key_type: 0,
                coordinator_keys: vec![group.clone()],
                ..Default::default()
            }
        } else {
            FindCoordinatorRequest {
                key: group.clone(),
                key_type: 0,
                ..Default::default()
            }
        };
        let response = conn
            .send_at(version, &request, self.settings.request_timeout)
            .await?;
        let (code, message, node) = if version >= 4 {
            let c = response.coordinators.into_iter().next().ok_or_else(|| {
                ClientError::Invalid("FindCoordinator answered without a coordinator".into())
            })?;
            (c.error_code, c.error_message, c.node_id)
        } else {
            (
                response.error_code,
                response.error_message,
                response.node_id,
            )
        };
        let code = ErrorCode::from_code(code);
        if !code.is_ok() {
            return Err(ClientError::broker(
                code,
                message,
                format!("finding the coordinator of group {group}"),
            ));
        }
        // Connections are made by broker id: the coordinator must be in the metadata.
        if !self.cluster.snapshot().brokers.contains_key(&node) {
            self.cluster.refresh(Some(&[])).await?;
        }
        tracing::debug!(group = %group, node, "coordinator found");
        self.lock().coordinator = Some(node);
        Ok(node)
    }

    // ---- heartbeats --------------------------------------------------------------------------

    /// Sends heartbeats while the member is in a generation. Also the watchdog of
    /// max.poll.interval.ms: a member whose application stopped polling leaves, so that its
    /// partitions move to members that make progress.
    async fn heartbeat_loop(self: Arc<Self>) {
        let interval = self.settings.heartbeat_interval;
        let mut delay = interval;
        loop {
            tokio::time::sleep(delay).await;
            delay = interval;
            let (member_id, generation, last_poll) = {
                let s = self.lock();
                if s.phase != Phase::Stable || s.generation < 0 {
                    continue;
                }
                (s.member_id.clone(), s.generation, s.last_poll)
            };
            if last_poll.elapsed() > self.settings.rebalance_timeout {
                tracing::warn!(
                    group = %self.settings.group_id,
                    "no poll within max.poll.interval.ms; leaving the group so that its partitions move on"
                );
                self.leave_group("consumer poll timeout has expired").await;
                // Others may own the partitions by the time the application polls again.
                self.lock().lost = true;
                self.wake.notify_one();
                continue;
            }
            let request = HeartbeatRequest {
                group_id: self.settings.group_id.clone(),
                generation_id: generation,
                member_id: member_id.clone(),
                group_instance_id: self.settings.instance_id.clone(),
            };
            let response = async {
                let conn = self.coordinator(Lane::Group).await?;
                conn.send(&request, self.settings.request_timeout).await
            }
            .await;
            let code = match response {
                Ok(r) => ErrorCode::from_code(r.error_code),
                Err(e) => {
                    tracing::debug!(error = %e, "heartbeat failed");
                    if e.is_retriable() {
                        self.coordinator_failed();
                    }
                    delay = self.settings.retry_backoff;
                    continue;
                }
            };
            {
                // An answer about a generation we have since left says nothing about this one.
                let s = self.lock();
                if s.generation != generation
                    || s.member_id != member_id
                    || s.phase != Phase::Stable
                {
                    continue;
                }
            }
            match code {
                ErrorCode::None => {}
                ErrorCode::RebalanceInProgress => self.request_rejoin("the group is rebalancing"),
                ErrorCode::UnknownMemberId => {
                    tracing::info!(group = %self.settings.group_id, "the coordinator no longer knows this member; rejoining");
                    self.reset_membership(true);
                }
                ErrorCode::IllegalGeneration => {
                    tracing::info!(group = %self.settings.group_id, generation, "generation is over; rejoining");
                    self.reset_membership(false);
                }
                ErrorCode::FencedInstanceId => self.set_fatal(
                    code,
                    format!(
                        "another consumer joined group {} with group.instance.id {:?}",
                        self.settings.group_id,
                        self.settings.instance_id.as_deref().unwrap_or_default()
                    ),
                ),
                ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                    self.coordinator_failed();
                    delay = self.settings.retry_backoff;
                }
                ErrorCode::CoordinatorLoadInProgress => delay = self.settings.retry_backoff,
                code => {
                    tracing::warn!(group = %self.settings.group_id, error = ?code, "heartbeat error")
                }
            }
        }
    }

    /// Leaves the group (LeaveGroup, unless static: a static member's place is kept for it until
    /// its session times out) and forgets the generation.
    pub async fn leave_group(&self, reason: &str) {
        let member_id = {
            let mut s = self.lock();
            let id = s.member_id.clone();
            s.generation = -1;
            s.phase = Phase::Unjoined;
            if self.settings.instance_id.is_none() {
                s.member_id.clear();
            }
            id
        };
        if self.settings.instance_id.is_some() || member_id.is_empty() {
            return;
        }
        let result = async {
            // Not on the group lane: a JoinGroup abandoned there may still be parked.
            let conn = self.coordinator(Lane::Default).await?;
            let version = conn.version_for::<LeaveGroupRequest>()?;
            let request = if version >= 3 {
                LeaveGroupRequest {
                    group_id: self.settings.group_id.clone(),
                    members: vec![LeaveGroupRequestMember {
                        member_id: member_id.clone(),
                        group_instance_id: None,
                        reason: Some(reason.to_string()),
                    }],
                    ..Default::default()
                }
            } else {
                LeaveGroupRequest {
                    group_id: self.settings.group_id.clone(),
                    member_id: member_id.clone(),
                    ..Default::default()
                }
            };
            conn.send_at(version, &request, self.settings.request_timeout)
                .await
        }
        .await;
        match result {
            Ok(r) if r.error_code == 0 => {
                tracing::info!(group = %self.settings.group_id, member = %member_id, reason, "left the group")
            }
            Ok(r) => {
                tracing::debug!(error = ?ErrorCode::from_code(r.error_code), "LeaveGroup refused")
            }
            Err(e) => tracing::debug!(error = %e, "LeaveGroup failed"),
        }
    }

    // ---- offsets -----------------------------------------------------------------------------

    /// Commits `offsets`, retrying coordinator trouble until `deadline`. A group-managed
    /// consumer commits as a member of its generation; one with a manual assignment commits
    /// from outside the group (generation -1), as Kafka's simple consumers do.
    async fn commit(
        &self,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        group_managed: bool,
        lane: Lane,
        deadline: Instant,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let context = || format!("committing offsets of group {}", self.settings.group_id);
        loop {
            let (generation, member_id, instance_id) = if group_managed {
                let s = self.lock();
                if s.phase != Phase::Stable || s.generation < 0 {
                    // Sending it would only park it behind the JoinGroup; its partitions may
                    // not be ours once the rebalance ends anyway.
                    return Err(ClientError::broker(
                        ErrorCode::RebalanceInProgress,
                        Some("the member is rebalancing; poll to rejoin, then commit".into()),
                        context(),
                    ));
                }
                (
                    s.generation,
                    s.member_id.clone(),
                    self.settings.instance_id.clone(),
                )
            } else {
                (-1, String::new(), None)
            };
            let request = OffsetCommitRequest {
                group_id: self.settings.group_id.clone(),
                generation_id_or_member_epoch: generation,
                member_id,
                group_instance_id: instance_id,
                retention_time_ms: -1,
                topics: group_by_topic(offsets.iter(), |(tp, o)| {
                    (
                        tp,
                        OffsetCommitRequestPartition {
                            partition_index: tp.partition,
                            committed_offset: o.offset,
                            committed_leader_epoch: o.leader_epoch.unwrap_or(-1),
                            commit_timestamp: -1,
                            committed_metadata: Some(o.metadata.clone()),
                        },
                    )
                })
                .into_iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic { name, partitions })
                .collect(),
            };
            let response = async {
                let conn = self.coordinator(lane).await?;
                conn.send(&request, self.settings.request_timeout).await
            }
            .await;
            let retry = match response {
                Err(e) if e.is_retriable() => {
                    self.coordinator_failed();
                    e
                }
                Err(e) => return Err(e),
                Ok(r) => {
                    let code = r
                        .topics
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .map(|p| ErrorCode::from_code(p.error_code))
                        .find(|c| !c.is_ok());
                    match code {
                        None => return Ok(()),
                        Some(
                            c @ (ErrorCode::NotCoordinator
                            | ErrorCode::CoordinatorNotAvailable
                            | ErrorCode::RequestTimedOut),
                        ) => {
                            self.coordinator_failed();
                            ClientError::broker(c, None, context())
                        }
                        Some(c @ ErrorCode::CoordinatorLoadInProgress) => {
                            ClientError::broker(c, None, context())
                        }
                        Some(c @ (ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration))
                            if group_managed =>
                        {
                            if self.lock().generation == generation {
                                self.reset_membership(c == ErrorCode::UnknownMemberId);
                            }
                            return Err(ClientError::broker(
                                c,
                                Some("the group rebalanced and may have given these partitions to another member".into()),
                                context(),
                            ));
                        }
                        Some(c) => return Err(ClientError::broker(c, None, context())),
                    }
                }
            };
            if Instant::now() + self.settings.retry_backoff >= deadline {
                return Err(retry);
            }
            self.backoff().await;
        }
    }

    /// The group's committed offsets for `partitions` (`None` where nothing is committed).
    pub async fn fetch_committed(
        &self,
        partitions: &[TopicPartition],
        deadline: Instant,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        let context = || {
            format!(
                "fetching committed offsets of group {}",
                self.settings.group_id
            )
        };
        let topics: Vec<OffsetFetchRequestTopic> =
            group_by_topic(partitions.iter(), |tp| (tp, tp.partition))
                .into_iter()
                .map(|(name, partition_indexes)| OffsetFetchRequestTopic {
                    name,
                    partition_indexes,
                })
                .collect();
        loop {
            let attempt = async {
                // Not on the group lane: a parked JoinGroup must not hold up a lookup.
                let conn = self.coordinator(Lane::Default).await?;
                let version = conn.version_for::<OffsetFetchRequest>()?;
                let request = if version >= 8 {
                    OffsetFetchRequest {
                        groups: vec![OffsetFetchRequestGroup {
                            group_id: self.settings.group_id.clone(),
                            member_id: None,
                            member_epoch: -1,
                            topics: Some(topics.clone()),
                        }],
                        ..Default::default()
                    }
                } else {
                    OffsetFetchRequest {
                        group_id: self.settings.group_id.clone(),
                        topics: Some(topics.clone()),
                        ..Default::default()
                    }
                };
                let response = conn
                    .send_at(version, &request, self.settings.request_timeout)
                    .await?;
                let (code, topics) = if version >= 8 {
                    let g = response.groups.into_iter().next().ok_or_else(|| {
                        ClientError::Invalid("OffsetFetch answered without the group".into())
                    })?;
                    (g.error_code, g.topics)
                } else {
                    (response.error_code, response.topics)
                };
                let code = ErrorCode::from_code(code);
                if !code.is_ok() {
                    return Err(ClientError::broker(code, None, context()));
                }
                let mut out = BTreeMap::new();
                for t in topics {
                    for p in t.partitions {
                        let code = ErrorCode::from_code(p.error_code);
                        if !code.is_ok() {
                            return Err(ClientError::broker(
                                code,
                                None,
                                format!("{} for {}-{}", context(), t.name, p.partition_index),
                            ));
                        }
                        let committed = (p.committed_offset >= 0).then(|| OffsetAndMetadata {
                            offset: p.committed_offset,
                            leader_epoch: (p.committed_leader_epoch >= 0)
                                .then_some(p.committed_leader_epoch),
                            metadata: p.metadata.unwrap_or_default(),
                        });
                        out.insert(
                            TopicPartition::new(t.name.clone(), p.partition_index),
                            committed,
                        );
                    }
                }
                Ok(out)
            }
            .await;
            match attempt {
                Ok(mut out) => {
                    for tp in partitions {
                        out.entry(tp.clone()).or_insert(None);
                    }
                    return Ok(out);
                }
                Err(e) if e.is_retriable() || e.code() == Some(ErrorCode::UnstableOffsetCommit) => {
                    if matches!(
                        e.code(),
                        None | Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable)
                    ) {
                        self.coordinator_failed();
                    }
                    if Instant::now() + self.settings.retry_backoff >= deadline {
                        return Err(e);
                    }
                    self.backoff().await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Groups items by topic (in the order topics first appear), mapping each to its entry.
fn group_by_topic<'a, I, T, F>(items: I, mut entry: F) -> Vec<(String, Vec<T>)>
where
    I: Iterator,
    F: FnMut(I::Item) -> (&'a TopicPartition, T),
{
    let mut out: Vec<(String, Vec<T>)> = Vec::new();
    for item in items {
        let (tp, value) = entry(item);
        match out.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, values)) => values.push(value),
            None => out.push((tp.topic.clone(), vec![value])),
        }
    }
    out
}

fn to_wire(partitions: &[TopicPartition]) -> Vec<ConsumerProtocolTopicPartition> {
    group_by_topic(partitions.iter(), |tp| (tp, tp.partition))
        .into_iter()
        .map(|(topic, partitions)| ConsumerProtocolTopicPartition { topic, partitions })
        .collect()
}

fn from_wire(partitions: Vec<ConsumerProtocolTopicPartition>) -> Vec<TopicPartition> {
    partitions
        .into_iter()
        .flat_map(|t| {
            t.partitions
                .into_iter()
                .map(move |p| TopicPartition::new(t.topic.clone(), p))
        })
        .collect()
}

// ---- commits in order ----------------------------------------------------------------------

struct CommitJob {
    offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    group_managed: bool,
    lane: Lane,
    deadline: Instant,
    /// Auto-commits have nobody to report to: their failures are logged.
    auto: bool,
    reply: oneshot::Sender<Result<()>>,
}

/// The outcome of `commit_async`. The commit goes ahead whether or not this is awaited.
pub struct CommitFuture(CommitFutureInner);

enum CommitFutureInner {
    Pending(oneshot::Receiver<Result<()>>),
    Ready(Option<ClientError>),
}

impl CommitFuture {
    pub(crate) fn failed(e: ClientError) -> CommitFuture {
        CommitFuture(CommitFutureInner::Ready(Some(e)))
    }
}

impl Future for CommitFuture {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match &mut self.0 {
            CommitFutureInner::Pending(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(ClientError::Closed))),
            CommitFutureInner::Ready(e) => Poll::Ready(e.take().map_or(Ok(()), Err)),
        }
    }
}

async fn commit_loop(shared: Arc<GroupShared>, mut jobs: mpsc::UnboundedReceiver<CommitJob>) {
    while let Some(job) = jobs.recv().await {
        let result = shared
            .commit(&job.offsets, job.group_managed, job.lane, job.deadline)
            .await;
        if job.auto {
            match &result {
                Err(e) if e.code() == Some(ErrorCode::RebalanceInProgress) => {
                    tracing::debug!(error = %e, "auto-commit skipped")
                }
                Err(e) => tracing::warn!(error = %e, "auto-commit failed"),
                Ok(()) => {}
            }
        }
        let _ = job.reply.send(result);
    }
}

// ---- joining -------------------------------------------------------------------------------

/// What this member brings to a JoinGroup.
pub(crate) struct JoinInput {
    pub topics: Vec<String>,
    pub owned: Vec<TopicPartition>,
    pub reason: String,
}

pub(crate) struct JoinOutcome {
    pub generation: i32,
    pub assignment: Vec<TopicPartition>,
    /// Partition counts of the topics whose change calls for a rebalance: the whole group's
    /// topics for the leader (it alone can act on them), this member's own otherwise.
    pub watched: BTreeMap<String, i32>,
}

pub(crate) enum JoinFailure {
    /// The coordinator dropped this member: its partitions are lost. Rejoin at once.
    Lost(ClientError),
    /// Rejoin after a backoff.
    Retry(ClientError),
    /// The consumer cannot go on (fenced, misconfigured, not authorized).
    Fatal(ClientError),
}

/// A JoinGroup or SyncGroup error no retry in place can fix: fatal ones end the consumer,
/// the rest start the join over.
fn join_failure(code: ErrorCode, context: String) -> JoinFailure {
    let error = ClientError::broker(code, None, context);
    if is_fatal_join_error(code) {
        JoinFailure::Fatal(error)
    } else {
        JoinFailure::Retry(error)
    }
}

fn is_fatal_join_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::FencedInstanceId
            | ErrorCode::InconsistentGroupProtocol
            | ErrorCode::InvalidSessionTimeout
            | ErrorCode::InvalidGroupId
            | ErrorCode::GroupAuthorizationFailed
            | ErrorCode::GroupMaxSizeReached
            | ErrorCode::UnsupportedVersion
    )
}

pub(crate) struct ConsumerCoordinator {
    pub shared: Arc<GroupShared>,
    assignors: Arc<Vec<Box<dyn PartitionAssignor>>>,
    /// Every configured assignor is cooperative: partitions are kept through rebalances.
    pub cooperative: bool,
    heartbeat: Option<JoinHandle<()>>,
    join: Option<JoinHandle<Result<JoinOutcome, JoinFailure>>>,
    committer: Option<mpsc::UnboundedSender<CommitJob>>,
    committer_task: Option<JoinHandle<()>>,
    pub join_backoff_until: Option<Instant>,
    pub watched: BTreeMap<String, i32>,
    /// Commits travel with heartbeats, on the group lane, except after a join was abandoned
    /// (closing mid-rebalance): its JoinGroup may still be parked there, and a commit queued
    /// behind it would wait out the rebalance.
    commit_lane: Lane,
}

impl ConsumerCoordinator {
    pub fn new(cluster: Arc<Cluster>, config: &ConsumerConfig, group_id: String) -> Self {
        let assignors: Vec<Box<dyn PartitionAssignor>> = config
            .assignment_strategies
            .iter()
            .map(|s| assignor::for_strategy(*s))
            .collect();
        let cooperative = assignors.iter().all(|a| a.supports_cooperative());
        let settings = GroupSettings {
            group_id,
            instance_id: config.group_instance_id.clone(),
            session_timeout: config.session_timeout,
            rebalance_timeout: config.max_poll_interval,
            heartbeat_interval: config.heartbeat_interval,
            retry_backoff: config.common.retry_backoff,
            request_timeout: config.common.request_timeout,
            rack: config.client_rack.clone(),
        };
        ConsumerCoordinator {
            shared: Arc::new(GroupShared {
                cluster,
                settings,
                state: Mutex::new(MemberState {
                    member_id: String::new(),
                    generation: -1,
                    phase: Phase::Unjoined,
                    rejoin_needed: false,
                    lost: false,
                    fatal: None,
                    coordinator: None,
                    last_poll: Instant::now(),
                }),
                wake: Notify::new(),
            }),
            assignors: Arc::new(assignors),
            cooperative,
            heartbeat: None,
            join: None,
            committer: None,
            committer_task: None,
            join_backoff_until: None,
            watched: BTreeMap::new(),
            commit_lane: Lane::Group,
        }
    }

    pub fn ensure_heartbeat(&mut self) {
        if self.heartbeat.is_none() {
            self.heartbeat = Some(tokio::spawn(self.shared.clone().heartbeat_loop()));
        }
    }

    /// Whether a JoinGroup should start now.
    pub fn needs_join(&self, now: Instant) -> bool {
        if self.join.is_some() || self.join_backoff_until.is_some_and(|t| t > now) {
            return false;
        }
        let s = self.shared.lock();
        s.fatal.is_none() && (s.phase == Phase::Unjoined || s.rejoin_needed)
    }

    pub fn start_join(&mut self, input: JoinInput) {
        {
            let mut s = self.shared.lock();
            s.rejoin_needed = false;
            s.phase = Phase::Joining;
        }
        self.join_backoff_until = None;
        self.commit_lane = Lane::Group;
        let shared = self.shared.clone();
        let assignors = self.assignors.clone();
        self.join = Some(tokio::spawn(join_group(shared, assignors, input)));
    }

    /// The running join, for `poll` to wait on.
    pub fn join_handle(&mut self) -> Option<&mut JoinHandle<Result<JoinOutcome, JoinFailure>>> {
        self.join.as_mut()
    }

    /// The result of a join that has ended, if one has.
    pub async fn finished_join(&mut self) -> Option<Result<JoinOutcome, JoinFailure>> {
        if !self.join.as_ref().is_some_and(|j| j.is_finished()) {
            return None;
        }
        let handle = self.join.take().expect("checked");
        Some(Self::join_result(handle.await))
    }

    pub fn take_join_result(
        &mut self,
        result: std::result::Result<Result<JoinOutcome, JoinFailure>, tokio::task::JoinError>,
    ) -> Result<JoinOutcome, JoinFailure> {
        self.join = None;
        Self::join_result(result)
    }

    fn join_result(
        result: std::result::Result<Result<JoinOutcome, JoinFailure>, tokio::task::JoinError>,
    ) -> Result<JoinOutcome, JoinFailure> {
        result.unwrap_or_else(|e| {
            Err(JoinFailure::Retry(ClientError::Invalid(format!(
                "the join task ended: {e}"
            ))))
        })
    }

    /// Stops a join under way (closing, unsubscribing).
    pub fn abort_join(&mut self) {
        if let Some(j) = self.join.take() {
            j.abort();
            self.commit_lane = Lane::Default;
        }
    }

    /// Queues a commit behind those already queued; they go out in order.
    pub fn commit(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        group_managed: bool,
        timeout: Duration,
        auto: bool,
    ) -> CommitFuture {
        let jobs = self.committer.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            self.committer_task = Some(tokio::spawn(commit_loop(self.shared.clone(), rx)));
            tx
        });
        let (reply, rx) = oneshot::channel();
        let job = CommitJob {
            offsets,
            group_managed,
            lane: self.commit_lane,
            deadline: Instant::now() + timeout,
            auto,
            reply,
        };
        if jobs.send(job).is_err() {
            return CommitFuture::failed(ClientError::Closed);
        }
        CommitFuture(CommitFutureInner::Pending(rx))
    }

    /// Ends the background tasks (the consumer is closing or gone).
    pub fn shutdown(&mut self) {
        self.abort_join();
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        self.committer = None;
        if let Some(h) = self.committer_task.take() {
            h.abort();
        }
    }
}

impl Drop for ConsumerCoordinator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The join/sync exchange of one rebalance, retried here through coordinator moves and
/// rebalances that restart before it ends.
async fn join_group(
    shared: Arc<GroupShared>,
    assignors: Arc<Vec<Box<dyn PartitionAssignor>>>,
    input: JoinInput,
) -> Result<JoinOutcome, JoinFailure> {
    let settings = shared.settings.clone();
    let context = || format!("joining group {}", settings.group_id);
    let owned_generation = shared.lock().generation;
    loop {
        let conn = match shared.coordinator(Lane::Group).await {
            Ok(c) => c,
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "no coordinator yet");
                shared.backoff().await;
                continue;
            }
            Err(e) => return Err(classify(e)),
        };
        let member_id = shared.lock().member_id.clone();
        let protocols = assignors
            .iter()
            .map(|a| JoinGroupRequestProtocol {
                name: a.name().to_string(),
                metadata: ConsumerProtocolSubscription {
                    topics: input.topics.clone(),
                    user_data: a.user_data(owned_generation),
                    owned_partitions: to_wire(&input.owned),
                    generation_id: owned_generation,
                    rack_id: settings.rack.clone(),
                }
                .serialize(CONSUMER_PROTOCOL_MAX_VERSION),
            })
            .collect();
        let request = JoinGroupRequest {
            group_id: settings.group_id.clone(),
            session_timeout_ms: settings.session_timeout.as_millis() as i32,
            rebalance_timeout_ms: settings.rebalance_timeout.as_millis() as i32,
            member_id,
            group_instance_id: settings.instance_id.clone(),
            protocol_type: PROTOCOL_TYPE.into(),
            protocols,
            reason: Some(input.reason.clone()),
        };
        // The coordinator holds a JoinGroup until every member has rejoined, for up to the
        // rebalance timeout.
        let timeout = settings.request_timeout + settings.rebalance_timeout;
        let joined = match conn.send(&request, timeout).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "JoinGroup failed; retrying");
                shared.coordinator_failed();
                shared.backoff().await;
                continue;
            }
            Err(e) => return Err(classify(e)),
        };
        let code = ErrorCode::from_code(joined.error_code);
        match code {
            ErrorCode::None => {}
            ErrorCode::MemberIdRequired => {
                // KIP-394: the coordinator names us first and counts us once we come back.
                shared.lock().member_id = joined.member_id;
                continue;
            }
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                shared.reset_membership(code == ErrorCode::UnknownMemberId);
                return Err(JoinFailure::Lost(ClientError::broker(
                    code,
                    None,
                    context(),
                )));
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                shared.coordinator_failed();
                shared.backoff().await;
                continue;
            }
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::RebalanceInProgress => {
                shared.backoff().await;
                continue;
            }
            code => return Err(join_failure(code, context())),
        }
        let generation = joined.generation_id;
        let member_id = joined.member_id.clone();
        shared.lock().member_id = member_id.clone();
        let Some(protocol) = joined.protocol_name.clone() else {
            return Err(JoinFailure::Retry(ClientError::Invalid(
                "JoinGroup chose no assignment protocol".into(),
            )));
        };
        let Some(assignor) = assignors.iter().find(|a| a.name() == protocol) else {
            return Err(JoinFailure::Fatal(ClientError::broker(
                ErrorCode::InconsistentGroupProtocol,
                Some(format!(
                    "the group chose {protocol:?}, which this consumer does not offer"
                )),
                context(),
            )));
        };
        let leader = joined.leader == member_id;
        let (assignments, group_watch) = if leader && !joined.skip_assignment {
            match lead(&shared, assignor.as_ref(), &joined).await {
                Ok(x) => x,
                Err(e) => return Err(JoinFailure::Retry(e)),
            }
        } else {
            (Vec::new(), BTreeMap::new())
        };
        tracing::debug!(group = %settings.group_id, generation, %member_id, leader, %protocol, "joined; syncing");
        let request = SyncGroupRequest {
            group_id: settings.group_id.clone(),
            generation_id: generation,
            member_id: member_id.clone(),
            group_instance_id: settings.instance_id.clone(),
            protocol_type: Some(PROTOCOL_TYPE.into()),
            protocol_name: Some(protocol.clone()),
            assignments,
        };
        let synced = match conn.send(&request, timeout).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "SyncGroup failed; rejoining");
                shared.coordinator_failed();
                shared.backoff().await;
                continue;
            }
            Err(e) => return Err(classify(e)),
        };
        let code = ErrorCode::from_code(synced.error_code);
        match code {
            ErrorCode::None => {}
            ErrorCode::RebalanceInProgress => continue,
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                shared.reset_membership(code == ErrorCode::UnknownMemberId);
                return Err(JoinFailure::Lost(ClientError::broker(
                    code,
                    None,
                    context(),
                )));
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                shared.coordinator_failed();
                shared.backoff().await;
                continue;
            }
            code => return Err(join_failure(code, context())),
        }
        let assignment = match ConsumerProtocolAssignment::deserialize(&synced.assignment) {
            Ok((_, a)) => from_wire(a.assigned_partitions),
            Err(e) => {
                return Err(JoinFailure::Retry(ClientError::Protocol {
                    addr: format!("the assignment of group {}", settings.group_id),
                    error: e,
                }))
            }
        };
        let watched = if leader && !joined.skip_assignment {
            group_watch
        } else {
            partition_counts(&shared.cluster, &input.topics).await
        };
        {
            let mut s = shared.lock();
            s.generation = generation;
            s.phase = Phase::Stable;
        }
        tracing::info!(group = %settings.group_id, generation, member = %member_id, partitions = assignment.len(), "joined the group");
        return Ok(JoinOutcome {
            generation,
            assignment,
            watched,
        });
    }
}

fn classify(e: ClientError) -> JoinFailure {
    match e.code() {
        Some(code) if is_fatal_join_error(code) => JoinFailure::Fatal(e),
        _ => JoinFailure::Retry(e),
    }
}

/// Partition counts of `topics`, fetched now; 0 for a topic that does not exist.
async fn partition_counts(cluster: &Cluster, topics: &[String]) -> BTreeMap<String, i32> {
    if topics.is_empty() {
        return BTreeMap::new();
    }
    match cluster.refresh(Some(topics)).await {
        Ok(snapshot) => topics
            .iter()
            .map(|t| {
                let n = snapshot
                    .topics
                    .get(t)
                    .map_or(0, |i| i.partitions.len() as i32);
                (t.clone(), n)
            })
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "metadata for the subscribed topics");
            BTreeMap::new()
        }
    }
}

/// The leader's part: read every member's subscription, run the group's assignor over the
/// current partition counts, and encode each member's share.
async fn lead(
    shared: &GroupShared,
    assignor: &dyn PartitionAssignor,
    joined: &JoinGroupResponse,
) -> Result<(Vec<SyncGroupRequestAssignment>, BTreeMap<String, i32>)> {
    let mut members = BTreeMap::new();
    let mut version = CONSUMER_PROTOCOL_MAX_VERSION;
    for m in &joined.members {
        let subscription = match ConsumerProtocolSubscription::deserialize(&m.metadata) {
            Ok((v, s)) => {
                version = version.min(v);
                s
            }
            Err(e) => {
                // One member's garbage must not stall the group: it gets nothing.
                tracing::warn!(member = %m.member_id, error = %e, "unreadable subscription");
                ConsumerProtocolSubscription::default()
            }
        };
        members.insert(
            m.member_id.clone(),
            MemberSubscription {
                topics: subscription.topics,
                owned_partitions: from_wire(subscription.owned_partitions),
                generation: subscription.generation_id,
                group_instance_id: m.group_instance_id.clone(),
                rack: subscription.rack_id,
                user_data: subscription.user_data,
            },
        );
    }
    let topics: Vec<String> = members
        .values()
        .flat_map(|m: &MemberSubscription| m.topics.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let counts = partition_counts(&shared.cluster, &topics).await;
    if counts.is_empty() && !topics.is_empty() {
        return Err(ClientError::Invalid(
            "no metadata for the group's topics to assign from".into(),
        ));
    }
    let existing: BTreeMap<String, i32> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    let assignment = assignor.assign(&existing, &members);
    tracing::debug!(group = %shared.settings.group_id, protocol = assignor.name(), ?assignment, "assignment computed");
    let encoded = members
        .keys()
        .map(|id| {
            let partitions = assignment.get(id).map(Vec::as_slice).unwrap_or_default();
            SyncGroupRequestAssignment {
                member_id: id.clone(),
                // The oldest version any member speaks, so that every member reads it whole.
                assignment: ConsumerProtocolAssignment {
                    assigned_partitions: to_wire(partitions),
                    user_data: None,
                }
                .serialize(version),
            }
        })
        .collect();
    Ok((encoded, counts))
}
