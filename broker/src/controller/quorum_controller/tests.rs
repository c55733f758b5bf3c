//! Scenarios for `QuorumController` with explicit time: each request's records are applied to an
//! image as one log entry, as the quorum would, before the next request is decided.

use super::*;
use crate::controller::image::ClusterImage;

const T0: i64 = 1_000_000;

/// Which error a refused case must produce.
type Expect = fn(&BrokerError) -> bool;

struct Cluster {
    image: ClusterImage,
    ctl: QuorumController,
    epochs: BTreeMap<NodeId, i64>,
    /// Records of the last request, for tests that look at what was written.
    last_records: Vec<MetadataRecord>,
}

impl Cluster {
    fn new(settings: ControllerSettings) -> Cluster {
        Cluster {
            image: ClusterImage::new(),
            ctl: QuorumController::new(settings, 42),
            epochs: BTreeMap::new(),
            last_records: Vec::new(),
        }
    }

    /// `n` brokers (ids 1..=n), registered and unfenced at `T0`.
    fn with_brokers(n: i32, settings: ControllerSettings) -> Cluster {
        let mut c = Cluster::new(settings);
        for id in 1..=n {
            c.register(id, 1, T0);
            c.heartbeat(id, T0).unwrap();
        }
        assert_eq!(c.image.unfenced_brokers(), (1..=n).collect::<Vec<_>>());
        c
    }

    fn run(&mut self, request: ControllerRequest, now: i64) -> Result<ControllerReply> {
        let outcome = self.ctl.handle(&self.image, request, now)?;
        let offset = self.image.offset() + 1;
        self.image.apply_all(offset, &outcome.records).unwrap();
        self.last_records = outcome.records;
        Ok(outcome.reply)
    }

    fn register(&mut self, id: NodeId, incarnation: u8, now: i64) -> i64 {
        match self.run(registration(id, incarnation), now).unwrap() {
            ControllerReply::BrokerRegistered { broker_epoch } => {
                self.epochs.insert(id, broker_epoch);
                broker_epoch
            }
            other => panic!("{other:?}"),
        }
    }

    /// A heartbeat from a broker that has applied everything.
    fn heartbeat(&mut self, id: NodeId, now: i64) -> Result<HeartbeatReply> {
        let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
            broker_id: id,
            broker_epoch: self.epochs[&id],
            metadata_offset: self.image.offset(),
        });
        match self.run(request, now)? {
            ControllerReply::Heartbeat(h) => Ok(h),
            other => panic!("{other:?}"),
        }
    }

    fn check_sessions(&mut self, now: i64) -> Vec<NodeId> {
        match self.run(ControllerRequest::CheckSessions, now).unwrap() {
            ControllerReply::SessionsChecked { fenced } => fenced,
            other => panic!("{other:?}"),
        }
    }

    fn create(&mut self, topic: NewTopic, now: i64) -> Result<CreatedTopic> {
        let request = ControllerRequest::CreateTopics {
            topics: vec![topic],
            validate_only: false,
        };
        match self.run(request, now).unwrap() {
            ControllerReply::TopicsCreated(mut results) => results.remove(0).result,
            other => panic!("{other:?}"),
        }
    }

    fn alter(&mut self, broker: NodeId, update: IsrUpdate) -> Result<PartitionState> {
        let request = ControllerRequest::AlterPartition {
            broker_id: broker,
            broker_epoch: self.epochs[&broker],
            updates: vec![update],
        };
        match self.run(request, T0)? {
            ControllerReply::PartitionsAltered(mut results) => results.remove(0).result,
            other => panic!("{other:?}"),
        }
    }

    fn state(&self, topic: &str, p: i32) -> PartitionState {
        self.image.partition_by_name(topic, p).unwrap().clone()
    }

    /// An ISR update from the partition's current leader against its current state.
    fn isr_update(&self, topic: &str, p: i32, new_isr: &[NodeId]) -> (NodeId, IsrUpdate) {
        let s = self.state(topic, p);
        let update = IsrUpdate {
            topic_id: self.image.topic(topic).unwrap().id,
            partition: p,
            leader_epoch: s.leader_epoch,
            partition_epoch: s.partition_epoch,
            new_isr: new_isr.to_vec(),
        };
        (s.leader, update)
    }
}

