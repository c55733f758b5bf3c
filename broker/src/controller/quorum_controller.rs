//! `QuorumController`: the active controller's decisions. A request and the time go in; records
//! for the metadata log and a reply come out. It reads a `ClusterImage`, never changes one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sluice_protocol::wire::Uuid;

use super::image::{ClusterImage, PartitionState};
use super::placement::{assign_replicas, PlacementStart};
use super::records::{
    BrokerEndpoint, ConfigRecord, ConfigResourceType, MetadataRecord, NodeId,
    PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord, NO_LEADER,
};
use crate::error::{BrokerError, Result};
use crate::topic_config;

/// Producer ids are handed to brokers in blocks of this many, as Kafka does, so a broker asks
/// the controller once per thousand producers rather than once per producer.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The settings the decisions depend on, by their Kafka names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSettings {
    /// broker.session.timeout.ms: a broker not heard from for this long is fenced.
    pub session_timeout_ms: i64,
    /// unclean.leader.election.enable: whether a replica outside the ISR may become leader when
    /// no ISR member is alive (losing the records only the ISR had).
    pub unclean_leader_election: bool,
    /// default.replication.factor, for CreateTopics that leave it at -1.
    pub default_replication_factor: i16,
    /// num.partitions, for CreateTopics that leave it at -1.
    pub default_num_partitions: i32,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            session_timeout_ms: 9000,
            unclean_leader_election: false,
            default_replication_factor: 1,
            default_num_partitions: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationRequest {
    pub broker_id: NodeId,
    /// Fresh for every start of the broker process; a retry of the same start repeats it.
    #[serde(with = "crate::metadata::uuid_hex")]
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatRequest {
    pub broker_id: NodeId,
    pub broker_epoch: i64,
    /// The offset of the metadata the broker has applied (`ClusterImage::offset` of its copy).
    pub metadata_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1 takes `num.partitions`; ignored when `assignments` is given.
    pub num_partitions: i32,
    /// -1 takes `default.replication.factor`; ignored when `assignments` is given.
    pub replication_factor: i16,
    /// Replicas per partition, partition 0 first; `None` lets the controller place them.
    pub assignments: Option<Vec<Vec<NodeId>>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPartitions {
    pub topic: String,
    /// The partition count afterwards, not the number added.
    pub total_count: i32,
    /// Replicas of each added partition; `None` lets the controller place them.
    pub assignments: Option<Vec<Vec<NodeId>>>,
}

/// A leader's proposed ISR for one partition, valid only against the state it was based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrUpdate {
    #[serde(with = "crate::metadata::uuid_hex")]
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    RegisterBroker(BrokerRegistrationRequest),
    BrokerHeartbeat(BrokerHeartbeatRequest),
    UnregisterBroker {
        broker_id: NodeId,
    },
    /// A broker stopping cleanly (Kafka's controlled shutdown): it is fenced at once, so its
    /// partitions get new leaders from the ISR before it goes, instead of a session later.
    ControlledShutdown {
        broker_id: NodeId,
        broker_epoch: i64,
    },
    /// Fences every broker whose session has expired; run periodically by the active controller.
    CheckSessions,
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    CreatePartitions {
        topics: Vec<NewPartitions>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    AlterPartition {
        broker_id: NodeId,
        broker_epoch: i64,
        updates: Vec<IsrUpdate>,
    },
    /// Moves leadership back to each partition's first replica where it is alive and in sync;
    /// `None` means every partition.
    ElectPreferredLeaders {
        partitions: Option<Vec<(String, i32)>>,
    },
    AllocateProducerIds {
        broker_id: NodeId,
        broker_epoch: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Whether the broker has applied the metadata up to its own registration.
    pub is_caught_up: bool,
    /// Whether the broker is still fenced once this heartbeat's records are applied.
    pub is_fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopic {
    #[serde(with = "crate::metadata::uuid_hex")]
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct TopicResult<T> {
    pub name: String,
    #[serde(with = "crate::error::wire_result")]
    pub result: Result<T>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct PartitionResult<T> {
    pub topic: String,
    #[serde(with = "crate::metadata::uuid_hex")]
    pub topic_id: Uuid,
    pub partition: i32,
    #[serde(with = "crate::error::wire_result")]
    pub result: Result<T>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectedLeader {
    pub leader: NodeId,
    /// False when the preferred replica already led.
    pub changed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerReply {
    BrokerRegistered {
        broker_epoch: i64,
    },
    Heartbeat(HeartbeatReply),
    BrokerUnregistered,
    /// The broker is fenced and leads nothing any more; it may stop.
    ShutdownAccepted,
    SessionsChecked {
        fenced: Vec<NodeId>,
    },
    TopicsCreated(Vec<TopicResult<CreatedTopic>>),
    PartitionsCreated(Vec<TopicResult<()>>),
    TopicsDeleted(#[serde(with = "deleted_ids")] Vec<TopicResult<Uuid>>),
    /// Each accepted update answers with the partition's state once the change is applied.
    PartitionsAltered(Vec<PartitionResult<PartitionState>>),
    LeadersElected(Vec<PartitionResult<ElectedLeader>>),
    ProducerIds {
        first_id: i64,
        count: i64,
    },
}

/// DeleteTopics' results as they cross the controller network: the protocol crate's `Uuid`
/// has no serde form of its own, so ids travel as hex through a local wrapper.
mod deleted_ids {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use sluice_protocol::wire::Uuid;

    use super::TopicResult;

    #[derive(Serialize, Deserialize)]
    struct HexId(#[serde(with = "crate::metadata::uuid_hex")] Uuid);

    pub fn serialize<S: Serializer>(
        results: &[TopicResult<Uuid>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let wire: Vec<(&str, std::result::Result<HexId, crate::error::WireError>)> = results
            .iter()
            .map(|r| {
                let result = match &r.result {
                    Ok(id) => Ok(HexId(*id)),
                    Err(e) => Err(crate::error::WireError::from(e)),
                };
                (r.name.as_str(), result)
            })
            .collect();
        wire.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<TopicResult<Uuid>>, D::Error> {
        let wire: Vec<(String, std::result::Result<HexId, crate::error::WireError>)> =
            Vec::deserialize(d)?;
        Ok(wire
            .into_iter()
            .map(|(name, result)| TopicResult {
                name,
                result: result.map(|id| id.0).map_err(Into::into),
            })
            .collect())
    }
}

/// What a request decided: append `records` (as one batch) and, once they are committed, answer
/// with `reply`. No records means there is nothing to wait for.
#[derive(Debug)]
pub struct Outcome {
    pub records: Vec<MetadataRecord>,
    pub reply: ControllerReply,
}

/// The records a request has produced so far, and the image as it will be after them: later
/// decisions of the same request (fencing a second broker, creating a second topic) must see the
/// earlier ones.
struct Batch<'a> {
    base: &'a ClusterImage,
    working: Option<ClusterImage>,
    records: Vec<MetadataRecord>,
}

impl<'a> Batch<'a> {
    fn new(base: &'a ClusterImage) -> Self {
        Batch {
            base,
            working: None,
            records: Vec::new(),
        }
    }

    fn image(&self) -> &ClusterImage {
        self.working.as_ref().unwrap_or(self.base)
    }

    fn push(&mut self, record: MetadataRecord) -> Result<()> {
        let image = self.working.get_or_insert_with(|| self.base.clone());
        let offset = image.offset();
        image.apply(offset, &record).map_err(|e| {
            BrokerError::Metadata(format!(
                "controller produced a record that does not apply: {e}"
            ))
        })?;
        self.records.push(record);
        Ok(())
    }

    fn finish(self, reply: ControllerReply) -> Outcome {
        Outcome {
            records: self.records,
            reply,
        }
    }
}

/// Random numbers for topic ids and placement starts, seeded by the caller so a test can replay
/// the same decisions. SplitMix64: small, and good enough to spread placement and avoid id clashes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

pub struct QuorumController {
    settings: ControllerSettings,
    /// When each broker was last heard from. Kept only by the active controller, as Kafka does:
    /// a new active controller starts every session afresh rather than fencing brokers that were
    /// talking to its predecessor.
    last_contact_ms: HashMap<NodeId, i64>,
    /// Registrations (broker id -> epoch) that asked for a controlled shutdown: a heartbeat
    /// still in flight from them must not unfence them again. A restart registers anew.
    shutting_down: HashMap<NodeId, i64>,
    rng: Rng,
}

impl QuorumController {
    pub fn new(settings: ControllerSettings, seed: u64) -> QuorumController {
        QuorumController {
            settings,
            last_contact_ms: HashMap::new(),
            shutting_down: HashMap::new(),
            rng: Rng(seed),
        }
    }

    pub fn settings(&self) -> &ControllerSettings {
        &self.settings
    }

    /// Forgets every session; called when this node becomes the active controller, since contact
    /// times from an earlier term say nothing about what the brokers did since.
    pub fn reset_sessions(&mut self) {
        self.last_contact_ms.clear();
    }

    /// Decides `request` against `image` at `now_ms`. An `Err` refuses the whole request; errors
    /// of single topics or partitions are in the reply.
    pub fn handle(
        &mut self,
        image: &ClusterImage,
        request: ControllerRequest,
        now_ms: i64,
    ) -> Result<Outcome> {
        let mut batch = Batch::new(image);
        let reply = match request {
            ControllerRequest::RegisterBroker(r) => self.register(&mut batch, r, now_ms)?,
            ControllerRequest::BrokerHeartbeat(h) => self.heartbeat(&mut batch, h, now_ms)?,
            ControllerRequest::UnregisterBroker { broker_id } => {
                self.unregister(&mut batch, broker_id)?
            }
            ControllerRequest::ControlledShutdown {
                broker_id,
                broker_epoch,
            } => self.controlled_shutdown(&mut batch, broker_id, broker_epoch)?,
            ControllerRequest::CheckSessions => self.check_sessions(&mut batch, now_ms)?,
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => self.create_topics(&mut batch, topics, validate_only)?,
            ControllerRequest::CreatePartitions {
                topics,
                validate_only,
            } => self.create_partitions(&mut batch, topics, validate_only)?,
            ControllerRequest::DeleteTopics { names } => delete_topics(&mut batch, names)?,
            ControllerRequest::AlterPartition {
                broker_id,
                broker_epoch,
                updates,
            } => alter_partition(&mut batch, broker_id, broker_epoch, updates)?,
            ControllerRequest::ElectPreferredLeaders { partitions } => {
                elect_preferred(&mut batch, partitions)?
            }
            ControllerRequest::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => allocate_producer_ids(&mut batch, broker_id, broker_epoch)?,
        };
        Ok(batch.finish(reply))
    }

    fn session_alive(&mut self, broker: NodeId, now_ms: i64) -> bool {
        let last = *self.last_contact_ms.entry(broker).or_insert(now_ms);
        now_ms - last <= self.settings.session_timeout_ms
    }

    fn register(
        &mut self,
        batch: &mut Batch,
        r: BrokerRegistrationRequest,
        now_ms: i64,
    ) -> Result<ControllerReply> {
        if r.listeners.is_empty() {
            return Err(BrokerError::InvalidRequest(format!(
                "broker {} registered without listeners",
                r.broker_id
            )));
        }
        if let Some(existing) = batch.image().broker(r.broker_id).cloned() {
            if existing.incarnation_id == r.incarnation_id {
                // A retry whose first attempt was committed: same answer, nothing new to write.
                self.last_contact_ms.insert(r.broker_id, now_ms);
                return Ok(ControllerReply::BrokerRegistered {
                    broker_epoch: existing.epoch,
                });
            }
            if !existing.fenced && self.session_alive(r.broker_id, now_ms) {
                return Err(BrokerError::DuplicateBrokerRegistration(format!(
                    "broker {} is registered by another live process",
                    r.broker_id
                )));
            }
            if !existing.fenced {
                // The old process is gone without being fenced: its replicas may be behind
                // whatever the new one finds on disk, so treat it as failed first.
                self.fence(batch, r.broker_id, existing.epoch)?;
            }
        }
        let broker_epoch = batch.image().last_broker_epoch() + 1;
        batch.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: r.broker_id,
            broker_epoch,
            incarnation_id: r.incarnation_id,
            listeners: r.listeners,
            rack: r.rack,
            fenced: true,
        }))?;
        self.last_contact_ms.insert(r.broker_id, now_ms);
        Ok(ControllerReply::BrokerRegistered { broker_epoch })
    }

    fn heartbeat(
        &mut self,
        batch: &mut Batch,
        h: BrokerHeartbeatRequest,
        now_ms: i64,
    ) -> Result<ControllerReply> {
        let broker = registered(batch.image(), h.broker_id, h.broker_epoch)?.clone();
        self.last_contact_ms.insert(h.broker_id, now_ms);
        let is_caught_up = h.metadata_offset >= broker.registered_at;
        let stopping = self.shutting_down.get(&h.broker_id) == Some(&h.broker_epoch);
        if broker.fenced && is_caught_up && !stopping {
            batch.push(MetadataRecord::UnfenceBroker {
                broker_id: h.broker_id,
                broker_epoch: h.broker_epoch,
            })?;
            self.elect_returning_broker(batch, h.broker_id)?;
        }
        Ok(ControllerReply::Heartbeat(HeartbeatReply {
            is_caught_up,
            is_fenced: !batch.image().is_unfenced(h.broker_id),
        }))
    }

    fn controlled_shutdown(
        &mut self,
        batch: &mut Batch,
        broker_id: NodeId,
        broker_epoch: i64,
    ) -> Result<ControllerReply> {
        let broker = registered(batch.image(), broker_id, broker_epoch)?.clone();
        self.shutting_down.insert(broker_id, broker_epoch);
        if !broker.fenced {
            self.fence(batch, broker_id, broker_epoch)?;
        }
        self.last_contact_ms.remove(&broker_id);
        Ok(ControllerReply::ShutdownAccepted)
    }

    fn unregister(&mut self, batch: &mut Batch, broker_id: NodeId) -> Result<ControllerReply> {
        let broker = batch.image().broker(broker_id).cloned().ok_or_else(|| {
            BrokerError::BrokerIdNotRegistered(format!("broker {broker_id} is not registered"))
        })?;
        if !broker.fenced {
            self.fence(batch, broker_id, broker.epoch)?;
        }
        batch.push(MetadataRecord::UnregisterBroker {
            broker_id,
            broker_epoch: broker.epoch,
        })?;
        self.last_contact_ms.remove(&broker_id);
        Ok(ControllerReply::BrokerUnregistered)
    }

    fn check_sessions(&mut self, batch: &mut Batch, now_ms: i64) -> Result<ControllerReply> {
        let mut fenced = Vec::new();
        for broker in batch.image().unfenced_brokers() {
            if !self.session_alive(broker, now_ms) {
                fenced.push(broker);
            }
        }
        for &broker in &fenced {
            let epoch = batch.image().broker(broker).map_or(0, |b| b.epoch);
            self.fence(batch, broker, epoch)?;
        }
        Ok(ControllerReply::SessionsChecked { fenced })
    }

    /// Fences `broker` and takes it out of every partition: leadership moves to the first live
    /// ISR member in replica order, and the broker leaves the ISR. A partition whose ISR has no
    /// other live member loses its leader but keeps its ISR, so the last in-sync replica can
    /// lead again when it returns (unless unclean election lets an out-of-sync replica lead).
    fn fence(&mut self, batch: &mut Batch, broker: NodeId, epoch: i64) -> Result<()> {
        batch.push(MetadataRecord::FenceBroker {
            broker_id: broker,
            broker_epoch: epoch,
        })?;
        let image = batch.image();
        let mut changes = Vec::new();
        for p in image.partitions_replicated_on(broker) {
            let s = p.state;
            if !s.isr.contains(&broker) && s.leader != broker {
                continue;
            }
            let remaining: Vec<NodeId> = s.isr.iter().copied().filter(|r| *r != broker).collect();
            let live_in_sync = s
                .replicas
                .iter()
                .copied()
                .find(|r| remaining.contains(r) && image.is_unfenced(*r));
            let (leader, isr) = if s.leader == broker {
                match live_in_sync {
                    Some(next) => (Some(next), Some(remaining)),
                    None => match self.unclean_candidate(image, s, broker) {
                        Some(next) => (Some(next), Some(vec![next])),
                        None => (Some(NO_LEADER), None),
                    },
                }
            } else if s.leader == NO_LEADER {
                // Already leaderless: the ISR is what the partition recovers from.
                (None, None)
            } else {
                (None, Some(remaining))
            };
            changes.push(change(p.topic_id, p.partition, leader, isr));
        }
        for c in changes {
            batch.push(c)?;
        }
        Ok(())
    }

    /// A live replica outside the ISR, if unclean election is enabled.
    fn unclean_candidate(
        &self,
        image: &ClusterImage,
        s: &PartitionState,
        excluding: NodeId,
    ) -> Option<NodeId> {
        if !self.settings.unclean_leader_election {
            return None;
        }
        s.replicas
            .iter()
            .copied()
            .find(|r| *r != excluding && image.is_unfenced(*r))
    }

    /// A broker that was just unfenced takes back the partitions it can lead: leaderless ones
    /// whose ISR it is in (or any leaderless one it replicates, with unclean election), and those
    /// whose preferred replica it is while in sync.
    fn elect_returning_broker(&mut self, batch: &mut Batch, broker: NodeId) -> Result<()> {
        let image = batch.image();
        let mut changes = Vec::new();
        for p in image.partitions_replicated_on(broker) {
            let s = p.state;
            let in_sync = s.isr.contains(&broker);
            if s.leader == NO_LEADER {
                if in_sync {
                    // Members that are still fenced stay out until their leader re-admits them.
                    let isr: Vec<NodeId> = s
                        .isr
                        .iter()
                        .copied()
                        .filter(|r| image.is_unfenced(*r))
                        .collect();
                    changes.push(change(p.topic_id, p.partition, Some(broker), Some(isr)));
                } else if self.settings.unclean_leader_election {
                    changes.push(change(
                        p.topic_id,
                        p.partition,
                        Some(broker),
                        Some(vec![broker]),
                    ));
                }
            } else if in_sync && s.leader != broker && s.preferred_leader() == Some(broker) {
                changes.push(change(p.topic_id, p.partition, Some(broker), None));
            }
        }
        for c in changes {
            batch.push(c)?;
        }
        Ok(())
    }

    fn random_start(&mut self, brokers: usize) -> PlacementStart {
        PlacementStart {
            start_index: self.rng.below(brokers),
            replica_shift: self.rng.below(brokers),
        }
    }

    fn new_topic_id(&mut self, image: &ClusterImage) -> Uuid {
        loop {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&self.rng.next().to_be_bytes());
            id[8..].copy_from_slice(&self.rng.next().to_be_bytes());
            let id = Uuid(id);
            if id != Uuid::ZERO && image.topic_by_id(id).is_none() {
                return id;
            }
        }
    }

    fn create_topics(
        &mut self,
        batch: &mut Batch,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<ControllerReply> {
        let mut seen = BTreeMap::<String, usize>::new();
        for t in &topics {
            *seen.entry(t.name.clone()).or_default() += 1;
        }
        let mut results = Vec::with_capacity(topics.len());
        for topic in topics {
            let result = if seen[&topic.name] > 1 {
                Err(BrokerError::InvalidRequest(format!(
                    "topic {} appears more than once in the request",
                    topic.name
                )))
            } else {
                self.plan_topic(batch.image(), &topic)
            };
            let result = match result {
                Ok((created, records)) => {
                    if !validate_only {
                        for r in records {
                            batch.push(r)?;
                        }
                    }
                    Ok(created)
                }
                Err(e) => Err(e),
            };
            results.push(TopicResult {
                name: topic.name,
                result,
            });
        }
        Ok(ControllerReply::TopicsCreated(results))
    }

    /// The records that create `topic`, or why it cannot be created.
    fn plan_topic(
        &mut self,
        image: &ClusterImage,
        topic: &NewTopic,
    ) -> Result<(CreatedTopic, Vec<MetadataRecord>)> {
        topic_config::validate_topic_name(&topic.name)?;
        if image.topic(&topic.name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(topic.name.clone()));
        }
        for (k, v) in &topic.configs {
            topic_config::validate(k, v)?;
        }
        let assignments = match &topic.assignments {
            Some(manual) => {
                if manual.is_empty() {
                    return Err(BrokerError::InvalidReplicaAssignment(
                        "an explicit assignment needs at least one partition".into(),
                    ));
                }
                let rf = manual[0].len();
                for replicas in manual {
                    validate_replicas(image, replicas, rf)?;
                }
                manual.clone()
            }
            None => {
                let partitions = match topic.num_partitions {
                    -1 => self.settings.default_num_partitions,
                    n if n < 1 => {
                        return Err(BrokerError::InvalidPartitions(format!(
                            "number of partitions must be at least 1, got {n}"
                        )))
                    }
                    n => n,
                };
                let rf = match topic.replication_factor {
                    -1 => self.settings.default_replication_factor,
                    n => n,
                };
                let brokers = image.unfenced_brokers();
                let start = self.random_start(brokers.len());
                assign_replicas(&brokers, partitions, rf, 0, start)?
            }
        };
        let topic_id = self.new_topic_id(image);
        let mut records = vec![MetadataRecord::Topic {
            name: topic.name.clone(),
            topic_id,
        }];
        for (p, replicas) in assignments.iter().enumerate() {
            records.push(new_partition(image, topic_id, p as i32, replicas.clone()));
        }
        for (key, value) in &topic.configs {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: topic.name.clone(),
                key: key.clone(),
                value: Some(value.clone()),
            }));
        }
        let created = CreatedTopic {
            topic_id,
            num_partitions: assignments.len() as i32,
            replication_factor: assignments[0].len() as i16,
            configs: topic.configs.clone(),
        };
        Ok((created, records))
    }

    fn create_partitions(
        &mut self,
        batch: &mut Batch,
        topics: Vec<NewPartitions>,
        validate_only: bool,
    ) -> Result<ControllerReply> {
        let mut results = Vec::with_capacity(topics.len());
        for t in topics {
            let result = match self.plan_partitions(batch.image(), &t) {
                Ok(records) => {
                    if !validate_only {
                        for r in records {
                            batch.push(r)?;
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            };
            results.push(TopicResult {
                name: t.topic,
                result,
            });
        }
        Ok(ControllerReply::PartitionsCreated(results))
    }

    fn plan_partitions(
        &mut self,
        image: &ClusterImage,
        t: &NewPartitions,
    ) -> Result<Vec<MetadataRecord>> {
        let topic = image
            .topic(&t.topic)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(t.topic.clone()))?;
        let current = topic.partitions.len() as i32;
        if t.total_count <= current {
            return Err(BrokerError::InvalidPartitions(format!(
                "topic {} has {current} partitions; the count can only grow, not become {}",
                t.topic, t.total_count
            )));
        }
        let first_replicas = topic
            .partitions
            .get(&0)
            .map(|p| p.replicas.clone())
            .unwrap_or_default();
        let rf = first_replicas.len();
        let added = t.total_count - current;
        let assignments = match &t.assignments {
            Some(manual) => {
                if manual.len() != added as usize {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "{added} partitions are added but {} assignments were given",
                        manual.len()
                    )));
                }
                for replicas in manual {
                    validate_replicas(image, replicas, rf)?;
                }
                manual.clone()
            }
            None => {
                let mut brokers = image.unfenced_brokers();
                brokers.sort_unstable();
                // Continue partition 0's layout so the topic keeps one round-robin, as Kafka
                // does when adding partitions.
                let start = match first_replicas
                    .first()
                    .and_then(|b| brokers.iter().position(|x| x == b))
                {
                    Some(i) => PlacementStart {
                        start_index: i,
                        replica_shift: i,
                    },
                    None => self.random_start(brokers.len()),
                };
                assign_replicas(&brokers, added, rf as i16, current, start)?
            }
        };
        Ok(assignments
            .into_iter()
            .enumerate()
            .map(|(i, replicas)| new_partition(image, topic.id, current + i as i32, replicas))
            .collect())
    }
}

fn change(
    topic_id: Uuid,
    partition: i32,
    leader: Option<NodeId>,
    isr: Option<Vec<NodeId>>,
) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        topic_id,
        partition,
        leader,
        isr,
    })
}

