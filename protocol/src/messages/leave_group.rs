//! LeaveGroup (key 13): members leave a group without waiting for their session to time out.
//! v0-v2 name one member at the top level; v3+ list members, each answered on its own.

wire_struct! {
    pub struct LeaveGroupRequest {
        group_id: String => 0..;
        member_id: String => 0..2;
        members: Vec<LeaveGroupRequestMember> => 3..;
    }
}

wire_struct! {
    pub struct LeaveGroupRequestMember {
        member_id: String => 3..;
        group_instance_id: Option<String> => 3..;
        reason: Option<String> => 5..;
    }
}

wire_struct! {
    pub struct LeaveGroupResponse {
        throttle_time_ms: i32 => 1..;
        error_code: i16 => 0..;
        members: Vec<LeaveGroupResponseMember> => 3..;
    }
}

wire_struct! {
    pub struct LeaveGroupResponseMember {
        member_id: String => 3..;
        group_instance_id: Option<String> => 3..;
        error_code: i16 => 3..;
    }
}

crate::api!(13, "LeaveGroup", 0..=5, flexible 4, LeaveGroupRequest, LeaveGroupResponse);