fn registration(id: NodeId, incarnation: u8) -> ControllerRequest {
    ControllerRequest::RegisterBroker(BrokerRegistrationRequest {
        broker_id: id,
        incarnation_id: Uuid([incarnation; 16]),
        listeners: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9090 + id as u16,
            security_protocol: "PLAINTEXT".into(),
        }],
        rack: None,
    })
}

fn topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: rf,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

fn manual(name: &str, assignments: &[&[NodeId]]) -> NewTopic {
    NewTopic {
        name: name.into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: Some(assignments.iter().map(|a| a.to_vec()).collect()),
        configs: BTreeMap::new(),
    }
}

#[test]
fn registration_starts_fenced_with_a_new_epoch_and_retries_are_idempotent() {
    let mut c = Cluster::new(ControllerSettings::default());
    let e1 = c.register(1, 1, T0);
    let e2 = c.register(2, 1, T0);
    assert!(e2 > e1);
    let b1 = c.image.broker(1).unwrap();
    assert!(b1.fenced);
    assert_eq!(b1.endpoint("PLAINTEXT").unwrap().port, 9091);

    // The same process retrying (its first reply lost) gets the same epoch and writes nothing.
    assert_eq!(c.register(1, 1, T0 + 10), e1);
    assert!(c.last_records.is_empty());

    // A second process claiming a live broker id is refused...
    c.heartbeat(1, T0 + 100).unwrap();
    assert!(!c.image.broker(1).unwrap().fenced);
    let err = c.run(registration(1, 2), T0 + 200).unwrap_err();
    assert!(
        matches!(err, BrokerError::DuplicateBrokerRegistration(_)),
        "{err:?}"
    );
    // ...until the first one's session has expired.
    let e1b = c.register(1, 2, T0 + 100 + 9001);
    assert!(e1b > e2);
    assert!(c.image.broker(1).unwrap().fenced);
}

#[test]
fn registration_needs_a_listener() {
    let mut c = Cluster::new(ControllerSettings::default());
    let request = ControllerRequest::RegisterBroker(BrokerRegistrationRequest {
        broker_id: 1,
        incarnation_id: Uuid([1; 16]),
        listeners: vec![],
        rack: None,
    });
    assert!(matches!(
        c.run(request, T0),
        Err(BrokerError::InvalidRequest(_))
    ));
    assert!(c.image.broker(1).is_none());
}

#[test]
fn heartbeat_unfences_only_a_caught_up_broker_with_the_current_epoch() {
    let mut c = Cluster::new(ControllerSettings::default());
    let epoch = c.register(1, 1, T0);
    let registered_at = c.image.broker(1).unwrap().registered_at;
    let behind = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 1,
        broker_epoch: epoch,
        metadata_offset: registered_at - 1,
    });
    match c.run(behind, T0 + 1).unwrap() {
        ControllerReply::Heartbeat(h) => assert_eq!(
            h,
            HeartbeatReply {
                is_caught_up: false,
                is_fenced: true
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(c.last_records.is_empty());

    let stale = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 1,
        broker_epoch: epoch - 1,
        metadata_offset: registered_at,
    });
    assert!(matches!(
        c.run(stale, T0 + 2),
        Err(BrokerError::StaleBrokerEpoch(_))
    ));
    let unknown = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 9,
        broker_epoch: epoch,
        metadata_offset: registered_at,
    });
    assert!(matches!(
        c.run(unknown, T0 + 2),
        Err(BrokerError::BrokerIdNotRegistered(_))
    ));

    let h = c.heartbeat(1, T0 + 3).unwrap();
    assert_eq!(
        h,
        HeartbeatReply {
            is_caught_up: true,
            is_fenced: false
        }
    );
    assert_eq!(
        c.last_records,
        vec![MetadataRecord::UnfenceBroker {
            broker_id: 1,
            broker_epoch: epoch
        }]
    );
    // Once unfenced, heartbeats only keep the session.
    c.heartbeat(1, T0 + 4).unwrap();
    assert!(c.last_records.is_empty());
}

