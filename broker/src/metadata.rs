//! The standalone broker's cluster metadata: cluster id, topics (id, partition count, configs)
//! and the producer-id high-water mark, persisted as one JSON file in the first log dir.
//! Every change is written to a temporary file, fsynced and renamed, so a crash keeps either the
//! old or the new state, never half of one.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sluice_protocol::wire::Uuid;

use crate::error::{BrokerError, Result};

const FILE_NAME: &str = "sluice-metadata.json";
/// Producer ids are reserved in blocks so the file is written once per block, not per id.
const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMetadata {
    pub name: String,
    #[serde(with = "uuid_hex")]
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    cluster_id: String,
    node_id: i32,
    topics: BTreeMap<String, TopicMetadata>,
    /// Every producer id below this may have been handed out.
    producer_id_limit: i64,
    #[serde(skip)]
    next_producer_id: i64,
}

pub struct MetadataStore {
    path: PathBuf,
    state: RwLock<State>,
}

/// 16 random bytes from the standard library's per-process random hasher keys.
pub fn random_bytes() -> [u8; 16] {
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    out
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    encode_cluster_id(random_bytes())
}

/// The cluster id every node of a quorum derives alike from `controller.quorum.voters` (each
/// `id@host:port`, in id order), so clients see one id whichever broker they ask; Kafka's nodes
/// get theirs from `kafka-storage format`. FNV-1a, 128 bits: stable across builds and platforms.
pub fn cluster_id_for_voters(voters: &[(i32, String)]) -> String {
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut sorted = voters.to_vec();
    sorted.sort();
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for (id, address) in sorted {
        for b in format!("{id}@{address},").bytes() {
            h ^= b as u128;
            h = h.wrapping_mul(PRIME);
        }
    }
    encode_cluster_id(h.to_be_bytes())
}