/// A new partition's record: in sync are the replicas that are alive, and the first of them in
/// replica order leads.
fn new_partition(
    image: &ClusterImage,
    topic_id: Uuid,
    partition: i32,
    replicas: Vec<NodeId>,
) -> MetadataRecord {
    let isr: Vec<NodeId> = replicas
        .iter()
        .copied()
        .filter(|r| image.is_unfenced(*r))
        .collect();
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        leader: isr.first().copied().unwrap_or(NO_LEADER),
        replicas,
        isr,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// An explicit assignment: `rf` distinct registered brokers, at least one of them alive.
fn validate_replicas(image: &ClusterImage, replicas: &[NodeId], rf: usize) -> Result<()> {
    if replicas.is_empty() || replicas.len() != rf {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "every partition needs the same number of replicas ({rf}), got {replicas:?}"
        )));
    }
    let distinct: BTreeSet<NodeId> = replicas.iter().copied().collect();
    if distinct.len() != replicas.len() {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "replicas {replicas:?} name a broker twice"
        )));
    }
    if let Some(unknown) = replicas.iter().find(|r| image.broker(**r).is_none()) {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "broker {unknown} is not registered"
        )));
    }
    if !replicas.iter().any(|r| image.is_unfenced(*r)) {
        return Err(BrokerError::InvalidReplicaAssignment(format!(
            "every broker of {replicas:?} is fenced"
        )));
    }
    Ok(())
}