#[test]
fn create_topic_places_every_replica_and_records_configs() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    let mut t = topic("orders", 6, 3);
    t.configs.insert("min.insync.replicas".into(), "2".into());
    let created = c.create(t, T0).unwrap();
    assert_eq!(created.num_partitions, 6);
    assert_eq!(created.replication_factor, 3);
    let image_topic = c.image.topic("orders").unwrap();
    assert_eq!(image_topic.id, created.topic_id);
    assert_eq!(image_topic.partitions.len(), 6);
    let mut leaders = BTreeMap::<NodeId, usize>::new();
    for s in image_topic.partitions.values() {
        let mut replicas = s.replicas.clone();
        replicas.sort_unstable();
        assert_eq!(replicas, vec![1, 2, 3]);
        assert_eq!(s.isr, s.replicas);
        assert_eq!(s.leader, s.replicas[0]);
        assert_eq!((s.leader_epoch, s.partition_epoch), (0, 0));
        *leaders.entry(s.leader).or_default() += 1;
    }
    // Six partitions over three brokers: two preferred leaders each.
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    assert_eq!(
        c.image.topic_configs("orders"),
        BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())])
    );
}

#[test]
fn create_topic_defaults_and_refusals() {
    let settings = ControllerSettings {
        default_replication_factor: 2,
        default_num_partitions: 4,
        ..ControllerSettings::default()
    };
    let mut c = Cluster::with_brokers(2, settings);
    let created = c.create(topic("d", -1, -1), T0).unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (4, 2));

    let refusals: Vec<(NewTopic, Expect)> = vec![
        (topic("d", 1, 1), |e| {
            matches!(e, BrokerError::TopicAlreadyExists(_))
        }),
        (topic("x", 1, 3), |e| {
            matches!(e, BrokerError::InvalidReplicationFactor(_))
        }),
        (topic("x", 1, 0), |e| {
            matches!(e, BrokerError::InvalidReplicationFactor(_))
        }),
        (topic("x", 0, 1), |e| {
            matches!(e, BrokerError::InvalidPartitions(_))
        }),
        (topic("bad/name", 1, 1), |e| {
            matches!(e, BrokerError::InvalidTopic(_))
        }),
        (
            NewTopic {
                configs: BTreeMap::from([("retention.ms".into(), "soon".into())]),
                ..topic("x", 1, 1)
            },
            |e| matches!(e, BrokerError::InvalidConfig(_)),
        ),
        (manual("x", &[&[1, 1]]), |e| {
            matches!(e, BrokerError::InvalidReplicaAssignment(_))
        }),
        (manual("x", &[&[1, 2], &[1]]), |e| {
            matches!(e, BrokerError::InvalidReplicaAssignment(_))
        }),
        (manual("x", &[&[1, 7]]), |e| {
            matches!(e, BrokerError::InvalidReplicaAssignment(_))
        }),
    ];
    for (t, is_expected) in refusals {
        let name = format!("{t:?}");
        let err = c.create(t, T0).unwrap_err();
        assert!(is_expected(&err), "{name}: {err:?}");
        assert!(c.last_records.is_empty(), "{name}");
    }
    assert!(c.image.topic("x").is_none());
}

