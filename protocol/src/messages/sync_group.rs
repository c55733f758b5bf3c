//! SyncGroup (key 14): after a join, the leader hands in every member's assignment and each
//! member gets its own back.

use bytes::Bytes;

wire_struct! {
    pub struct SyncGroupRequest {
        group_id: String => 0..;
        generation_id: i32 => 0..;
        member_id: String => 0..;
        group_instance_id: Option<String> => 3..;
        protocol_type: Option<String> => 5..;
        protocol_name: Option<String> => 5..;
        /// Empty unless the sender is the leader.
        assignments: Vec<SyncGroupRequestAssignment> => 0..;
    }
}

wire_struct! {
    pub struct SyncGroupRequestAssignment {
        member_id: String => 0..;
        assignment: Bytes => 0..;
    }
}

wire_struct! {
    pub struct SyncGroupResponse {
        throttle_time_ms: i32 => 1..;
        error_code: i16 => 0..;
        protocol_type: Option<String> => 5..;
        protocol_name: Option<String> => 5..;
        assignment: Bytes => 0..;
    }
}

crate::api!(14, "SyncGroup", 0..=5, flexible 4, SyncGroupRequest, SyncGroupResponse);
