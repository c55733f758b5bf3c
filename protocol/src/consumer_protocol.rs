//! The "consumer" embedded protocol: what members of a classic consumer group put in JoinGroup's
//! protocol metadata (a subscription) and receive in SyncGroup's assignment bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};
use crate::wire::{Ctx, Wire};

wire_struct! {
    /// A member's subscription, sent as the metadata of each protocol it offers.
    pub struct ConsumerProtocolSubscription {
        topics: Vec<String> => 0..;
        user_data: Option<Bytes> => 0..;
        /// Partitions the member holds while it rejoins (cooperative rebalancing, KIP-429).
        owned_partitions: Vec<ConsumerProtocolTopicPartition> => 1..;
        /// The generation `owned_partitions` were assigned in; -1 when unknown.
        generation_id: i32 => 2.., default -1;
        rack_id: Option<String> => 3..;
    }
}

wire_struct! {
    /// A topic's partitions, in both subscriptions (owned) and assignments (assigned).
    pub struct ConsumerProtocolTopicPartition {
        topic: String => 0..;
        partitions: Vec<i32> => 0..;
    }
}

wire_struct! {
    /// What the leader hands each member through SyncGroup.
    pub struct ConsumerProtocolAssignment {
        assigned_partitions: Vec<ConsumerProtocolTopicPartition> => 0..;
        user_data: Option<Bytes> => 0..;
    }
}

/// The highest version of both formats this codec knows (Kafka 3.5+ writes 3).
pub const CONSUMER_PROTOCOL_MAX_VERSION: i16 = 3;

fn serialize<T: Wire>(value: &T, version: i16) -> Bytes {
    let version = version.clamp(0, CONSUMER_PROTOCOL_MAX_VERSION);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(version);
    value.encode(&mut buf, Ctx::new(version, false));
    buf.freeze()
}

/// Reads the int16 version, then the (never flexible) fields of min(version, known). Trailing
/// bytes of a newer version are fields we do not know, and are skipped: the formats promise that
/// later versions only ever append fields, so the known prefix reads the same.
fn deserialize<T: Wire>(data: &Bytes, kind: &'static str) -> Result<(i16, T)> {
    let mut buf = data.clone();
    let version = i16::decode(&mut buf, Ctx::new(0, false))?;
    if version < 0 {
        return Err(ProtocolError::UnknownVersion { kind, version });
    }
    let known = version.min(CONSUMER_PROTOCOL_MAX_VERSION);
    let value = T::decode(&mut buf, Ctx::new(known, false))?;
    if version <= CONSUMER_PROTOCOL_MAX_VERSION && !buf.is_empty() {
        return Err(ProtocolError::TrailingBytes(buf.len()));
    }
    Ok((version, value))
}

impl ConsumerProtocolSubscription {
    /// The bytes for JoinGroup, version prefix included (versions above the known ones are
    /// written as the highest known).
    pub fn serialize(&self, version: i16) -> Bytes {
        serialize(self, version)
    }

    /// Decodes any version; returns the version found with the value.
    pub fn deserialize(data: &Bytes) -> Result<(i16, ConsumerProtocolSubscription)> {
        deserialize(data, "consumer protocol subscription")
    }
}

impl ConsumerProtocolAssignment {
    pub fn serialize(&self, version: i16) -> Bytes {
        serialize(self, version)
    }

    /// Decodes any version. Empty bytes are an empty assignment: that is what the coordinator
    /// hands a member the leader left out of SyncGroup.
    pub fn deserialize(data: &Bytes) -> Result<(i16, ConsumerProtocolAssignment)> {
        if data.is_empty() {
            return Ok((0, ConsumerProtocolAssignment::default()));
        }
        deserialize(data, "consumer protocol assignment")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Rng, Sample};

    fn concat(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }

    fn round_trip<T: Wire + Sample + std::fmt::Debug>(
        ser: impl Fn(&T, i16) -> Bytes,
        de: impl Fn(&Bytes) -> Result<(i16, T)>,
    ) {
        for version in 0..=CONSUMER_PROTOCOL_MAX_VERSION {
            for seed in 0..300u64 {
                let value = T::sample(&mut Rng::new(seed << 8 | version as u64));
                let first = ser(&value, version);
                let (read_version, decoded) =
                    de(&first).unwrap_or_else(|e| panic!("v{version} seed {seed}: {e}\n{value:?}"));
                assert_eq!(read_version, version);
                assert_eq!(ser(&decoded, version), first, "v{version} seed {seed}");
            }
        }
    }

    #[test]
    fn subscription_round_trips_in_every_version() {
        round_trip(
            ConsumerProtocolSubscription::serialize,
            ConsumerProtocolSubscription::deserialize,
        );
    }

    #[test]
    fn assignment_round_trips_in_every_version() {
        round_trip(
            ConsumerProtocolAssignment::serialize,
            ConsumerProtocolAssignment::deserialize,
        );
    }

    #[test]
    fn subscription_v0_golden() {
        let data = concat(&[
            b"\x00\x00",         // version 0
            b"\x00\x00\x00\x02", // topics: 2
            b"\x00\x01a",        //   "a"
            b"\x00\x02bb",       //   "bb"
            b"\xff\xff\xff\xff", // user_data: null
        ]);
        let (version, s) = ConsumerProtocolSubscription::deserialize(&data).unwrap();
        assert_eq!(version, 0);
        assert_eq!(s.topics, ["a", "bb"]);
        assert_eq!(s.user_data, None);
        assert!(s.owned_partitions.is_empty());
        assert_eq!(s.generation_id, -1);
        assert_eq!(s.serialize(0), data);
    }

