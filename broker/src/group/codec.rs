//! Group records as bytes: the key/value layouts Kafka's coordinator uses in
//! `__consumer_offsets`, so a Sluice data directory reads like a Kafka one to Kafka tools.

use bytes::Bytes;
use sluice_protocol::group_records::{
    GroupMetadataValue, GroupMetadataValueMember, GroupRecordKey, OffsetCommitValue,
};
use sluice_protocol::ProtocolError;

use super::records::{CommittedOffset, GroupRecord, GroupSnapshot, MemberSnapshot};

/// Kafka writes v1 only for commits with their own retention (the only version with an
/// expire timestamp); otherwise v3.
const OFFSET_VALUE_WITH_EXPIRY: i16 = 1;

pub fn encode(record: &GroupRecord) -> (Bytes, Option<Bytes>) {
    match record {
        GroupRecord::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let key = GroupRecordKey::Offset {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
            };
            let value = value.as_ref().map(|o| {
                let v = OffsetCommitValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    commit_timestamp: o.commit_timestamp_ms,
                    expire_timestamp: o.expire_timestamp_ms.unwrap_or(-1),
                };
                match o.expire_timestamp_ms {
                    Some(_) => v.encode(OFFSET_VALUE_WITH_EXPIRY),
                    None => v.encode(OffsetCommitValue::WRITE_VERSION),
                }
            });
            (key.encode(), value)
        }
        GroupRecord::Group { group, value } => {
            let key = GroupRecordKey::Group {
                group: group.clone(),
            };
            let value = value.as_ref().map(|g| {
                GroupMetadataValue {
                    protocol_type: g.protocol_type.clone(),
                    generation: g.generation_id,
                    protocol: g.protocol_name.clone(),
                    leader: g.leader_id.clone(),
                    current_state_timestamp: g.current_state_timestamp_ms,
                    members: g
                        .members
                        .iter()
                        .map(|m| GroupMetadataValueMember {
                            member_id: m.member_id.clone(),
                            group_instance_id: m.group_instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            rebalance_timeout: m.rebalance_timeout_ms,
                            session_timeout: m.session_timeout_ms,
                            subscription: m.subscription.clone(),
                            assignment: m.assignment.clone(),
                        })
                        .collect(),
                }
                .encode(GroupMetadataValue::WRITE_VERSION)
            });
            (key.encode(), value)
        }
    }
}

/// Reads one stored record. `Ok(None)` for record types this coordinator does not keep
/// (Kafka 4's consumer-protocol groups use other key versions).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<GroupRecord>, ProtocolError> {
    let key = match GroupRecordKey::decode(key) {
        Ok(k) => k,
        Err(ProtocolError::UnknownVersion { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(match key {
        GroupRecordKey::Offset {
            group,
            topic,
            partition,
        } => GroupRecord::Offset {
            group,
            topic,
            partition,
            value: value
                .map(OffsetCommitValue::decode)
                .transpose()?
                .map(|v| CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata,
                    commit_timestamp_ms: v.commit_timestamp,
                    expire_timestamp_ms: Some(v.expire_timestamp).filter(|t| *t >= 0),
                }),
        },
        GroupRecordKey::Group { group } => GroupRecord::Group {
            group,
            value: value
                .map(GroupMetadataValue::decode)
                .transpose()?
                .map(|v| GroupSnapshot {
                    protocol_type: v.protocol_type,
                    generation_id: v.generation,
                    protocol_name: v.protocol,
                    leader_id: v.leader,
                    current_state_timestamp_ms: v.current_state_timestamp,
                    members: v
                        .members
                        .into_iter()
                        .map(|m| MemberSnapshot {
                            member_id: m.member_id,
                            group_instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            rebalance_timeout_ms: m.rebalance_timeout,
                            session_timeout_ms: m.session_timeout,
                            subscription: m.subscription,
                            assignment: m.assignment,
                        })
                        .collect(),
                }),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(record: GroupRecord) {
        let (key, value) = encode(&record);
        assert_eq!(decode(&key, value.as_deref()).unwrap(), Some(record));
    }

    #[test]
    fn records_survive_their_bytes() {
        round_trip(GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 7,
                metadata: "m".into(),
                commit_timestamp_ms: 1_700_000_000_000,
                expire_timestamp_ms: None,
            }),
        });
        round_trip(GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 5,
                expire_timestamp_ms: Some(99),
            }),
        });
        round_trip(GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: None,
        });
        round_trip(GroupRecord::Group {
            group: "g".into(),
            value: Some(GroupSnapshot {
                protocol_type: "consumer".into(),
                generation_id: 4,
                protocol_name: Some("range".into()),
                leader_id: Some("m1".into()),
                current_state_timestamp_ms: 17,
                members: vec![MemberSnapshot {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        });
        round_trip(GroupRecord::Group {
            group: "g".into(),
            value: None,
        });
    }

    #[test]
    fn other_record_types_are_skipped() {
        // Key version 3 is a consumer-protocol group record in Kafka 4.
        assert_eq!(decode(&[0, 3, 0, 1, b'g'], Some(&[0, 0])).unwrap(), None);
        assert!(decode(&[0, 1, 0], None).is_err());
    }
}
