//! OffsetDelete (key 47): drops a group's committed offsets for partitions it no longer reads.
//! Its only version predates flexible versions, and there is no later one.

wire_struct! {
    pub struct OffsetDeleteRequest {
        group_id: String => 0..;
        topics: Vec<OffsetDeleteRequestTopic> => 0..;
    }
}

wire_struct! {
    pub struct OffsetDeleteRequestTopic {
        name: String => 0..;
        partitions: Vec<OffsetDeleteRequestPartition> => 0..;
    }
}

wire_struct! {
    pub struct OffsetDeleteRequestPartition {
        partition_index: i32 => 0..;
    }
}

wire_struct! {
    pub struct OffsetDeleteResponse {
        error_code: i16 => 0..;
        throttle_time_ms: i32 => 0..;
        topics: Vec<OffsetDeleteResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct OffsetDeleteResponseTopic {
        name: String => 0..;
        partitions: Vec<OffsetDeleteResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct OffsetDeleteResponsePartition {
        partition_index: i32 => 0..;
        error_code: i16 => 0..;
    }
}

crate::api!(47, "OffsetDelete", 0..=0, flexible none, OffsetDeleteRequest, OffsetDeleteResponse);
