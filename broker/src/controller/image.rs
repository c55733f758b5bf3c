//! `ClusterImage`: the cluster metadata as of one offset of the metadata log, built only by
//! applying `MetadataRecord`s in log order. Pure data: no I/O and no clock.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sluice_protocol::wire::Uuid;

use super::records::{
    BrokerEndpoint, ConfigRecord, ConfigResourceType, MetadataRecord, NodeId,
    PartitionChangeRecord, PartitionRecord, RegisterBrokerRecord,
};
use crate::error::{BrokerError, Result};
use crate::metadata::uuid_hex;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: NodeId,
    pub epoch: i64,
    #[serde(with = "uuid_hex")]
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The log offset of the registration: a broker whose applied metadata reaches it has seen
    /// its own registration and so has caught up.
    pub registered_at: u64,
}

impl BrokerRegistration {
    /// The endpoint of the listener named `listener` (compared case-insensitively, as Kafka's
    /// listener names are).
    pub fn endpoint(&self, listener: &str) -> Option<&BrokerEndpoint> {
        self.listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(listener))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    /// `NO_LEADER` (-1) while no eligible replica is alive.
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl PartitionState {
    /// Kafka's preferred leader: the first replica of the assignment.
    pub fn preferred_leader(&self) -> Option<NodeId> {
        self.replicas.first().copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    #[serde(with = "uuid_hex")]
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionState>,
}

/// A partition as the broker-facing queries return it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRef<'a> {
    pub topic: &'a str,
    pub topic_id: Uuid,
    pub partition: i32,
    pub state: &'a PartitionState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterImage {
    offset: u64,
    brokers: BTreeMap<NodeId, BrokerRegistration>,
    topics: BTreeMap<String, TopicImage>,
    /// Derived from `topics`; records name topics by id.
    names: HashMap<Uuid, String>,
    configs: BTreeMap<ConfigResourceType, BTreeMap<String, BTreeMap<String, String>>>,
    next_producer_id: i64,
    last_broker_epoch: i64,
}

/// What a snapshot holds: the image without its derived index.
#[derive(Serialize, Deserialize)]
struct StoredImage {
    offset: u64,
    brokers: BTreeMap<NodeId, BrokerRegistration>,
    topics: Vec<TopicImage>,
    configs: BTreeMap<ConfigResourceType, BTreeMap<String, BTreeMap<String, String>>>,
    next_producer_id: i64,
    last_broker_epoch: i64,
}

impl ClusterImage {
    pub fn new() -> ClusterImage {
        ClusterImage::default()
    }

    /// Applies one record that was stored at `offset`. A record that contradicts the image (an
    /// unknown broker, topic or partition, a stale broker epoch) changes nothing and is reported:
    /// every replica applies the same log, so skipping it keeps them identical.
    pub fn apply(&mut self, offset: u64, record: &MetadataRecord) -> Result<()> {
        self.offset = self.offset.max(offset);
        match record {
            MetadataRecord::RegisterBroker(r) => self.register(offset, r),
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => self.broker_mut(*broker_id, *broker_epoch)?.fenced = true,
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => self.broker_mut(*broker_id, *broker_epoch)?.fenced = false,
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.broker_mut(*broker_id, *broker_epoch)?;
                self.brokers.remove(broker_id);
            }
            MetadataRecord::Topic { name, topic_id } => self.add_topic(name, *topic_id)?,
            MetadataRecord::Partition(p) => self.add_partition(p)?,
            MetadataRecord::PartitionChange(c) => self.change_partition(c)?,
            MetadataRecord::RemoveTopic { topic_id } => self.remove_topic(*topic_id)?,
            MetadataRecord::Config(c) => self.set_config(c),
            MetadataRecord::ProducerIds {
                next_producer_id_block,
                ..
            } => self.next_producer_id = self.next_producer_id.max(*next_producer_id_block),
        }
        Ok(())
    }

