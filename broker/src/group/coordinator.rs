//! The group coordinator as a state machine: requests and timer ticks go in, replies and records
//! for `__consumer_offsets` come out. No I/O and no clock: time is always a parameter.
//!
//! The rules follow Kafka's classic group protocol: a rebalance moves a group from Stable (or
//! Empty) to PreparingRebalance until every member rejoined or the rebalance timeout passed,
//! then to CompletingRebalance until the leader's SyncGroup brings the assignment, then Stable.

use std::collections::HashMap;

use bytes::Bytes;
use sluice_protocol::ErrorCode;

use super::classic_group::{Group, GroupState, JoinWaiter, Member};
use super::records::{CommittedOffset, GroupRecord};
use super::timers::{TimerKey, Timers};
use super::{partition_for, ReplyId};

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i64,
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i32,
    /// group.max.size
    pub max_group_size: usize,
    /// offset.metadata.max.bytes
    pub offset_metadata_max_bytes: usize,
    /// offsets.retention.minutes, in ms
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms
    pub offsets_retention_check_interval_ms: i64,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_group_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets its id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinResponse {
        JoinResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: ErrorCode) -> SyncResponse {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResponse),
    Sync(SyncResponse),
}

/// What a call produced besides its return value. Records must be stored before any reply is
/// sent: a reply may promise what they record.
#[derive(Debug, Default)]
pub struct Effects {
    /// Snapshots of state the coordinator already holds, to be appended in order.
    pub records: Vec<GroupRecord>,
    pub replies: Vec<(ReplyId, Reply)>,
}

#[derive(Debug, Clone)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-4; -1 means the broker's retention.
    pub retention_time_ms: i64,
    pub offsets: Vec<CommitOffset>,
}

#[derive(Debug, Clone)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A validated commit: the per-partition errors to answer with and the records to store. The
/// offsets become visible only when the stored records are replayed.
#[derive(Debug)]
pub struct CommitOutcome {
    pub errors: Vec<ErrorCode>,
    pub records: Vec<GroupRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub error: ErrorCode,
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<DescribedMember>,
}

/// One partition's committed offset as OffsetFetch reports it; `None` if nothing is committed.
pub type FetchedOffset = (String, i32, Option<CommittedOffset>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Loading,
    Loaded,
}

