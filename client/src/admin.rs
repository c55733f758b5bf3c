//! `Admin`: topics, topic configs, consumer groups and offsets, managed over the Kafka protocol.
//! Requests go to the broker that must answer; retriable failures retry until request.timeout.ms.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::api::Request;
use sluice_protocol::messages::*;
use sluice_protocol::wire::Uuid;
use sluice_protocol::ErrorCode;

use crate::cluster::{BrokerInfo, Cluster, Lane};
use crate::config::{ClientConfig, CommonConfig, COMMON_KEYS};
use crate::connection::Connection;
use crate::error::{ClientError, Result};

const RESOURCE_TOPIC: i8 = 2;
const KEY_TYPE_GROUP: i8 = 0;
/// Retries start at retry.backoff.ms and double up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A topic to create. -1 for partitions or replication factor means the broker's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with the broker's default partition count and replication factor.
    pub fn new(name: impl Into<String>) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions: -1,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    pub fn partitions(mut self, partitions: i32) -> NewTopic {
        self.partitions = partitions;
        self
    }

    pub fn replication_factor(mut self, replication_factor: i16) -> NewTopic {
        self.replication_factor = replication_factor;
        self
    }

    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// What the broker created. Before CreateTopics v5 the broker does not say, and the counts
/// are the requested ones (possibly -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    pub name: String,
    pub id: Uuid,
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub id: Uuid,
    pub internal: bool,
    /// Sorted by partition.
    pub partitions: Vec<PartitionDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: i32,
    /// `None` while the partition has no leader.
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller: Option<i32>,
    pub brokers: Vec<BrokerInfo>,
}

/// Where a config value comes from, by Kafka's `ConfigSource` numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    DynamicBrokerLogger,
    ClientMetrics,
    Group,
}

impl ConfigSource {
    pub fn from_i8(v: i8) -> ConfigSource {
        match v {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            _ => ConfigSource::Unknown,
        }
    }

    /// Kafka's spelling, as its tools print it.
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Unknown => "UNKNOWN",
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            ConfigSource::ClientMetrics => "CLIENT_METRICS_CONFIG",
            ConfigSource::Group => "GROUP_CONFIG",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for sensitive values and for unset keys without a default.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    /// Whether the value is the built-in default (nothing set it).
    pub default: bool,
    /// Where else the key is set, most specific first.
    pub synonyms: Vec<ConfigSynonym>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterConfigOpType {
    Set,
    Delete,
    /// Adds to a list-valued config.
    Append,
    /// Removes from a list-valued config.
    Subtract,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op: AlterConfigOpType,
    pub value: Option<String>,
}

impl AlterConfigOp {
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> AlterConfigOp {
        AlterConfigOp {
            name: name.into(),
            op: AlterConfigOpType::Set,
            value: Some(value.into()),
        }
    }

