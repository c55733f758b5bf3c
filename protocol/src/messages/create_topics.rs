//! CreateTopics (key 19): new topics by partition count and replication factor, or by explicit
//! replica assignment, with per-topic configs; v5+ answers with the configs that took effect.

use crate::wire::Uuid;

wire_struct! {
    pub struct CreateTopicsRequest {
        topics: Vec<CreateTopicsRequestTopic> => 0..;
        timeout_ms: i32 => 0.., default 60000;
        validate_only: bool => 1..;
    }
}

wire_struct! {
    pub struct CreateTopicsRequestTopic {
        name: String => 0..;
        num_partitions: i32 => 0..;
        replication_factor: i16 => 0..;
        assignments: Vec<CreateTopicsRequestAssignment> => 0..;
        configs: Vec<CreateTopicsRequestConfig> => 0..;
    }
}

wire_struct! {
    pub struct CreateTopicsRequestAssignment {
        partition_index: i32 => 0..;
        broker_ids: Vec<i32> => 0..;
    }
}

wire_struct! {
    pub struct CreateTopicsRequestConfig {
        name: String => 0..;
        value: Option<String> => 0..;
    }
}

wire_struct! {
    pub struct CreateTopicsResponse {
        throttle_time_ms: i32 => 2..;
        topics: Vec<CreateTopicsResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct CreateTopicsResponseTopic {
        name: String => 0..;
        topic_id: Uuid => 7..;
        error_code: i16 => 0..;
        error_message: Option<String> => 1..;
        topic_config_error_code: i16 => 5.., tag 0;
        num_partitions: i32 => 5.., default -1;
        replication_factor: i16 => 5.., default -1;
        configs: Option<Vec<CreateTopicsResponseConfig>> => 5..;
    }
}

wire_struct! {
    pub struct CreateTopicsResponseConfig {
        name: String => 5..;
        value: Option<String> => 5..;
        read_only: bool => 5..;
        config_source: i8 => 5.., default -1;
        is_sensitive: bool => 5..;
    }
}

crate::api!(19, "CreateTopics", 2..=7, flexible 5, CreateTopicsRequest, CreateTopicsResponse);
