//! Three in-process brokers in cluster mode (each also a controller): they register with the
//! quorum, take replica roles from the committed image, and serve an acks=all produce.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_broker::cluster::ClusterConfig;
use sluice_broker::controller::{ControllerHandle, ControllerReply, ControllerRequest, NewTopic};
use sluice_broker::replica_manager::{ReplicaManager, Role};
use sluice_broker::{Broker, BrokerConfig, BrokerError, ControllerConfig, QuorumVoter};
use sluice_protocol::messages::*;
use sluice_protocol::records::{Record, RecordBatch};
use sluice_protocol::ErrorCode;

mod common;
use common::Client;

const WAIT: Duration = Duration::from_secs(20);

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

struct Node {
    addr: SocketAddr,
    replicas: Arc<ReplicaManager>,
    controller: ControllerHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// Three combined nodes. The quorum's ports are chosen before any node binds them, so another
/// test (or process) can take one in between: then the whole cluster starts again on new ports.
async fn start_cluster() -> BTreeMap<i32, Node> {
    start_cluster_with(0, 2_000).await
}

/// Three voters and `observers` broker-only nodes (ids 4 on).
async fn start_cluster_with(observers: i32, session_timeout_ms: i64) -> BTreeMap<i32, Node> {
    let mut attempt = 0;
    loop {
        match try_start_cluster(observers, session_timeout_ms).await {
            Ok(nodes) => return nodes,
            Err(e) if attempt < 3 => {
                eprintln!("cluster start failed ({e}); retrying on other ports");
                attempt += 1;
            }
            Err(e) => panic!("cluster start failed: {e}"),
        }
    }
}

/// Dropping the nodes already started stops them (their stop senders go away).
async fn try_start_cluster(
    observers: i32,
    session_timeout_ms: i64,
) -> Result<BTreeMap<i32, Node>, BrokerError> {
    let voters: Vec<QuorumVoter> = free_ports(3)
        .into_iter()
        .enumerate()
        .map(|(i, port)| QuorumVoter {
            id: i as i32 + 1,
            host: "127.0.0.1".into(),
            port,
        })
        .collect();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 + observers {
        let voter = id <= 3;
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("logs"));
        config.node_id = id;
        // Topics exist only through the controller here.
        config.auto_create_topics = false;
        config.replica_fetch_wait_max_ms = 200;
        config.replica_fetch_backoff_ms = 100;
        // Few offsets partitions keep start-up cheap; every one on all three nodes.
        config.offsets_topic.partitions = 3;
        config.offsets_topic.replication_factor = 3;
        // A broker-only node binds no controller listener.
        let listen = match voters.iter().find(|v| v.id == id) {
            Some(v) => v.address().parse().unwrap(),
            None => "127.0.0.1:0".parse().unwrap(),
        };
        let mut controller =
            ControllerConfig::new(id, voters.clone(), listen, dir.path().join("metadata"));
        controller.election_timeout_ms = 400;
        // A stopped node is fenced (and its partitions move) within the test's patience.
        controller.settings.session_timeout_ms = session_timeout_ms;
        config.cluster = Some(ClusterConfig {
            controller,
            voter,
            heartbeat_interval_ms: 100,
        });
        let broker = Broker::start(config).await?;
        let (stop, rx) = tokio::sync::oneshot::channel();
        let node = Node {
            addr: broker.local_addr(),
            replicas: broker.replicas(),
            controller: broker.controller().expect("cluster mode runs a controller"),
            stop,
            task: tokio::spawn(async move {
                broker
                    .run(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            }),
            _dir: dir,
        };
        nodes.insert(id, node);
    }
    Ok(nodes)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn role(rm: &ReplicaManager, topic: &str) -> Option<(bool, i32)> {
    let p = rm.partition(topic, 0)?;
    match &p.role {
        Role::Leader(_) => Some((true, p.leader_epoch)),
        Role::Follower { leader_id } if *leader_id >= 0 => Some((false, p.leader_epoch)),
        _ => None,
    }
}

/// A Produce of one record with `value` to partition 0 of `topic`.
fn produce_one(topic: &str, acks: i16, value: &'static [u8]) -> ProduceRequest {
    let batch = RecordBatch::new(vec![Record {
        offset: 0,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(value)),
        headers: vec![],
    }]);
    ProduceRequest {
        acks,
        timeout_ms: 10_000,
        topic_data: vec![ProduceRequestTopic {
            name: topic.into(),
            partition_data: vec![ProduceRequestPartition {
                index: 0,
                records: Some(batch.encode().unwrap()),
            }],
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_combined_nodes_replicate_a_topic_created_through_the_controller() {
    let nodes = start_cluster().await;
    // Every broker registered and unfenced: placement of RF 3 needs all three.
    let image_of_1 = nodes[&1].controller.image();
    eventually("three unfenced brokers", || {
        image_of_1.borrow().unfenced_brokers().len() == 3
    })
    .await;

    // Submitted through node 3 whichever node leads: forwarding is what brokers rely on.
    let request = ControllerRequest::CreateTopics {
        topics: vec![NewTopic {
            name: "replicated".into(),
            num_partitions: 1,
            replication_factor: 3,
            assignments: None,
            configs: BTreeMap::new(),
        }],
        validate_only: false,
    };
    let reply = loop {
        match nodes[&3].controller.submit(request.clone()).await {
            Err(e @ (BrokerError::NotController { .. } | BrokerError::Quorum(_))) => {
                eprintln!("retrying after {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other.unwrap(),
        }
    };
    let ControllerReply::TopicsCreated(results) = reply else {
        panic!("{reply:?}")
    };
    results[0].result.as_ref().expect("topic created");

    // One leader and two followers, all at the committed leader epoch.
    eventually("every node took its role", || {
        let roles: Vec<_> = nodes
            .values()
            .map(|n| role(&n.replicas, "replicated"))
            .collect();
        roles.iter().all(Option::is_some)
            && roles.iter().filter(|r| r.is_some_and(|(l, _)| l)).count() == 1
    })
    .await;
    let committed = nodes[&1]
        .controller
        .image()
        .borrow()
        .partition_by_name("replicated", 0)
        .cloned()
        .unwrap();
    for (id, n) in &nodes {
        let (leads, epoch) = role(&n.replicas, "replicated").unwrap();
        assert_eq!(leads, *id == committed.leader, "node {id}");
        assert_eq!(epoch, committed.leader_epoch, "node {id}");
    }

    let mut client = Client::connect_to(nodes[&committed.leader].addr).await;
    let response = client
        .send(9, &produce_one("replicated", -1, b"to all three"))
        .await;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(ErrorCode::from_code(p.error_code), ErrorCode::None);
    assert_eq!(p.base_offset, 0);
    // acks=all answered, so every replica has the record.
    for (id, n) in &nodes {
        let log_end = n
            .replicas
            .partition("replicated", 0)
            .unwrap()
            .log
            .log_end_offset();
        assert_eq!(log_end, 1, "node {id}");
    }

    for (_, n) in nodes {
        let _ = n.stop.send(());
        n.task.await.unwrap();
    }
}

async fn metadata(client: &mut Client, topic: &str) -> MetadataResponse {
    client
        .send(
            12,
            &MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: Some(topic.into()),
                    ..Default::default()
                }]),
                allow_auto_topic_creation: false,
                ..Default::default()
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_admin_apis_go_through_the_controller_and_metadata_shows_the_image() {
    let nodes = start_cluster().await;
    let image = nodes[&1].controller.image();
    eventually("three unfenced brokers", || {
        image.borrow().unfenced_brokers().len() == 3
    })
    .await;

    // Any node takes CreateTopics; the controller places all three replicas.
    let mut admin = Client::connect_to(nodes[&2].addr).await;
    let create = CreateTopicsRequest {
        topics: vec![CreateTopicsRequestTopic {
            name: "admin".into(),
            num_partitions: 2,
            replication_factor: 3,
            configs: vec![CreateTopicsRequestConfig {
                name: "retention.ms".into(),
                value: Some("3600000".into()),
            }],
            ..Default::default()
        }],
        timeout_ms: 10_000,
        validate_only: false,
    };
    let created = admin.send(5, &create).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    assert_eq!(created.topics[0].replication_factor, 3);
    let again = admin.send(5, &create).await;
    assert_eq!(
        ErrorCode::from_code(again.topics[0].error_code),
        ErrorCode::TopicAlreadyExists
    );

    // Metadata on another node: every broker at its advertised address, and each partition
    // as committed (leader, replicas, ISR, leader epoch).
    let mut client = Client::connect_to(nodes[&3].addr).await;
    let mut answer = metadata(&mut client, "admin").await;
    let deadline = Instant::now() + WAIT;
    while answer.topics[0].error_code != 0
        || answer.topics[0]
            .partitions
            .iter()
            .any(|p| p.isr_nodes.len() < 3)
    {
        assert!(Instant::now() < deadline, "{answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        answer = metadata(&mut client, "admin").await;
    }
    let mut brokers: Vec<(i32, i32)> = answer.brokers.iter().map(|b| (b.node_id, b.port)).collect();
    brokers.sort();
    let expected: Vec<(i32, i32)> = nodes
        .iter()
        .map(|(id, n)| (*id, n.addr.port() as i32))
        .collect();
    assert_eq!(brokers, expected);
    assert!(answer.controller_id >= 1);
    // Node 3 answers from the image it has applied; node 1's may be a moment behind it.
    eventually("node 1 applied the topic", || {
        image.borrow().topic("admin").is_some()
    })
    .await;
    let committed = image.borrow().topic("admin").cloned().unwrap();
    assert_eq!(answer.topics[0].topic_id, committed.id);
    assert_eq!(answer.topics[0].partitions.len(), 2);
    for p in &answer.topics[0].partitions {
        let c = &committed.partitions[&p.partition_index];
        assert_eq!(p.leader_id, c.leader);
        assert_eq!(p.leader_epoch, c.leader_epoch);
        assert_eq!(p.replica_nodes, c.replicas);
        assert_eq!(p.replica_nodes.len(), 3);
    }

    // DescribeConfigs on any node shows the configs the controller committed.
    let described = client
        .send(
            4,
            &DescribeConfigsRequest {
                resources: vec![DescribeConfigsRequestResource {
                    resource_type: 2,
                    resource_name: "admin".into(),
                    configuration_keys: Some(vec!["retention.ms".into()]),
                }],
                ..Default::default()
            },
        )
        .await;
    let result = &described.results[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    assert_eq!(result.configs.len(), 1, "{result:?}");
    assert_eq!(result.configs[0].value.as_deref(), Some("3600000"));

    // The image commits the ISR with the topic, before any node has applied it: wait until every
    // node has taken its role for the partition the produces below go to.
    eventually("every node took its role for admin-0", || {
        nodes.values().all(|n| role(&n.replicas, "admin").is_some())
    })
    .await;

    // A produce to a non-leader is refused; to the leader Metadata named it succeeds.
    let leader = answer.topics[0].partitions[0].leader_id;
    let follower = nodes.keys().copied().find(|id| *id != leader).unwrap();
    let produce = |acks: i16| produce_one("admin", acks, b"v");
    let mut to_follower = Client::connect_to(nodes[&follower].addr).await;
    let refused = to_follower.send(9, &produce(-1)).await;
    assert_eq!(
        ErrorCode::from_code(refused.responses[0].partition_responses[0].error_code),
        ErrorCode::NotLeaderOrFollower
    );
    let mut to_leader = Client::connect_to(nodes[&leader].addr).await;
    let accepted = to_leader.send(9, &produce(-1)).await;
    assert_eq!(
        accepted.responses[0].partition_responses[0].error_code, 0,
        "{accepted:?}"
    );

    let grown = admin
        .send(
            1,
            &CreatePartitionsRequest {
                topics: vec![CreatePartitionsTopic {
                    name: "admin".into(),
                    count: 3,
                    assignments: None,
                }],
                timeout_ms: 10_000,
                validate_only: false,
            },
        )
        .await;
    assert_eq!(grown.results[0].error_code, 0, "{grown:?}");
    eventually("three partitions in every image", || {
        nodes.values().all(|n| {
            n.controller
                .image()
                .borrow()
                .topic("admin")
                .is_some_and(|t| t.partitions.len() == 3)
        })
    })
    .await;

    let deleted = admin
        .send(
            4,
            &DeleteTopicsRequest {
                topic_names: vec!["admin".into(), "never-was".into()],
                timeout_ms: 10_000,
                ..Default::default()
            },
        )
        .await;
    let codes: Vec<ErrorCode> = deleted
        .responses
        .iter()
        .map(|r| ErrorCode::from_code(r.error_code))
        .collect();
    assert_eq!(codes, [ErrorCode::None, ErrorCode::UnknownTopicOrPartition]);
    eventually("the topic gone from every image", || {
        nodes
            .values()
            .all(|n| n.controller.image().borrow().topic("admin").is_none())
    })
    .await;
    // Each replica's log went with the topic.
    eventually("every replica of admin deleted", || {
        nodes.values().all(|n| {
            (0..3).all(|p| {
                n.replicas.partition("admin", p).is_none()
                    && !n._dir.path().join(format!("logs/admin-{p}")).exists()
            })
        })
    })
    .await;
    let gone = metadata(&mut client, "admin").await;
    assert_eq!(
        ErrorCode::from_code(gone.topics[0].error_code),
        ErrorCode::UnknownTopicOrPartition
    );

    for (_, n) in nodes {
        let _ = n.stop.send(());
        n.task.await.unwrap();
    }
}

fn topic_spec(name: &str, partitions: i32, replication_factor: i16) -> CreateTopicsRequestTopic {
    CreateTopicsRequestTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor,
        ..Default::default()
    }
}

/// Creates `topic` through the node `client` is connected to, which must accept it.
async fn create_topic(client: &mut Client, topic: CreateTopicsRequestTopic) {
    let created = client
        .send(
            5,
            &CreateTopicsRequest {
                topics: vec![topic],
                timeout_ms: 10_000,
                validate_only: false,
            },
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
}

/// Asks `client` which broker coordinates `group` until one is named.
async fn find_coordinator(client: &mut Client, group: &str) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = client
            .send(
                3,
                &FindCoordinatorRequest {
                    key: group.into(),
                    key_type: 0,
                    ..Default::default()
                },
            )
            .await;
        if answer.error_code == 0 {
            return answer.node_id;
        }
        // The first lookup creates __consumer_offsets; its leaders follow.
        assert_eq!(
            ErrorCode::from_code(answer.error_code),
            ErrorCode::CoordinatorNotAvailable,
            "{answer:?}"
        );
        assert!(Instant::now() < deadline, "no coordinator for {group}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fetch_offset(client: &mut Client, group: &str, topic: &str) -> OffsetFetchResponse {
    client
        .send(
            7,
            &OffsetFetchRequest {
                group_id: group.into(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: topic.into(),
                    partition_indexes: vec![0],
                }]),
                ..Default::default()
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_group_coordinator_moves_with_its_offsets_partition_and_keeps_committed_offsets() {
    let mut nodes = start_cluster().await;
    let image = nodes[&1].controller.image();
    eventually("three unfenced brokers", || {
        image.borrow().unfenced_brokers().len() == 3
    })
    .await;

    // The coordinator is the leader of the group's offsets partition, whoever is asked.
    let mut asker = Client::connect_to(nodes[&1].addr).await;
    let coordinator = find_coordinator(&mut asker, "g").await;
    let offsets = image.borrow().topic("__consumer_offsets").cloned().unwrap();
    assert_eq!(offsets.partitions.len(), 3);
    assert!(offsets.partitions.values().all(|p| p.replicas.len() == 3));
    let mut other = Client::connect_to(nodes[&2].addr).await;
    assert_eq!(find_coordinator(&mut other, "g").await, coordinator);

    // A commit is answered once the ISR has it.
    let mut admin = Client::connect_to(nodes[&3].addr).await;
    create_topic(&mut admin, topic_spec("t", 1, 1)).await;
    let commit = OffsetCommitRequest {
        group_id: "g".into(),
        generation_id_or_member_epoch: -1,
        member_id: String::new(),
        topics: vec![OffsetCommitRequestTopic {
            name: "t".into(),
            partitions: vec![OffsetCommitRequestPartition {
                partition_index: 0,
                committed_offset: 42,
                committed_metadata: Some("before".into()),
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    let mut to_coordinator = Client::connect_to(nodes[&coordinator].addr).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = to_coordinator.send(7, &commit).await;
        let code = ErrorCode::from_code(answer.topics[0].partitions[0].error_code);
        if code == ErrorCode::None {
            break;
        }
        // Loading after the topic's creation, or the ISR still forming.
        assert!(Instant::now() < deadline, "commit refused: {code:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut not_coordinator =
        Client::connect_to(nodes[nodes.keys().find(|id| **id != coordinator).unwrap()].addr).await;
    let refused = fetch_offset(&mut not_coordinator, "g", "t").await;
    assert_eq!(
        ErrorCode::from_code(refused.error_code),
        ErrorCode::NotCoordinator
    );

    // The coordinator's broker stops: the partition's new leader coordinates the group and
    // has the committed offset.
    let gone = nodes.remove(&coordinator).unwrap();
    let _ = gone.stop.send(());
    gone.task.await.unwrap();
    let survivor = *nodes.keys().next().unwrap();
    let mut asker = Client::connect_to(nodes[&survivor].addr).await;
    let deadline = Instant::now() + WAIT;
    let next = loop {
        let now = find_coordinator(&mut asker, "g").await;
        if now != coordinator {
            break now;
        }
        assert!(Instant::now() < deadline, "the coordinator never moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut to_next = Client::connect_to(nodes[&next].addr).await;
    let deadline = Instant::now() + WAIT;
    let fetched = loop {
        let answer = fetch_offset(&mut to_next, "g", "t").await;
        match ErrorCode::from_code(answer.error_code) {
            ErrorCode::None => break answer,
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::NotCoordinator => {
                assert!(Instant::now() < deadline, "{answer:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other:?}: {answer:?}"),
        }
    };
    let p = &fetched.topics[0].partitions[0];
    assert_eq!(p.committed_offset, 42, "{fetched:?}");
    assert_eq!(p.metadata.as_deref(), Some("before"));

    for (_, n) in nodes {
        let _ = n.stop.send(());
        n.task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_only_node_follows_the_quorum_and_leads_partitions() {
    let nodes = start_cluster_with(1, 2_000).await;
    let image = nodes[&4].controller.image();
    // Node 4 registered through a voter and sees the committed image it fetches.
    eventually("four unfenced brokers seen by the broker-only node", || {
        image.borrow().unfenced_brokers().len() == 4
    })
    .await;
    assert!(!nodes[&4].controller.is_leader());

    let mut client = Client::connect_to(nodes[&4].addr).await;
    create_topic(
        &mut client,
        CreateTopicsRequestTopic {
            assignments: vec![CreateTopicsRequestAssignment {
                partition_index: 0,
                broker_ids: vec![4, 1, 2],
            }],
            ..topic_spec("on-four", -1, -1)
        },
    )
    .await;
    eventually("node 4 leads on-four-0 with all three in the ISR", || {
        let led = role(&nodes[&4].replicas, "on-four") == Some((true, 0));
        let isr = image
            .borrow()
            .partition_by_name("on-four", 0)
            .map_or(0, |p| p.isr.len());
        led && isr == 3
    })
    .await;
    let answer = metadata(&mut client, "on-four").await;
    assert_eq!(answer.brokers.len(), 4, "{answer:?}");
    assert_eq!(answer.topics[0].partitions[0].leader_id, 4);
    assert!(answer.controller_id >= 1 && answer.controller_id <= 3);

    let response = client
        .send(9, &produce_one("on-four", -1, b"from a broker-only leader"))
        .await;
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(ErrorCode::from_code(p.error_code), ErrorCode::None);
    for id in [1, 2] {
        let end = nodes[&id]
            .replicas
            .partition("on-four", 0)
            .unwrap()
            .log
            .log_end_offset();
        assert_eq!(end, 1, "node {id}");
    }

    for (_, n) in nodes {
        let _ = n.stop.send(());
        n.task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cleanly_stopped_leader_hands_its_partitions_over_before_it_goes() {
    // Sessions far longer than the test waits: only a controlled shutdown can move leadership.
    let mut nodes = start_cluster_with(0, 600_000).await;
    let image = nodes[&1].controller.image();
    eventually("three unfenced brokers", || {
        image.borrow().unfenced_brokers().len() == 3
    })
    .await;
    let mut admin = Client::connect_to(nodes[&1].addr).await;
    create_topic(&mut admin, topic_spec("handover", 3, 3)).await;
    let victim = 2;
    let survivor = 3;
    let image = nodes[&survivor].controller.image();
    eventually("node 2 leads a partition", || {
        !image.borrow().partitions_led_by(victim).is_empty()
    })
    .await;

    let gone = nodes.remove(&victim).unwrap();
    let _ = gone.stop.send(());
    gone.task.await.unwrap();
    eventually("node 2 fenced and leading nothing", || {
        let i = image.borrow();
        !i.is_unfenced(victim)
            && i.partitions_led_by(victim).is_empty()
            && (0..3).all(|p| {
                i.partition_by_name("handover", p)
                    .is_some_and(|s| s.leader > 0 && !s.isr.contains(&victim))
            })
    })
    .await;

    for (_, n) in nodes {
        let _ = n.stop.send(());
        n.task.await.unwrap();
    }
}
