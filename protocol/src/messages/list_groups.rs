//! ListGroups (key 16): the groups a broker coordinates, optionally filtered by state and type.

wire_struct! {
    pub struct ListGroupsRequest {
        /// Empty means every state.
        states_filter: Vec<String> => 4..;
        /// Empty means every type.
        types_filter: Vec<String> => 5..;
    }
}

wire_struct! {
    pub struct ListGroupsResponse {
        throttle_time_ms: i32 => 1..;
        error_code: i16 => 0..;
        groups: Vec<ListGroupsResponseGroup> => 0..;
    }
}

wire_struct! {
    pub struct ListGroupsResponseGroup {
        group_id: String => 0..;
        protocol_type: String => 0..;
        group_state: String => 4..;
        group_type: String => 5..;
    }
}

crate::api!(16, "ListGroups", 0..=5, flexible 3, ListGroupsRequest, ListGroupsResponse);
