//! The coordinator state machine driven by hand: requests in, replies and records out, time
//! moved explicitly. These pin Kafka's classic-protocol rules one scenario at a time.

use bytes::Bytes;
use sluice_protocol::ErrorCode;

use super::coordinator::*;
use super::records::GroupRecord;
use super::{partition_for, ReplyId};

const PARTITIONS: i32 = 4;
const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

struct Harness {
    c: GroupCoordinator,
    now: i64,
    next_reply: ReplyId,
    replies: Vec<(ReplyId, Reply)>,
    records: Vec<GroupRecord>,
}

impl Harness {
    fn new(initial_delay_ms: i64) -> Harness {
        let config = CoordinatorConfig {
            initial_rebalance_delay_ms: initial_delay_ms,
            ..CoordinatorConfig::default()
        };
        let mut c = GroupCoordinator::new(config, PARTITIONS, 0xfeed);
        for p in 0..PARTITIONS {
            c.begin_load(p);
            c.finish_load(p, 0);
        }
        Harness {
            c,
            now: 0,
            next_reply: 0,
            replies: Vec::new(),
            records: Vec::new(),
        }
    }

    fn absorb(&mut self, fx: Effects) {
        self.replies.extend(fx.replies);
        self.records.extend(fx.records);
    }

    fn take(&mut self, id: ReplyId) -> Option<Reply> {
        let i = self.replies.iter().position(|(r, _)| *r == id)?;
        Some(self.replies.remove(i).1)
    }

    fn take_join(&mut self, id: ReplyId) -> Option<JoinResponse> {
        match self.take(id)? {
            Reply::Join(j) => Some(j),
            other => panic!("expected a join reply, got {other:?}"),
        }
    }

    fn take_sync(&mut self, id: ReplyId) -> Option<SyncResponse> {
        match self.take(id)? {
            Reply::Sync(s) => Some(s),
            other => panic!("expected a sync reply, got {other:?}"),
        }
    }

    fn join_req(member_id: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{member_id}-{p}"))))
                .collect(),
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    /// Sends a JoinGroup; returns its reply id (the reply may come now or later).
    fn send_join(&mut self, req: JoinRequest) -> ReplyId {
        self.next_reply += 1;
        let id = self.next_reply;
        let mut fx = Effects::default();
        self.c.join(self.now, id, req, &mut fx);
        self.absorb(fx);
        id
    }

    /// The KIP-394 handshake: the first join returns MEMBER_ID_REQUIRED and the id to use.
    fn new_member(&mut self) -> (String, ReplyId) {
        let first = self.send_join(Self::join_req("", None, &["range"]));
        let response = self.take_join(first).expect("immediate reply");
        assert_eq!(response.error, ErrorCode::MemberIdRequired);
        assert!(response.member_id.starts_with("client-"));
        let id = response.member_id.clone();
        let second = self.send_join(Self::join_req(&id, None, &["range"]));
        (id, second)
    }

    fn rejoin(&mut self, member_id: &str) -> ReplyId {
        self.send_join(Self::join_req(member_id, None, &["range"]))
    }

    fn sync(&mut self, member_id: &str, generation: i32, assignments: &[(&str, &str)]) -> ReplyId {
        self.next_reply += 1;
        let id = self.next_reply;
        let mut fx = Effects::default();
        let req = SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
                .collect(),
        };
        self.c.sync(self.now, id, req, &mut fx);
        self.absorb(fx);
        id
    }

    fn heartbeat(&mut self, member_id: &str, generation: i32) -> ErrorCode {
        self.c.heartbeat(self.now, "g", member_id, None, generation)
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let mut fx = Effects::default();
        let deferred = self.c.tick(self.now, &mut fx);
        assert!(
            deferred.is_empty(),
            "no offset expiry expected: {deferred:?}"
        );
        self.absorb(fx);
    }

    fn leave(&mut self, member_id: &str) -> ErrorCode {
        let mut fx = Effects::default();
        let out = self.c.leave(
            self.now,
            "g",
            &[LeaveMember {
                member_id: member_id.into(),
                group_instance_id: None,
            }],
            &mut fx,
        );
        self.absorb(fx);
        out.unwrap()[0]
    }