#[test]
fn duplicate_names_in_one_request_and_validate_only() {
    let mut c = Cluster::with_brokers(1, ControllerSettings::default());
    let request = ControllerRequest::CreateTopics {
        topics: vec![topic("a", 1, 1), topic("b", 1, 1), topic("a", 2, 1)],
        validate_only: false,
    };
    let ControllerReply::TopicsCreated(results) = c.run(request, T0).unwrap() else {
        panic!()
    };
    assert!(matches!(
        results[0].result,
        Err(BrokerError::InvalidRequest(_))
    ));
    assert!(results[1].result.is_ok());
    assert!(matches!(
        results[2].result,
        Err(BrokerError::InvalidRequest(_))
    ));
    assert!(c.image.topic("a").is_none());
    assert!(c.image.topic("b").is_some());

    let request = ControllerRequest::CreateTopics {
        topics: vec![topic("c", 3, 1)],
        validate_only: true,
    };
    let ControllerReply::TopicsCreated(results) = c.run(request, T0).unwrap() else {
        panic!()
    };
    assert_eq!(results[0].result.as_ref().unwrap().num_partitions, 3);
    assert!(c.last_records.is_empty());
    assert!(c.image.topic("c").is_none());
}

#[test]
fn fenced_brokers_get_no_new_replicas() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.heartbeat(1, T0 + 5000).unwrap();
    c.heartbeat(2, T0 + 5000).unwrap();
    assert_eq!(c.check_sessions(T0 + 9001), vec![3]);
    let err = c.create(topic("t", 1, 3), T0 + 9001).unwrap_err();
    assert!(matches!(err, BrokerError::InvalidReplicationFactor(_)));
    c.create(topic("t", 4, 2), T0 + 9001).unwrap();
    assert!(c.image.partitions_replicated_on(3).is_empty());
}

#[test]
fn session_expiry_fences_and_moves_leadership() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2, 3], &[2, 1, 3], &[3, 2, 1]]), T0)
        .unwrap();
    c.heartbeat(2, T0 + 4000).unwrap();
    c.heartbeat(3, T0 + 4000).unwrap();
    // The timeout is inclusive: 9000 ms after the last heartbeat the session still holds.
    assert!(c.check_sessions(T0 + 9000).is_empty());
    assert!(c.last_records.is_empty());
    assert_eq!(c.check_sessions(T0 + 9001), vec![1]);
    assert!(!c.image.is_unfenced(1));

    // Led by 1: the next ISR member in replica order takes over, with a new leader epoch.
    let p0 = c.state("t", 0);
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p0.leader_epoch, p0.partition_epoch), (1, 1));
    // 1 was only a follower: it leaves the ISR, the leader and its epoch stay.
    let p1 = c.state("t", 1);
    assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2, 3]));
    assert_eq!((p1.leader_epoch, p1.partition_epoch), (0, 1));
    let p2 = c.state("t", 2);
    assert_eq!((p2.leader, p2.isr.clone()), (3, vec![3, 2]));
    assert!(c.image.partitions_led_by(1).is_empty());

    // A second check changes nothing.
    assert!(c.check_sessions(T0 + 9002).is_empty());
    assert!(c.last_records.is_empty());
}

#[test]
fn two_brokers_expiring_together_leave_the_third_leading() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2, 3]]), T0).unwrap();
    c.heartbeat(3, T0 + 5000).unwrap();
    assert_eq!(c.check_sessions(T0 + 9500), vec![1, 2]);
    let s = c.state("t", 0);
    assert_eq!((s.leader, s.isr.clone()), (3, vec![3]));
    // Two leader changes in one batch: each bumps the epoch.
    assert_eq!((s.leader_epoch, s.partition_epoch), (2, 2));
}

