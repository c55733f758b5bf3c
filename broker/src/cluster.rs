//! Cluster mode of a broker process: its registration and heartbeats with the controller quorum,
//! turning each committed image into replica roles, and ISR changes sent as AlterPartition.
//! A standalone broker (no controller.quorum.voters) never starts any of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::wire::Uuid;
use tracing::{debug, info, warn};

use crate::config::ControllerConfig;
use crate::controller::{
    BrokerEndpoint, BrokerHeartbeatRequest, BrokerRegistrationRequest, ClusterImage,
    ControllerHandle, ControllerReply, ControllerRequest, IsrUpdate, NewTopic, NodeId,
};
use crate::error::BrokerError;
use crate::group::service::{GroupCoordinatorService, OffsetsTopicConfig};
use crate::group::OFFSETS_TOPIC;
use crate::log::TopicPartition;
use crate::metadata::random_bytes;
use crate::replica_manager::ReplicaManager;
use crate::replication::{IsrChannel, IsrFuture, IsrProposal, PartitionState};
use crate::shutdown::Shutdown;

/// The listener other brokers fetch from. Kafka's default inter.broker.listener.name; this
/// broker has one broker listener and registers it under this name.
pub const INTER_BROKER_LISTENER: &str = "PLAINTEXT";

/// What a broker in a cluster needs beyond the standalone broker's settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The quorum (and, for a voter, its own controller's settings).
    pub controller: ControllerConfig,
    /// process.roles includes controller: this node votes. Otherwise it is broker-only and
    /// follows the voters' image.
    pub voter: bool,
    /// broker.heartbeat.interval.ms
    pub heartbeat_interval_ms: u64,
}

/// The partitions of `image` with a replica on `local_id`, as the replica manager takes them.
pub fn local_partition_states(image: &ClusterImage, local_id: NodeId) -> Vec<PartitionState> {
    image
        .partitions_replicated_on(local_id)
        .into_iter()
        .map(|p| PartitionState {
            configs: image.topic_configs(p.topic),
            topic: p.topic.to_string(),
            partition: p.partition,
            replicas: p.state.replicas.clone(),
            isr: p.state.isr.clone(),
            leader: p.state.leader,
            leader_epoch: p.state.leader_epoch,
            partition_epoch: p.state.partition_epoch,
        })
        .collect()
}

/// The partitions of `__consumer_offsets` that `local_id` leads, with their leader epochs.
pub fn led_offsets_partitions(image: &ClusterImage, local_id: NodeId) -> BTreeMap<i32, i32> {
    image
        .topic(OFFSETS_TOPIC)
        .map(|t| {
            t.partitions
                .iter()
                .filter(|(_, p)| p.leader == local_id)
                .map(|(i, p)| (*i, p.leader_epoch))
                .collect()
        })
        .unwrap_or_default()
}

/// Asks the controller for `__consumer_offsets` with offsets.topic.* settings. It fails (and is
/// asked for again later) while fewer brokers than its replication factor are alive.
pub async fn create_offsets_topic(controller: &ControllerHandle, settings: &OffsetsTopicConfig) {
    let request = ControllerRequest::CreateTopics {
        topics: vec![NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: settings.partitions,
            replication_factor: settings.replication_factor,
            assignments: None,
            configs: settings.topic_configs(),
        }],
        validate_only: false,
    };
    match controller.submit(request).await {
        Ok(ControllerReply::TopicsCreated(results)) => match results.into_iter().next() {
            Some(r) => match r.result {
                Ok(_) => info!(
                    partitions = settings.partitions,
                    replication_factor = settings.replication_factor,
                    "created {OFFSETS_TOPIC}"
                ),
                Err(BrokerError::TopicAlreadyExists(_)) => {}
                Err(e) => debug!(error = %e, "{OFFSETS_TOPIC} not created yet"),
            },
            None => debug!("the controller answered no result for {OFFSETS_TOPIC}"),
        },
        Ok(other) => debug!(reply = ?other, "unexpected answer creating {OFFSETS_TOPIC}"),
        Err(e) => debug!(error = %e, "{OFFSETS_TOPIC} not created yet"),
    }
}

/// `host:port` of every registered broker's inter-broker listener, for followers to fetch from.
/// Fenced brokers are included: a follower keeps trying its leader until the image moves
/// leadership away, rather than stopping when a heartbeat is late.
pub fn broker_addresses(image: &ClusterImage) -> BTreeMap<NodeId, String> {
    image
        .brokers()
        .filter_map(|b| {
            let e = b.endpoint(INTER_BROKER_LISTENER)?;
            let host = if e.host.contains(':') {
                format!("[{}]", e.host)
            } else {
                e.host.clone()
            };
            Some((b.id, format!("{host}:{}", e.port)))
        })
        .collect()
}

/// Sends a leader's ISR proposals to the active controller as AlterPartition, under the broker
/// epoch of the current registration (the controller refuses proposals from an older one).
pub struct ControllerIsrChannel {
    handle: ControllerHandle,
    broker_id: NodeId,
    broker_epoch: Arc<AtomicI64>,
}

