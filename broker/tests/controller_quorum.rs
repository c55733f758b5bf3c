//! Three in-process controllers on loopback ports, each with its own metadata log directory:
//! election, replication of submitted requests, failover, restart and catch-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_broker::controller::{
    BrokerEndpoint, BrokerHeartbeatRequest, BrokerRegistrationRequest, ClusterImage,
    ControllerHandle, ControllerNode, ControllerReply, ControllerRequest, NewTopic, NodeId,
};
use sluice_broker::{BrokerError, ControllerConfig, QuorumVoter};
use sluice_protocol::wire::Uuid;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

struct Cluster {
    configs: Vec<ControllerConfig>,
    nodes: Vec<Option<ControllerHandle>>,
    _dirs: Vec<tempfile::TempDir>,
}

/// Ports that were free a moment ago; the voters must be known before any node starts.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Cluster {
    async fn start(tune: impl Fn(&mut ControllerConfig)) -> Cluster {
        let ports = free_ports(3);
        let voters: Vec<QuorumVoter> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| QuorumVoter {
                id: i as i32 + 1,
                host: "127.0.0.1".into(),
                port: *port,
            })
            .collect();
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let configs: Vec<ControllerConfig> = voters
            .iter()
            .zip(&dirs)
            .map(|(v, dir)| {
                let listen: SocketAddr = v.address().parse().unwrap();
                let mut c =
                    ControllerConfig::new(v.id, voters.clone(), listen, dir.path().to_path_buf());
                c.election_timeout_ms = 400;
                c.settings.session_timeout_ms = 60_000;
                tune(&mut c);
                c
            })
            .collect();
        let mut nodes = Vec::new();
        for c in &configs {
            nodes.push(Some(ControllerNode::start(c.clone()).await.unwrap()));
        }
        Cluster {
            configs,
            nodes,
            _dirs: dirs,
        }
    }

    fn node(&self, id: NodeId) -> &ControllerHandle {
        self.nodes[id as usize - 1]
            .as_ref()
            .expect("node is running")
    }

    fn running(&self) -> impl Iterator<Item = &ControllerHandle> {
        self.nodes.iter().flatten()
    }

    /// The one running node that leads, once all running nodes agree on it.
    async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + WAIT;
        loop {
            let leaders: Vec<NodeId> = self
                .running()
                .filter(|n| n.is_leader())
                .map(|n| n.node_id())
                .collect();
            let known: Vec<Option<NodeId>> = self.running().map(|n| n.leader_id()).collect();
            if leaders.len() == 1 && known.iter().all(|k| *k == Some(leaders[0])) {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no single leader: leading {leaders:?}, known {known:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Submits to whichever node leads, following NOT_CONTROLLER while leadership settles.
    async fn submit(&self, request: ControllerRequest) -> ControllerReply {
        let deadline = Instant::now() + WAIT;
        loop {
            let leader = self.leader().await;
            match self.node(leader).submit(request.clone()).await {
                Ok(reply) => return reply,
                Err(e @ (BrokerError::NotController { .. } | BrokerError::Quorum(_)))
                    if Instant::now() < deadline =>
                {
                    eprintln!("retrying after {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("submit failed: {e}"),
            }
        }
    }

    async fn stop(&mut self, id: NodeId) {
        let node = self.nodes[id as usize - 1].take().expect("node is running");
        node.shutdown().await.unwrap();
    }

    async fn restart(&mut self, id: NodeId) {
        let config = self.configs[id as usize - 1].clone();
        // The old listener's port can take a moment to be released by the aborted task.
        let deadline = Instant::now() + WAIT;
        let node = loop {
            match ControllerNode::start(config.clone()).await {
                Ok(node) => break node,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart of {id} failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("restart of {id} failed: {e}"),
            }
        };
        self.nodes[id as usize - 1] = Some(node);
    }

    /// Waits until every running node's image satisfies `check`.
    async fn converge(&self, what: &str, check: impl Fn(&ClusterImage) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let images: Vec<Arc<ClusterImage>> =
                self.running().map(|n| n.image().borrow().clone()).collect();
            if images.iter().all(|i| check(i)) {
                return;
            }
            assert!(Instant::now() < deadline, "images never showed {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Registers brokers `ids` and heartbeats each once caught up, so they are unfenced.
    async fn add_brokers(&self, ids: impl IntoIterator<Item = NodeId>) -> BTreeMap<NodeId, i64> {
        let mut epochs = BTreeMap::new();
        for id in ids {
            let reply = self.submit(register(id)).await;
            let ControllerReply::BrokerRegistered { broker_epoch } = reply else {
                panic!("{reply:?}")
            };
            epochs.insert(id, broker_epoch);
            self.heartbeat(id, broker_epoch).await;
        }
        epochs
    }

    async fn heartbeat(&self, id: NodeId, broker_epoch: i64) {
        let leader = self.leader().await;
        let offset = self.node(leader).image().borrow().offset();
        let reply = self
            .submit(ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
                broker_id: id,
                broker_epoch,
                metadata_offset: offset,
            }))
            .await;
        let ControllerReply::Heartbeat(h) = reply else {
            panic!("{reply:?}")
        };
        assert!(!h.is_fenced);
    }

    async fn create_topic(&self, name: &str, partitions: i32, rf: i16) {
        let reply = self
            .submit(ControllerRequest::CreateTopics {
                topics: vec![NewTopic {
                    name: name.into(),
                    num_partitions: partitions,
                    replication_factor: rf,
                    assignments: None,
                    configs: BTreeMap::new(),
                }],
                validate_only: false,
            })
            .await;
        let ControllerReply::TopicsCreated(results) = reply else {
            panic!("{reply:?}")
        };
        if let Err(e) = &results[0].result {
            panic!("creating {name}: {e}");
        }
    }

    async fn shutdown_all(mut self) {
        for id in 1..=3 {
            if self.nodes[id - 1].is_some() {
                self.stop(id as NodeId).await;
            }
        }
    }
}

fn register(id: NodeId) -> ControllerRequest {
    ControllerRequest::RegisterBroker(BrokerRegistrationRequest {
        broker_id: id,
        incarnation_id: Uuid([id as u8; 16]),
        listeners: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9090 + id as u16,
            security_protocol: "PLAINTEXT".into(),
        }],
        rack: None,
    })
}

fn has_topic(image: &ClusterImage, name: &str, partitions: usize, rf: usize) -> bool {
    image.topic(name).is_some_and(|t| {
        t.partitions.len() == partitions && t.partitions.values().all(|p| p.replicas.len() == rf)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_is_elected_and_every_node_applies_what_it_commits() {
    let cluster = Cluster::start(|_| {}).await;
    let leader = cluster.leader().await;
    assert_eq!(cluster.running().filter(|n| n.is_leader()).count(), 1);

    cluster.add_brokers(1..=3).await;
    cluster.create_topic("orders", 3, 3).await;
    cluster
        .converge("3 unfenced brokers and orders rf=3", |i| {
            i.unfenced_brokers() == vec![1, 2, 3] && has_topic(i, "orders", 3, 3)
        })
        .await;
    // Every node holds the same image, not just the same topic names.
    let images: Vec<Arc<ClusterImage>> = cluster
        .running()
        .map(|n| n.image().borrow().clone())
        .collect();
    assert!(images.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(cluster.leader().await, leader);
    cluster.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_forwards_submissions_to_the_leader() {
    let cluster = Cluster::start(|_| {}).await;
    let leader = cluster.leader().await;
    let follower = cluster.node((1..=3).find(|id| *id != leader).unwrap());
    assert!(!follower.is_leader());

    let reply = follower.submit(register(1)).await.unwrap();
    let ControllerReply::BrokerRegistered { broker_epoch } = reply else {
        panic!("{reply:?}")
    };
    cluster
        .converge("broker 1 registered", |i| i.broker(1).is_some())
        .await;
    // The epoch the follower was told is the one the leader committed.
    let registered = cluster.node(leader).image().borrow().broker(1).cloned();
    assert_eq!(registered.map(|b| b.epoch), Some(broker_epoch));

    let offset = follower.image().borrow().offset();
    let reply = follower
        .submit(ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            broker_id: 1,
            broker_epoch,
            metadata_offset: offset,
        }))
        .await
        .unwrap();
    let ControllerReply::Heartbeat(h) = reply else {
        panic!("{reply:?}")
    };
    assert!(!h.is_fenced, "{h:?}");

    let create = ControllerRequest::CreateTopics {
        topics: vec![NewTopic {
            name: "forwarded".into(),
            num_partitions: 2,
            replication_factor: 1,
            assignments: None,
            configs: BTreeMap::new(),
        }],
        validate_only: false,
    };
    let reply = follower.submit(create.clone()).await.unwrap();
    let ControllerReply::TopicsCreated(results) = reply else {
        panic!("{reply:?}")
    };
    let created = results[0].result.as_ref().expect("topic created");
    assert_eq!(created.num_partitions, 2);
    cluster
        .converge("the forwarded topic", |i| has_topic(i, "forwarded", 2, 1))
        .await;
    let id_on_leader = cluster
        .node(leader)
        .image()
        .borrow()
        .topic("forwarded")
        .map(|t| t.id);
    assert_eq!(id_on_leader, Some(created.topic_id));

    // A per-topic error decided by the leader keeps its kind across the network.
    let reply = follower.submit(create).await.unwrap();
    let ControllerReply::TopicsCreated(results) = reply else {
        panic!("{reply:?}")
    };
    let err = results[0].result.as_ref().unwrap_err();
    assert!(matches!(err, BrokerError::TopicAlreadyExists(_)), "{err:?}");
    cluster.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_the_leader_elects_another_and_submissions_continue() {
    let mut cluster = Cluster::start(|_| {}).await;
    cluster.add_brokers(1..=3).await;
    cluster.create_topic("before", 2, 3).await;
    let old = cluster.leader().await;

    let stopped = Instant::now();
    cluster.stop(old).await;
    let new = cluster.leader().await;
    assert_ne!(new, old);
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "failover took {:?}",
        stopped.elapsed()
    );

    cluster.create_topic("after", 2, 3).await;
    cluster
        .converge("both topics on the two survivors", |i| {
            has_topic(i, "before", 2, 3) && has_topic(i, "after", 2, 3)
        })
        .await;
    cluster.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_leaders_handle_also_hands_over_leadership() {
    let mut cluster = Cluster::start(|_| {}).await;
    cluster.add_brokers(1..=3).await;
    let old = cluster.leader().await;
    drop(cluster.nodes[old as usize - 1].take());
    let new = cluster.leader().await;
    assert_ne!(new, old);
    cluster.create_topic("t", 1, 3).await;
    cluster.converge("t", |i| has_topic(i, "t", 1, 3)).await;
    cluster.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_its_directory() {
    // Snapshots every few entries, so the restarted node's missing entries are partly purged
    // from the leader's log and it needs a snapshot as well as entries.
    let mut cluster = Cluster::start(|c| c.snapshot_interval_entries = 4).await;
    cluster.add_brokers(1..=3).await;
    cluster.create_topic("first", 1, 3).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster
        .converge("first everywhere", |i| has_topic(i, "first", 1, 3))
        .await;

    cluster.stop(follower).await;
    for n in 0..12 {
        cluster.create_topic(&format!("while-down-{n}"), 1, 2).await;
    }
    cluster.restart(follower).await;
    cluster
        .converge("every topic on the restarted node too", |i| {
            has_topic(i, "first", 1, 3)
                && (0..12).all(|n| has_topic(i, &format!("while-down-{n}"), 1, 2))
        })
        .await;
    let leader = cluster.leader().await;
    let expected = cluster.node(leader).image().borrow().clone();
    let deadline = Instant::now() + WAIT;
    while *cluster.node(follower).image().borrow().clone() != *expected {
        assert!(Instant::now() < deadline, "restarted image differs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The whole quorum restarting from disk comes back with everything.
    for id in 1..=3 {
        cluster.stop(id).await;
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    cluster.leader().await;
    cluster
        .converge("everything after a full restart", |i| {
            i.unfenced_brokers() == vec![1, 2, 3]
                && (0..12).all(|n| has_topic(i, &format!("while-down-{n}"), 1, 2))
        })
        .await;
    cluster.create_topic("after-restart", 1, 3).await;
    cluster
        .converge("after-restart", |i| has_topic(i, "after-restart", 1, 3))
        .await;
    cluster.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_fences_a_silent_broker_on_its_own() {
    let cluster = Cluster::start(|c| c.settings.session_timeout_ms = 1500).await;
    let epochs = cluster.add_brokers(1..=2).await;
    let reply = cluster
        .submit(ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: Some(vec![vec![2, 1]]),
                configs: BTreeMap::new(),
            }],
            validate_only: false,
        })
        .await;
    assert!(matches!(reply, ControllerReply::TopicsCreated(_)));

    // Broker 1 keeps heartbeating; broker 2 goes quiet.
    let deadline = Instant::now() + WAIT;
    loop {
        cluster.heartbeat(1, epochs[&1]).await;
        let leader = cluster.leader().await;
        let image = cluster.node(leader).image().borrow().clone();
        if !image.is_unfenced(2) {
            break;
        }
        assert!(Instant::now() < deadline, "broker 2 was never fenced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster
        .converge("leadership moved to broker 1", |i| {
            i.partition_by_name("t", 0)
                .is_some_and(|p| p.leader == 1 && p.isr == vec![1] && p.leader_epoch == 1)
        })
        .await;
    cluster.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_controller_port_does_not_disturb_the_quorum() {
    let cluster = Cluster::start(|_| {}).await;
    let leader = cluster.leader().await;
    let mut conn = tokio::net::TcpStream::connect(cluster.node(leader).local_addr())
        .await
        .unwrap();
    // A frame claiming 4 GB, then one that is not JSON on a second connection.
    conn.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let mut conn2 = tokio::net::TcpStream::connect(cluster.node(leader).local_addr())
        .await
        .unwrap();
    conn2
        .write_all(&[0, 0, 0, 3, b'x', b'y', b'z'])
        .await
        .unwrap();
    cluster.add_brokers(1..=1).await;
    cluster
        .converge("broker 1", |i| i.unfenced_brokers() == vec![1])
        .await;
    assert_eq!(cluster.leader().await, leader);
    cluster.shutdown_all().await;
}