#[test]
fn the_last_in_sync_replica_keeps_the_partition_until_it_returns() {
    let mut c = Cluster::with_brokers(2, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2]]), T0).unwrap();
    let (leader, update) = c.isr_update("t", 0, &[1]);
    c.alter(leader, update).unwrap();
    c.heartbeat(2, T0 + 5000).unwrap();
    assert_eq!(c.check_sessions(T0 + 9001), vec![1]);
    let s = c.state("t", 0);
    // Broker 2 is alive but out of sync: without unclean election it may not lead.
    assert_eq!(
        (s.leader, s.isr.clone(), s.leader_epoch),
        (NO_LEADER, vec![1], 1)
    );

    // Broker 1 restarts: a new registration, then a caught-up heartbeat brings it back as leader.
    c.register(1, 2, T0 + 20_000);
    assert_eq!(c.state("t", 0).leader, NO_LEADER);
    let h = c.heartbeat(1, T0 + 20_001).unwrap();
    assert!(!h.is_fenced);
    let s = c.state("t", 0);
    assert_eq!((s.leader, s.isr.clone(), s.leader_epoch), (1, vec![1], 2));
}

#[test]
fn unclean_election_lets_a_live_out_of_sync_replica_lead() {
    let settings = ControllerSettings {
        unclean_leader_election: true,
        ..ControllerSettings::default()
    };
    let mut c = Cluster::with_brokers(2, settings);
    c.create(manual("t", &[&[1, 2]]), T0).unwrap();
    let (leader, update) = c.isr_update("t", 0, &[1]);
    c.alter(leader, update).unwrap();
    c.heartbeat(2, T0 + 5000).unwrap();
    c.check_sessions(T0 + 9001);
    let s = c.state("t", 0);
    assert_eq!((s.leader, s.isr.clone()), (2, vec![2]));
}

#[test]
fn unclean_election_also_happens_when_an_out_of_sync_replica_returns() {
    let settings = ControllerSettings {
        unclean_leader_election: true,
        ..ControllerSettings::default()
    };
    let mut c = Cluster::with_brokers(2, settings);
    c.create(manual("t", &[&[1, 2]]), T0).unwrap();
    let (leader, update) = c.isr_update("t", 0, &[1]);
    c.alter(leader, update).unwrap();
    // Both die: 2 first (leaving the ISR it was not in), then 1, the last in-sync replica.
    c.heartbeat(1, T0 + 5000).unwrap();
    assert_eq!(c.check_sessions(T0 + 9001), vec![2]);
    assert_eq!(c.check_sessions(T0 + 14_001), vec![1]);
    assert_eq!(c.state("t", 0).leader, NO_LEADER);
    c.heartbeat(2, T0 + 15_000).unwrap();
    let s = c.state("t", 0);
    assert_eq!((s.leader, s.isr.clone()), (2, vec![2]));
}

#[test]
fn alter_partition_checks_epochs_leadership_and_members() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2, 3]]), T0).unwrap();

    let (leader, update) = c.isr_update("t", 0, &[1, 2]);
    let s = c.alter(leader, update.clone()).unwrap();
    assert_eq!(
        (s.isr.clone(), s.partition_epoch, s.leader_epoch),
        (vec![1, 2], 1, 0)
    );
    assert_eq!(c.state("t", 0), s);

    // The same update again is based on an old partition epoch.
    let err = c.alter(leader, update).unwrap_err();
    assert!(
        matches!(err, BrokerError::InvalidUpdateVersion(_)),
        "{err:?}"
    );

    let (_, mut stale_leader) = c.isr_update("t", 0, &[1]);
    stale_leader.leader_epoch -= 1;
    let err = c.alter(1, stale_leader).unwrap_err();
    assert!(matches!(err, BrokerError::FencedLeaderEpoch(_)), "{err:?}");

    let (_, from_follower) = c.isr_update("t", 0, &[2]);
    let err = c.alter(2, from_follower).unwrap_err();
    assert!(matches!(err, BrokerError::InvalidRequest(_)), "{err:?}");

    for bad in [&[2, 3][..], &[1, 1], &[1, 4]] {
        let (_, u) = c.isr_update("t", 0, bad);
        let err = c.alter(1, u).unwrap_err();
        assert!(matches!(err, BrokerError::InvalidRequest(_)), "{bad:?}");
    }

    // Expanding to a fenced broker is refused.
    c.heartbeat(1, T0 + 5000).unwrap();
    c.heartbeat(2, T0 + 5000).unwrap();
    c.check_sessions(T0 + 9001);
    let (_, u) = c.isr_update("t", 0, &[1, 2, 3]);
    let err = c.alter(1, u).unwrap_err();
    assert!(matches!(err, BrokerError::IneligibleReplica(_)), "{err:?}");

    // Asking for the ISR it already has writes nothing and answers the current state.
    let (_, u) = c.isr_update("t", 0, &[1, 2]);
    let s = c.alter(1, u).unwrap();
    assert!(c.last_records.is_empty());
    assert_eq!(s, c.state("t", 0));

    // A stale broker epoch refuses the whole request.
    let request = ControllerRequest::AlterPartition {
        broker_id: 1,
        broker_epoch: c.epochs[&1] - 1,
        updates: vec![],
    };
    assert!(matches!(
        c.run(request, T0),
        Err(BrokerError::StaleBrokerEpoch(_))
    ));
    let unknown_topic = IsrUpdate {
        topic_id: Uuid([0xee; 16]),
        ..c.isr_update("t", 0, &[1]).1
    };
    assert!(matches!(
        c.alter(1, unknown_topic),
        Err(BrokerError::UnknownTopicId(_))
    ));
}