pub struct GroupCoordinator {
    config: CoordinatorConfig,
    /// Partition count of `__consumer_offsets`: a group lives in hash(group) % this.
    num_partitions: i32,
    partitions: HashMap<i32, Load>,
    groups: HashMap<String, Group>,
    timers: Timers,
    /// Random per process start, so member ids never repeat across restarts.
    member_id_nonce: u64,
    next_member_seq: u64,
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig, num_partitions: i32, member_id_nonce: u64) -> Self {
        GroupCoordinator {
            config,
            num_partitions: num_partitions.max(1),
            partitions: HashMap::new(),
            groups: HashMap::new(),
            timers: Timers::default(),
            member_id_nonce,
            next_member_seq: 0,
        }
    }

    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    pub fn num_partitions(&self) -> i32 {
        self.num_partitions
    }

    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.num_partitions)
    }

    // ---- loading -------------------------------------------------------------------------

    /// This broker now leads `partition` of `__consumer_offsets`; its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS until `finish_load`.
    pub fn begin_load(&mut self, partition: i32) {
        self.partitions.insert(partition, Load::Loading);
    }

    /// Applies one stored record, in log order: while loading, and after each successful store
    /// of records returned by commits and deletions.
    pub fn replay(&mut self, record: GroupRecord, now_ms: i64) {
        match record {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value: Some(offset),
            } => {
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, now_ms))
                    .offsets
                    .insert((topic, partition), offset);
            }
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value: None,
            } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
                self.remove_if_dead(&group);
            }
            GroupRecord::Group {
                group,
                value: Some(snapshot),
            } => {
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, now_ms))
                    .restore(snapshot);
            }
            GroupRecord::Group { group, value: None } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    let offsets = std::mem::take(&mut g.offsets);
                    *g = Group::new(group.clone(), now_ms);
                    g.offsets = offsets;
                }
                self.remove_if_dead(&group);
            }
        }
    }

    /// The partition's records are all replayed: members of loaded groups get a fresh session
    /// (they may have been heartbeating to a previous coordinator).
    pub fn finish_load(&mut self, partition: i32, now_ms: i64) {
        self.partitions.insert(partition, Load::Loaded);
        let n = self.num_partitions;
        for g in self.groups.values() {
            if partition_for(&g.id, n) != partition {
                continue;
            }
            for m in g.members.values() {
                self.timers.schedule(
                    TimerKey::Session {
                        group: g.id.clone(),
                        member: m.member_id.clone(),
                    },
                    now_ms + m.session_timeout_ms as i64,
                );
            }
        }
        if self.timers.deadline(&TimerKey::OffsetExpiry).is_none() {
            self.timers.schedule(
                TimerKey::OffsetExpiry,
                now_ms + self.config.offsets_retention_check_interval_ms,
            );
        }
    }

    /// Another broker leads `partition` now: forget its groups; parked requests learn
    /// NOT_COORDINATOR and clients look the coordinator up again.
    pub fn unload(&mut self, partition: i32, fx: &mut Effects) {
        self.partitions.remove(&partition);
        let n = self.num_partitions;
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|id| partition_for(id, n) == partition)
            .cloned()
            .collect();
        for id in ids {
            if let Some(g) = self.groups.remove(&id) {
                for m in g.members.values() {
                    fail_waiters(m, ErrorCode::NotCoordinator, fx);
                }
            }
            self.timers.cancel_group(&id);
        }
    }

    /// Whether this coordinator may answer for `group_id` now.
    pub fn check_coordinator(&self, group_id: &str) -> Result<(), ErrorCode> {
        match self.partitions.get(&self.partition_of(group_id)) {
            Some(Load::Loaded) => Ok(()),
            Some(Load::Loading) => Err(ErrorCode::CoordinatorLoadInProgress),
            None => Err(ErrorCode::NotCoordinator),
        }
    }

    // ---- timers --------------------------------------------------------------------------

    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.next_deadline()
    }

    /// Fires every deadline due at `now_ms`. Returns records that, like commits, apply only
    /// once stored (expired offsets), besides the effects.
    pub fn tick(&mut self, now_ms: i64, fx: &mut Effects) -> Vec<GroupRecord> {
        let mut deferred = Vec::new();
        while let Some(key) = self.timers.pop_due(now_ms) {
            match key {
                TimerKey::Session { group, member } => {
                    self.expire_member(&group, &member, now_ms, fx)
                }
                TimerKey::PendingMember { group, member } => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        if g.pending_members.remove(&member) {
                            self.maybe_complete_join(&group, now_ms, fx);
                        }
                    }
                }
                TimerKey::Join { group } => self.on_join_deadline(&group, now_ms, fx),
                TimerKey::Sync { group, generation } => {
                    self.on_sync_deadline(&group, generation, now_ms, fx)
                }
                TimerKey::OffsetExpiry => {
                    deferred.extend(self.expired_offsets(now_ms));
                    self.timers.schedule(
                        TimerKey::OffsetExpiry,
                        now_ms + self.config.offsets_retention_check_interval_ms,
                    );
                }
            }
        }
        deferred
    }

    fn expire_member(&mut self, group_id: &str, member_id: &str, now_ms: i64, fx: &mut Effects) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        let Some(m) = g.members.get(member_id) else {
            return;
        };
        // A member parked in JoinGroup or SyncGroup is alive; its wait has its own deadline.
        if m.awaiting_join.is_some() || m.awaiting_sync.is_some() {
            return;
        }
        tracing::info!(
            group = group_id,
            member = member_id,
            "session expired; member removed"
        );
        self.remove_member_and_update(group_id, member_id, now_ms, fx);
    }

    fn on_join_deadline(&mut self, group_id: &str, now_ms: i64, fx: &mut Effects) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(remaining) = g.initial_delay_remaining_ms {
            // Kafka's initial delay: while members keep arriving, wait another delay, but never
            // past the rebalance timeout.
            if g.new_member_added && remaining > 0 {
                g.new_member_added = false;
                let delay = self.config.initial_rebalance_delay_ms.min(remaining);
                g.initial_delay_remaining_ms = Some((remaining - delay).max(0));
                self.timers.schedule(
                    TimerKey::Join {
                        group: group_id.to_string(),
                    },
                    now_ms + delay,
                );
                return;
            }
            g.initial_delay_remaining_ms = None;
        }
        self.complete_join(group_id, now_ms, fx);
    }

    fn on_sync_deadline(&mut self, group_id: &str, generation: i32, now_ms: i64, fx: &mut Effects) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if g.generation_id != generation
            || !matches!(
                g.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
        {
            return;
        }
        let late: Vec<String> = g.pending_sync.iter().cloned().collect();
        if late.is_empty() {
            return;
        }
        tracing::info!(group = group_id, members = ?late, "no SyncGroup within the rebalance timeout; members removed");
        for member in late {
            self.remove_member(group_id, &member, ErrorCode::UnknownMemberId, fx);
        }
        self.update_after_removal(group_id, now_ms, fx);
    }

    // ---- JoinGroup -----------------------------------------------------------------------

    /// Handles a JoinGroup; its reply (now or when the rebalance completes) goes out as
    /// `Reply::Join` for `reply`.
    pub fn join(&mut self, now_ms: i64, reply: ReplyId, req: JoinRequest, fx: &mut Effects) {
        let fail = |fx: &mut Effects, error| {
            fx.replies.push((
                reply,
                Reply::Join(JoinResponse::error(error, &req.member_id)),
            ))
        };
        if req.group_id.is_empty() {
            return fail(fx, ErrorCode::InvalidGroupId);
        }
        if let Err(e) = self.check_coordinator(&req.group_id) {
            return fail(fx, e);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(fx, ErrorCode::InvalidSessionTimeout);
        }
        let exists = self.groups.contains_key(&req.group_id);
        if !exists && !req.member_id.is_empty() {
            return fail(fx, ErrorCode::UnknownMemberId);
        }
        let group_id = req.group_id.clone();
        tracing::debug!(group = %group_id, member = %req.member_id, client = %req.client_id, "join");
        self.groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id.clone(), now_ms));
        if req.member_id.is_empty() {
            self.join_unknown_member(now_ms, reply, req, fx);
        } else {
            self.join_known_member(now_ms, reply, req, fx);
        }
        self.remove_if_dead(&group_id);
    }

    fn join_unknown_member(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        fx: &mut Effects,
    ) {
        let member_id = self.new_member_id(&req.client_id);
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        let fail = |fx: &mut Effects, error| {
            fx.replies
                .push((reply, Reply::Join(JoinResponse::error(error, ""))))
        };
        if g.state == GroupState::Dead {
            return fail(fx, ErrorCode::CoordinatorNotAvailable);
        }
        let replaced = req
            .group_instance_id
            .as_ref()
            .and_then(|i| g.static_members.get(i))
            .cloned();
        if !g.supports_protocols(&req.protocol_type, &req.protocols, replaced.as_deref()) {
            return fail(fx, ErrorCode::InconsistentGroupProtocol);
        }
        if let Some(old_id) = replaced {
            return self.rejoin_static_member(now_ms, reply, req, old_id, member_id, fx);
        }
        if g.members.len() + g.pending_members.len() >= self.config.max_group_size {
            return fail(fx, ErrorCode::GroupMaxSizeReached);
        }
        if req.require_known_member_id && req.group_instance_id.is_none() {
            // KIP-394: the member proves it received its id before it counts as a member, so
            // a client that retries a timed-out join does not leave a ghost behind.
            g.pending_members.insert(member_id.clone());
            self.timers.schedule(
                TimerKey::PendingMember {
                    group: req.group_id.clone(),
                    member: member_id.clone(),
                },
                now_ms + req.session_timeout_ms as i64,
            );
            return fx.replies.push((
                reply,
                Reply::Join(JoinResponse::error(ErrorCode::MemberIdRequired, &member_id)),
            ));
        }
        self.add_member_and_rebalance(now_ms, reply, req, member_id, fx);
    }

    fn join_known_member(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        fx: &mut Effects,
    ) {
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        let fail = |fx: &mut Effects, error| {
            fx.replies.push((
                reply,
                Reply::Join(JoinResponse::error(error, &req.member_id)),
            ))
        };
        if g.state == GroupState::Dead {
            return fail(fx, ErrorCode::CoordinatorNotAvailable);
        }
        if g.pending_members.remove(&req.member_id) {
            self.timers.cancel(&TimerKey::PendingMember {
                group: req.group_id.clone(),
                member: req.member_id.clone(),
            });
            if !g.supports_protocols(&req.protocol_type, &req.protocols, None) {
                return fail(fx, ErrorCode::InconsistentGroupProtocol);
            }
            let member_id = req.member_id.clone();
            return self.add_member_and_rebalance(now_ms, reply, req, member_id, fx);
        }
        if let Err(e) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return fail(fx, e);
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols, Some(&req.member_id)) {
            return fail(fx, ErrorCode::InconsistentGroupProtocol);
        }
        let member = g.members.get(&req.member_id).expect("validated");
        let unchanged = member.protocols == req.protocols;
        match g.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now_ms, reply, req, fx)
            }
            GroupState::CompletingRebalance if unchanged => {
                // The join response was lost: send it again.
                let response = join_response(g, &req.member_id);
                fx.replies.push((reply, Reply::Join(response)));
            }
            GroupState::Stable if unchanged && !g.is_leader(&req.member_id) => {
                let response = join_response(g, &req.member_id);
                self.timers.schedule(
                    TimerKey::Session {
                        group: req.group_id.clone(),
                        member: req.member_id.clone(),
                    },
                    now_ms + member.session_timeout_ms as i64,
                );
                fx.replies.push((reply, Reply::Join(response)));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now_ms, reply, req, fx)
            }
            GroupState::Empty | GroupState::Dead => fail(fx, ErrorCode::UnknownMemberId),
        }
    }

    /// A static member came back with a new process (empty member id, known instance id): it
    /// takes over the old member's place; the old one is fenced.
    fn rejoin_static_member(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        fx: &mut Effects,
    ) {
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        let mut member = g
            .members
            .remove(&old_id)
            .expect("static member is a member");
        fail_waiters(&member, ErrorCode::FencedInstanceId, fx);
        member.awaiting_join = None;
        member.awaiting_sync = None;
        self.timers.cancel(&TimerKey::Session {
            group: req.group_id.clone(),
            member: old_id.clone(),
        });
        member.member_id = new_id.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.protocols = req.protocols.clone();
        g.members.insert(new_id.clone(), member);
        if let Some(instance) = &req.group_instance_id {
            g.static_members.insert(instance.clone(), new_id.clone());
        }
        if g.leader_id.as_deref() == Some(old_id.as_str()) {
            g.leader_id = Some(new_id.clone());
        }
        if g.pending_sync.remove(&old_id) {
            g.pending_sync.insert(new_id.clone());
        }
        let req = JoinRequest {
            member_id: new_id.clone(),
            ..req
        };
        // Kafka's rule: a rejoin in Stable that leaves the group's protocol choice as it is
        // keeps the assignment (KIP-345); any subscription change is the leader's to notice.
        let protocol_kept = g.state == GroupState::Stable && g.select_protocol() == g.protocol_name;
        match g.state {
            GroupState::Stable if protocol_kept => {
                fx.records.push(GroupRecord::Group {
                    group: g.id.clone(),
                    value: Some(g.snapshot()),
                });
                let mut response = join_response(g, &new_id);
                if g.is_leader(&new_id) {
                    if req.supports_skip_assignment {
                        // KIP-814: the leader learns it leads but must not run the assignor.
                        response.skip_assignment = true;
                    } else {
                        // Older leaders would run a trivial assignment a Stable group ignores:
                        // naming the old id as leader makes it act as a follower instead.
                        response.leader = old_id;
                        response.members.clear();
                    }
                }
                self.timers.schedule(
                    TimerKey::Session {
                        group: req.group_id.clone(),
                        member: new_id,
                    },
                    now_ms + req.session_timeout_ms as i64,
                );
                fx.replies.push((reply, Reply::Join(response)));
            }
            _ => self.update_member_and_rebalance(now_ms, reply, req, fx),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        member_id: String,
        fx: &mut Effects,
    ) {
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if g.leader_id.is_none() {
            g.leader_id = Some(member_id.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            g.static_members.insert(instance.clone(), member_id.clone());
        }
        g.members.insert(
            member_id.clone(),
            Member {
                member_id,
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(JoinWaiter {
                    reply,
                    supports_skip_assignment: req.supports_skip_assignment,
                }),
                awaiting_sync: None,
            },
        );
        g.new_member_added = true;
        self.prepare_rebalance(&req.group_id, now_ms, fx);
        self.maybe_complete_join(&req.group_id, now_ms, fx);
    }

    fn update_member_and_rebalance(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        req: JoinRequest,
        fx: &mut Effects,
    ) {
        let g = self.groups.get_mut(&req.group_id).expect("group exists");
        let m = g.members.get_mut(&req.member_id).expect("member exists");
        if let Some(old) = m.awaiting_join.take() {
            // The same member joined again before its first join completed: only the newest
            // request gets the answer.
            fx.replies.push((
                old.reply,
                Reply::Join(JoinResponse::error(
                    ErrorCode::RebalanceInProgress,
                    &req.member_id,
                )),
            ));
        }
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.awaiting_join = Some(JoinWaiter {
            reply,
            supports_skip_assignment: req.supports_skip_assignment,
        });
        self.timers.cancel(&TimerKey::Session {
            group: req.group_id.clone(),
            member: req.member_id.clone(),
        });
        self.prepare_rebalance(&req.group_id, now_ms, fx);
        self.maybe_complete_join(&req.group_id, now_ms, fx);
    }

    /// Starts a rebalance unless one is already being prepared.
    fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64, fx: &mut Effects) {
        let delay = self.config.initial_rebalance_delay_ms;
        let g = self.groups.get_mut(group_id).expect("group exists");
        match g.state {
            GroupState::PreparingRebalance | GroupState::Dead => return,
            GroupState::CompletingRebalance => {
                // The assignment being computed is void: members rejoin.
                self.timers.cancel(&TimerKey::Sync {
                    group: group_id.to_string(),
                    generation: g.generation_id,
                });
                g.pending_sync.clear();
                for m in g.members.values_mut() {
                    m.assignment = Bytes::new();
                    if let Some(r) = m.awaiting_sync.take() {
                        fx.replies.push((
                            r,
                            Reply::Sync(SyncResponse::error(ErrorCode::RebalanceInProgress)),
                        ));
                    }
                }
            }
            GroupState::Stable => {
                self.timers.cancel(&TimerKey::Sync {
                    group: group_id.to_string(),
                    generation: g.generation_id,
                });
                g.pending_sync.clear();
            }
            GroupState::Empty => {}
        }
        let timeout = g.rebalance_timeout_ms();
        let wait = if g.state == GroupState::Empty && delay > 0 {
            g.new_member_added = false;
            let first = delay.min(timeout);
            g.initial_delay_remaining_ms = Some((timeout - first).max(0));
            first
        } else {
            g.initial_delay_remaining_ms = None;
            timeout
        };
        g.transition(GroupState::PreparingRebalance, now_ms);
        tracing::debug!(
            group = group_id,
            generation = g.generation_id,
            "preparing rebalance"
        );
        self.timers.schedule(
            TimerKey::Join {
                group: group_id.to_string(),
            },
            now_ms + wait,
        );
    }

    fn maybe_complete_join(&mut self, group_id: &str, now_ms: i64, fx: &mut Effects) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if g.state == GroupState::PreparingRebalance
            && g.initial_delay_remaining_ms.is_none()
            && g.all_members_joined()
        {
            self.complete_join(group_id, now_ms, fx);
        }
    }

    /// Ends PreparingRebalance: members that did not rejoin are dropped, a new generation
    /// starts, and every waiting member learns it (the leader with everyone's metadata).
    fn complete_join(&mut self, group_id: &str, now_ms: i64, fx: &mut Effects) {
        self.timers.cancel(&TimerKey::Join {
            group: group_id.to_string(),
        });
        let g = self.groups.get_mut(group_id).expect("group exists");
        let missing: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member in missing {
            self.remove_member(group_id, &member, ErrorCode::UnknownMemberId, fx);
        }
        let g = self.groups.get_mut(group_id).expect("group exists");
        g.initial_delay_remaining_ms = None;
        g.generation_id += 1;
        if g.members.is_empty() {
            g.protocol_name = None;
            g.leader_id = None;
            g.transition(GroupState::Empty, now_ms);
            tracing::info!(
                group = group_id,
                generation = g.generation_id,
                "group is empty"
            );
            fx.records.push(GroupRecord::Group {
                group: group_id.to_string(),
                value: Some(g.snapshot()),
            });
            return;
        }
        if !g
            .leader_id
            .as_ref()
            .is_some_and(|l| g.members.contains_key(l))
        {
            g.leader_id = g.members.keys().next().cloned();
        }
        g.protocol_name = g.select_protocol();
        g.transition(GroupState::CompletingRebalance, now_ms);
        tracing::info!(
            group = group_id,
            generation = g.generation_id,
            members = g.members.len(),
            protocol = ?g.protocol_name,
            "rebalance: new generation"
        );
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in &ids {
            let waiter = g
                .members
                .get_mut(id)
                .and_then(|m| m.awaiting_join.take())
                .expect("every remaining member rejoined");
            let response = join_response(g, id);
            fx.replies.push((waiter.reply, Reply::Join(response)));
            let m = &g.members[id];
            self.timers.schedule(
                TimerKey::Session {
                    group: group_id.to_string(),
                    member: id.clone(),
                },
                now_ms + m.session_timeout_ms as i64,
            );
        }
        g.pending_sync = ids.into_iter().collect();
        self.timers.schedule(
            TimerKey::Sync {
                group: group_id.to_string(),
                generation: g.generation_id,
            },
            now_ms + g.rebalance_timeout_ms(),
        );
    }

    // ---- SyncGroup -----------------------------------------------------------------------

    pub fn sync(&mut self, now_ms: i64, reply: ReplyId, req: SyncRequest, fx: &mut Effects) {
        let fail = |fx: &mut Effects, error| {
            fx.replies
                .push((reply, Reply::Sync(SyncResponse::error(error))))
        };
        if req.group_id.is_empty() {
            return fail(fx, ErrorCode::InvalidGroupId);
        }
        if let Err(e) = self.check_coordinator(&req.group_id) {
            return fail(fx, e);
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return fail(fx, ErrorCode::UnknownMemberId);
        };
        if g.state == GroupState::Dead {
            return fail(fx, ErrorCode::CoordinatorNotAvailable);
        }
        if let Err(e) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return fail(fx, e);
        }
        if req.generation_id != g.generation_id {
            return fail(fx, ErrorCode::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != g.protocol_name.as_ref())
        {
            return fail(fx, ErrorCode::InconsistentGroupProtocol);
        }
        let session = TimerKey::Session {
            group: req.group_id.clone(),
            member: req.member_id.clone(),
        };
        match g.state {
            GroupState::Empty => fail(fx, ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => fail(fx, ErrorCode::RebalanceInProgress),
            GroupState::Dead => fail(fx, ErrorCode::CoordinatorNotAvailable),
            GroupState::Stable => {
                g.pending_sync.remove(&req.member_id);
                let m = &g.members[&req.member_id];
                let timeout = m.session_timeout_ms as i64;
                let response = sync_response(g, m.assignment.clone());
                self.timers.schedule(session, now_ms + timeout);
                fx.replies.push((reply, Reply::Sync(response)));
            }
            GroupState::CompletingRebalance => {
                g.pending_sync.remove(&req.member_id);
                let m = g.members.get_mut(&req.member_id).expect("validated");
                if let Some(old) = m.awaiting_sync.replace(reply) {
                    fx.replies.push((
                        old,
                        Reply::Sync(SyncResponse::error(ErrorCode::RebalanceInProgress)),
                    ));
                }
                self.timers.cancel(&session);
                if g.is_leader(&req.member_id) {
                    let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    g.transition(GroupState::Stable, now_ms);
                    tracing::info!(
                        group = %req.group_id,
                        generation = g.generation_id,
                        "group is stable"
                    );
                    fx.records.push(GroupRecord::Group {
                        group: req.group_id.clone(),
                        value: Some(g.snapshot()),
                    });
                    let waiting: Vec<(ReplyId, Bytes, String, i64)> = g
                        .members
                        .values_mut()
                        .filter_map(|m| {
                            m.awaiting_sync.take().map(|r| {
                                (
                                    r,
                                    m.assignment.clone(),
                                    m.member_id.clone(),
                                    m.session_timeout_ms as i64,
                                )
                            })
                        })
                        .collect();
                    for (r, assignment, member, timeout) in waiting {
                        fx.replies
                            .push((r, Reply::Sync(sync_response(g, assignment))));
                        self.timers.schedule(
                            TimerKey::Session {
                                group: req.group_id.clone(),
                                member,
                            },
                            now_ms + timeout,
                        );
                    }
                }
            }
        }
    }

    /// The stored snapshot of a group could not be written: its members must rejoin, and the
    /// replies promised in the same batch must become errors (the caller swaps them).
    pub fn store_failed(&mut self, group_id: &str, now_ms: i64, fx: &mut Effects) {
        if let Some(g) = self.groups.get_mut(group_id) {
            if g.state == GroupState::Stable || g.state == GroupState::CompletingRebalance {
                for m in g.members.values_mut() {
                    m.assignment = Bytes::new();
                }
                self.prepare_rebalance(group_id, now_ms, fx);
            }
        }
    }

    // ---- Heartbeat and LeaveGroup --------------------------------------------------------

    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> ErrorCode {
        if group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        if let Err(e) = self.check_coordinator(group_id) {
            return e;
        }
        let Some(g) = self.groups.get(group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if g.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if let Err(e) = validate_member(g, member_id, group_instance_id) {
            return e;
        }
        if generation_id != g.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        let m = &g.members[member_id];
        let session = TimerKey::Session {
            group: group_id.to_string(),
            member: member_id.to_string(),
        };
        match g.state {
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
            GroupState::PreparingRebalance => {
                self.timers
                    .schedule(session, now_ms + m.session_timeout_ms as i64);
                ErrorCode::RebalanceInProgress
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.timers
                    .schedule(session, now_ms + m.session_timeout_ms as i64);
                ErrorCode::None
            }
        }
    }

    /// LeaveGroup: `Err` is a group-level error, otherwise one error per member.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: &[LeaveMember],
        fx: &mut Effects,
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        self.check_coordinator(group_id)?;
        if !self.groups.contains_key(group_id) {
            return Ok(vec![ErrorCode::UnknownMemberId; members.len()]);
        }
        let mut errors = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for leaving in members {
            let g = self.groups.get_mut(group_id).expect("group exists");
            let target = match &leaving.group_instance_id {
                Some(instance) => match g.static_members.get(instance) {
                    None => Err(ErrorCode::UnknownMemberId),
                    Some(id) if !leaving.member_id.is_empty() && *id != leaving.member_id => {
                        Err(ErrorCode::FencedInstanceId)
                    }
                    Some(id) => Ok(id.clone()),
                },
                None if g.pending_members.remove(&leaving.member_id) => {
                    self.timers.cancel(&TimerKey::PendingMember {
                        group: group_id.to_string(),
                        member: leaving.member_id.clone(),
                    });
                    errors.push(ErrorCode::None);
                    removed_any = true;
                    continue;
                }
                None if g.members.contains_key(&leaving.member_id) => Ok(leaving.member_id.clone()),
                None => Err(ErrorCode::UnknownMemberId),
            };
            match target {
                Ok(member_id) => {
                    tracing::info!(group = group_id, member = %member_id, "member left");
                    self.remove_member(group_id, &member_id, ErrorCode::UnknownMemberId, fx);
                    removed_any = true;
                    errors.push(ErrorCode::None);
                }
                Err(e) => errors.push(e),
            }
        }
        if removed_any {
            self.update_after_removal(group_id, now_ms, fx);
        }
        Ok(errors)
    }

    fn remove_member_and_update(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        self.remove_member(group_id, member_id, ErrorCode::UnknownMemberId, fx);
        self.update_after_removal(group_id, now_ms, fx);
    }

    /// Drops a member; anything it had parked is answered with `error`.
    fn remove_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        error: ErrorCode,
        fx: &mut Effects,
    ) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(m) = g.members.remove(member_id) else {
            return;
        };
        fail_waiters(&m, error, fx);
        if let Some(instance) = &m.group_instance_id {
            if g.static_members.get(instance).map(String::as_str) == Some(member_id) {
                g.static_members.remove(instance);
            }
        }
        g.pending_sync.remove(member_id);
        if g.is_leader(member_id) {
            g.leader_id = g.members.keys().next().cloned();
        }
        self.timers.cancel(&TimerKey::Session {
            group: group_id.to_string(),
            member: member_id.to_string(),
        });
    }

    fn update_after_removal(&mut self, group_id: &str, now_ms: i64, fx: &mut Effects) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_id, now_ms, fx);
                self.maybe_complete_join(group_id, now_ms, fx);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(group_id, now_ms, fx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ---- offsets ---------------------------------------------------------------------------

    /// Validates an OffsetCommit. Nothing changes until the returned records are stored and
    /// replayed, so a failed store leaves the previous offsets in place.
    pub fn commit_offsets(&mut self, now_ms: i64, req: &CommitRequest) -> CommitOutcome {
        let all = |e: ErrorCode| CommitOutcome {
            errors: vec![e; req.offsets.len()],
            records: Vec::new(),
        };
        if let Err(e) = self.check_coordinator(&req.group_id) {
            return all(e);
        }
        if let Some(g) = self.groups.get(&req.group_id) {
            let simple = req.generation_id < 0 && g.state == GroupState::Empty;
            if !simple {
                let checked = match g.state {
                    GroupState::Dead => Err(ErrorCode::CoordinatorNotAvailable),
                    GroupState::CompletingRebalance => Err(ErrorCode::RebalanceInProgress),
                    _ => validate_member(g, &req.member_id, req.group_instance_id.as_deref()).and(
                        if req.generation_id == g.generation_id {
                            Ok(())
                        } else {
                            Err(ErrorCode::IllegalGeneration)
                        },
                    ),
                };
                if let Err(e) = checked {
                    return all(e);
                }
                if let Some(m) = g.members.get(&req.member_id) {
                    // A commit proves the member alive, as a heartbeat would.
                    let key = TimerKey::Session {
                        group: req.group_id.clone(),
                        member: req.member_id.clone(),
                    };
                    if self.timers.deadline(&key).is_some() {
                        self.timers
                            .schedule(key, now_ms + m.session_timeout_ms as i64);
                    }
                }
            }
        } else if req.generation_id >= 0 {
            return all(ErrorCode::IllegalGeneration);
        }
        let expire = (req.retention_time_ms >= 0).then(|| now_ms + req.retention_time_ms);
        let mut errors = Vec::with_capacity(req.offsets.len());
        let mut records = Vec::new();
        for o in &req.offsets {
            let metadata = o.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                errors.push(ErrorCode::OffsetMetadataTooLarge);
                continue;
            }
            errors.push(ErrorCode::None);
            records.push(GroupRecord::Offset {
                group: req.group_id.clone(),
                topic: o.topic.clone(),
                partition: o.partition,
                value: Some(CommittedOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: expire,
                }),
            });
        }
        CommitOutcome { errors, records }
    }

    /// OffsetFetch for one group: `topics = None` asks for every committed offset.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<FetchedOffset>, ErrorCode> {
        self.check_coordinator(group_id)?;
        let group = self.groups.get(group_id);
        Ok(match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| {
                    ps.iter().map(move |p| {
                        let committed =
                            group.and_then(|g| g.offsets.get(&(t.clone(), *p)).cloned());
                        (t.clone(), *p, committed)
                    })
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), o)| (t.clone(), *p, Some(o.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Offsets past their retention in groups nobody consumes in: tombstones to store, then
    /// replay. Kafka's rule: for a group that was used with a protocol, retention counts from
    /// when it became empty; for offsets committed without a group, from the commit.
    fn expired_offsets(&self, now_ms: i64) -> Vec<GroupRecord> {
        let retention = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        for g in self.groups.values() {
            if g.state != GroupState::Empty || self.check_coordinator(&g.id).is_err() {
                continue;
            }
            let mut expired = 0;
            for ((topic, partition), o) in &g.offsets {
                let deadline = match (o.expire_timestamp_ms, &g.protocol_type) {
                    (Some(at), _) => at,
                    (None, Some(_)) => g.state_timestamp_ms.max(o.commit_timestamp_ms) + retention,
                    (None, None) => o.commit_timestamp_ms + retention,
                };
                if deadline <= now_ms {
                    expired += 1;
                    records.push(GroupRecord::Offset {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: None,
                    });
                }
            }
            if expired == g.offsets.len() && g.members.is_empty() && g.generation_id > 0 {
                records.push(GroupRecord::Group {
                    group: g.id.clone(),
                    value: None,
                });
            }
        }
        records
    }

    /// Tombstones for every committed offset of `topic`, in loaded groups (the topic was
    /// deleted).
    pub fn offsets_of_topic(&self, topic: &str) -> Vec<GroupRecord> {
        self.groups
            .values()
            .filter(|g| self.check_coordinator(&g.id).is_ok())
            .flat_map(|g| {
                g.offsets
                    .keys()
                    .filter(|(t, _)| t == topic)
                    .map(|(t, p)| GroupRecord::Offset {
                        group: g.id.clone(),
                        topic: t.clone(),
                        partition: *p,
                        value: None,
                    })
            })
            .collect()
    }

    // ---- admin -----------------------------------------------------------------------------

    /// Groups of the partitions this coordinator has loaded, optionally only in some states
    /// (matched case-insensitively, as Kafka does).
    pub fn list_groups(&self, states: &[String]) -> Vec<GroupListing> {
        let mut out: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| self.check_coordinator(&g.id).is_ok())
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let mut d = GroupDescription {
            error: ErrorCode::None,
            group_id: group_id.to_string(),
            state: GroupState::Dead.name(),
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        };
        if let Err(e) = self.check_coordinator(group_id) {
            d.error = e;
            return d;
        }
        let Some(g) = self.groups.get(group_id) else {
            return d;
        };
        d.state = g.state.name();
        d.protocol_type = g.protocol_type.clone().unwrap_or_default();
        // Metadata and assignments mean something only once the generation is complete.
        let stable = g.state == GroupState::Stable;
        if stable {
            d.protocol_name = g.protocol_name.clone().unwrap_or_default();
        }
        d.members = g
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    g.protocol_name
                        .as_deref()
                        .and_then(|p| m.metadata(p))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        d
    }

    /// DeleteGroups for one group: the tombstones to store (then replay), or why not.
    pub fn delete_group(&self, group_id: &str) -> Result<Vec<GroupRecord>, ErrorCode> {
        self.check_coordinator(group_id)?;
        let g = self
            .groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(ErrorCode::GroupIdNotFound)?;
        if g.state != GroupState::Empty {
            return Err(ErrorCode::NonEmptyGroup);
        }
        let mut records: Vec<GroupRecord> = g
            .offsets
            .keys()
            .map(|(topic, partition)| GroupRecord::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        records.push(GroupRecord::Group {
            group: group_id.to_string(),
            value: None,
        });
        Ok(records)
    }

    /// OffsetDelete: per-partition errors and the tombstones to store. A partition of a topic
    /// the group's members still subscribe to is refused (GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<ErrorCode>, Vec<GroupRecord>), ErrorCode> {
        self.check_coordinator(group_id)?;
        let g = self
            .groups
            .get(group_id)
            .filter(|g| g.state != GroupState::Dead)
            .ok_or(ErrorCode::GroupIdNotFound)?;
        let subscribed = if g.state == GroupState::Empty {
            Some(Default::default())
        } else {
            g.subscribed_topics()
        };
        let Some(subscribed) = subscribed else {
            return Err(ErrorCode::NonEmptyGroup);
        };
        let mut errors = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                errors.push(ErrorCode::GroupSubscribedToTopic);
                continue;
            }
            errors.push(ErrorCode::None);
            if g.offsets.contains_key(&(topic.clone(), *partition)) {
                records.push(GroupRecord::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                });
            }
        }
        Ok((errors, records))
    }

    // ---- helpers ---------------------------------------------------------------------------

    fn new_member_id(&mut self, client_id: &str) -> String {
        self.next_member_seq += 1;
        let a = self.member_id_nonce;
        let b = self.next_member_seq;
        // Shaped like the UUIDs Kafka appends, so tools that parse member ids are not surprised.
        format!(
            "{client_id}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            a as u16,
            (b >> 48) as u16,
            b & 0xffff_ffff_ffff
        )
    }

    /// An Empty group with no offsets and no pending members is gone.
    fn remove_if_dead(&mut self, group_id: &str) {
        let dead = self.groups.get(group_id).is_some_and(|g| {
            g.state == GroupState::Empty
                && g.members.is_empty()
                && g.pending_members.is_empty()
                && g.offsets.is_empty()
                && g.generation_id == 0
        });
        if dead {
            self.groups.remove(group_id);
            self.timers.cancel_group(group_id);
        }
    }

    #[cfg(test)]
    pub(crate) fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }
}