fn registered(
    image: &ClusterImage,
    broker_id: NodeId,
    broker_epoch: i64,
) -> Result<&super::image::BrokerRegistration> {
    match image.broker(broker_id) {
        None => Err(BrokerError::BrokerIdNotRegistered(format!(
            "broker {broker_id} is not registered"
        ))),
        Some(b) if b.epoch != broker_epoch => Err(BrokerError::StaleBrokerEpoch(format!(
            "broker {broker_id} sent epoch {broker_epoch}, but its registration has epoch {}",
            b.epoch
        ))),
        Some(b) => Ok(b),
    }
}

fn delete_topics(batch: &mut Batch, names: Vec<String>) -> Result<ControllerReply> {
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let result = match batch.image().topic(&name).map(|t| t.id) {
            Some(topic_id) => {
                batch.push(MetadataRecord::RemoveTopic { topic_id })?;
                Ok(topic_id)
            }
            None => Err(BrokerError::UnknownTopicOrPartition(name.clone())),
        };
        results.push(TopicResult { name, result });
    }
    Ok(ControllerReply::TopicsDeleted(results))
}

/// Kafka's AlterPartition checks, in its order: the broker's registration, the partition, the
/// leader epoch (an older one means the requester was deposed), leadership, the partition epoch
/// (an older one means the ISR changed since), then the proposed ISR itself.
fn alter_partition(
    batch: &mut Batch,
    broker_id: NodeId,
    broker_epoch: i64,
    updates: Vec<IsrUpdate>,
) -> Result<ControllerReply> {
    registered(batch.image(), broker_id, broker_epoch)?;
    let mut results = Vec::with_capacity(updates.len());
    for u in updates {
        let topic = batch
            .image()
            .topic_by_id(u.topic_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let result = match check_isr_update(batch.image(), broker_id, &u) {
            Ok(record) => {
                if let Some(record) = record {
                    batch.push(record)?;
                }
                batch
                    .image()
                    .partition(u.topic_id, u.partition)
                    .cloned()
                    .ok_or_else(|| BrokerError::UnknownTopicOrPartition(topic.clone()))
            }
            Err(e) => Err(e),
        };
        results.push(PartitionResult {
            topic,
            topic_id: u.topic_id,
            partition: u.partition,
            result,
        });
    }
    Ok(ControllerReply::PartitionsAltered(results))
}

/// `Ok(None)` when the ISR is already what the leader asks for.
fn check_isr_update(
    image: &ClusterImage,
    broker_id: NodeId,
    u: &IsrUpdate,
) -> Result<Option<MetadataRecord>> {
    let topic = image
        .topic_by_id(u.topic_id)
        .ok_or_else(|| BrokerError::UnknownTopicId(super::image::hex(u.topic_id)))?;
    let s = topic.partitions.get(&u.partition).ok_or_else(|| {
        BrokerError::UnknownTopicOrPartition(format!("{}-{}", topic.name, u.partition))
    })?;
    if u.leader_epoch != s.leader_epoch {
        return Err(BrokerError::FencedLeaderEpoch(format!(
            "{}-{} is at leader epoch {}, the request at {}",
            topic.name, u.partition, s.leader_epoch, u.leader_epoch
        )));
    }
    if s.leader != broker_id {
        return Err(BrokerError::InvalidRequest(format!(
            "broker {broker_id} does not lead {}-{} (leader {})",
            topic.name, u.partition, s.leader
        )));
    }
    if u.partition_epoch != s.partition_epoch {
        return Err(BrokerError::InvalidUpdateVersion(format!(
            "{}-{} is at partition epoch {}, the request at {}",
            topic.name, u.partition, s.partition_epoch, u.partition_epoch
        )));
    }
    let distinct: BTreeSet<NodeId> = u.new_isr.iter().copied().collect();
    if distinct.len() != u.new_isr.len()
        || !u.new_isr.contains(&broker_id)
        || !u.new_isr.iter().all(|r| s.replicas.contains(r))
    {
        return Err(BrokerError::InvalidRequest(format!(
            "ISR {:?} of {}-{} must be distinct replicas of {:?} including the leader",
            u.new_isr, topic.name, u.partition, s.replicas
        )));
    }
    if let Some(fenced) = u.new_isr.iter().find(|r| !image.is_unfenced(**r)) {
        return Err(BrokerError::IneligibleReplica(format!(
            "broker {fenced} is fenced and cannot be in the ISR of {}-{}",
            topic.name, u.partition
        )));
    }
    if u.new_isr == s.isr {
        return Ok(None);
    }
    Ok(Some(change(
        u.topic_id,
        u.partition,
        None,
        Some(u.new_isr.clone()),
    )))
}

fn elect_preferred(
    batch: &mut Batch,
    partitions: Option<Vec<(String, i32)>>,
) -> Result<ControllerReply> {
    let explicit = partitions.is_some();
    let wanted: Vec<(String, i32)> = match partitions {
        Some(list) => list,
        None => batch
            .image()
            .topics()
            .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
            .collect(),
    };
    let mut results = Vec::new();
    for (topic, partition) in wanted {
        let image = batch.image();
        let Some(t) = image.topic(&topic) else {
            results.push(PartitionResult {
                topic: topic.clone(),
                topic_id: Uuid::ZERO,
                partition,
                result: Err(BrokerError::UnknownTopicOrPartition(topic)),
            });
            continue;
        };
        let topic_id = t.id;
        let Some(s) = t.partitions.get(&partition) else {
            results.push(PartitionResult {
                topic: topic.clone(),
                topic_id,
                partition,
                result: Err(BrokerError::UnknownTopicOrPartition(format!(
                    "{topic}-{partition}"
                ))),
            });
            continue;
        };
        let preferred = s.preferred_leader().unwrap_or(NO_LEADER);
        let result = if s.leader == preferred {
            Ok(ElectedLeader {
                leader: preferred,
                changed: false,
            })
        } else if s.isr.contains(&preferred) && image.is_unfenced(preferred) {
            batch.push(change(topic_id, partition, Some(preferred), None))?;
            Ok(ElectedLeader {
                leader: preferred,
                changed: true,
            })
        } else {
            Err(BrokerError::PreferredLeaderNotAvailable(format!(
                "preferred leader {preferred} of {topic}-{partition} is not alive and in sync"
            )))
        };
        // Asked about everything, the answer lists only what moved, as Kafka's does.
        if explicit || matches!(result, Ok(ElectedLeader { changed: true, .. })) {
            results.push(PartitionResult {
                topic,
                topic_id,
                partition,
                result,
            });
        }
    }
    Ok(ControllerReply::LeadersElected(results))
}

fn allocate_producer_ids(
    batch: &mut Batch,
    broker_id: NodeId,
    broker_epoch: i64,
) -> Result<ControllerReply> {
    registered(batch.image(), broker_id, broker_epoch)?;
    let first_id = batch.image().next_producer_id();
    batch.push(MetadataRecord::ProducerIds {
        broker_id,
        broker_epoch,
        next_producer_id_block: first_id + PRODUCER_ID_BLOCK_SIZE,
    })?;
    Ok(ControllerReply::ProducerIds {
        first_id,
        count: PRODUCER_ID_BLOCK_SIZE,
    })
}

#[cfg(test)]
mod tests;