#[test]
fn a_returning_preferred_leader_takes_its_partitions_back() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2, 3], &[2, 3, 1]]), T0)
        .unwrap();
    c.heartbeat(2, T0 + 5000).unwrap();
    c.heartbeat(3, T0 + 5000).unwrap();
    assert_eq!(c.check_sessions(T0 + 9001), vec![1]);
    assert_eq!(c.state("t", 0).leader, 2);

    // Broker 1 comes back; it is out of every ISR, so it leads nothing yet.
    let h = c.heartbeat(1, T0 + 10_000).unwrap();
    assert!(!h.is_fenced);
    assert_eq!(c.state("t", 0).leader, 2);
    // Explicitly asked, the election says why it cannot happen.
    let request = ControllerRequest::ElectPreferredLeaders {
        partitions: Some(vec![("t".into(), 0), ("nope".into(), 0)]),
    };
    let ControllerReply::LeadersElected(results) = c.run(request, T0 + 10_000).unwrap() else {
        panic!()
    };
    assert!(matches!(
        results[0].result,
        Err(BrokerError::PreferredLeaderNotAvailable(_))
    ));
    assert!(matches!(
        results[1].result,
        Err(BrokerError::UnknownTopicOrPartition(_))
    ));

    // Its followers' leaders re-admit it once it has caught up.
    for p in 0..2 {
        let (leader, u) = c.isr_update("t", p, &[2, 3, 1]);
        c.alter(leader, u).unwrap();
    }
    let before = c.state("t", 0);
    let request = ControllerRequest::ElectPreferredLeaders { partitions: None };
    let ControllerReply::LeadersElected(results) = c.run(request, T0 + 11_000).unwrap() else {
        panic!()
    };
    // Only the partition that moved is reported; partition 1's preferred leader (2) still leads.
    assert_eq!(results.len(), 1);
    assert_eq!((results[0].topic.as_str(), results[0].partition), ("t", 0));
    assert_eq!(
        *results[0].result.as_ref().unwrap(),
        ElectedLeader {
            leader: 1,
            changed: true
        }
    );
    let after = c.state("t", 0);
    assert_eq!(after.leader, 1);
    assert_eq!(after.leader_epoch, before.leader_epoch + 1);
    assert_eq!(after.isr, before.isr);
}

#[test]
fn the_last_survivor_of_two_failures_leads_again_on_return() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2, 3]]), T0).unwrap();
    let (leader, u) = c.isr_update("t", 0, &[1, 2]);
    c.alter(leader, u).unwrap();
    // 1 and 2 die together; 2 is the last in-sync replica standing after 1 is taken out.
    c.heartbeat(3, T0 + 5000).unwrap();
    assert_eq!(c.check_sessions(T0 + 9001), vec![1, 2]);
    let s = c.state("t", 0);
    assert_eq!((s.leader, s.isr.clone()), (NO_LEADER, vec![2]));
    c.heartbeat(2, T0 + 9500).unwrap();
    let s = c.state("t", 0);
    assert_eq!((s.leader, s.isr.clone()), (2, vec![2]));
}