    pub fn delete(name: impl Into<String>) -> AlterConfigOp {
        AlterConfigOp {
            name: name.into(),
            op: AlterConfigOpType::Delete,
            value: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// "consumer" for consumer groups; empty for groups that only hold committed offsets.
    pub protocol_type: String,
    /// Known from ListGroups v4 on.
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// Stable, PreparingRebalance, CompletingRebalance, Empty, or Dead for a group that
    /// does not exist.
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen for the current generation (set while Stable).
    pub protocol: String,
    pub members: Vec<MemberDescription>,
    pub coordinator: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// The member's partitions, sorted, for consumer groups whose assignment could be read.
    pub assignment: Option<Vec<(String, i32)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: Option<String>,
}

/// Which offset `list_offsets` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// -1 when no record has a timestamp at or after the one asked for.
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

type TopicPartition = (String, i32);

/// One try of a retried operation: whether an earlier one failed (so cached routing may be
/// stale) and how long this one may wait for an answer.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    retry: bool,
    timeout: Duration,
}

struct Deadline {
    at: Instant,
    backoff: Duration,
}

impl Deadline {
    fn remaining(&self) -> Duration {
        self.at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    /// Waits before the next attempt; false when the budget would run out first.
    async fn wait(&mut self) -> bool {
        if Instant::now() + self.backoff >= self.at {
            return false;
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        true
    }
}

/// Worth another attempt. An absent topic is an answer for an admin, not a transient state,
/// and a moved controller is found again by refreshing metadata.
fn retriable(e: &ClientError) -> bool {
    match e.code() {
        Some(ErrorCode::UnknownTopicOrPartition) => false,
        Some(ErrorCode::NotController) => true,
        _ => e.is_retriable(),
    }
}

fn is_coordinator_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::CoordinatorNotAvailable
    )
}

fn check(code: i16, message: Option<String>, context: impl FnOnce() -> String) -> Result<()> {
    let code = ErrorCode::from_code(code);
    if code.is_ok() {
        Ok(())
    } else {
        Err(ClientError::broker(
            code,
            message.filter(|m| !m.is_empty()),
            context(),
        ))
    }
}

pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    pub fn new(config: ClientConfig) -> Result<Admin> {
        config.warn_unknown(&[COMMON_KEYS], "admin");
        let common = CommonConfig::from_config(&config, "sluice-admin")?;
        // An admin asking about a topic must never create it as a side effect.
        Ok(Admin {
            cluster: Cluster::new(common, false),
        })
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn deadline(&self) -> Deadline {
        let config = self.cluster.config();
        Deadline {
            at: Instant::now() + config.request_timeout,
            backoff: config.retry_backoff.max(Duration::from_millis(1)),
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the time is spent; the last
    /// error is the one returned.
    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut deadline = self.deadline();
        let mut retry = false;
        loop {
            let a = Attempt {
                retry,
                timeout: deadline.remaining(),
            };
            match attempt(a).await {
                Err(e) if retriable(&e) && deadline.wait().await => {
                    tracing::debug!(error = %e, "admin request: retrying");
                    retry = true;
                }
                other => return other,
            }
        }
    }

    /// Like `with_retries` for requests with an answer per key: keys whose answer is a
    /// retriable error are asked again, the others are settled. The outer error is for a
    /// failure of the whole request.
    async fn per_key<K, T, F, Fut>(
        &self,
        keys: impl IntoIterator<Item = K>,
        mut attempt: F,
    ) -> Result<BTreeMap<K, Result<T>>>
    where
        K: Ord + Clone + std::fmt::Debug,
        F: FnMut(Vec<K>, Attempt) -> Fut,
        Fut: Future<Output = Result<Vec<(K, Result<T>)>>>,
    {
        let all: BTreeSet<K> = keys.into_iter().collect();
        let mut pending: Vec<K> = all.iter().cloned().collect();
        let mut done = BTreeMap::new();
        let mut deadline = self.deadline();
        let mut retry = false;
        while !pending.is_empty() {
            let a = Attempt {
                retry,
                timeout: deadline.remaining(),
            };
            retry = true;
            let results = match attempt(pending.clone(), a).await {
                Ok(r) => r,
                Err(e) if retriable(&e) && deadline.wait().await => {
                    tracing::debug!(error = %e, "admin request: retrying");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut again = Vec::new();
            for (k, r) in results {
                if !pending.contains(&k) || done.contains_key(&k) {
                    continue;
                }
                match r {
                    Err(e) if retriable(&e) => again.push((k, e)),
                    r => {
                        done.insert(k, r);
                    }
                }
            }
            if again.is_empty() || !deadline.wait().await {
                done.extend(again.into_iter().map(|(k, e)| (k, Err(e))));
                break;
            }
            tracing::debug!(keys = ?again.iter().map(|(k, _)| k).collect::<Vec<_>>(), "admin request: retrying keys");
            pending = again.into_iter().map(|(k, _)| k).collect();
        }
        for k in all {
            let missing = format!("the broker did not answer for {k:?}");
            done.entry(k)
                .or_insert_with(|| Err(ClientError::Invalid(missing)));
        }
        Ok(done)
    }

    async fn any<R: Request>(&self, request: &R, timeout: Duration) -> Result<R::Response> {
        let conn = self.cluster.any_connection().await?;
        conn.send(request, timeout).await
    }

    async fn controller(&self, a: Attempt) -> Result<Arc<Connection>> {
        if a.retry {
            self.cluster.refresh(Some(&[])).await?;
        }
        self.cluster.controller().await
    }

    // ---- topics ----------------------------------------------------------------------------

    /// Creates topics, each independently: one that fails does not stop the others.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Result<BTreeMap<String, Result<CreatedTopic>>> {
        let by_name: BTreeMap<&str, &NewTopic> =
            topics.iter().map(|t| (t.name.as_str(), t)).collect();
        self.per_key(by_name.keys().map(|n| n.to_string()), |names, a| {
            let by_name = &by_name;
            async move {
                let request = CreateTopicsRequest {
                    topics: names
                        .iter()
                        .map(|n| {
                            let t = by_name[n.as_str()];
                            CreateTopicsRequestTopic {
                                name: t.name.clone(),
                                num_partitions: t.partitions,
                                replication_factor: t.replication_factor,
                                assignments: Vec::new(),
                                configs: t
                                    .configs
                                    .iter()
                                    .map(|(k, v)| CreateTopicsRequestConfig {
                                        name: k.clone(),
                                        value: Some(v.clone()),
                                    })
                                    .collect(),
                            }
                        })
                        .collect(),
                    timeout_ms: a.timeout.as_millis().min(i32::MAX as u128) as i32,
                    validate_only,
                };
                let conn = self.controller(a).await?;
                let (version, response) = conn.send_versioned(&request, a.timeout).await?;
                Ok(response
                    .topics
                    .into_iter()
                    .map(|t| {
                        let name = t.name.clone();
                        let asked = by_name.get(name.as_str());
                        let result = check(t.error_code, t.error_message, || {
                            format!("creating topic {name}")
                        })
                        .map(|()| CreatedTopic {
                            name: t.name,
                            id: t.topic_id,
                            partitions: if version >= 5 {
                                t.num_partitions
                            } else {
                                asked.map_or(-1, |a| a.partitions)
                            },
                            replication_factor: if version >= 5 {
                                t.replication_factor
                            } else {
                                asked.map_or(-1, |a| a.replication_factor)
                            },
                        });
                        (name, result)
                    })
                    .collect())
            }
        })
        .await
    }

    pub async fn delete_topics(&self, names: &[String]) -> Result<BTreeMap<String, Result<()>>> {
        self.per_key(names.iter().cloned(), |names, a| async move {
            let request = DeleteTopicsRequest {
                topics: names
                    .iter()
                    .map(|n| DeleteTopicsRequestTopic {
                        name: Some(n.clone()),
                        topic_id: Uuid::ZERO,
                    })
                    .collect(),
                topic_names: names.clone(),
                timeout_ms: a.timeout.as_millis().min(i32::MAX as u128) as i32,
            };
            let conn = self.controller(a).await?;
            let response = conn.send(&request, a.timeout).await?;
            Ok(response
                .responses
                .into_iter()
                .filter_map(|t| {
                    let name = t.name?;
                    self.cluster.invalidate(&name);
                    let result = check(t.error_code, t.error_message, || {
                        format!("deleting topic {name}")
                    });
                    Some((name, result))
                })
                .collect())
        })
        .await
    }

    /// Raises each topic's partition count to the given total (`topics --alter --partitions`);
    /// the broker places the new partitions.
    pub async fn create_partitions(
        &self,
        counts: &BTreeMap<String, i32>,
        validate_only: bool,
    ) -> Result<BTreeMap<String, Result<()>>> {
        self.per_key(counts.keys().cloned(), |names, a| async move {
            let request = CreatePartitionsRequest {
                topics: names
                    .iter()
                    .map(|n| CreatePartitionsTopic {
                        name: n.clone(),
                        count: counts[n],
                        assignments: None,
                    })
                    .collect(),
                timeout_ms: a.timeout.as_millis().min(i32::MAX as u128) as i32,
                validate_only,
            };
            let conn = self.controller(a).await?;
            let response = conn.send(&request, a.timeout).await?;
            Ok(response
                .results
                .into_iter()
                .map(|t| {
                    self.cluster.invalidate(&t.name);
                    let name = t.name;
                    let result = check(t.error_code, t.error_message, || {
                        format!("adding partitions to topic {name}")
                    });
                    (name, result)
                })
                .collect())
        })
        .await
    }

    /// Every topic's name and id, sorted by name; internal ones (`__consumer_offsets`) only
    /// if asked for.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicListing>> {
        let snapshot = self
            .with_retries(|_| async { self.cluster.refresh(None).await })
            .await?;
        Ok(snapshot
            .topics
            .into_values()
            .filter(|t| include_internal || !t.internal)
            .map(|t| TopicListing {
                name: t.name.clone(),
                id: t.id,
                internal: t.internal,
            })
            .collect())
    }

    pub async fn describe_topics(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, Result<TopicDescription>>> {
        self.per_key(names.iter().cloned(), |names, a| async move {
            let request = MetadataRequest {
                topics: Some(
                    names
                        .iter()
                        .map(|n| MetadataRequestTopic {
                            topic_id: Uuid::ZERO,
                            name: Some(n.clone()),
                        })
                        .collect(),
                ),
                allow_auto_topic_creation: false,
                ..Default::default()
            };
            let response = self.any(&request, a.timeout).await?;
            Ok(response
                .topics
                .into_iter()
                .filter_map(|t| {
                    let name = t.name?;
                    let result = check(t.error_code, None, || format!("describing topic {name}"))
                        .map(|()| {
                            let mut partitions: Vec<PartitionDescription> = t
                                .partitions
                                .into_iter()
                                .map(|p| PartitionDescription {
                                    partition: p.partition_index,
                                    leader: (p.leader_id >= 0).then_some(p.leader_id),
                                    replicas: p.replica_nodes,
                                    isr: p.isr_nodes,
                                })
                                .collect();
                            partitions.sort_by_key(|p| p.partition);
                            TopicDescription {
                                name: name.clone(),
                                id: t.topic_id,
                                internal: t.is_internal,
                                partitions,
                            }
                        });
                    Some((name, result))
                })
                .collect())
        })
        .await
    }

    /// The cluster's id, controller and brokers, from Metadata (DescribeCluster is not
    /// spoken by this client yet).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let snapshot = self
            .with_retries(|_| async { self.cluster.refresh(Some(&[])).await })
            .await?;
        Ok(ClusterDescription {
            cluster_id: snapshot.cluster_id,
            controller: (snapshot.controller_id >= 0).then_some(snapshot.controller_id),
            brokers: snapshot.brokers.into_values().collect(),
        })
    }

    // ---- configs ---------------------------------------------------------------------------

    /// A topic's configs: the ones set on it and the defaults it inherits.
    pub async fn describe_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest {
            resources: vec![DescribeConfigsRequestResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.to_string(),
                configuration_keys: None,
            }],
            include_synonyms: true,
            include_documentation: false,
        };
        let response = self.with_retries(|a| self.any(&request, a.timeout)).await?;
        let result = response
            .results
            .into_iter()
            .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name == topic)
            .ok_or_else(|| {
                ClientError::Invalid(format!("the broker did not describe topic {topic}"))
            })?;
        check(result.error_code, result.error_message, || {
            format!("describing the configs of topic {topic}")
        })?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| {
                let source = ConfigSource::from_i8(c.config_source);
                ConfigEntry {
                    name: c.name,
                    value: c.value,
                    source,
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                    // v0 has a flag; later versions say it with the source.
                    default: c.is_default || source == ConfigSource::Default,
                    synonyms: c
                        .synonyms
                        .into_iter()
                        .map(|s| ConfigSynonym {
                            name: s.name,
                            value: s.value,
                            source: ConfigSource::from_i8(s.source),
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// Changes single config keys of a topic and leaves the others alone.
    pub async fn incremental_alter_configs(
        &self,
        topic: &str,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        let request = IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.to_string(),
                configs: ops
                    .iter()
                    .map(|o| AlterableConfig {
                        name: o.name.clone(),
                        config_operation: match o.op {
                            AlterConfigOpType::Set => 0,
                            AlterConfigOpType::Delete => 1,
                            AlterConfigOpType::Append => 2,
                            AlterConfigOpType::Subtract => 3,
                        },
                        value: o.value.clone(),
                    })
                    .collect(),
            }],
            validate_only: false,
        };
        let response = self.with_retries(|a| self.any(&request, a.timeout)).await?;
        let result = response
            .responses
            .into_iter()
            .find(|r| r.resource_type == RESOURCE_TOPIC && r.resource_name == topic)
            .ok_or_else(|| {
                ClientError::Invalid(format!("the broker did not answer for topic {topic}"))
            })?;
        check(result.error_code, result.error_message, || {
            format!("altering the configs of topic {topic}")
        })
    }

    // ---- offsets ---------------------------------------------------------------------------

    /// The earliest, latest or by-timestamp offset of each partition, asked of its leader.
    pub async fn list_offsets(
        &self,
        partitions: &[(String, i32)],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<(String, i32), Result<ListedOffset>>> {
        self.per_key(partitions.iter().cloned(), |tps, a| async move {
            let mut out = Vec::new();
            let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            if a.retry {
                // Once per topic: the first lookup refetches it, the others reuse that.
                let topics: BTreeSet<&str> = tps.iter().map(|(t, _)| t.as_str()).collect();
                for t in topics {
                    self.cluster.invalidate(t);
                }
            }
            for tp in tps {
                match self.cluster.leader(&tp.0, tp.1).await {
                    Ok((leader, _)) => by_leader.entry(leader).or_default().push(tp),
                    Err(e) => out.push((tp, Err(e))),
                }
            }
            for (leader, tps) in by_leader {
                match self.list_offsets_on(leader, &tps, spec, a.timeout).await {
                    Ok(results) => out.extend(results),
                    // The other leaders' answers stand; these partitions are asked again.
                    Err(e) if retriable(&e) => {
                        let message = e.to_string();
                        out.extend(tps.into_iter().map(|tp| {
                            let e = ClientError::broker(
                                ErrorCode::NetworkException,
                                Some(message.clone()),
                                format!("ListOffsets to broker {leader}"),
                            );
                            (tp, Err(e))
                        }));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list_offsets_on(
        &self,
        leader: i32,
        tps: &[TopicPartition],
        spec: OffsetSpec,
        timeout: Duration,
    ) -> Result<Vec<(TopicPartition, Result<ListedOffset>)>> {
        let mut topics: BTreeMap<&str, Vec<ListOffsetsRequestPartition>> = BTreeMap::new();
        for (topic, partition) in tps {
            topics
                .entry(topic)
                .or_default()
                .push(ListOffsetsRequestPartition {
                    partition_index: *partition,
                    current_leader_epoch: -1,
                    timestamp: spec.wire(),
                    ..Default::default()
                });
        }
        let request = ListOffsetsRequest {
            replica_id: -1,
            isolation_level: 0,
            topics: topics
                .into_iter()
                .map(|(name, partitions)| ListOffsetsRequestTopic {
                    name: name.to_string(),
                    partitions,
                })
                .collect(),
        };
        let conn = self.cluster.connection(leader, Lane::Default).await?;
        let response = conn.send(&request, timeout).await?;
        let mut out = Vec::new();
        for t in response.topics {
            for p in t.partitions {
                let code = ErrorCode::from_code(p.error_code);
                if crate::error::needs_metadata_refresh(code) {
                    self.cluster.invalidate(&t.name);
                }
                let result = check(p.error_code, None, || {
                    format!("listing offsets of {}-{}", t.name, p.partition_index)
                })
                .map(|()| ListedOffset {
                    offset: p.offset,
                    timestamp: p.timestamp,
                    leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                });
                out.push(((t.name.clone(), p.partition_index), result));
            }
        }
        Ok(out)
    }

    // ---- groups ----------------------------------------------------------------------------

    /// The connection to `group`'s coordinator, found with FindCoordinator.
    async fn coordinator(&self, group: &str, timeout: Duration) -> Result<(i32, Arc<Connection>)> {
        // Both spellings are filled in; the encoder writes the one of the version it uses.
        let request = FindCoordinatorRequest {
            key: group.to_string(),
            key_type: KEY_TYPE_GROUP,
            coordinator_keys: vec![group.to_string()],
        };
        let conn = self.cluster.any_connection().await?;
        let (version, response) = conn.send_versioned(&request, timeout).await?;
        let (code, message, node) = if version >= 4 {
            let c = response
                .coordinators
                .into_iter()
                .find(|c| c.key == group)
                .ok_or_else(|| {
                    ClientError::Invalid(format!("no coordinator in the answer for group {group}"))
                })?;
            (c.error_code, c.error_message, c.node_id)
        } else {
            (
                response.error_code,
                response.error_message,
                response.node_id,
            )
        };
        check(code, message, || {
            format!("finding the coordinator of group {group}")
        })?;
        let conn = match self.cluster.connection(node, Lane::Default).await {
            // A broker the cached metadata does not know yet.
            Err(ClientError::Invalid(_)) => {
                self.cluster.refresh(Some(&[])).await?;
                self.cluster.connection(node, Lane::Default).await?
            }
            other => other?,
        };
        Ok((node, conn))
    }

    /// Sends `request` to `group`'s coordinator, finding it again while the answer (read by
    /// `error_of` from the response and its version) says it moved or is loading.
    async fn on_coordinator<R, E>(
        &self,
        group: &str,
        request: &R,
        error_of: E,
    ) -> Result<(i32, i16, R::Response)>
    where
        R: Request,
        E: Fn(&R::Response, i16) -> ErrorCode,
    {
        let error_of = &error_of;
        self.with_retries(|a| async move {
            let (node, conn) = self.coordinator(group, a.timeout).await?;
            let (version, response) = conn.send_versioned(request, a.timeout).await?;
            let code = error_of(&response, version);
            if is_coordinator_error(code) {
                return Err(ClientError::broker(
                    code,
                    None,
                    format!("{} for group {group}", R::NAME),
                ));
            }
            Ok((node, version, response))
        })
        .await
    }

    /// Every group of every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let mut groups = self
            .with_retries(|a| async move {
                let snapshot = self.cluster.refresh(Some(&[])).await?;
                let mut groups = Vec::new();
                for node in snapshot.brokers.keys() {
                    let conn = self.cluster.connection(*node, Lane::Default).await?;
                    let (version, response) = conn
                        .send_versioned(&ListGroupsRequest::default(), a.timeout)
                        .await?;
                    check(response.error_code, None, || {
                        format!("listing the groups of broker {node}")
                    })?;
                    groups.extend(response.groups.into_iter().map(|g| GroupListing {
                        group_id: g.group_id,
                        protocol_type: g.protocol_type,
                        state: (version >= 4).then_some(g.group_state),
                    }));
                }
                Ok(groups)
            })
            .await?;
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// Each group's state and members. A group that does not exist is described as Dead,
    /// as Kafka does.
    pub async fn describe_groups(
        &self,
        groups: &[String],
    ) -> Result<BTreeMap<String, Result<GroupDescription>>> {
        self.per_key(groups.iter().cloned(), |groups, a| async move {
            let mut out = Vec::new();
            for group in groups {
                let result = self.describe_group(&group, a).await;
                out.push((group, result));
            }
            Ok(out)
        })
        .await
    }

    async fn describe_group(&self, group: &str, a: Attempt) -> Result<GroupDescription> {
        let request = DescribeGroupsRequest {
            groups: vec![group.to_string()],
            include_authorized_operations: false,
        };
        let (node, conn) = self.coordinator(group, a.timeout).await?;
        let response = conn.send(&request, a.timeout).await?;
        let g = response
            .groups
            .into_iter()
            .find(|g| g.group_id == group)
            .ok_or_else(|| {
                ClientError::Invalid(format!("the broker did not describe group {group}"))
            })?;
        check(g.error_code, None, || format!("describing group {group}"))?;
        let consumer = g.protocol_type == "consumer";
        let members = g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                assignment: if consumer {
                    decode_assignment(&m.member_assignment)
                } else {
                    None
                },
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                host: m.client_host,
            })
            .collect();
        Ok(GroupDescription {
            group_id: g.group_id,
            state: g.group_state,
            protocol_type: g.protocol_type,
            protocol: g.protocol_data,
            members,
            coordinator: node,
        })
    }

    /// Deletes empty groups with their committed offsets.
    pub async fn delete_groups(&self, groups: &[String]) -> Result<BTreeMap<String, Result<()>>> {
        self.per_key(groups.iter().cloned(), |groups, a| async move {
            let mut out = Vec::new();
            for group in groups {
                let result = async {
                    let (_, conn) = self.coordinator(&group, a.timeout).await?;
                    let request = DeleteGroupsRequest {
                        groups_names: vec![group.clone()],
                    };
                    let response = conn.send(&request, a.timeout).await?;
                    let r = response
                        .results
                        .into_iter()
                        .find(|r| r.group_id == group)
                        .ok_or_else(|| {
                            ClientError::Invalid(format!(
                                "the broker did not answer for group {group}"
                            ))
                        })?;
                    check(r.error_code, None, || format!("deleting group {group}"))
                }
                .await;
                out.push((group, result));
            }
            Ok(out)
        })
        .await
    }

    /// The group's committed offsets; partitions without one are left out.
    pub async fn list_group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), CommittedOffset>> {
        let request = OffsetFetchRequest {
            group_id: group.to_string(),
            topics: None,
            groups: vec![OffsetFetchRequestGroup {
                group_id: group.to_string(),
                member_id: None,
                member_epoch: -1,
                topics: None,
            }],
            require_stable: false,
        };
        let (_, version, response) = self
            .on_coordinator(group, &request, |r, v| {
                ErrorCode::from_code(if v >= 8 {
                    r.groups.first().map_or(0, |g| g.error_code)
                } else {
                    r.error_code
                })
            })
            .await?;
        let (code, topics) = if version >= 8 {
            let g = response
                .groups
                .into_iter()
                .find(|g| g.group_id == group)
                .unwrap_or_default();
            (g.error_code, g.topics)
        } else {
            (response.error_code, response.topics)
        };
        check(code, None, || {
            format!("fetching the offsets of group {group}")
        })?;
        let mut out = BTreeMap::new();
        for t in topics {
            for p in t.partitions {
                check(p.error_code, None, || {
                    format!(
                        "fetching the offset of {}-{} for group {group}",
                        t.name, p.partition_index
                    )
                })?;
                if p.committed_offset < 0 {
                    continue;
                }
                out.insert(
                    (t.name.clone(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: (p.committed_leader_epoch >= 0)
                            .then_some(p.committed_leader_epoch),
                        metadata: p.metadata,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Commits `offsets` for a group from outside it, which the coordinator accepts only
    /// while the group has no members; otherwise its error (UNKNOWN_MEMBER_ID, say) is
    /// returned. All or nothing from the caller's view: the first partition error is the
    /// result.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<()> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            topics
                .entry(topic)
                .or_default()
                .push(OffsetCommitRequestPartition {
                    partition_index: *partition,
                    committed_offset: *offset,
                    committed_leader_epoch: -1,
                    commit_timestamp: -1,
                    committed_metadata: Some(String::new()),
                });
        }
        let request = OffsetCommitRequest {
            group_id: group.to_string(),
            generation_id_or_member_epoch: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            topics: topics
                .into_iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic {
                    name: name.to_string(),
                    partitions,
                })
                .collect(),
        };
        let first_error = |r: &OffsetCommitResponse| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
                .find(|(_, p)| p.error_code != 0)
                .map(|(t, p)| (t.name.clone(), p.partition_index, p.error_code))
        };
        let (_, _, response) = self
            .on_coordinator(group, &request, |r, _| {
                first_error(r).map_or(ErrorCode::None, |(_, _, c)| ErrorCode::from_code(c))
            })
            .await?;
        match first_error(&response) {
            None => Ok(()),
            Some((topic, partition, code)) => check(code, None, || {
                format!("committing the offset of {topic}-{partition} for group {group}")
            }),
        }
    }

    /// Deletes a group's committed offsets of some partitions. The group must be empty or
    /// no longer subscribed to their topics (else GROUP_SUBSCRIBED_TO_TOPIC for them).
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), Result<()>>> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            topics.entry(topic).or_default().push(*partition);
        }
        let request = OffsetDeleteRequest {
            group_id: group.to_string(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| OffsetDeleteRequestTopic {
                    name: name.to_string(),
                    partitions: partitions
                        .into_iter()
                        .map(|partition_index| OffsetDeleteRequestPartition { partition_index })
                        .collect(),
                })
                .collect(),
        };
        let (_, _, response) = self
            .on_coordinator(group, &request, |r, _| ErrorCode::from_code(r.error_code))
            .await?;
        check(response.error_code, None, || {
            format!("deleting offsets of group {group}")
        })?;
        let mut out = BTreeMap::new();
        for t in response.topics {
            for p in t.partitions {
                let result = check(p.error_code, None, || {
                    format!(
                        "deleting the offset of {}-{} for group {group}",
                        t.name, p.partition_index
                    )
                });
                out.insert((t.name.clone(), p.partition_index), result);
            }
        }
        Ok(out)
    }
}

/// Reads the partitions of a ConsumerProtocolAssignment: int16 version, then an array of
/// (topic string, int32 partitions array). What follows (user data, and whatever later
/// versions append) is not needed, so any version reads by this prefix. Empty bytes are a
/// member without partitions yet.
fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
    let mut r = Reader(bytes);
    if r.0.is_empty() {
        return Some(Vec::new());
    }
    if r.i16()? < 0 {
        return None;
    }
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let topic = String::from_utf8(r.take(len)?.to_vec()).ok()?;
        let partitions = r.i32()?;
        for _ in 0..partitions.max(0) {
            out.push((topic.clone(), r.i32()?));
        }
    }
    out.sort();
    Some(out)
}

/// Big-endian reads that answer `None` past the end, so a short or garbled assignment reads
/// as unknown instead of failing the whole description.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A topic id as Kafka prints it: URL-safe base64 without padding (22 characters).
pub fn format_topic_id(id: &Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in id.0.chunks(3) {
        let mut block = [0u8; 3];
        block[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, block[0], block[1], block[2]]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(version: i16, topics: &[(&str, &[i32])], trailer: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend(trailer);
        b
    }

    #[test]
    fn assignments_of_any_version_read_by_their_prefix() {
        let v0 = assignment(0, &[("b", &[1]), ("a", &[2, 0])], &(-1i32).to_be_bytes());
        assert_eq!(
            decode_assignment(&v0),
            Some(vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)])
        );
        // A later version with more after the user data.
        let v3 = assignment(3, &[("t", &[5])], &[0, 0, 0, 2, 9, 9, 1, 2, 3]);
        assert_eq!(decode_assignment(&v3), Some(vec![("t".into(), 5)]));
        assert_eq!(decode_assignment(&[]), Some(vec![]));
        // Cut short in the middle of a partition list.
        assert_eq!(decode_assignment(&v0[..v0.len() - 7]), None);
        assert_eq!(decode_assignment(&assignment(-1, &[], &[])), None);
    }

    #[test]
    fn topic_ids_print_as_kafka_prints_them() {
        assert_eq!(format_topic_id(&Uuid::ZERO), "AAAAAAAAAAAAAAAAAAAAAA");
        let mut id = [0u8; 16];
        id[0] = 0xfb;
        id[15] = 0xff;
        let s = format_topic_id(&Uuid(id));
        assert_eq!(s.len(), 22);
        assert!(s.starts_with("-w"), "{s}");
        assert!(s.ends_with("_w"), "{s}");
    }
}