/// Checks a member id (and instance id, for static members) against the group.
fn validate_member(
    g: &Group,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), ErrorCode> {
    if let Some(instance) = group_instance_id {
        match g.static_members.get(instance) {
            Some(id) if id == member_id => return Ok(()),
            Some(_) => return Err(ErrorCode::FencedInstanceId),
            None if g.members.contains_key(member_id) => return Err(ErrorCode::FencedInstanceId),
            None => return Err(ErrorCode::UnknownMemberId),
        }
    }
    if g.members.contains_key(member_id) {
        Ok(())
    } else {
        Err(ErrorCode::UnknownMemberId)
    }
}

fn fail_waiters(m: &Member, error: ErrorCode, fx: &mut Effects) {
    if let Some(w) = m.awaiting_join {
        fx.replies.push((
            w.reply,
            Reply::Join(JoinResponse::error(error, &m.member_id)),
        ));
    }
    if let Some(r) = m.awaiting_sync {
        fx.replies
            .push((r, Reply::Sync(SyncResponse::error(error))));
    }
}

/// The join response for `member_id` in the group's current generation; only the leader gets
/// every member's metadata, to run the assignor with.
fn join_response(g: &Group, member_id: &str) -> JoinResponse {
    let protocol = g.protocol_name.clone();
    let members = if g.is_leader(member_id) {
        g.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: protocol
                    .as_deref()
                    .and_then(|p| m.metadata(p))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResponse {
        error: ErrorCode::None,
        generation_id: g.generation_id,
        protocol_type: g.protocol_type.clone(),
        protocol_name: protocol,
        leader: g.leader_id.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members,
    }
}

fn sync_response(g: &Group, assignment: Bytes) -> SyncResponse {
    SyncResponse {
        error: ErrorCode::None,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        assignment,
    }
}
