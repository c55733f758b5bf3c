//! JoinGroup (key 11): a member joins (or rejoins) a classic consumer group, offering the
//! assignment protocols it supports; the coordinator answers with the generation and, to the
//! leader only, every member's metadata to compute the assignment from.

use bytes::Bytes;

wire_struct! {
    pub struct JoinGroupRequest {
        group_id: String => 0..;
        session_timeout_ms: i32 => 0..;
        /// Absent in v0, where the session timeout stands in for it.
        rebalance_timeout_ms: i32 => 1.., default -1;
        member_id: String => 0..;
        group_instance_id: Option<String> => 5..;
        protocol_type: String => 0..;
        protocols: Vec<JoinGroupRequestProtocol> => 0..;
        reason: Option<String> => 8..;
    }
}

wire_struct! {
    pub struct JoinGroupRequestProtocol {
        name: String => 0..;
        metadata: Bytes => 0..;
    }
}

wire_struct! {
    pub struct JoinGroupResponse {
        throttle_time_ms: i32 => 2..;
        error_code: i16 => 0..;
        generation_id: i32 => 0.., default -1;
        protocol_type: Option<String> => 7..;
        protocol_name: Option<String> => 0.., nullable 7..;
        leader: String => 0..;
        skip_assignment: bool => 9..;
        member_id: String => 0..;
        members: Vec<JoinGroupResponseMember> => 0..;
    }
}

wire_struct! {
    pub struct JoinGroupResponseMember {
        member_id: String => 0..;
        group_instance_id: Option<String> => 5..;
        metadata: Bytes => 0..;
    }
}

crate::api!(11, "JoinGroup", 0..=9, flexible 6, JoinGroupRequest, JoinGroupResponse);
