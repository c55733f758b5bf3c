//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch on the partition leader, which
//! followers use to find where their log diverges and consumers use to detect truncation.

wire_struct! {
    pub struct OffsetForLeaderEpochRequest {
        /// The follower's broker id, or -1 for a consumer. Before v3 it is not on the wire and
        /// reads as -2, the "debug" replica the spec defaults to, which may also ask a follower.
        replica_id: i32 => 3.., default -2;
        topics: Vec<OffsetForLeaderEpochRequestTopic> => 0..;
    }
}

wire_struct! {
    pub struct OffsetForLeaderEpochRequestTopic {
        topic: String => 0..;
        partitions: Vec<OffsetForLeaderEpochRequestPartition> => 0..;
    }
}

wire_struct! {
    pub struct OffsetForLeaderEpochRequestPartition {
        partition: i32 => 0..;
        /// The requester's idea of the current leader epoch, for fencing; -1 skips the check.
        current_leader_epoch: i32 => 2.., default -1;
        /// The epoch whose end offset is wanted.
        leader_epoch: i32 => 0..;
    }
}

wire_struct! {
    pub struct OffsetForLeaderEpochResponse {
        throttle_time_ms: i32 => 2..;
        topics: Vec<OffsetForLeaderEpochResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct OffsetForLeaderEpochResponseTopic {
        topic: String => 0..;
        partitions: Vec<OffsetForLeaderEpochResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct OffsetForLeaderEpochResponsePartition {
        error_code: i16 => 0..;
        partition: i32 => 0..;
        /// The largest epoch at or below the requested one that the leader knows; v0 answers
        /// only the offset.
        leader_epoch: i32 => 1.., default -1;
        end_offset: i64 => 0..;
    }
}

crate::api!(
    23,
    "OffsetForLeaderEpoch",
    0..=4,
    flexible 4,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse
);
