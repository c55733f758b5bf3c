//! The records Kafka's group coordinator writes to `__consumer_offsets`, so that Sluice keeps
//! group state in Kafka's own format. A key and a value each start with an int16 version.
//!
//! A record whose value is null (a tombstone) deletes the offset or group its key names.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};
use crate::wire::{Ctx, Wire};

/// The key of a `__consumer_offsets` record: which group, and for an offset which partition,
/// the value describes. It also decides the partition of `__consumer_offsets` (by group).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupRecordKey {
    /// Key version 0 or 1 (the same layout): the value is an [`OffsetCommitValue`].
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// Key version 2: the value is a [`GroupMetadataValue`].
    Group { group: String },
}

/// Keys are never flexible: classic int16-length strings.
const KEY_CX: Ctx = Ctx {
    version: 0,
    flexible: false,
};

impl GroupRecordKey {
    /// Kafka writes offset keys as version 1; version 0 is the same layout from before 0.9.
    pub const OFFSET_KEY_VERSION: i16 = 1;
    pub const GROUP_KEY_VERSION: i16 = 2;

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            GroupRecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(Self::OFFSET_KEY_VERSION);
                group.encode(&mut buf, KEY_CX);
                topic.encode(&mut buf, KEY_CX);
                partition.encode(&mut buf, KEY_CX);
            }
            GroupRecordKey::Group { group } => {
                buf.put_i16(Self::GROUP_KEY_VERSION);
                group.encode(&mut buf, KEY_CX);
            }
        }
        buf.freeze()
    }

    /// Fails with [`ProtocolError::UnknownVersion`] for the key versions of other record types
    /// (Kafka 4's consumer-protocol groups use 3 and up), which a reader may skip.
    pub fn decode(data: &[u8]) -> Result<GroupRecordKey> {
        let mut buf = Bytes::copy_from_slice(data);
        let key = match i16::decode(&mut buf, KEY_CX)? {
            0 | 1 => GroupRecordKey::Offset {
                group: String::decode(&mut buf, KEY_CX)?,
                topic: String::decode(&mut buf, KEY_CX)?,
                partition: i32::decode(&mut buf, KEY_CX)?,
            },
            2 => GroupRecordKey::Group {
                group: String::decode(&mut buf, KEY_CX)?,
            },
            version => {
                return Err(ProtocolError::UnknownVersion {
                    kind: "__consumer_offsets key",
                    version,
                })
            }
        };
        finish(buf)?;
        Ok(key)
    }

    pub fn group(&self) -> &str {
        match self {
            GroupRecordKey::Offset { group, .. } | GroupRecordKey::Group { group } => group,
        }
    }
}

wire_struct! {
    /// A committed offset. v1 is written only when the commit asked for its own retention.
    pub struct OffsetCommitValue {
        offset: i64 => 0..;
        leader_epoch: i32 => 3.., default -1;
        /// Not nullable here: a commit with null metadata is stored as "".
        metadata: String => 0..;
        commit_timestamp: i64 => 0..;
        expire_timestamp: i64 => 1..1, default -1;
    }
}

wire_struct! {
    /// A classic group's generation, chosen protocol and members, written after each rebalance
    /// (and with no members when the group empties).
    pub struct GroupMetadataValue {
        protocol_type: String => 0..;
        generation: i32 => 0..;
        protocol: Option<String> => 0..;
        leader: Option<String> => 0..;
        current_state_timestamp: i64 => 2.., default -1;
        members: Vec<GroupMetadataValueMember> => 0..;
    }
}

wire_struct! {
    pub struct GroupMetadataValueMember {
        member_id: String => 0..;
        group_instance_id: Option<String> => 3..;
        client_id: String => 0..;
        client_host: String => 0..;
        /// Absent in v0, where Kafka takes the session timeout instead.
        rebalance_timeout: i32 => 1..;
        session_timeout: i32 => 0..;
        subscription: Bytes => 0..;
        assignment: Bytes => 0..;
    }
}

/// Value versions 0-4 of both value types; v4 is the first flexible one.
const VALUE_MAX_VERSION: i16 = 4;
const VALUE_FIRST_FLEXIBLE: i16 = 4;

impl OffsetCommitValue {
    /// The newest non-flexible version, which Kafka 3.x writes unless an expire timestamp is set.
    pub const WRITE_VERSION: i16 = 3;

    pub fn encode(&self, version: i16) -> Bytes {
        encode_value(self, version)
    }

    pub fn decode(data: &[u8]) -> Result<OffsetCommitValue> {
        decode_value(data, "OffsetCommitValue")
    }
}

impl GroupMetadataValue {
    /// The newest non-flexible version, which Kafka 3.x writes.
    pub const WRITE_VERSION: i16 = 3;