    /// Applies every record of a batch stored at `offset`, reporting the first that did not fit
    /// (the rest are still applied, for the reason `apply` gives).
    pub fn apply_all<'a>(
        &mut self,
        offset: u64,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Result<()> {
        let mut first_error = None;
        for record in records {
            if let Err(e) = self.apply(offset, record) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn register(&mut self, offset: u64, r: &RegisterBrokerRecord) {
        self.last_broker_epoch = self.last_broker_epoch.max(r.broker_epoch);
        self.brokers.insert(
            r.broker_id,
            BrokerRegistration {
                id: r.broker_id,
                epoch: r.broker_epoch,
                incarnation_id: r.incarnation_id,
                listeners: r.listeners.clone(),
                rack: r.rack.clone(),
                fenced: r.fenced,
                registered_at: offset,
            },
        );
    }

    fn broker_mut(&mut self, id: NodeId, epoch: i64) -> Result<&mut BrokerRegistration> {
        match self.brokers.get_mut(&id) {
            Some(b) if b.epoch == epoch => Ok(b),
            Some(b) => Err(BrokerError::StaleBrokerEpoch(format!(
                "broker {id} is registered with epoch {}, not {epoch}",
                b.epoch
            ))),
            None => Err(BrokerError::BrokerIdNotRegistered(format!(
                "broker {id} is not registered"
            ))),
        }
    }

    fn add_topic(&mut self, name: &str, id: Uuid) -> Result<()> {
        if self.topics.contains_key(name) {
            return Err(BrokerError::TopicAlreadyExists(name.to_string()));
        }
        if let Some(other) = self.names.get(&id) {
            return Err(BrokerError::Metadata(format!(
                "topic id {} already belongs to {other}",
                hex(id)
            )));
        }
        self.names.insert(id, name.to_string());
        self.topics.insert(
            name.to_string(),
            TopicImage {
                name: name.to_string(),
                id,
                partitions: BTreeMap::new(),
            },
        );
        Ok(())
    }

    fn topic_mut(&mut self, id: Uuid) -> Result<&mut TopicImage> {
        let name = self
            .names
            .get(&id)
            .ok_or_else(|| BrokerError::UnknownTopicId(hex(id)))?;
        self.topics
            .get_mut(name)
            .ok_or_else(|| BrokerError::Metadata(format!("topic index names missing topic {name}")))
    }

    fn add_partition(&mut self, p: &PartitionRecord) -> Result<()> {
        let topic = self.topic_mut(p.topic_id)?;
        topic.partitions.insert(
            p.partition,
            PartitionState {
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
            },
        );
        Ok(())
    }

    fn change_partition(&mut self, c: &PartitionChangeRecord) -> Result<()> {
        let topic = self.topic_mut(c.topic_id)?;
        let name = topic.name.clone();
        let state = topic.partitions.get_mut(&c.partition).ok_or_else(|| {
            BrokerError::UnknownTopicOrPartition(format!("{name}-{}", c.partition))
        })?;
        if let Some(leader) = c.leader {
            if leader != state.leader {
                state.leader = leader;
                state.leader_epoch += 1;
            }
        }
        if let Some(isr) = &c.isr {
            state.isr = isr.clone();
        }
        state.partition_epoch += 1;
        Ok(())
    }

    fn remove_topic(&mut self, id: Uuid) -> Result<()> {
        let name = self
            .names
            .remove(&id)
            .ok_or_else(|| BrokerError::UnknownTopicId(hex(id)))?;
        self.topics.remove(&name);
        if let Some(topics) = self.configs.get_mut(&ConfigResourceType::Topic) {
            topics.remove(&name);
        }
        Ok(())
    }

    fn set_config(&mut self, c: &ConfigRecord) {
        let resources = self.configs.entry(c.resource_type).or_default();
        match &c.value {
            Some(value) => {
                resources
                    .entry(c.resource_name.clone())
                    .or_default()
                    .insert(c.key.clone(), value.clone());
            }
            None => {
                if let Some(keys) = resources.get_mut(&c.resource_name) {
                    keys.remove(&c.key);
                    if keys.is_empty() {
                        resources.remove(&c.resource_name);
                    }
                }
            }
        }
    }

    /// The offset of the last record applied; a broker reports it in heartbeats.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn broker(&self, id: NodeId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Every registered broker, fenced or not, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// The ids of the brokers that may lead and be placed on, ascending.
    pub fn unfenced_brokers(&self) -> Vec<NodeId> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    pub fn is_unfenced(&self, id: NodeId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// The highest broker epoch ever handed out, so the next registration can exceed it.
    pub fn last_broker_epoch(&self) -> i64 {
        self.last_broker_epoch
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicImage> {
        self.names.get(&id).and_then(|name| self.topics.get(name))
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    pub fn partition(&self, topic_id: Uuid, partition: i32) -> Option<&PartitionState> {
        self.topic_by_id(topic_id)?.partitions.get(&partition)
    }

    pub fn partition_by_name(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(&partition)
    }

    fn partitions_where(
        &self,
        keep: impl Fn(&PartitionState) -> bool,
    ) -> impl Iterator<Item = PartitionRef<'_>> {
        self.topics.values().flat_map(move |t| {
            t.partitions
                .iter()
                .filter(|(_, s)| keep(s))
                .map(|(p, s)| PartitionRef {
                    topic: &t.name,
                    topic_id: t.id,
                    partition: *p,
                    state: s,
                })
                .collect::<Vec<_>>()
        })
    }

    /// The partitions `broker` leads, by topic name and partition.
    pub fn partitions_led_by(&self, broker: NodeId) -> Vec<PartitionRef<'_>> {
        self.partitions_where(|s| s.leader == broker).collect()
    }

    /// The partitions with a replica on `broker`, led by it or not.
    pub fn partitions_replicated_on(&self, broker: NodeId) -> Vec<PartitionRef<'_>> {
        self.partitions_where(|s| s.replicas.contains(&broker))
            .collect()
    }

    /// A topic's config overrides; keys absent here take the broker defaults.
    pub fn topic_configs(&self, topic: &str) -> BTreeMap<String, String> {
        self.resource_configs(ConfigResourceType::Topic, topic)
    }

    pub fn resource_configs(
        &self,
        resource_type: ConfigResourceType,
        name: &str,
    ) -> BTreeMap<String, String> {
        self.configs
            .get(&resource_type)
            .and_then(|r| r.get(name))
            .cloned()
            .unwrap_or_default()
    }

    /// The first producer id no broker has been handed yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The image as snapshot bytes (JSON), from which `from_snapshot` rebuilds an equal image.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let stored = StoredImage {
            offset: self.offset,
            brokers: self.brokers.clone(),
            topics: self.topics.values().cloned().collect(),
            configs: self.configs.clone(),
            next_producer_id: self.next_producer_id,
            last_broker_epoch: self.last_broker_epoch,
        };
        serde_json::to_vec(&stored).expect("an image always serializes")
    }

