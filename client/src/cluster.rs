//! `Cluster`: what a client knows about the cluster (brokers, topics, partition leaders) and
//! its connections to the brokers, reused by every request. Stale knowledge is refreshed on
//! demand: callers invalidate a topic when a broker says its leadership moved.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sluice_protocol::api::Request;
use sluice_protocol::messages::{MetadataRequest, MetadataRequestTopic, MetadataResponse};
use sluice_protocol::wire::Uuid;
use sluice_protocol::ErrorCode;
use tokio::sync::Mutex;

use crate::config::CommonConfig;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// Which connection to a broker a request travels on. A broker answers each connection's
/// requests in order, so a fetch long poll or a JoinGroup parked for a rebalance would hold
/// back everything queued behind it: those travel on lanes of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Default,
    Fetch,
    Group,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// -1 while there is no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: ErrorCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct MetadataSnapshot {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Shared, so the producer's per-record lookup costs a reference count, not a copy.
    pub topics: BTreeMap<String, Arc<TopicInfo>>,
}

struct Cached {
    snapshot: MetadataSnapshot,
    /// When each topic was last fetched; a missing entry means "refresh before use".
    fetched: HashMap<String, Instant>,
}

pub struct Cluster {
    config: CommonConfig,
    /// Auto-create topics on metadata requests (the producer's allow.auto.create.topics).
    auto_create: bool,
    cached: RwLock<Cached>,
    connections: Mutex<HashMap<(i32, Lane), Arc<Connection>>>,
    /// Bootstrap connections, by address, until the brokers' ids are known.
    bootstrap: Mutex<HashMap<String, Arc<Connection>>>,
}

