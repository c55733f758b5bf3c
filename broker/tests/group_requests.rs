//! The group APIs at the protocol edge, version by version, with hand-built requests: the
//! batched forms (FindCoordinator v4, LeaveGroup v3+, OffsetFetch v8+), the KIP-394 handshake,
//! the admin APIs, and what the internal topic refuses.

mod common;

use bytes::Bytes;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use common::{start, Client, TestBroker};

async fn broker() -> TestBroker {
    start(|c| {
        c.group_coordinator.initial_rebalance_delay_ms = 0;
        c.num_partitions = 2;
    })
    .await
}

/// Group state loads in the background after start-up; until then the coordinator answers
/// COORDINATOR_LOAD_IN_PROGRESS, which clients retry. Waits until `groups` are served.
async fn until_loaded(c: &mut Client, groups: &[&str]) {
    for g in groups {
        for _ in 0..500 {
            let probe = HeartbeatRequest {
                group_id: g.to_string(),
                ..Default::default()
            };
            if c.send(0, &probe).await.error_code != ErrorCode::CoordinatorLoadInProgress.code() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

fn join(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: group.into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        member_id: member.into(),
        protocol_type: "consumer".into(),
        protocols: vec![JoinGroupRequestProtocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"subscription"),
        }],
        ..Default::default()
    }
}

/// A one-member group, Stable, with assignment "mine"; returns the member id.
async fn stable_member(c: &mut Client, group: &str) -> String {
    let first = c.send(5, &join(group, "")).await;
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired.code());
    let member = first.member_id;
    let joined = c.send(5, &join(group, &member)).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(
        (joined.generation_id, joined.leader.as_str()),
        (1, member.as_str())
    );
    let synced = c
        .send(
            5,
            &SyncGroupRequest {
                group_id: group.into(),
                generation_id: 1,
                member_id: member.clone(),
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: vec![SyncGroupRequestAssignment {
                    member_id: member.clone(),
                    assignment: Bytes::from_static(b"mine"),
                }],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"mine"));
    assert_eq!(synced.protocol_name.as_deref(), Some("range"));
    member
}

