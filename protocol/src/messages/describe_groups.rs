//! DescribeGroups (key 15): a group's state, protocol and members with their assignments, for
//! admin tools such as `kafka-consumer-groups --describe`.

use bytes::Bytes;

wire_struct! {
    pub struct DescribeGroupsRequest {
        groups: Vec<String> => 0..;
        include_authorized_operations: bool => 3..;
    }
}

wire_struct! {
    pub struct DescribeGroupsResponse {
        throttle_time_ms: i32 => 1..;
        groups: Vec<DescribeGroupsResponseGroup> => 0..;
    }
}

wire_struct! {
    pub struct DescribeGroupsResponseGroup {
        error_code: i16 => 0..;
        group_id: String => 0..;
        group_state: String => 0..;
        protocol_type: String => 0..;
        /// The selected assignor's name: a string here, unlike the members' byte fields.
        protocol_data: String => 0..;
        members: Vec<DescribedGroupMember> => 0..;
        /// `i32::MIN` means "not requested".
        authorized_operations: i32 => 3.., default i32::MIN;
    }
}

wire_struct! {
    pub struct DescribedGroupMember {
        member_id: String => 0..;
        group_instance_id: Option<String> => 4..;
        client_id: String => 0..;
        client_host: String => 0..;
        member_metadata: Bytes => 0..;
        member_assignment: Bytes => 0..;
    }
}

crate::api!(15, "DescribeGroups", 0..=5, flexible 5, DescribeGroupsRequest, DescribeGroupsResponse);
