//! OffsetFetch (key 9): the positions a consumer group has committed, to resume from.
//! v8+ asks for several groups at once and nests the v0-v7 topic layout inside each group;
//! the topic and partition structs serve both layouts, which are the same on the wire.

wire_struct! {
    pub struct OffsetFetchRequest {
        group_id: String => 0..7;
        /// Null (v2+) asks for every partition the group has committed.
        topics: Option<Vec<OffsetFetchRequestTopic>> => 0..7, nullable 2..;
        groups: Vec<OffsetFetchRequestGroup> => 8..;
        require_stable: bool => 7..;
    }
}

wire_struct! {
    pub struct OffsetFetchRequestGroup {
        group_id: String => 8..;
        member_id: Option<String> => 9..;
        member_epoch: i32 => 9.., default -1;
        /// Null asks for every partition the group has committed.
        topics: Option<Vec<OffsetFetchRequestTopic>> => 8..;
    }
}

wire_struct! {
    pub struct OffsetFetchRequestTopic {
        name: String => 0..;
        partition_indexes: Vec<i32> => 0..;
    }
}

wire_struct! {
    pub struct OffsetFetchResponse {
        throttle_time_ms: i32 => 3..;
        topics: Vec<OffsetFetchResponseTopic> => 0..7;
        error_code: i16 => 2..7;
        groups: Vec<OffsetFetchResponseGroup> => 8..;
    }
}

wire_struct! {
    pub struct OffsetFetchResponseGroup {
        group_id: String => 8..;
        topics: Vec<OffsetFetchResponseTopic> => 8..;
        error_code: i16 => 8..;
    }
}

wire_struct! {
    pub struct OffsetFetchResponseTopic {
        name: String => 0..;
        partitions: Vec<OffsetFetchResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct OffsetFetchResponsePartition {
        partition_index: i32 => 0..;
        /// -1 when the group has no offset for the partition.
        committed_offset: i64 => 0..;
        committed_leader_epoch: i32 => 5.., default -1;
        metadata: Option<String> => 0..;
        error_code: i16 => 0..;
    }
}

crate::api!(9, "OffsetFetch", 0..=9, flexible 6, OffsetFetchRequest, OffsetFetchResponse);
