//! DeleteTopics (key 20): topics by name (v1-v5) or by name or id (v6).

use crate::wire::Uuid;

wire_struct! {
    pub struct DeleteTopicsRequest {
        topics: Vec<DeleteTopicsRequestTopic> => 6..;
        topic_names: Vec<String> => 0..5;
        timeout_ms: i32 => 0..;
    }
}

wire_struct! {
    pub struct DeleteTopicsRequestTopic {
        name: Option<String> => 6..;
        topic_id: Uuid => 6..;
    }
}

wire_struct! {
    pub struct DeleteTopicsResponse {
        throttle_time_ms: i32 => 1..;
        responses: Vec<DeleteTopicsResponseTopic> => 0..;
    }
}

wire_struct! {
    pub struct DeleteTopicsResponseTopic {
        name: Option<String> => 0..;
        topic_id: Uuid => 6..;
        error_code: i16 => 0..;
        error_message: Option<String> => 5..;
    }
}

crate::api!(20, "DeleteTopics", 1..=6, flexible 4, DeleteTopicsRequest, DeleteTopicsResponse);