    fn commit(&mut self, member_id: &str, generation: i32, offset: i64) -> Vec<ErrorCode> {
        let req = commit_request(member_id, generation, "t", offset);
        let outcome = self.c.commit_offsets(self.now, &req);
        for r in outcome.records {
            self.c.replay(r.clone(), self.now);
            self.records.push(r);
        }
        outcome.errors
    }

    fn committed(&self) -> Option<i64> {
        let topics = vec![("t".to_string(), vec![0])];
        let fetched = self.c.fetch_offsets("g", Some(&topics)).unwrap();
        fetched[0].2.as_ref().map(|o| o.offset)
    }

    fn state(&self) -> &'static str {
        self.c.group("g").map(|g| g.state.name()).unwrap_or("Dead")
    }

    fn generation(&self) -> i32 {
        self.c.group("g").unwrap().generation_id
    }
}

/// An OffsetCommit of `offset` for partition 0 of `topic` in group "g".
fn commit_request(member_id: &str, generation: i32, topic: &str, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member_id.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        offsets: vec![CommitOffset {
            topic: topic.into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    }
}

/// Forms a Stable group of `n` dynamic members with no initial delay; returns their ids,
/// leader first.
fn stable_group(h: &mut Harness, n: usize) -> Vec<String> {
    let (first, reply) = h.new_member();
    let joined = h
        .take_join(reply)
        .expect("a lone member completes the join at once");
    assert_eq!(joined.generation_id, 1);
    let s = h.sync(&first, 1, &[(&first, "all")]);
    assert_eq!(h.take_sync(s).unwrap().error, ErrorCode::None);
    let mut ids = vec![first];
    for _ in 1..n {
        let (id, pending) = h.new_member();
        assert!(
            h.take_join(pending).is_none(),
            "waits for the others to rejoin"
        );
        let gen = h.generation();
        let mut waiting = vec![pending];
        for old in &ids {
            assert_eq!(h.heartbeat(old, gen), ErrorCode::RebalanceInProgress);
            waiting.push(h.rejoin(old));
        }
        ids.push(id);
        let responses: Vec<JoinResponse> = waiting
            .iter()
            .map(|r| h.take_join(*r).expect("join completes"))
            .collect();
        let gen = responses[0].generation_id;
        let leader = responses[0].leader.clone();
        assert!(responses
            .iter()
            .all(|r| r.generation_id == gen && r.leader == leader));
        let leader_view = responses.iter().find(|r| r.member_id == leader).unwrap();
        assert_eq!(leader_view.members.len(), ids.len());
        let assignments: Vec<(String, String)> = ids
            .iter()
            .map(|m| (m.clone(), format!("for-{m}")))
            .collect();
        let refs: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let syncs: Vec<ReplyId> = ids
            .iter()
            .map(|m| {
                let a = if *m == leader { refs.clone() } else { vec![] };
                h.sync(m, gen, &a)
            })
            .collect();
        for (m, s) in ids.iter().zip(syncs) {
            let r = h
                .take_sync(s)
                .expect("sync answered once the leader synced");
            assert_eq!(r.error, ErrorCode::None);
            assert_eq!(r.assignment, Bytes::from(format!("for-{m}")));
        }
        let pos = ids.iter().position(|m| *m == leader).unwrap();
        ids.swap(0, pos);
    }
    assert_eq!(h.state(), "Stable");
    ids
}

#[test]
fn member_id_required_then_a_lone_member_leads_generation_one() {
    let mut h = Harness::new(0);
    let (id, reply) = h.new_member();
    let r = h.take_join(reply).unwrap();
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!((r.generation_id, r.leader.as_str()), (1, id.as_str()));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        r.members[0].metadata,
        Bytes::from(format!("meta-{id}-range"))
    );
    assert_eq!(h.state(), "CompletingRebalance");
    let s = h.sync(&id, 1, &[(&id, "p0")]);
    assert_eq!(h.take_sync(s).unwrap().assignment, Bytes::from("p0"));
    assert_eq!(h.state(), "Stable");
    // The stable group was stored.
    assert!(
        matches!(h.records.last(), Some(GroupRecord::Group { value: Some(s), .. }) if s.members.len() == 1)
    );
}

