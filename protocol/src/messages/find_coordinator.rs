//! FindCoordinator (key 10): which broker coordinates a consumer group or transactional id.
//! v4 asks for several keys at once and answers per key; v0-v3 carry one key at the top level.

wire_struct! {
    pub struct FindCoordinatorRequest {
        key: String => 0..3;
        /// 0 = group, 1 = transaction.
        key_type: i8 => 1..;
        coordinator_keys: Vec<String> => 4..;
    }
}

wire_struct! {
    pub struct FindCoordinatorResponse {
        throttle_time_ms: i32 => 1..;
        error_code: i16 => 0..3;
        error_message: Option<String> => 1..3;
        node_id: i32 => 0..3;
        host: String => 0..3;
        port: i32 => 0..3;
        coordinators: Vec<FindCoordinatorResponseCoordinator> => 4..;
    }
}

wire_struct! {
    pub struct FindCoordinatorResponseCoordinator {
        key: String => 4..;
        node_id: i32 => 4..;
        host: String => 4..;
        port: i32 => 4..;
        error_code: i16 => 4..;
        error_message: Option<String> => 4..;
    }
}

crate::api!(10, "FindCoordinator", 0..=4, flexible 3, FindCoordinatorRequest, FindCoordinatorResponse);