#[test]
fn create_partitions_continues_the_layout() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2], &[2, 3], &[3, 1]]), T0)
        .unwrap();
    let request = ControllerRequest::CreatePartitions {
        topics: vec![NewPartitions {
            topic: "t".into(),
            total_count: 5,
            assignments: None,
        }],
        validate_only: false,
    };
    let ControllerReply::PartitionsCreated(results) = c.run(request, T0).unwrap() else {
        panic!()
    };
    results[0].result.as_ref().unwrap();
    // Partition 0 starts at broker 1 (index 0), so partitions 3 and 4 follow the same
    // round-robin: p3 opens a new round (shift 1), as in `placement`'s hand-worked case.
    assert_eq!(c.state("t", 3).replicas, vec![1, 3]);
    assert_eq!(c.state("t", 4).replicas, vec![2, 1]);
    assert_eq!(c.state("t", 4).isr, vec![2, 1]);

    let cases: Vec<(NewPartitions, Expect)> = vec![
        (
            NewPartitions {
                topic: "t".into(),
                total_count: 5,
                assignments: None,
            },
            |e| matches!(e, BrokerError::InvalidPartitions(_)),
        ),
        (
            NewPartitions {
                topic: "none".into(),
                total_count: 5,
                assignments: None,
            },
            |e| matches!(e, BrokerError::UnknownTopicOrPartition(_)),
        ),
        (
            NewPartitions {
                topic: "t".into(),
                total_count: 7,
                assignments: Some(vec![vec![1, 2]]),
            },
            |e| matches!(e, BrokerError::InvalidReplicaAssignment(_)),
        ),
        (
            NewPartitions {
                topic: "t".into(),
                total_count: 6,
                assignments: Some(vec![vec![1, 2, 3]]),
            },
            |e| matches!(e, BrokerError::InvalidReplicaAssignment(_)),
        ),
    ];
    for (np, is_expected) in cases {
        let name = format!("{np:?}");
        let request = ControllerRequest::CreatePartitions {
            topics: vec![np],
            validate_only: false,
        };
        let ControllerReply::PartitionsCreated(results) = c.run(request, T0).unwrap() else {
            panic!()
        };
        let err = results[0].result.as_ref().unwrap_err();
        assert!(is_expected(err), "{name}: {err:?}");
    }

    let request = ControllerRequest::CreatePartitions {
        topics: vec![NewPartitions {
            topic: "t".into(),
            total_count: 6,
            assignments: Some(vec![vec![3, 2]]),
        }],
        validate_only: false,
    };
    c.run(request, T0).unwrap();
    let s = c.state("t", 5);
    assert_eq!((s.replicas.clone(), s.leader), (vec![3, 2], 3));
}

#[test]
fn delete_topics_removes_them_and_reports_unknown_names() {
    let mut c = Cluster::with_brokers(1, ControllerSettings::default());
    let id = c.create(topic("a", 2, 1), T0).unwrap().topic_id;
    let request = ControllerRequest::DeleteTopics {
        names: vec!["a".into(), "b".into()],
    };
    let ControllerReply::TopicsDeleted(results) = c.run(request, T0).unwrap() else {
        panic!()
    };
    assert_eq!(*results[0].result.as_ref().unwrap(), id);
    assert!(matches!(
        results[1].result,
        Err(BrokerError::UnknownTopicOrPartition(_))
    ));
    assert!(c.image.topic("a").is_none());
    assert!(c.image.topic_by_id(id).is_none());
}

