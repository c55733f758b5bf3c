//! ListOffsets (key 2): the offset for a timestamp, or the earliest (-2), latest (-1) or
//! max-timestamp (-3) offset of a partition.

wire_struct! {
    pub struct ListOffsetsRequest {
        replica_id: i32 => 0.., default -1;
        isolation_level: i8 => 2..;
        topics: Vec<ListOffsetsRequestTopic> => 0..;
    }
}

wire_struct! {
    pub struct ListOffsetsRequestTopic {
        name: String => 0..;
        partitions: Vec<ListOffsetsRequestPartition> => 0..;
    }
}

wire_struct! {
    pub struct ListOffsetsRequestPartition {
        partition_index: i32 => 0..;
        current_leader_epoch: i32 => 4.., default -1;
        timestamp: i64 => 0..;
        max_num_offsets: i32 => 0..0, default 1;
    }
}

wire_struct! {
    pub struct ListOffsetsResponse {
        throttle_time_ms: i32 => 2..;
        topics: Vec<ListOffsetsResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct ListOffsetsResponseTopic {
        name: String => 0..;
        partitions: Vec<ListOffsetsResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct ListOffsetsResponsePartition {
        partition_index: i32 => 0..;
        error_code: i16 => 0..;
        old_style_offsets: Vec<i64> => 0..0;
        timestamp: i64 => 1.., default -1;
        offset: i64 => 1.., default -1;
        leader_epoch: i32 => 4.., default -1;
    }
}

crate::api!(2, "ListOffsets", 1..=7, flexible 6, ListOffsetsRequest, ListOffsetsResponse);