#[test]
fn old_clients_join_without_the_handshake() {
    let mut h = Harness::new(0);
    let mut req = Harness::join_req("", None, &["range"]);
    req.require_known_member_id = false;
    let reply = h.send_join(req);
    let r = h.take_join(reply).unwrap();
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.leader, r.member_id);
}

#[test]
fn three_members_form_one_generation_within_the_initial_delay() {
    let mut h = Harness::new(3000);
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(h.new_member().1);
        h.advance(100);
    }
    assert!(replies.iter().all(|r| h.take_join(*r).is_none()));
    // Members kept arriving during the first delay, so it is extended once more.
    h.advance(2800);
    assert!(replies.iter().all(|r| h.take_join(*r).is_none()));
    h.advance(3000);
    let responses: Vec<JoinResponse> = replies.iter().map(|r| h.take_join(*r).unwrap()).collect();
    assert!(responses.iter().all(|r| r.generation_id == 1));
    assert_eq!(
        responses.iter().filter(|r| !r.members.is_empty()).count(),
        1
    );
}

#[test]
fn initial_delay_never_exceeds_the_rebalance_timeout() {
    let mut h = Harness::new(20_000);
    let (_, first) = h.new_member();
    h.advance(19_000);
    let (_, second) = h.new_member();
    h.advance(1_000);
    // Extended by min(delay, rebalance timeout - delay) = 10 s, not 20 s.
    h.advance(9_999);
    assert!(h.take_join(first).is_none());
    h.advance(1);
    assert_eq!(h.take_join(first).unwrap().generation_id, 1);
    assert_eq!(h.take_join(second).unwrap().generation_id, 1);
}

#[test]
fn a_new_member_rebalances_a_stable_group_without_waiting_for_timers() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 3);
    assert_eq!(ids.len(), 3);
    assert_eq!(h.generation(), 3);
    assert_eq!(h.c.group("g").unwrap().members.len(), 3);
}

#[test]
fn leaving_member_triggers_a_rebalance_of_the_rest() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 3);
    let gen = h.generation();
    assert_eq!(h.leave(&ids[2]), ErrorCode::None);
    assert_eq!(h.state(), "PreparingRebalance");
    assert_eq!(h.heartbeat(&ids[0], gen), ErrorCode::RebalanceInProgress);
    let a = h.rejoin(&ids[0]);
    let b = h.rejoin(&ids[1]);
    let ra = h.take_join(a).unwrap();
    let rb = h.take_join(b).unwrap();
    assert_eq!(ra.generation_id, gen + 1);
    assert_eq!(rb.generation_id, gen + 1);
    assert_eq!(h.leave(&ids[2]), ErrorCode::UnknownMemberId);
    assert_eq!(h.heartbeat(&ids[2], gen + 1), ErrorCode::UnknownMemberId);
}

#[test]
fn a_silent_member_is_expelled_after_its_session_timeout() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 2);
    let gen = h.generation();
    for _ in 0..3 {
        h.advance(3000);
        assert_eq!(h.heartbeat(&ids[0], gen), ErrorCode::None);
    }
    // ids[1] never heartbeated: at 12 s its 10 s session is over.
    h.advance(3000);
    assert_eq!(h.heartbeat(&ids[0], gen), ErrorCode::RebalanceInProgress);
    assert_eq!(h.state(), "PreparingRebalance");
    assert!(!h.c.group("g").unwrap().members.contains_key(&ids[1]));
    let r = h.rejoin(&ids[0]);
    let joined = h.take_join(r).unwrap();
    assert_eq!(joined.generation_id, gen + 1);
    assert_eq!(joined.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 2);
    let gen = h.generation();
    let (_, newcomer) = h.new_member();
    let r0 = h.rejoin(&ids[0]);
    // ids[1] keeps heartbeating but never rejoins.
    for _ in 0..9 {
        h.advance(3000);
        assert_eq!(h.heartbeat(&ids[1], gen), ErrorCode::RebalanceInProgress);
    }
    h.advance(3000);
    let joined = h.take_join(r0).unwrap();
    assert_eq!(joined.generation_id, gen + 1);
    assert!(h.take_join(newcomer).is_some());
    assert_eq!(h.heartbeat(&ids[1], gen), ErrorCode::UnknownMemberId);
}