impl IsrChannel for ControllerIsrChannel {
    fn alter_partition(&self, partition: TopicPartition, proposal: IsrProposal) -> IsrFuture<'_> {
        Box::pin(async move {
            let broker_epoch = self.broker_epoch.load(Ordering::Acquire);
            if broker_epoch <= 0 {
                // The controller would refuse it as a stale epoch; it is not worth the trip.
                return Err(BrokerError::Quorum(
                    "not registered with the controller yet".into(),
                ));
            }
            let topic_id = self
                .handle
                .image()
                .borrow()
                .topic(&partition.topic)
                .map(|t| t.id)
                .ok_or_else(|| BrokerError::UnknownTopicOrPartition(partition.to_string()))?;
            let request = ControllerRequest::AlterPartition {
                broker_id: self.broker_id,
                broker_epoch,
                updates: vec![IsrUpdate {
                    topic_id,
                    partition: partition.partition,
                    leader_epoch: proposal.leader_epoch,
                    partition_epoch: proposal.partition_epoch,
                    new_isr: proposal.isr.iter().copied().collect(),
                }],
            };
            match self.handle.submit(request).await? {
                ControllerReply::PartitionsAltered(mut results) if results.len() == 1 => {
                    let state = results.remove(0).result?;
                    let isr: BTreeSet<i32> = state.isr.iter().copied().collect();
                    Ok((isr, state.partition_epoch))
                }
                other => Err(BrokerError::Quorum(format!(
                    "AlterPartition answered with {other:?}"
                ))),
            }
        })
    }
}