#[test]
fn unregister_moves_leadership_then_removes_the_broker() {
    let mut c = Cluster::with_brokers(2, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2]]), T0).unwrap();
    c.run(ControllerRequest::UnregisterBroker { broker_id: 1 }, T0)
        .unwrap();
    assert!(c.image.broker(1).is_none());
    let s = c.state("t", 0);
    assert_eq!((s.leader, s.isr.clone()), (2, vec![2]));
    assert!(matches!(
        c.run(ControllerRequest::UnregisterBroker { broker_id: 1 }, T0),
        Err(BrokerError::BrokerIdNotRegistered(_))
    ));
}

#[test]
fn producer_id_blocks_do_not_overlap() {
    let mut c = Cluster::with_brokers(2, ControllerSettings::default());
    let mut blocks = vec![];
    for broker in [1, 2, 1] {
        let request = ControllerRequest::AllocateProducerIds {
            broker_id: broker,
            broker_epoch: c.epochs[&broker],
        };
        match c.run(request, T0).unwrap() {
            ControllerReply::ProducerIds { first_id, count } => blocks.push((first_id, count)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(blocks, vec![(0, 1000), (1000, 1000), (2000, 1000)]);
    assert_eq!(c.image.next_producer_id(), 3000);
    let stale = ControllerRequest::AllocateProducerIds {
        broker_id: 1,
        broker_epoch: 0,
    };
    assert!(c.run(stale, T0).is_err());
}

#[test]
fn a_new_active_controller_starts_sessions_afresh() {
    let mut c = Cluster::with_brokers(2, ControllerSettings::default());
    // This controller last heard from the brokers at T0; another led for a while.
    c.ctl.reset_sessions();
    // Long past T0 + timeout, but the sessions start at the first check after taking over.
    assert!(c.check_sessions(T0 + 60_000).is_empty());
    c.heartbeat(1, T0 + 65_000).unwrap();
    assert_eq!(c.check_sessions(T0 + 69_001), vec![2]);
}

#[test]
fn decisions_are_reproducible_from_the_seed() {
    let run = || {
        let mut c = Cluster::with_brokers(5, ControllerSettings::default());
        let created = c.create(topic("t", 7, 3), T0).unwrap();
        (created.topic_id, c.image.topic("t").unwrap().clone())
    };
    let (id_a, topic_a) = run();
    let (id_b, topic_b) = run();
    assert_eq!(id_a, id_b);
    assert_eq!(topic_a, topic_b);
    assert_ne!(id_a, Uuid::ZERO);
}

#[test]
fn controlled_shutdown_moves_leadership_at_once_and_a_late_heartbeat_does_not_undo_it() {
    let mut c = Cluster::with_brokers(3, ControllerSettings::default());
    c.create(manual("t", &[&[1, 2, 3], &[2, 1, 3]]), T0)
        .unwrap();
    let epoch = c.epochs[&1];
    let stale = ControllerRequest::ControlledShutdown {
        broker_id: 1,
        broker_epoch: epoch - 1,
    };
    assert!(c.run(stale, T0 + 10).is_err());
    let reply = c
        .run(
            ControllerRequest::ControlledShutdown {
                broker_id: 1,
                broker_epoch: epoch,
            },
            T0 + 10,
        )
        .unwrap();
    assert!(
        matches!(reply, ControllerReply::ShutdownAccepted),
        "{reply:?}"
    );
    // No session had to expire: 1 is fenced, leads nothing and left every ISR.
    assert!(!c.image.is_unfenced(1));
    assert!(c.image.partitions_led_by(1).is_empty());
    let p0 = c.state("t", 0);
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
    assert!(!c.state("t", 1).isr.contains(&1));
    // A heartbeat it sent before stopping arrives late: it stays fenced.
    let late = c.heartbeat(1, T0 + 20).unwrap();
    assert!(late.is_fenced);
    // Started again, it registers anew and returns.
    c.register(1, 2, T0 + 30);
    assert!(!c.heartbeat(1, T0 + 40).unwrap().is_fenced);
}