#[test]
fn members_that_never_sync_are_dropped_after_the_rebalance_timeout() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 2);
    let gen = h.generation();
    let (newcomer, pending) = h.new_member();
    let a = h.rejoin(&ids[0]);
    let b = h.rejoin(&ids[1]);
    for r in [pending, a, b] {
        assert_eq!(h.take_join(r).unwrap().generation_id, gen + 1);
    }
    // Only the newcomer syncs; nobody else heartbeats or syncs.
    let s = h.sync(&newcomer, gen + 1, &[]);
    h.advance(REBALANCE as i64);
    assert_eq!(
        h.take_sync(s).map(|r| r.error),
        Some(ErrorCode::RebalanceInProgress)
    );
    assert_eq!(h.state(), "PreparingRebalance");
}

#[test]
fn stale_generations_and_strangers_are_refused() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 2);
    let gen = h.generation();
    assert_eq!(h.heartbeat(&ids[0], gen - 1), ErrorCode::IllegalGeneration);
    assert_eq!(h.heartbeat("nobody", gen), ErrorCode::UnknownMemberId);
    let s = h.sync(&ids[0], gen - 1, &[]);
    assert_eq!(h.take_sync(s).unwrap().error, ErrorCode::IllegalGeneration);
    assert_eq!(
        h.commit(&ids[1], gen - 1, 5),
        vec![ErrorCode::IllegalGeneration]
    );
    assert_eq!(h.commit("nobody", gen, 5), vec![ErrorCode::UnknownMemberId]);
    assert_eq!(h.commit("", -1, 5), vec![ErrorCode::UnknownMemberId]);
    assert_eq!(h.commit(&ids[1], gen, 5), vec![ErrorCode::None]);
    assert_eq!(h.committed(), Some(5));
    let r = h.send_join(Harness::join_req("", None, &["something-else"]));
    assert_eq!(
        h.take_join(r).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
    let mut wrong_type = Harness::join_req("", None, &["range"]);
    wrong_type.protocol_type = "connect".into();
    let r = h.send_join(wrong_type);
    assert_eq!(
        h.take_join(r).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
    let mut bad_session = Harness::join_req("", None, &["range"]);
    bad_session.session_timeout_ms = 10;
    let r = h.send_join(bad_session);
    assert_eq!(
        h.take_join(r).unwrap().error,
        ErrorCode::InvalidSessionTimeout
    );
}

#[test]
fn commits_during_a_rebalance_follow_kafka() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 2);
    let gen = h.generation();
    // A member id handed out but not used yet does not disturb the group.
    let first = h.send_join(Harness::join_req("", None, &["range"]));
    let pending = h.take_join(first).unwrap().member_id;
    assert_eq!(h.state(), "Stable");
    let newcomer = h.send_join(Harness::join_req(&pending, None, &["range"]));
    assert_eq!(h.state(), "PreparingRebalance");
    // PreparingRebalance: the previous generation may still commit what it consumed.
    assert_eq!(h.commit(&ids[0], gen, 7), vec![ErrorCode::None]);
    let a = h.rejoin(&ids[0]);
    assert!(h.take_join(a).is_none(), "ids[1] has not rejoined yet");
    let b = h.rejoin(&ids[1]);
    for r in [newcomer, a, b] {
        assert_eq!(h.take_join(r).unwrap().generation_id, gen + 1);
    }
    assert_eq!(h.state(), "CompletingRebalance");
    assert_eq!(
        h.commit(&ids[0], gen + 1, 8),
        vec![ErrorCode::RebalanceInProgress]
    );
    assert_eq!(h.committed(), Some(7));
}

