//! One consumer group as the classic protocol sees it: its members, generation, chosen protocol,
//! assignments and committed offsets. Plain data plus the rules that only look at one group.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use super::records::{CommittedOffset, GroupSnapshot, MemberSnapshot};
use super::ReplyId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join before a new generation starts.
    PreparingRebalance,
    /// The new generation is formed; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Removed; kept only while requests still hold a reference.
    Dead,
}

impl GroupState {
    /// The names Kafka tools print and ListGroups filters on.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member's JoinGroup request parked until the rebalance completes.
#[derive(Debug, Clone, Copy)]
pub struct JoinWaiter {
    pub reply: ReplyId,
    /// JoinGroup v9+: a static leader that rejoins may be told to skip the assignment.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<JoinWaiter>,
    pub awaiting_sync: Option<ReplyId>,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.metadata(protocol).is_some()
    }
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub state_timestamp_ms: i64,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation_id: i32,
    pub leader_id: Option<String>,
    /// Ordered by member id so every listing is deterministic.
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id, for static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pub pending_members: HashSet<String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// A member joined during the initial delay: the delay is extended once more.
    pub new_member_added: bool,
    /// While the initial rebalance delay runs: how much of the rebalance timeout is left.
    pub initial_delay_remaining_ms: Option<i64>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl Group {
    pub fn new(id: String, now_ms: i64) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            initial_delay_remaining_ms: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Whether a member of `protocol_type` offering `protocols` can join. `except` is a member
    /// whose current protocols are being replaced, so it does not vote with its old ones.
    pub fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| Some(m.member_id.as_str()) != except)
            .collect();
        if others.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| others.iter().all(|m| m.supports(name)))
    }

    /// Kafka's choice: among the protocols every member supports, each member votes for the
    /// first one in its own preference order; the most votes win, ties going to the leader's
    /// preference so the choice is deterministic.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.values().all(|m| m.supports(n)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let preference = self
            .leader_id
            .as_ref()
            .and_then(|l| self.members.get(l))
            .unwrap_or(first);
        let best = votes.values().copied().max()?;
        preference
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| votes.get(n) == Some(&best))
            .map(str::to_string)
    }

    /// The largest rebalance timeout of the members: how long a rebalance may wait for them.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// What the `__consumer_offsets` group record holds.
    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol_name.clone();
        GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation_id: self.generation_id,
            protocol_name: protocol.clone(),
            leader_id: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its record: a group stored with members was Stable.
    pub fn restore(&mut self, snapshot: GroupSnapshot) {
        self.protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
        self.generation_id = snapshot.generation_id;
        self.protocol_name = snapshot.protocol_name;
        self.leader_id = snapshot.leader_id;
        self.state_timestamp_ms = snapshot.current_state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        self.initial_delay_remaining_ms = None;
        self.new_member_added = false;
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        for m in snapshot.members {
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let protocols = match &self.protocol_name {
                Some(p) => vec![(p.clone(), m.subscription)],
                None => Vec::new(),
            };
            self.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocol_type: protocol_type.clone(),
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// Topics the members subscribe to, when the group runs Kafka's consumer protocol and its
    /// subscriptions can be read; `None` when unknown (then nothing counts as unsubscribed).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return Some(HashSet::new()).filter(|_| self.members.is_empty());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(parse_subscription_topics(m.metadata(protocol)?)?);
        }
        Some(topics)
    }
}

/// The topic list of a ConsumerProtocolSubscription (every version starts with an i16 version
/// and a classic array of classic strings).
pub fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = metadata;
    let take = |buf: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if buf.len() < n {
            return None;
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Some(head.to_vec())
    };
    take(&mut buf, 2)?;
    let count = i32::from_be_bytes(take(&mut buf, 4)?.try_into().ok()?);
    if count < 0 || count as usize > buf.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
        if len < 0 {
            return None;
        }
        topics.push(String::from_utf8(take(&mut buf, len as usize)?).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
        }
    }

    fn group(members: &[Member]) -> Group {
        let mut g = Group::new("g".into(), 0);
        g.protocol_type = Some("consumer".into());
        for m in members {
            g.members.insert(m.member_id.clone(), m.clone());
        }
        g.leader_id = members.first().map(|m| m.member_id.clone());
        g
    }

    #[test]
    fn protocol_with_most_first_choices_wins() {
        let g = group(&[
            member("a", &["range", "roundrobin"]),
            member("b", &["roundrobin", "range"]),
            member("c", &["roundrobin", "range", "sticky"]),
        ]);
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        let g = group(&[member("a", &["sticky", "range"]), member("b", &["range"])]);
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
    }

    #[test]
    fn joiner_needs_a_protocol_every_other_member_supports() {
        let g = group(&[member("a", &["range"]), member("b", &["range", "x"])]);
        let p = |names: &[&str]| -> Vec<(String, Bytes)> {
            names
                .iter()
                .map(|n| (n.to_string(), Bytes::new()))
                .collect()
        };
        assert!(g.supports_protocols("consumer", &p(&["x", "range"]), None));
        assert!(!g.supports_protocols("consumer", &p(&["x"]), None));
        assert!(!g.supports_protocols("connect", &p(&["range"]), None));
        // "a" switching to "x" alone is fine only when "b" is the one it must agree with.
        assert!(g.supports_protocols("consumer", &p(&["x"]), Some("a")));
        let empty = Group::new("g".into(), 0);
        assert!(empty.supports_protocols("anything", &p(&["custom"]), None));
        assert!(!empty.supports_protocols("", &p(&["custom"]), None));
    }

    #[test]
    fn reads_consumer_subscription_topics() {
        let mut m = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        m.extend_from_slice(&[0, 0, 0, 0]); // user data, ignored
        assert_eq!(
            parse_subscription_topics(&m),
            Some(vec!["a".to_string(), "bc".to_string()])
        );
        assert_eq!(parse_subscription_topics(&[0, 1, 0x7f, 0, 0, 0]), None);
    }
}
