//! OffsetCommit (key 8): a consumer group stores the positions it has consumed up to.
//! Offered from v0, below Kafka 4's floor of v2, because older librdkafka commits with v1 or v2.

wire_struct! {
    pub struct OffsetCommitRequest {
        group_id: String => 0..;
        /// -1 for a commit from outside the group (simple consumers, admin tools).
        generation_id_or_member_epoch: i32 => 1.., default -1;
        member_id: String => 1..;
        group_instance_id: Option<String> => 7..;
        /// -1 means the broker's `offsets.retention.minutes`.
        retention_time_ms: i64 => 2..4, default -1;
        topics: Vec<OffsetCommitRequestTopic> => 0..;
    }
}

wire_struct! {
    pub struct OffsetCommitRequestTopic {
        name: String => 0..;
        partitions: Vec<OffsetCommitRequestPartition> => 0..;
    }
}

wire_struct! {
    pub struct OffsetCommitRequestPartition {
        partition_index: i32 => 0..;
        committed_offset: i64 => 0..;
        committed_leader_epoch: i32 => 6.., default -1;
        commit_timestamp: i64 => 1..1, default -1;
        committed_metadata: Option<String> => 0..;
    }
}

wire_struct! {
    pub struct OffsetCommitResponse {
        throttle_time_ms: i32 => 3..;
        topics: Vec<OffsetCommitResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct OffsetCommitResponseTopic {
        name: String => 0..;
        partitions: Vec<OffsetCommitResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct OffsetCommitResponsePartition {
        partition_index: i32 => 0..;
        error_code: i16 => 0..;
    }
}

crate::api!(8, "OffsetCommit", 0..=9, flexible 8, OffsetCommitRequest, OffsetCommitResponse);