#[test]
fn static_member_restart_keeps_its_assignment_without_a_rebalance() {
    let mut h = Harness::new(0);
    let first = h.send_join(Harness::join_req("", Some("instance-a"), &["range"]));
    let r = h.take_join(first).unwrap();
    assert_eq!(
        r.error,
        ErrorCode::None,
        "static members skip MEMBER_ID_REQUIRED"
    );
    let old_id = r.member_id.clone();
    let s = h.sync(&old_id, 1, &[(&old_id, "p0,p1")]);
    assert_eq!(h.take_sync(s).unwrap().error, ErrorCode::None);
    let records_before = h.records.len();

    // The process restarts: same instance id, no member id.
    let again = h.send_join(Harness::join_req("", Some("instance-a"), &["range"]));
    let r = h.take_join(again).unwrap();
    assert_eq!(r.error, ErrorCode::None);
    assert_ne!(r.member_id, old_id);
    assert_eq!(r.generation_id, 1, "no new generation");
    // It leads, but an old client is told the old id leads so it does not reassign.
    assert_eq!(r.leader, old_id);
    assert!(r.members.is_empty());
    assert_eq!(h.state(), "Stable");
    assert_eq!(
        h.records.len(),
        records_before + 1,
        "the new member id is stored"
    );
    let new_id = r.member_id;
    let mut sync = h.sync(&new_id, 1, &[]);
    // SyncGroup in Stable returns the kept assignment.
    assert_eq!(h.take_sync(sync).unwrap().assignment, Bytes::from("p0,p1"));
    // The old process, if still alive, is fenced.
    assert_eq!(
        h.c.heartbeat(h.now, "g", &old_id, Some("instance-a"), 1),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(
        h.c.heartbeat(h.now, "g", &new_id, Some("instance-a"), 1),
        ErrorCode::None
    );
    // A KIP-814 client is told it leads and must skip the assignment.
    let mut v9 = Harness::join_req("", Some("instance-a"), &["range"]);
    v9.supports_skip_assignment = true;
    let again = h.send_join(v9);
    let r = h.take_join(again).unwrap();
    assert!(r.skip_assignment);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.members.len(), 1);
    sync = h.sync(&r.member_id, 1, &[]);
    assert_eq!(h.take_sync(sync).unwrap().assignment, Bytes::from("p0,p1"));
}

#[test]
fn group_state_and_offsets_replay_into_a_new_coordinator() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 2);
    let gen = h.generation();
    assert_eq!(h.commit(&ids[0], gen, 42), vec![ErrorCode::None]);
    let mut fresh = GroupCoordinator::new(CoordinatorConfig::default(), PARTITIONS, 1);
    let p = partition_for("g", PARTITIONS);
    fresh.begin_load(p);
    assert_eq!(
        fresh.heartbeat(0, "g", &ids[0], None, gen),
        ErrorCode::CoordinatorLoadInProgress
    );
    for r in h.records.clone() {
        fresh.replay(r, 0);
    }
    fresh.finish_load(p, 0);
    let g = fresh.group("g").unwrap();
    assert_eq!(g.state.name(), "Stable");
    assert_eq!(g.generation_id, gen);
    assert_eq!(g.members.len(), 2);
    assert_eq!(fresh.heartbeat(0, "g", &ids[1], None, gen), ErrorCode::None);
    let topics = vec![("t".to_string(), vec![0, 1])];
    let fetched = fresh.fetch_offsets("g", Some(&topics)).unwrap();
    assert_eq!(fetched[0].2.as_ref().unwrap().offset, 42);
    assert!(fetched[1].2.is_none());
    // Loaded members that never heartbeat again are expelled one session later.
    let mut fx = Effects::default();
    fresh.tick(SESSION as i64 - 1, &mut fx);
    assert_eq!(
        fresh.heartbeat(SESSION as i64 - 1, "g", &ids[1], None, gen),
        ErrorCode::None
    );
    fresh.tick(SESSION as i64, &mut fx);
    let g = fresh.group("g").unwrap();
    assert_eq!(g.state.name(), "PreparingRebalance");
    assert_eq!(g.members.len(), 1);
    fresh.tick(2 * SESSION as i64, &mut fx);
    let g = fresh.group("g").unwrap();
    assert_eq!((g.state.name(), g.generation_id), ("Empty", gen + 1));
    // A partition this broker does not lead is another coordinator's.
    let other = (p + 1) % PARTITIONS;
    let mut lone = GroupCoordinator::new(CoordinatorConfig::default(), PARTITIONS, 1);
    lone.begin_load(other);
    lone.finish_load(other, 0);
    assert_eq!(
        lone.heartbeat(0, "g", "m", None, 1),
        ErrorCode::NotCoordinator
    );
}

