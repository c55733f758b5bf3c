//! Heartbeat (key 12): keeps a group member alive, and tells it when a rebalance has begun.

wire_struct! {
    pub struct HeartbeatRequest {
        group_id: String => 0..;
        generation_id: i32 => 0..;
        member_id: String => 0..;
        group_instance_id: Option<String> => 3..;
    }
}

wire_struct! {
    pub struct HeartbeatResponse {
        throttle_time_ms: i32 => 1..;
        error_code: i16 => 0..;
    }
}

crate::api!(12, "Heartbeat", 0..=4, flexible 4, HeartbeatRequest, HeartbeatResponse);
