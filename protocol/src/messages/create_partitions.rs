//! CreatePartitions (key 37): raises a topic's partition count (`kafka-topics --alter
//! --partitions N`), optionally placing the new partitions' replicas by hand.

wire_struct! {
    pub struct CreatePartitionsRequest {
        topics: Vec<CreatePartitionsTopic> => 0..;
        timeout_ms: i32 => 0..;
        validate_only: bool => 0..;
    }
}

wire_struct! {
    pub struct CreatePartitionsTopic {
        name: String => 0..;
        /// The partition count wanted in total, not the number to add.
        count: i32 => 0..;
        /// One replica list per new partition, or null to let the broker place them.
        assignments: Option<Vec<CreatePartitionsAssignment>> => 0..;
    }
}

wire_struct! {
    pub struct CreatePartitionsAssignment {
        broker_ids: Vec<i32> => 0..;
    }
}

wire_struct! {
    pub struct CreatePartitionsResponse {
        throttle_time_ms: i32 => 0..;
        results: Vec<CreatePartitionsTopicResult> => 0..;
    }
}

wire_struct! {
    pub struct CreatePartitionsTopicResult {
        name: String => 0..;
        error_code: i16 => 0..;
        error_message: Option<String> => 0..;
    }
}

crate::api!(
    37,
    "CreatePartitions",
    0..=3,
    flexible 2,
    CreatePartitionsRequest,
    CreatePartitionsResponse
);