fn encode_cluster_id(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = u128::from_be_bytes(bytes);
    (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect()
}

impl MetadataStore {
    /// Loads the metadata of `log_dir`, or starts a new cluster there.
    pub fn open(log_dir: &Path, node_id: i32) -> Result<MetadataStore> {
        std::fs::create_dir_all(log_dir)?;
        let path = log_dir.join(FILE_NAME);
        let mut state = match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice::<State>(&data).map_err(|e| {
                BrokerError::Metadata(format!("{} is unreadable: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                cluster_id: new_cluster_id(),
                node_id,
                topics: BTreeMap::new(),
                producer_id_limit: 0,
                next_producer_id: 0,
            },
            Err(e) => return Err(e.into()),
        };
        if state.node_id != node_id {
            return Err(BrokerError::Metadata(format!(
                "{} belongs to node {}, but this broker is node.id={node_id}",
                path.display(),
                state.node_id
            )));
        }
        // Ids below the persisted limit may be in use by producers that wrote before a crash.
        state.next_producer_id = state.producer_id_limit;
        let store = MetadataStore {
            path,
            state: RwLock::new(state),
        };
        store.persist(&store.state.read().unwrap())?;
        Ok(store)
    }

    fn persist(&self, state: &State) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let data =
            serde_json::to_vec_pretty(state).map_err(|e| BrokerError::Metadata(e.to_string()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    pub fn cluster_id(&self) -> String {
        self.state.read().unwrap().cluster_id.clone()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.state.read().unwrap().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMetadata> {
        let state = self.state.read().unwrap();
        state.topics.values().find(|t| t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<TopicMetadata> {
        self.state
            .read()
            .unwrap()
            .topics
            .values()
            .cloned()
            .collect()
    }

    /// Adds a topic; fails if the name is taken.
    pub fn create_topic(&self, topic: TopicMetadata) -> Result<()> {
        let mut state = self.state.write().unwrap();
        if state.topics.contains_key(&topic.name) {
            return Err(BrokerError::TopicAlreadyExists(topic.name));
        }
        let mut next = state.clone();
        next.topics.insert(topic.name.clone(), topic);
        self.persist(&next)?;
        *state = next;
        Ok(())
    }

    /// Replaces a topic's config overrides; the file holds either the old set or the new one.
    pub fn set_topic_configs(&self, name: &str, configs: BTreeMap<String, String>) -> Result<()> {
        let mut state = self.state.write().unwrap();
        let mut next = state.clone();
        next.topics
            .get_mut(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?
            .configs = configs;
        self.persist(&next)?;
        *state = next;
        Ok(())
    }

    /// Raises a topic's partition count; the file holds either the old count or the new one.
    /// Never lowers it: the partitions beyond a lower count would still hold data that no
    /// client could reach.
    pub fn set_topic_partitions(&self, name: &str, partitions: i32) -> Result<()> {
        let mut state = self.state.write().unwrap();
        let mut next = state.clone();
        let topic = next
            .topics
            .get_mut(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        if partitions <= topic.partitions {
            return Err(BrokerError::InvalidPartitions(format!(
                "{name} has {} partitions; the count can only grow",
                topic.partitions
            )));
        }
        topic.partitions = partitions;
        self.persist(&next)?;
        *state = next;
        Ok(())
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata> {
        let mut state = self.state.write().unwrap();
        let mut next = state.clone();
        let removed = next
            .topics
            .remove(name)
            .ok_or_else(|| BrokerError::UnknownTopicOrPartition(name.to_string()))?;
        self.persist(&next)?;
        *state = next;
        Ok(removed)
    }

    /// Hands out a producer id that was never handed out before, even across crashes.
    pub fn next_producer_id(&self) -> Result<i64> {
        let mut state = self.state.write().unwrap();
        if state.next_producer_id >= state.producer_id_limit {
            let mut next = state.clone();
            next.producer_id_limit = state.next_producer_id + PRODUCER_ID_BLOCK;
            self.persist(&next)?;
            state.producer_id_limit = next.producer_id_limit;
        }
        let id = state.next_producer_id;
        state.next_producer_id += 1;
        Ok(id)
    }
}

/// Topic ids as 32 hex digits in the file, readable by a person; the controller's metadata log
/// writes them the same way.
pub(crate) mod uuid_hex {
    use serde::{Deserialize, Deserializer, Serializer};
    use sluice_protocol::wire::Uuid;

    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        let hex: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&hex)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let hex = String::deserialize(d)?;
        let mut id = [0u8; 16];
        if hex.len() != 32 {
            return Err(serde::de::Error::custom("topic id must be 32 hex digits"));
        }
        for (i, byte) in id.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(serde::de::Error::custom)?;
        }
        Ok(Uuid(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            id: Uuid(random_bytes()),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), 1).unwrap();
        let t = topic("a");
        store.create_topic(t.clone()).unwrap();
        assert!(store.create_topic(topic("a")).is_err());
        let first = store.next_producer_id().unwrap();
        let second = store.next_producer_id().unwrap();
        assert_eq!(second, first + 1);
        let cluster = store.cluster_id();
        assert_eq!(cluster.len(), 22);
        drop(store);

        let store = MetadataStore::open(dir.path(), 1).unwrap();
        assert_eq!(store.topic("a"), Some(t));
        assert_eq!(store.cluster_id(), cluster);
        assert!(store.next_producer_id().unwrap() > second);
        let configs: BTreeMap<String, String> =
            [("retention.ms".to_string(), "1000".to_string())].into();
        store.set_topic_configs("a", configs.clone()).unwrap();
        assert!(store.set_topic_configs("missing", configs.clone()).is_err());
        drop(store);

        let store = MetadataStore::open(dir.path(), 1).unwrap();
        assert_eq!(store.topic("a").unwrap().configs, configs);
        store.set_topic_partitions("a", 5).unwrap();
        assert!(store.set_topic_partitions("a", 5).is_err());
        assert!(store.set_topic_partitions("a", 2).is_err());
        assert!(store.set_topic_partitions("missing", 9).is_err());
        drop(store);

        let store = MetadataStore::open(dir.path(), 1).unwrap();
        assert_eq!(store.topic("a").unwrap().partitions, 5);
        assert_eq!(store.topic("a").unwrap().configs, configs);
        assert!(store.topic("missing").is_none());
        store.delete_topic("a").unwrap();
        assert!(store.topic("a").is_none());
        assert!(MetadataStore::open(dir.path(), 2).is_err());
    }

    #[test]
    fn every_voter_derives_the_same_cluster_id() {
        let a = cluster_id_for_voters(&[(1, "h:1".into()), (2, "h:2".into())]);
        let b = cluster_id_for_voters(&[(2, "h:2".into()), (1, "h:1".into())]);
        let other = cluster_id_for_voters(&[(1, "h:1".into()), (2, "h:3".into())]);
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.len(), 22);
    }
}