#[tokio::test]
async fn find_coordinator_single_and_batched() {
    let b = broker().await;
    let mut c = Client::connect(&b).await;
    let old = c
        .send(
            0,
            &FindCoordinatorRequest {
                key: "g".into(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!((old.error_code, old.node_id), (0, 1));
    assert_eq!(old.port, b.addr.port() as i32);
    let batched = c
        .send(
            4,
            &FindCoordinatorRequest {
                coordinator_keys: vec!["a".into(), "b".into()],
                ..Default::default()
            },
        )
        .await;
    let keys: Vec<(&str, i16, i32)> = batched
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.error_code, c.node_id))
        .collect();
    assert_eq!(keys, [("a", 0, 1), ("b", 0, 1)]);
    let bad = c
        .send(
            4,
            &FindCoordinatorRequest {
                key_type: 7,
                coordinator_keys: vec!["a".into()],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        bad.coordinators[0].error_code,
        ErrorCode::InvalidRequest.code()
    );
    b.stop().await;
}

#[tokio::test]
async fn membership_by_hand_old_and_new_versions() {
    let b = broker().await;
    let mut c = Client::connect(&b).await;
    until_loaded(&mut c, &["g", "old-group"]).await;
    let invalid = c.send(5, &join("", "")).await;
    assert_eq!(invalid.error_code, ErrorCode::InvalidGroupId.code());
    // v0-3 predate MEMBER_ID_REQUIRED: the first join gets an id and a generation at once.
    let old = c.send(0, &join("old-group", "")).await;
    assert_eq!((old.error_code, old.generation_id), (0, 1));
    assert!(!old.member_id.is_empty());

    let member = stable_member(&mut c, "g").await;
    let beat = |generation_id| HeartbeatRequest {
        group_id: "g".into(),
        generation_id,
        member_id: member.clone(),
        group_instance_id: None,
    };
    assert_eq!(c.send(4, &beat(1)).await.error_code, 0);
    assert_eq!(
        c.send(4, &beat(2)).await.error_code,
        ErrorCode::IllegalGeneration.code()
    );
    let described = c
        .send(
            5,
            &DescribeGroupsRequest {
                groups: vec!["g".into(), "nobody".into()],
                include_authorized_operations: false,
            },
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(
        (
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        ("Stable", "consumer", "range")
    );
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].client_id, "test");
    assert_eq!(g.members[0].client_host, "/127.0.0.1");
    assert_eq!(g.members[0].member_assignment, Bytes::from_static(b"mine"));
    assert_eq!(g.authorized_operations, i32::MIN);
    assert_eq!(described.groups[1].group_state, "Dead");

    let listed = c
        .send(
            4,
            &ListGroupsRequest {
                states_filter: vec!["stable".into()],
                ..Default::default()
            },
        )
        .await;
    let names: Vec<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
    // "old-group" joined but never synced: it waits in CompletingRebalance.
    assert_eq!(names, ["g"]);
    let listed = c.send(3, &ListGroupsRequest::default()).await;
    let names: Vec<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(names, ["g", "old-group"]);
    let listed = c
        .send(
            5,
            &ListGroupsRequest {
                types_filter: vec!["consumer".into()],
                ..Default::default()
            },
        )
        .await;
    assert!(listed.groups.is_empty(), "only classic groups exist");

    // A non-empty group cannot be deleted; a batched leave (one unknown member) empties it.
    let deleted = c
        .send(
            2,
            &DeleteGroupsRequest {
                groups_names: vec!["g".into(), "nobody".into()],
            },
        )
        .await;
    let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [
            ErrorCode::NonEmptyGroup.code(),
            ErrorCode::GroupIdNotFound.code()
        ]
    );
    let left = c
        .send(
            5,
            &LeaveGroupRequest {
                group_id: "g".into(),
                members: vec![
                    LeaveGroupRequestMember {
                        member_id: member.clone(),
                        ..Default::default()
                    },
                    LeaveGroupRequestMember {
                        member_id: "stranger".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(left.error_code, 0);
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, [0, ErrorCode::UnknownMemberId.code()]);
    let deleted = c
        .send(
            0,
            &DeleteGroupsRequest {
                groups_names: vec!["g".into()],
            },
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 0);
    b.stop().await;
}

/// OffsetFetch v7 for everything `group` committed.
fn fetch_all(group: &str) -> OffsetFetchRequest {
    OffsetFetchRequest {
        group_id: group.into(),
        topics: None,
        ..Default::default()
    }
}

fn delete_topic(name: &str) -> DeleteTopicsRequest {
    DeleteTopicsRequest {
        topics: vec![DeleteTopicsRequestTopic {
            name: Some(name.into()),
            ..Default::default()
        }],
        timeout_ms: 5000,
        ..Default::default()
    }
}

fn commit(group: &str, topic: &str, offsets: &[(i32, i64)]) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.into(),
        generation_id_or_member_epoch: -1,
        topics: vec![OffsetCommitRequestTopic {
            name: topic.into(),
            partitions: offsets
                .iter()
                .map(|(p, o)| OffsetCommitRequestPartition {
                    partition_index: *p,
                    committed_offset: *o,
                    committed_metadata: Some(format!("at {o}")),
                    ..Default::default()
                })
                .collect(),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn offsets_commit_fetch_and_delete_across_versions() {
    let b = broker().await;
    let mut c = Client::connect(&b).await;
    let created = c
        .send(
            7,
            &CreateTopicsRequest {
                topics: vec![CreateTopicsRequestTopic {
                    name: "t".into(),
                    num_partitions: 2,
                    replication_factor: 1,
                    ..Default::default()
                }],
                timeout_ms: 5000,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    until_loaded(&mut c, &["solo", "other", "unknown"]).await;
    // v2: a commit without a group generation (manual assignment), plus an unknown partition.
    let r = c
        .send(2, &commit("solo", "t", &[(0, 5), (1, 7), (9, 1)]))
        .await;
    let codes: Vec<i16> = r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [0, 0, ErrorCode::UnknownTopicOrPartition.code()]);
    let r = c.send(8, &commit("other", "t", &[(0, 3)])).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);

    // v1 names partitions; one never committed answers -1.
    let fetched = c
        .send(
            1,
            &OffsetFetchRequest {
                group_id: "solo".into(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: "t".into(),
                    partition_indexes: vec![1, 0],
                }]),
                ..Default::default()
            },
        )
        .await;
    let got: Vec<(i32, i64)> = fetched.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(got, [(1, 7), (0, 5)]);
    // v7 with no topics: everything the group committed.
    let all = c.send(7, &fetch_all("solo")).await;
    assert_eq!(all.error_code, 0);
    assert_eq!(all.topics[0].partitions.len(), 2);
    assert_eq!(
        all.topics[0].partitions[1].metadata.as_deref(),
        Some("at 7")
    );
    // v8: several groups at once, one of them unknown.
    let many = c
        .send(
            8,
            &OffsetFetchRequest {
                groups: ["solo", "other", "unknown"]
                    .iter()
                    .map(|g| OffsetFetchRequestGroup {
                        group_id: g.to_string(),
                        topics: Some(vec![OffsetFetchRequestTopic {
                            name: "t".into(),
                            partition_indexes: vec![0],
                        }]),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
        )
        .await;
    let got: Vec<(&str, i64)> = many
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.topics[0].partitions[0].committed_offset,
            )
        })
        .collect();
    assert_eq!(got, [("solo", 5), ("other", 3), ("unknown", -1)]);

    let deleted = c
        .send(
            0,
            &OffsetDeleteRequest {
                group_id: "solo".into(),
                topics: vec![OffsetDeleteRequestTopic {
                    name: "t".into(),
                    partitions: vec![OffsetDeleteRequestPartition { partition_index: 0 }],
                }],
            },
        )
        .await;
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
    let all = c.send(7, &fetch_all("solo")).await;
    assert_eq!(all.topics[0].partitions.len(), 1);

    // Deleting the topic drops what every group committed for it.
    let gone = c.send(6, &delete_topic("t")).await;
    assert_eq!(gone.responses[0].error_code, 0);
    let all = c.send(7, &fetch_all("other")).await;
    assert!(all.topics.is_empty(), "{all:?}");
    b.stop().await;
}

#[tokio::test]
async fn the_offsets_topic_is_protected() {
    let b = broker().await;
    let mut c = Client::connect(&b).await;
    let refused = c.send(6, &delete_topic("__consumer_offsets")).await;
    assert_eq!(
        refused.responses[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    let records =
        sluice_protocol::records::RecordBatch::new(vec![sluice_protocol::records::Record {
            offset: 0,
            timestamp: 0,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![],
        }])
        .encode()
        .unwrap();
    let produced = c
        .send(
            9,
            &ProduceRequest {
                acks: 1,
                timeout_ms: 5000,
                topic_data: vec![ProduceRequestTopic {
                    name: "__consumer_offsets".into(),
                    partition_data: vec![ProduceRequestPartition {
                        index: 0,
                        records: Some(records),
                    }],
                }],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        produced.responses[0].partition_responses[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    b.stop().await;
}
