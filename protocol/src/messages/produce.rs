//! Produce (key 0): record batches for partitions, and each partition's assigned base offset.
//! v0-v2 carry the old message format and are advertised but refused (see `api::SUPPORTED`).

use bytes::Bytes;

use super::common::{LeaderIdAndEpoch, NodeEndpoint};

wire_struct! {
    pub struct ProduceRequest {
        transactional_id: Option<String> => 3..;
        acks: i16 => 0..;
        timeout_ms: i32 => 0..;
        topic_data: Vec<ProduceRequestTopic> => 0..;
    }
}

wire_struct! {
    pub struct ProduceRequestTopic {
        name: String => 0..;
        partition_data: Vec<ProduceRequestPartition> => 0..;
    }
}

wire_struct! {
    pub struct ProduceRequestPartition {
        index: i32 => 0..;
        records: Option<Bytes> => 0..;
    }
}

wire_struct! {
    pub struct ProduceResponse {
        responses: Vec<ProduceResponseTopic> => 0..;
        throttle_time_ms: i32 => 1..;
        node_endpoints: Vec<NodeEndpoint> => 10.., tag 0;
    }
}

wire_struct! {
    pub struct ProduceResponseTopic {
        name: String => 0..;
        partition_responses: Vec<ProduceResponsePartition> => 0..;
    }
}

wire_struct! {
    pub struct ProduceResponsePartition {
        index: i32 => 0..;
        error_code: i16 => 0..;
        base_offset: i64 => 0..;
        log_append_time_ms: i64 => 2.., default -1;
        log_start_offset: i64 => 5.., default -1;
        record_errors: Vec<ProduceResponseRecordError> => 8..;
        error_message: Option<String> => 8..;
        current_leader: LeaderIdAndEpoch => 10.., tag 0;
    }
}

wire_struct! {
    pub struct ProduceResponseRecordError {
        batch_index: i32 => 8..;
        batch_index_error_message: Option<String> => 8..;
    }
}

crate::api!(0, "Produce", 0..=11, flexible 9, ProduceRequest, ProduceResponse);
