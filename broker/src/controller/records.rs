//! The records of the cluster metadata log, modelled on KRaft's: every change to brokers, topics,
//! partitions, configs and producer-id blocks is one `MetadataRecord`, applied in log order.

use serde::{Deserialize, Serialize};
use sluice_protocol::wire::Uuid;

use crate::metadata::uuid_hex;

/// A broker's or controller's `node.id`.
pub type NodeId = i32;

/// The leader of a partition none of whose eligible replicas is alive.
pub const NO_LEADER: NodeId = -1;

/// One listener a broker serves clients or other brokers on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// The listener name, upper-cased as in `listeners` (e.g. `PLAINTEXT`).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// From `listener.security.protocol.map`, e.g. `PLAINTEXT` or `SSL`.
    pub security_protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    pub broker_id: NodeId,
    /// Distinguishes this registration from every earlier one of the same broker id, so requests
    /// from a previous incarnation of the process can be refused.
    pub broker_epoch: i64,
    /// Chosen by the broker process at start-up: a retried registration carries the same one and
    /// must not bump the epoch again.
    #[serde(with = "uuid_hex")]
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// A broker registers fenced: it leads nothing until it has caught up with the metadata log.
    pub fenced: bool,
}

/// A partition as created: the full state, later changed only by `PartitionChange`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    #[serde(with = "uuid_hex")]
    pub topic_id: Uuid,
    pub partition: i32,
    /// In preference order: the first is the preferred leader.
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// Only what changed. Applying it bumps the partition epoch, and the leader epoch as well when
/// the leader is a different broker afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    #[serde(with = "uuid_hex")]
    pub topic_id: Uuid,
    pub partition: i32,
    /// `Some(NO_LEADER)` takes leadership away; `None` leaves the leader as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isr: Option<Vec<NodeId>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigResourceType {
    Topic,
    Broker,
}

/// One config key of one resource; `value: None` deletes the key, so the default applies again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub resource_type: ConfigResourceType,
    /// The topic name, or the broker id in decimal (empty for the cluster-wide default).
    pub resource_name: String,
    pub key: String,
    pub value: Option<String>,
}

/// Externally visible as `{"type": "...", ...fields}` in the log file, so a person reading the
/// log sees what each entry does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    FenceBroker {
        broker_id: NodeId,
        broker_epoch: i64,
    },
    UnfenceBroker {
        broker_id: NodeId,
        broker_epoch: i64,
    },
    UnregisterBroker {
        broker_id: NodeId,
        broker_epoch: i64,
    },
    Topic {
        name: String,
        #[serde(with = "uuid_hex")]
        topic_id: Uuid,
    },
    Partition(PartitionRecord),
    PartitionChange(PartitionChangeRecord),
    /// Removes the topic, its partitions and its config overrides.
    RemoveTopic {
        #[serde(with = "uuid_hex")]
        topic_id: Uuid,
    },
    Config(ConfigRecord),
    /// Hands `[next_producer_id_block - block size, next_producer_id_block)` to `broker_id`; the
    /// cluster never hands out an id below `next_producer_id_block` again.
    ProducerIds {
        broker_id: NodeId,
        broker_epoch: i64,
        next_producer_id_block: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topic_id() -> Uuid {
        let mut id = [0u8; 16];
        id[0] = 0xab;
        id[15] = 0x01;
        Uuid(id)
    }

    #[test]
    fn the_log_format_is_tagged_json_with_hex_topic_ids() {
        let change = MetadataRecord::PartitionChange(PartitionChangeRecord {
            topic_id: topic_id(),
            partition: 2,
            leader: Some(NO_LEADER),
            isr: None,
        });
        assert_eq!(
            serde_json::to_value(&change).unwrap(),
            json!({
                "type": "partition_change",
                "topic_id": "ab000000000000000000000000000001",
                "partition": 2,
                "leader": -1,
            })
        );
        let fence = MetadataRecord::FenceBroker {
            broker_id: 3,
            broker_epoch: 7,
        };
        assert_eq!(
            serde_json::to_value(&fence).unwrap(),
            json!({"type": "fence_broker", "broker_id": 3, "broker_epoch": 7})
        );
        let delete = MetadataRecord::Config(ConfigRecord {
            resource_type: ConfigResourceType::Topic,
            resource_name: "t".into(),
            key: "retention.ms".into(),
            value: None,
        });
        assert_eq!(
            serde_json::to_value(&delete).unwrap(),
            json!({"type": "config", "resource_type": "topic", "resource_name": "t",
                   "key": "retention.ms", "value": null})
        );
    }

    #[test]
    fn every_record_reads_back_as_itself() {
        let records = vec![
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: 1,
                broker_epoch: 4,
                incarnation_id: Uuid([9; 16]),
                listeners: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "::1".into(),
                    port: 9092,
                    security_protocol: "PLAINTEXT".into(),
                }],
                rack: Some("r1".into()),
                fenced: true,
            }),
            MetadataRecord::UnfenceBroker {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::UnregisterBroker {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id: topic_id(),
            },
            MetadataRecord::Partition(PartitionRecord {
                topic_id: topic_id(),
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            }),
            MetadataRecord::PartitionChange(PartitionChangeRecord {
                topic_id: topic_id(),
                partition: 0,
                leader: None,
                isr: Some(vec![1]),
            }),
            MetadataRecord::RemoveTopic {
                topic_id: topic_id(),
            },
            MetadataRecord::ProducerIds {
                broker_id: 2,
                broker_epoch: 5,
                next_producer_id_block: 2000,
            },
        ];
        let text = serde_json::to_string(&records).unwrap();
        let back: Vec<MetadataRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, records);
    }

    #[test]
    fn a_malformed_topic_id_is_refused() {
        let bad = json!({"type": "remove_topic", "topic_id": "xyz"});
        assert!(serde_json::from_value::<MetadataRecord>(bad).is_err());
        let unknown = json!({"type": "delete_everything"});
        assert!(serde_json::from_value::<MetadataRecord>(unknown).is_err());
    }
}
