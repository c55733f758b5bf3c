//! ListGroups: every group this broker coordinates, optionally filtered by state and type.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;

use crate::server::Context;

/// Every group here speaks the classic protocol (KIP-848 groups are "consumer").
const GROUP_TYPE: &str = "classic";

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let type_ok = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(GROUP_TYPE));
    let groups = if type_ok {
        ctx.groups
            .list_groups(&request.states_filter)
            .into_iter()
            .map(|g| ListGroupsResponseGroup {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                group_state: g.state.to_string(),
                group_type: GROUP_TYPE.to_string(),
            })
            .collect()
    } else {
        Vec::new()
    };
    ListGroupsResponse {
        throttle_time_ms: 0,
        error_code: 0,
        groups,
    }
}