    pub fn from_snapshot(data: &[u8]) -> Result<ClusterImage> {
        let stored: StoredImage = serde_json::from_slice(data)
            .map_err(|e| BrokerError::Metadata(format!("unreadable metadata snapshot: {e}")))?;
        let mut image = ClusterImage {
            offset: stored.offset,
            brokers: stored.brokers,
            configs: stored.configs,
            next_producer_id: stored.next_producer_id,
            last_broker_epoch: stored.last_broker_epoch,
            ..ClusterImage::default()
        };
        for topic in stored.topics {
            image.names.insert(topic.id, topic.name.clone());
            image.topics.insert(topic.name.clone(), topic);
        }
        Ok(image)
    }
}

/// A topic id as error messages and the log print it.
pub fn hex(id: Uuid) -> String {
    id.0.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::NO_LEADER;

    fn endpoint(port: u16) -> BrokerEndpoint {
        BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port,
            security_protocol: "PLAINTEXT".into(),
        }
    }

    fn register(id: NodeId, epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            broker_epoch: epoch,
            incarnation_id: Uuid([id as u8; 16]),
            listeners: vec![endpoint(9090 + id as u16)],
            rack: None,
            fenced: true,
        })
    }

    fn tid(n: u8) -> Uuid {
        Uuid([n; 16])
    }

    fn partition(topic: u8, p: i32, replicas: &[NodeId]) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            topic_id: tid(topic),
            partition: p,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
        })
    }

    fn change(p: i32, leader: Option<NodeId>, isr: Option<&[NodeId]>) -> MetadataRecord {
        MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: tid(1),
            partition: p,
            leader,
            isr: isr.map(<[NodeId]>::to_vec),
        })
    }

    /// Brokers 1-3 unfenced, topic "a" (id 1) with partitions 0 on [1,2,3] and 1 on [2,3,1].
    fn cluster() -> ClusterImage {
        let mut image = ClusterImage::new();
        let mut offset = 0;
        let mut records = vec![];
        for id in 1..=3 {
            records.push(register(id, id as i64 * 10));
            records.push(MetadataRecord::UnfenceBroker {
                broker_id: id,
                broker_epoch: id as i64 * 10,
            });
        }
        records.push(MetadataRecord::Topic {
            name: "a".into(),
            topic_id: tid(1),
        });
        records.push(partition(1, 0, &[1, 2, 3]));
        records.push(partition(1, 1, &[2, 3, 1]));
        for r in &records {
            offset += 1;
            image.apply(offset, r).unwrap();
        }
        image
    }

    #[test]
    fn brokers_register_fenced_and_are_unfenced_by_epoch() {
        let mut image = ClusterImage::new();
        image.apply(5, &register(2, 5)).unwrap();
        let b = image.broker(2).unwrap();
        assert!(b.fenced);
        assert_eq!(b.registered_at, 5);
        assert_eq!(b.endpoint("plaintext").unwrap().port, 9092);
        assert!(b.endpoint("SSL").is_none());
        assert!(image.unfenced_brokers().is_empty());

        let stale = MetadataRecord::UnfenceBroker {
            broker_id: 2,
            broker_epoch: 4,
        };
        assert!(matches!(
            image.apply(6, &stale),
            Err(BrokerError::StaleBrokerEpoch(_))
        ));
        assert!(!image.is_unfenced(2));
        let unfence = MetadataRecord::UnfenceBroker {
            broker_id: 2,
            broker_epoch: 5,
        };
        image.apply(7, &unfence).unwrap();
        assert_eq!(image.unfenced_brokers(), vec![2]);
        assert_eq!(image.offset(), 7);
        assert_eq!(image.last_broker_epoch(), 5);

        image
            .apply(
                8,
                &MetadataRecord::FenceBroker {
                    broker_id: 2,
                    broker_epoch: 5,
                },
            )
            .unwrap();
        assert!(!image.is_unfenced(2));
        image
            .apply(
                9,
                &MetadataRecord::UnregisterBroker {
                    broker_id: 2,
                    broker_epoch: 5,
                },
            )
            .unwrap();
        assert!(image.broker(2).is_none());
        // The epoch high-water mark outlives the registration, so a later one cannot reuse it.
        assert_eq!(image.last_broker_epoch(), 5);
        let gone = MetadataRecord::FenceBroker {
            broker_id: 2,
            broker_epoch: 5,
        };
        assert!(matches!(
            image.apply(10, &gone),
            Err(BrokerError::BrokerIdNotRegistered(_))
        ));
    }

    #[test]
    fn topics_are_found_by_name_and_id() {
        let image = cluster();
        assert_eq!(image.topic("a").unwrap().id, tid(1));
        assert_eq!(image.topic_by_id(tid(1)).unwrap().name, "a");
        assert!(image.topic_by_id(tid(2)).is_none());
        assert_eq!(image.partition(tid(1), 1).unwrap().replicas, vec![2, 3, 1]);
        assert_eq!(image.partition_by_name("a", 0).unwrap().leader, 1);
        assert!(image.partition_by_name("a", 2).is_none());
        assert_eq!(image.topics().count(), 1);
    }

    #[test]
    fn a_topic_name_or_id_cannot_be_taken_twice() {
        let mut image = cluster();
        let same_name = MetadataRecord::Topic {
            name: "a".into(),
            topic_id: tid(9),
        };
        assert!(matches!(
            image.apply(20, &same_name),
            Err(BrokerError::TopicAlreadyExists(_))
        ));
        let same_id = MetadataRecord::Topic {
            name: "b".into(),
            topic_id: tid(1),
        };
        assert!(image.apply(21, &same_id).is_err());
        assert!(image.topic("b").is_none());
        assert!(image.topic_by_id(tid(9)).is_none());
    }

    #[test]
    fn partition_change_bumps_leader_epoch_only_for_a_new_leader() {
        let mut image = cluster();
        image.apply(20, &change(0, None, Some(&[1, 2]))).unwrap();
        let s = image.partition(tid(1), 0).unwrap();
        assert_eq!(
            (s.leader, s.leader_epoch, s.partition_epoch, s.isr.clone()),
            (1, 0, 1, vec![1, 2])
        );
        // Naming the current leader again is not a leader change.
        image.apply(21, &change(0, Some(1), None)).unwrap();
        let s = image.partition(tid(1), 0).unwrap();
        assert_eq!((s.leader_epoch, s.partition_epoch), (0, 2));
        image.apply(22, &change(0, Some(2), Some(&[2]))).unwrap();
        let s = image.partition(tid(1), 0).unwrap();
        assert_eq!(
            (s.leader, s.leader_epoch, s.partition_epoch, s.isr.clone()),
            (2, 1, 3, vec![2])
        );
        image.apply(23, &change(0, Some(NO_LEADER), None)).unwrap();
        let s = image.partition(tid(1), 0).unwrap();
        assert_eq!(
            (s.leader, s.leader_epoch, s.isr.clone()),
            (NO_LEADER, 2, vec![2])
        );

        let before = image.clone();
        assert!(matches!(
            image.apply(24, &change(7, Some(1), None)),
            Err(BrokerError::UnknownTopicOrPartition(_))
        ));
        let unknown_topic = MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: tid(5),
            partition: 0,
            leader: Some(1),
            isr: None,
        });
        assert!(matches!(
            image.apply(25, &unknown_topic),
            Err(BrokerError::UnknownTopicId(_))
        ));
        let mut expected = before;
        expected.offset = 25;
        assert_eq!(image, expected);
    }

    #[test]
    fn partitions_led_by_and_replicated_on_a_broker() {
        let mut image = cluster();
        let led: Vec<(String, i32)> = image
            .partitions_led_by(2)
            .iter()
            .map(|p| (p.topic.to_string(), p.partition))
            .collect();
        assert_eq!(led, vec![("a".to_string(), 1)]);
        assert_eq!(image.partitions_replicated_on(3).len(), 2);
        image
            .apply(
                20,
                &MetadataRecord::Topic {
                    name: "b".into(),
                    topic_id: tid(2),
                },
            )
            .unwrap();
        image.apply(21, &partition(2, 0, &[3])).unwrap();
        let on_1: Vec<&str> = image
            .partitions_replicated_on(1)
            .iter()
            .map(|p| p.topic)
            .collect();
        assert_eq!(on_1, vec!["a", "a"]);
        let led_by_3 = image.partitions_led_by(3);
        assert_eq!(led_by_3.len(), 1);
        assert_eq!((led_by_3[0].topic, led_by_3[0].topic_id), ("b", tid(2)));
        assert!(image.partitions_led_by(4).is_empty());
    }

    #[test]
    fn configs_are_set_deleted_and_dropped_with_their_topic() {
        let mut image = cluster();
        let set = |key: &str, value: Option<&str>| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: "a".into(),
                key: key.into(),
                value: value.map(str::to_string),
            })
        };
        image.apply(20, &set("retention.ms", Some("100"))).unwrap();
        image
            .apply(21, &set("min.insync.replicas", Some("2")))
            .unwrap();
        image.apply(22, &set("retention.ms", None)).unwrap();
        assert_eq!(
            image.topic_configs("a"),
            BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())])
        );
        assert!(image.topic_configs("other").is_empty());
        image
            .apply(23, &MetadataRecord::RemoveTopic { topic_id: tid(1) })
            .unwrap();
        assert!(image.topic("a").is_none());
        assert!(image.topic_configs("a").is_empty());
        assert!(image.partitions_replicated_on(1).is_empty());
        // A topic of the same name created later starts without the old overrides.
        image
            .apply(
                24,
                &MetadataRecord::Topic {
                    name: "a".into(),
                    topic_id: tid(3),
                },
            )
            .unwrap();
        assert!(image.topic_configs("a").is_empty());
    }

    #[test]
    fn producer_id_blocks_only_move_forward() {
        let mut image = ClusterImage::new();
        let block = |next| MetadataRecord::ProducerIds {
            broker_id: 1,
            broker_epoch: 1,
            next_producer_id_block: next,
        };
        image.apply(1, &block(1000)).unwrap();
        image.apply(2, &block(500)).unwrap();
        assert_eq!(image.next_producer_id(), 1000);
    }

    #[test]
    fn snapshot_round_trips_including_the_id_index() {
        let mut image = cluster();
        image
            .apply(
                30,
                &MetadataRecord::Config(ConfigRecord {
                    resource_type: ConfigResourceType::Broker,
                    resource_name: "1".into(),
                    key: "log.retention.ms".into(),
                    value: Some("5".into()),
                }),
            )
            .unwrap();
        let back = ClusterImage::from_snapshot(&image.to_snapshot()).unwrap();
        assert_eq!(back, image);
        assert_eq!(back.topic_by_id(tid(1)).unwrap().name, "a");
        assert_eq!(back.offset(), 30);
        assert!(matches!(
            ClusterImage::from_snapshot(b"{not json"),
            Err(BrokerError::Metadata(_))
        ));
    }

    #[test]
    fn apply_all_applies_the_rest_after_a_bad_record() {
        let mut image = ClusterImage::new();
        let batch = [
            MetadataRecord::FenceBroker {
                broker_id: 1,
                broker_epoch: 1,
            },
            register(1, 1),
        ];
        assert!(image.apply_all(3, &batch).is_err());
        assert_eq!(image.broker(1).unwrap().registered_at, 3);
    }
}