#[test]
fn delete_group_only_when_empty() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 1);
    assert_eq!(h.commit(&ids[0], h.generation(), 3), vec![ErrorCode::None]);
    assert_eq!(h.c.delete_group("g"), Err(ErrorCode::NonEmptyGroup));
    assert_eq!(h.leave(&ids[0]), ErrorCode::None);
    assert_eq!(h.state(), "Empty");
    // Offsets outlive the members.
    assert_eq!(h.committed(), Some(3));
    let tombstones = h.c.delete_group("g").unwrap();
    assert_eq!(tombstones.len(), 2);
    for r in tombstones {
        h.c.replay(r, h.now);
    }
    assert_eq!(h.state(), "Dead");
    assert_eq!(h.committed(), None);
    assert_eq!(h.c.delete_group("g"), Err(ErrorCode::GroupIdNotFound));
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut h = Harness::new(0);
    // A consumer-protocol subscription to topic "t".
    let meta = Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]);
    let mut req = Harness::join_req("", None, &["range"]);
    req.require_known_member_id = false;
    req.protocols = vec![("range".into(), meta)];
    let r = h.send_join(req);
    let id = h.take_join(r).unwrap().member_id;
    let s = h.sync(&id, 1, &[]);
    h.take_sync(s);
    assert_eq!(h.commit(&id, 1, 9), vec![ErrorCode::None]);
    let (errors, records) =
        h.c.delete_offsets("g", &[("t".into(), 0), ("u".into(), 0)])
            .unwrap();
    assert_eq!(
        errors,
        vec![ErrorCode::GroupSubscribedToTopic, ErrorCode::None]
    );
    assert!(records.is_empty());
    assert_eq!(
        h.c.delete_offsets("nope", &[]),
        Err(ErrorCode::GroupIdNotFound)
    );
}

#[test]
fn simple_commits_without_a_group_and_listing() {
    let mut h = Harness::new(0);
    assert_eq!(h.commit("", -1, 11), vec![ErrorCode::None]);
    assert_eq!(h.committed(), Some(11));
    assert_eq!(h.state(), "Empty");
    let listed = h.c.list_groups(&[]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "Empty");
    assert!(h.c.list_groups(&["stable".into()]).is_empty());
    let d = h.c.describe_group("g");
    assert_eq!((d.error, d.state), (ErrorCode::None, "Empty"));
    assert_eq!(h.c.describe_group("unknown").state, "Dead");
}

#[test]
fn unused_offsets_expire_after_retention() {
    let config = CoordinatorConfig {
        offsets_retention_ms: 1000,
        offsets_retention_check_interval_ms: 500,
        ..CoordinatorConfig::default()
    };
    let mut c = GroupCoordinator::new(config, 1, 0);
    c.begin_load(0);
    c.finish_load(0, 0);
    let req = commit_request("", -1, "t", 1);
    for r in c.commit_offsets(0, &req).records {
        c.replay(r, 0);
    }
    let mut fx = Effects::default();
    assert!(c.tick(500, &mut fx).is_empty());
    let expired = c.tick(1000, &mut fx);
    assert_eq!(expired.len(), 1);
    for r in expired {
        c.replay(r, 1000);
    }
    assert!(c.list_groups(&[]).is_empty());
}

#[test]
fn leave_of_a_member_parked_in_join_answers_its_join() {
    let mut h = Harness::new(0);
    let ids = stable_group(&mut h, 2);
    h.new_member();
    let parked = h.rejoin(&ids[1]);
    assert_eq!(h.leave(&ids[1]), ErrorCode::None);
    assert_eq!(
        h.take_join(parked).unwrap().error,
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn deleting_a_topic_forgets_its_offsets_in_every_group() {
    let mut h = Harness::new(0);
    assert_eq!(h.commit("", -1, 4), vec![ErrorCode::None]);
    let other = commit_request("", -1, "kept", 1);
    for r in h.c.commit_offsets(0, &other).records {
        h.c.replay(r, 0);
    }
    let tombstones = h.c.offsets_of_topic("t");
    assert_eq!(tombstones.len(), 1);
    for r in tombstones {
        h.c.replay(r, 0);
    }
    assert_eq!(h.committed(), None);
    let kept = h.c.fetch_offsets("g", None).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, "kept");
}
