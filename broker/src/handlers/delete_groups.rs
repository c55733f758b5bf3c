//! DeleteGroups: removes empty groups and their committed offsets.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;

use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    DeleteGroupsResponse {
        throttle_time_ms: 0,
        results: request
            .groups_names
            .into_iter()
            .map(|group_id| DeletableGroupResult {
                error_code: ctx.groups.delete_group(&group_id).code(),
                group_id,
            })
            .collect(),
    }
}