    #[test]
    fn subscription_v3_golden() {
        let data = concat(&[
            b"\x00\x03",         // version 3
            b"\x00\x00\x00\x01", // topics: 1
            b"\x00\x03top",      //   "top"
            b"\x00\x00\x00\x04", // user_data: 4 bytes
            b"\x00\x00\x00\x07", //   (the cooperative-sticky generation, 7)
            b"\x00\x00\x00\x01", // owned_partitions: 1
            b"\x00\x03top",      //   topic: "top"
            b"\x00\x00\x00\x02", //   partitions: 2
            b"\x00\x00\x00\x00", //     0
            b"\x00\x00\x00\x02", //     2
            b"\x00\x00\x00\x07", // generation_id: 7
            b"\x00\x06rack-1",   // rack_id: "rack-1"
        ]);
        let (version, s) = ConsumerProtocolSubscription::deserialize(&data).unwrap();
        assert_eq!(version, 3);
        assert_eq!(
            s,
            ConsumerProtocolSubscription {
                topics: vec!["top".into()],
                user_data: Some(Bytes::from_static(b"\x00\x00\x00\x07")),
                owned_partitions: vec![ConsumerProtocolTopicPartition {
                    topic: "top".into(),
                    partitions: vec![0, 2],
                }],
                generation_id: 7,
                rack_id: Some("rack-1".into()),
            }
        );
        assert_eq!(s.serialize(3), data);
        // v3 with a null rack: the nullable string's -1 length.
        let no_rack = ConsumerProtocolSubscription {
            rack_id: None,
            ..s.clone()
        };
        assert!(no_rack.serialize(3).ends_with(b"\x00\x00\x00\x07\xff\xff"));
        // v1 drops generation and rack; v2 drops only the rack.
        assert_eq!(s.serialize(1).len(), data.len() - 4 - 8);
        assert_eq!(s.serialize(2).len(), data.len() - 8);
    }

    #[test]
    fn newer_versions_are_read_as_their_known_prefix() {
        let data = concat(&[
            b"\x00\x05",         // version 5, from a future client
            b"\x00\x00\x00\x01", // topics: 1
            b"\x00\x01t",        //   "t"
            b"\xff\xff\xff\xff", // user_data: null
            b"\x00\x00\x00\x00", // owned_partitions: none
            b"\x00\x00\x00\x03", // generation_id: 3
            b"\xff\xff",         // rack_id: null
            b"\x12\x34\x56",     // fields of versions 4 and 5
        ]);
        let (version, s) = ConsumerProtocolSubscription::deserialize(&data).unwrap();
        assert_eq!(version, 5);
        assert_eq!(s.topics, ["t"]);
        assert_eq!(s.generation_id, 3);

        let assignment = concat(&[
            b"\x00\x04",         // version 4
            b"\x00\x00\x00\x01", // assigned_partitions: 1
            b"\x00\x01t",        //   topic: "t"
            b"\x00\x00\x00\x01", //   partitions: 1
            b"\x00\x00\x00\x05", //     5
            b"\xff\xff\xff\xff", // user_data: null
            b"\x01",             // a field of version 4
        ]);
        let (version, a) = ConsumerProtocolAssignment::deserialize(&assignment).unwrap();
        assert_eq!(version, 4);
        assert_eq!(a.assigned_partitions[0].partitions, [5]);
        // Written back, a newer version is capped at what we know.
        assert_eq!(&a.serialize(4)[..2], b"\x00\x03");
    }

    #[test]
    fn assignment_v0_golden_and_empty_bytes() {
        let data = concat(&[
            b"\x00\x00",         // version 0
            b"\x00\x00\x00\x01", // assigned_partitions: 1
            b"\x00\x01x",        //   topic: "x"
            b"\x00\x00\x00\x02", //   partitions: 2
            b"\x00\x00\x00\x01", //     1
            b"\x00\x00\x00\x03", //     3
            b"\x00\x00\x00\x01", // user_data: 1 byte
            b"\x2a",             //   42
        ]);
        let (_, a) = ConsumerProtocolAssignment::deserialize(&data).unwrap();
        assert_eq!(a.assigned_partitions[0].topic, "x");
        assert_eq!(a.assigned_partitions[0].partitions, [1, 3]);
        assert_eq!(a.user_data.as_deref(), Some(&b"\x2a"[..]));
        assert_eq!(a.serialize(0), data);
        let (_, empty) = ConsumerProtocolAssignment::deserialize(&Bytes::new()).unwrap();
        assert!(empty.assigned_partitions.is_empty());
    }

    #[test]
    fn damaged_bytes_are_errors() {
        let truncated = Bytes::from_static(b"\x00\x01\x00\x00\x00\x05\x00\x01a");
        assert!(ConsumerProtocolSubscription::deserialize(&truncated).is_err());
        let negative = Bytes::from_static(b"\xff\xff\x00\x00\x00\x00");
        assert!(ConsumerProtocolAssignment::deserialize(&negative).is_err());
        let trailing = Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\x00");
        assert_eq!(
            ConsumerProtocolAssignment::deserialize(&trailing).unwrap_err(),
            ProtocolError::TrailingBytes(1)
        );
    }
}