impl Cluster {
    pub fn new(config: CommonConfig, auto_create: bool) -> Arc<Cluster> {
        Arc::new(Cluster {
            config,
            auto_create,
            cached: RwLock::new(Cached {
                snapshot: MetadataSnapshot {
                    controller_id: -1,
                    ..Default::default()
                },
                fetched: HashMap::new(),
            }),
            connections: Mutex::new(HashMap::new()),
            bootstrap: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &CommonConfig {
        &self.config
    }

    /// A copy of what is known now (no network).
    pub fn snapshot(&self) -> MetadataSnapshot {
        self.cached.read().expect("metadata lock").snapshot.clone()
    }

    /// The connection to `node` on `lane`, opened (or reopened) as needed.
    pub async fn connection(&self, node: i32, lane: Lane) -> Result<Arc<Connection>> {
        let mut conns = self.connections.lock().await;
        if let Some(c) = conns.get(&(node, lane)) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let addr = {
            let cached = self.cached.read().expect("metadata lock");
            cached
                .snapshot
                .brokers
                .get(&node)
                .map(BrokerInfo::addr)
                .ok_or_else(|| ClientError::Invalid(format!("no broker with id {node} is known")))?
        };
        let conn = Arc::new(
            Connection::connect(
                &addr,
                &self.config.client_id,
                self.config.connection_setup_timeout,
            )
            .await?,
        );
        conns.insert((node, lane), conn.clone());
        Ok(conn)
    }

    /// A connection to any live broker: a known one first, else a bootstrap server.
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        let known: Vec<i32> = self.snapshot().brokers.keys().copied().collect();
        for node in known {
            if let Ok(c) = self.connection(node, Lane::Default).await {
                return Ok(c);
            }
        }
        let mut boot = self.bootstrap.lock().await;
        let mut tried = Vec::new();
        for addr in &self.config.bootstrap_servers {
            if let Some(c) = boot.get(addr) {
                if !c.is_closed() {
                    return Ok(c.clone());
                }
            }
            match Connection::connect(
                addr,
                &self.config.client_id,
                self.config.connection_setup_timeout,
            )
            .await
            {
                Ok(c) => {
                    let c = Arc::new(c);
                    boot.insert(addr.clone(), c.clone());
                    return Ok(c);
                }
                Err(e) => tried.push(format!("{addr}: {e}")),
            }
        }
        Err(ClientError::NoBrokers(tried.join("; ")))
    }

    /// Sends `request` to any broker, retrying on another one if the connection fails.
    pub async fn send_any<R: Request>(&self, request: &R) -> Result<R::Response> {
        let conn = self.any_connection().await?;
        match conn.send(request, self.config.request_timeout).await {
            Err(e @ (ClientError::Disconnected(_) | ClientError::Io { .. })) => {
                tracing::debug!(error = %e, "retrying on another broker");
                let conn = self.any_connection().await?;
                conn.send(request, self.config.request_timeout).await
            }
            other => other,
        }
    }

    /// Fetches metadata for `topics` (every topic if `None`) and merges it into the cache.
    pub async fn refresh(&self, topics: Option<&[String]>) -> Result<MetadataSnapshot> {
        let request = MetadataRequest {
            topics: topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic {
                        topic_id: Uuid::ZERO,
                        name: Some(t.clone()),
                    })
                    .collect()
            }),
            allow_auto_topic_creation: self.auto_create,
            ..Default::default()
        };
        let response = self.send_any(&request).await?;
        Ok(self.merge(response, topics.is_none()))
    }

    fn merge(&self, response: MetadataResponse, all_topics: bool) -> MetadataSnapshot {
        let mut cached = self.cached.write().expect("metadata lock");
        let now = Instant::now();
        let snap = &mut cached.snapshot;
        snap.cluster_id = response.cluster_id;
        snap.controller_id = response.controller_id;
        snap.brokers = response
            .brokers
            .into_iter()
            .map(|b| {
                (
                    b.node_id,
                    BrokerInfo {
                        node_id: b.node_id,
                        host: b.host,
                        port: b.port,
                        rack: b.rack,
                    },
                )
            })
            .collect();
        if all_topics {
            snap.topics.clear();
        }
        let mut fetched = Vec::new();
        for t in response.topics {
            let Some(name) = t.name else { continue };
            let error = ErrorCode::from_code(t.error_code);
            if !error.is_ok() {
                // Unknown (or not yet created) topics are forgotten rather than cached.
                snap.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes,
                    isr: p.isr_nodes,
                    error: ErrorCode::from_code(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            fetched.push(name.clone());
            snap.topics.insert(
                name.clone(),
                Arc::new(TopicInfo {
                    name,
                    id: t.topic_id,
                    internal: t.is_internal,
                    partitions,
                }),
            );
        }
        let out = snap.clone();
        for name in fetched {
            cached.fetched.insert(name, now);
        }
        out
    }

    /// A topic's metadata, from the cache while fresh, else fetched. An unknown topic is an
    /// UNKNOWN_TOPIC_OR_PARTITION error.
    pub async fn topic(&self, name: &str) -> Result<Arc<TopicInfo>> {
        if let Some(t) = self.fresh_topic(name) {
            return Ok(t);
        }
        let snap = self.refresh(Some(&[name.to_string()])).await?;
        snap.topics.get(name).cloned().ok_or_else(|| {
            ClientError::broker(
                ErrorCode::UnknownTopicOrPartition,
                None,
                format!("metadata for topic {name}"),
            )
        })
    }

    fn fresh_topic(&self, name: &str) -> Option<Arc<TopicInfo>> {
        let cached = self.cached.read().expect("metadata lock");
        let at = cached.fetched.get(name)?;
        if at.elapsed() > self.config.metadata_max_age {
            return None;
        }
        cached.snapshot.topics.get(name).cloned()
    }

    /// Forgets when `topic` was fetched, so the next lookup asks a broker.
    pub fn invalidate(&self, topic: &str) {
        self.cached
            .write()
            .expect("metadata lock")
            .fetched
            .remove(topic);
    }

    /// The leader of a partition and its epoch, refreshing once if it is unknown.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, i32)> {
        for attempt in 0..2 {
            let t = self.topic(topic).await?;
            let p = t
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .ok_or_else(|| {
                    ClientError::broker(
                        ErrorCode::UnknownTopicOrPartition,
                        None,
                        format!("{topic} has no partition {partition}"),
                    )
                })?;
            if p.leader >= 0 {
                return Ok((p.leader, p.leader_epoch));
            }
            if attempt == 0 {
                self.invalidate(topic);
                tokio::time::sleep(self.config.retry_backoff).await;
            }
        }
        Err(ClientError::broker(
            ErrorCode::LeaderNotAvailable,
            None,
            format!("leader of {topic}-{partition}"),
        ))
    }

    /// A connection to the controller (for admin requests that must go there).
    pub async fn controller(&self) -> Result<Arc<Connection>> {
        let mut snap = self.snapshot();
        if snap.controller_id < 0 || snap.brokers.is_empty() {
            snap = self.refresh(Some(&[])).await?;
        }
        if snap.controller_id >= 0 {
            if let Ok(c) = self.connection(snap.controller_id, Lane::Default).await {
                return Ok(c);
            }
        }
        self.any_connection().await
    }

    /// The request timeout plus `extra` (a long poll's wait, a rebalance's timeout).
    pub fn timeout_with(&self, extra: Duration) -> Duration {
        self.config.request_timeout + extra
    }
}