    pub fn encode(&self, version: i16) -> Bytes {
        encode_value(self, version)
    }

    pub fn decode(data: &[u8]) -> Result<GroupMetadataValue> {
        decode_value(data, "GroupMetadataValue")
    }
}

fn value_cx(version: i16) -> Ctx {
    Ctx::new(version, version >= VALUE_FIRST_FLEXIBLE)
}

fn encode_value<T: Wire>(value: &T, version: i16) -> Bytes {
    assert!(
        (0..=VALUE_MAX_VERSION).contains(&version),
        "no value version {version} in __consumer_offsets"
    );
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    value.encode(&mut buf, value_cx(version));
    buf.freeze()
}

fn decode_value<T: Wire>(data: &[u8], kind: &'static str) -> Result<T> {
    let mut buf = Bytes::copy_from_slice(data);
    let version = i16::decode(&mut buf, KEY_CX)?;
    if !(0..=VALUE_MAX_VERSION).contains(&version) {
        return Err(ProtocolError::UnknownVersion { kind, version });
    }
    let value = T::decode(&mut buf, value_cx(version))?;
    finish(buf)?;
    Ok(value)
}

fn finish(rest: Bytes) -> Result<()> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::TrailingBytes(rest.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Rng, Sample};

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Like the messages' round trip: bytes, not values, since fields outside a version drop.
    fn check_value_round_trip<T>(encode: fn(&T, i16) -> Bytes, decode: fn(&[u8]) -> Result<T>)
    where
        T: Sample + std::fmt::Debug,
    {
        for version in 0..=VALUE_MAX_VERSION {
            for seed in 0..300u64 {
                let value = T::sample(&mut Rng::new(seed << 16 | version as u64));
                let first = encode(&value, version);
                let decoded = decode(&first)
                    .unwrap_or_else(|e| panic!("v{version} seed {seed}: {e}\n{value:?}"));
                assert_eq!(encode(&decoded, version), first, "v{version} seed {seed}");
            }
        }
    }

    #[test]
    fn values_round_trip_in_every_version() {
        check_value_round_trip(OffsetCommitValue::encode, OffsetCommitValue::decode);
        check_value_round_trip(GroupMetadataValue::encode, GroupMetadataValue::decode);
    }

    #[test]
    fn keys_round_trip() {
        let mut rng = Rng::new(7);
        for _ in 0..300 {
            let key = if rng.below(2) == 0 {
                GroupRecordKey::Offset {
                    group: String::sample(&mut rng),
                    topic: String::sample(&mut rng),
                    partition: i32::sample(&mut rng),
                }
            } else {
                GroupRecordKey::Group {
                    group: String::sample(&mut rng),
                }
            };
            assert_eq!(GroupRecordKey::decode(&key.encode()).unwrap(), key);
        }
    }

    #[test]
    fn offset_key_golden() {
        let bytes = concat(&[
            b"\x00\x01",         // key version 1: offset commit
            b"\x00\x03grp",      // group
            b"\x00\x06events",   // topic
            b"\x00\x00\x00\x02", // partition
        ]);
        let key = GroupRecordKey::Offset {
            group: "grp".into(),
            topic: "events".into(),
            partition: 2,
        };
        assert_eq!(&key.encode()[..], &bytes[..]);
        assert_eq!(GroupRecordKey::decode(&bytes).unwrap(), key);
        // Version 0 is the same layout.
        let mut v0 = bytes.clone();
        v0[1] = 0;
        assert_eq!(GroupRecordKey::decode(&v0).unwrap(), key);
    }

    #[test]
    fn group_key_golden() {
        let bytes = concat(&[
            b"\x00\x02",    // key version 2: group metadata
            b"\x00\x03grp", // group
        ]);
        let key = GroupRecordKey::Group {
            group: "grp".into(),
        };
        assert_eq!(&key.encode()[..], &bytes[..]);
        assert_eq!(GroupRecordKey::decode(&bytes).unwrap(), key);
        assert_eq!(key.group(), "grp");
    }

    #[test]
    fn other_keys_are_refused_not_misread() {
        // Key version 3 is a Kafka 4 consumer-protocol group record.
        assert_eq!(
            GroupRecordKey::decode(b"\x00\x03\x00\x01g"),
            Err(ProtocolError::UnknownVersion {
                kind: "__consumer_offsets key",
                version: 3
            })
        );
        assert_eq!(
            GroupRecordKey::decode(b"\x00\x02\x00\x01gX"),
            Err(ProtocolError::TrailingBytes(1))
        );
        assert!(GroupRecordKey::decode(b"\x00").is_err());
        assert!(OffsetCommitValue::decode(b"\x00\x05").is_err());
    }

    #[test]
    fn offset_commit_value_v3_golden() {
        let bytes = concat(&[
            b"\x00\x03",                         // value version 3
            b"\x00\x00\x00\x00\x00\x00\x00\x2a", // offset: 42
            b"\x00\x00\x00\x05",                 // leader_epoch: 5 (v3+)
            b"\x00\x00",                         // metadata: ""
            b"\x00\x00\x01\x8b\xcf\xe5\x68\x00", // commit_timestamp
                                                 // expire_timestamp is v1 only: absent
        ]);
        let value = OffsetCommitValue {
            offset: 42,
            leader_epoch: 5,
            metadata: String::new(),
            commit_timestamp: 0x018b_cfe5_6800,
            expire_timestamp: -1,
        };
        assert_eq!(
            &value.encode(OffsetCommitValue::WRITE_VERSION)[..],
            &bytes[..]
        );
        assert_eq!(OffsetCommitValue::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn offset_commit_value_v1_and_v4_layouts() {
        let v1 = concat(&[
            b"\x00\x01",                         // value version 1
            b"\x00\x00\x00\x00\x00\x00\x00\x07", // offset: 7
            // leader_epoch is v3+: absent
            b"\x00\x02md",                       // metadata: "md"
            b"\x00\x00\x00\x00\x00\x00\x00\x64", // commit_timestamp: 100
            b"\x00\x00\x00\x00\x00\x00\x00\xc8", // expire_timestamp: 200 (v1 only)
        ]);
        let value = OffsetCommitValue::decode(&v1).unwrap();
        assert_eq!((value.offset, value.leader_epoch), (7, -1));
        assert_eq!(value.metadata, "md");
        assert_eq!((value.commit_timestamp, value.expire_timestamp), (100, 200));

        let v4 = concat(&[
            b"\x00\x04",                         // value version 4: flexible
            b"\x00\x00\x00\x00\x00\x00\x00\x07", // offset: 7
            b"\xff\xff\xff\xff",                 // leader_epoch: -1
            b"\x03md",                           // metadata: compact string "md"
            b"\x00\x00\x00\x00\x00\x00\x00\x64", // commit_timestamp: 100
            b"\x00",                             // tagged fields
        ]);
        assert_eq!(&value.encode(4)[..], &v4[..]);
    }

    #[test]
    fn group_metadata_value_v3_golden() {
        let bytes = concat(&[
            b"\x00\x03",                         // value version 3
            b"\x00\x08consumer",                 // protocol_type
            b"\x00\x00\x00\x01",                 // generation: 1
            b"\x00\x05range",                    // protocol: "range"
            b"\x00\x02m1",                       // leader: "m1"
            b"\x00\x00\x01\x8b\xcf\xe5\x68\x00", // current_state_timestamp (v2+)
            b"\x00\x00\x00\x01",                 // members: array of 1
            b"\x00\x02m1",                       //   member_id
            b"\xff\xff",                         //   group_instance_id: null (v3+)
            b"\x00\x01c",                        //   client_id: "c"
            b"\x00\x08/1.2.3.4",                 //   client_host
            b"\x00\x00\xea\x60",                 //   rebalance_timeout: 60000 (v1+)
            b"\x00\x00\xaf\xc8",                 //   session_timeout: 45000
            b"\x00\x00\x00\x02\x00\x01",         //   subscription: 2 bytes
            b"\x00\x00\x00\x00",                 //   assignment: empty
        ]);
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 0x018b_cfe5_6800,
            members: vec![GroupMetadataValueMember {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/1.2.3.4".into(),
                rebalance_timeout: 60_000,
                session_timeout: 45_000,
                subscription: Bytes::from_static(b"\x00\x01"),
                assignment: Bytes::new(),
            }],
        };
        assert_eq!(
            &value.encode(GroupMetadataValue::WRITE_VERSION)[..],
            &bytes[..]
        );
        assert_eq!(GroupMetadataValue::decode(&bytes).unwrap(), value);
    }

    #[test]
    fn group_metadata_value_v0_of_an_empty_group() {
        let bytes = concat(&[
            b"\x00\x00",         // value version 0
            b"\x00\x08consumer", // protocol_type
            b"\x00\x00\x00\x03", // generation: 3
            b"\xff\xff",         // protocol: null
            b"\xff\xff",         // leader: null
            // current_state_timestamp is v2+: absent
            b"\x00\x00\x00\x00", // members: none
        ]);
        let value = GroupMetadataValue::decode(&bytes).unwrap();
        assert_eq!(value.generation, 3);
        assert_eq!((value.protocol, value.leader), (None, None));
        assert_eq!(value.current_state_timestamp, -1);
        assert!(value.members.is_empty());
    }
}