/// Producer ids in a cluster: blocks handed out by the controller (AllocateProducerIds), so no
/// two brokers ever give the same id to different producers.
pub struct ProducerIdAllocator {
    handle: ControllerHandle,
    broker_id: NodeId,
    broker_epoch: Arc<AtomicI64>,
    /// `[next, end)` of the current block; a tokio lock, held across the controller round trip
    /// so concurrent requests wait for one new block instead of each asking for one.
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    pub async fn next_id(&self) -> Result<i64, BrokerError> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            let request = ControllerRequest::AllocateProducerIds {
                broker_id: self.broker_id,
                broker_epoch: self.broker_epoch.load(Ordering::Acquire),
            };
            match self.handle.submit(request).await? {
                ControllerReply::ProducerIds { first_id, count } => {
                    *block = (first_id, first_id + count);
                }
                other => {
                    return Err(BrokerError::Quorum(format!(
                        "AllocateProducerIds answered with {other:?}"
                    )))
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}

/// The broker side of cluster mode, started by `Broker::start` and run until shutdown.
pub struct ClusterMember {
    pub handle: ControllerHandle,
    pub broker_id: NodeId,
    pub listener: BrokerEndpoint,
    pub heartbeat_interval: Duration,
    pub broker_epoch: Arc<AtomicI64>,
    /// How `__consumer_offsets` is created once enough brokers are alive.
    pub offsets_topic: OffsetsTopicConfig,
}

impl ClusterMember {
    pub fn producer_ids(&self) -> ProducerIdAllocator {
        ProducerIdAllocator {
            handle: self.handle.clone(),
            broker_id: self.broker_id,
            broker_epoch: self.broker_epoch.clone(),
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    pub fn isr_channel(&self) -> ControllerIsrChannel {
        ControllerIsrChannel {
            handle: self.handle.clone(),
            broker_id: self.broker_id,
            broker_epoch: self.broker_epoch.clone(),
        }
    }

    /// Registers, heartbeats, and applies every image to `replicas` until shutdown. Each start
    /// of the process is a new incarnation; a registration the controller lost (or fenced with a
    /// newer epoch) is made again.
    pub async fn run(
        self,
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinatorService>,
        mut shutdown: Shutdown,
    ) {
        let incarnation_id = Uuid(random_bytes());
        let mut image = self.handle.image();
        let mut tick = tokio::time::interval(self.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut registered = false;
        let creating = Arc::new(AtomicBool::new(false));
        // The image at start (a restarted node's log) may already assign it partitions.
        let current = image.borrow_and_update().clone();
        self.apply(&replicas, &groups, &current);
        loop {
            tokio::select! {
                _ = shutdown.recv() => {
                    if registered && self.controlled_shutdown().await {
                        // Take the roles that move leadership away (followers refuse produce
                        // with NOT_LEADER_OR_FOLLOWER, so clients go to the new leaders).
                        let _ = tokio::time::timeout(Duration::from_secs(1), image.changed()).await;
                        let current = image.borrow_and_update().clone();
                        self.apply(&replicas, &groups, &current);
                    }
                    return;
                }
                changed = image.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let current = image.borrow_and_update().clone();
                    self.apply(&replicas, &groups, &current);
                }
                _ = tick.tick() => {
                    if !registered {
                        registered = self.register(incarnation_id).await;
                    } else if !self.heartbeat().await {
                        registered = false;
                    }
                    if registered {
                        self.ensure_offsets_topic(&creating);
                    }
                }
            }
        }
    }

    /// Replica roles first, then what follows from them: the group coordinator hosts the
    /// offsets partitions led here, and deleted topics lose their replicas and committed offsets.
    fn apply(
        &self,
        replicas: &ReplicaManager,
        groups: &Arc<GroupCoordinatorService>,
        image: &ClusterImage,
    ) {
        let states = local_partition_states(image, self.broker_id);
        if let Err(e) =
            replicas.apply_partition_states(self.broker_id, &states, &broker_addresses(image))
        {
            warn!(error = %e, offset = image.offset(), "could not apply the cluster image");
        }
        groups.lead_partitions(&led_offsets_partitions(image, self.broker_id));
        match replicas.remove_replicas_not_in(&states) {
            Ok(deleted) => {
                for topic in deleted {
                    // A topic created again under the same name must not resume at offsets
                    // committed for the old one; each coordinator drops its own groups' offsets.
                    groups.forget_topic(&topic);
                }
            }
            Err(e) => warn!(error = %e, "could not delete the replicas of a deleted topic"),
        }
    }

    /// Has `__consumer_offsets` created as soon as enough brokers are alive for its replication
    /// factor, rather than at the first FindCoordinator: a group formed while a broker is down
    /// would otherwise wait for it (Kafka refuses to create the topic with fewer replicas).
    fn ensure_offsets_topic(&self, creating: &Arc<AtomicBool>) {
        let image = self.handle.image().borrow().clone();
        let wanted = self.offsets_topic.replication_factor.max(1) as usize;
        if image.topic(OFFSETS_TOPIC).is_some() || image.unfenced_brokers().len() < wanted {
            return;
        }
        if creating.swap(true, Ordering::AcqRel) {
            return;
        }
        let handle = self.handle.clone();
        let settings = self.offsets_topic.clone();
        let creating = creating.clone();
        tokio::spawn(async move {
            create_offsets_topic(&handle, &settings).await;
            creating.store(false, Ordering::Release);
        });
    }

    /// Kafka's controlled shutdown: asks the controller to fence this broker now, so its
    /// partitions get new leaders from the ISR before it stops rather than a session timeout
    /// later. Bounded: a controller that cannot answer leaves it to the session timeout.
    async fn controlled_shutdown(&self) -> bool {
        let request = ControllerRequest::ControlledShutdown {
            broker_id: self.broker_id,
            broker_epoch: self.broker_epoch.load(Ordering::Acquire),
        };
        let limit = (self.heartbeat_interval * 2).max(Duration::from_secs(2));
        match tokio::time::timeout(limit, self.handle.submit(request)).await {
            Ok(Ok(_)) => {
                info!("controlled shutdown: leadership moved to other replicas");
                true
            }
            Ok(Err(e)) => {
                warn!(error = %e, "controlled shutdown refused; stopping anyway");
                false
            }
            Err(_) => {
                warn!(?limit, "controlled shutdown not answered; stopping anyway");
                false
            }
        }
    }

    /// True once registered; failures are retried at the next tick.
    async fn register(&self, incarnation_id: Uuid) -> bool {
        let request = ControllerRequest::RegisterBroker(BrokerRegistrationRequest {
            broker_id: self.broker_id,
            incarnation_id,
            listeners: vec![self.listener.clone()],
            rack: None,
        });
        match self.handle.submit(request).await {
            Ok(ControllerReply::BrokerRegistered { broker_epoch }) => {
                self.broker_epoch.store(broker_epoch, Ordering::Release);
                info!(broker_epoch, "registered with the controller quorum");
                true
            }
            Ok(other) => {
                warn!(reply = ?other, "unexpected answer to broker registration");
                false
            }
            Err(e) => {
                debug!(error = %e, "broker registration not accepted yet");
                false
            }
        }
    }

    /// False when the registration has to be made again.
    async fn heartbeat(&self) -> bool {
        let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            broker_id: self.broker_id,
            broker_epoch: self.broker_epoch.load(Ordering::Acquire),
            metadata_offset: self.handle.image().borrow().offset(),
        });
        // A heartbeat waiting on a controller that cannot answer (partitioned away, not dead)
        // would otherwise wait out the quorum's request timeout (ten election timeouts), longer
        // than the session it keeps alive; the next tick routes to whichever node leads by then.
        let answer = tokio::time::timeout(self.heartbeat_interval, self.handle.submit(request))
            .await
            .unwrap_or_else(|_| {
                Err(BrokerError::Quorum(format!(
                    "no answer within the heartbeat interval ({:?})",
                    self.heartbeat_interval
                )))
            });
        match answer {
            Ok(_) => true,
            Err(e @ (BrokerError::StaleBrokerEpoch(_) | BrokerError::BrokerIdNotRegistered(_))) => {
                warn!(error = %e, "registration lost; registering again");
                false
            }
            // No quorum for now: the session may expire and fence us, which the next
            // successful heartbeat undoes.
            Err(e) => {
                debug!(error = %e, "heartbeat not accepted");
                true
            }
        }
    }
}
