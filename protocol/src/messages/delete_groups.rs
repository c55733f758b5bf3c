//! DeleteGroups (key 42): removes empty consumer groups and their committed offsets.

wire_struct! {
    pub struct DeleteGroupsRequest {
        groups_names: Vec<String> => 0..;
    }
}

wire_struct! {
    pub struct DeleteGroupsResponse {
        throttle_time_ms: i32 => 0..;
        results: Vec<DeletableGroupResult> => 0..;
    }
}

wire_struct! {
    pub struct DeletableGroupResult {
        group_id: String => 0..;
        error_code: i16 => 0..;
    }
}

crate::api!(42, "DeleteGroups", 0..=2, flexible 2, DeleteGroupsRequest, DeleteGroupsResponse);
