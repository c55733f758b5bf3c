//! DescribeGroups: a group's state, protocol and members with their assignments, as
//! `consumer-groups --describe` shows them.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;

use crate::server::Context;

/// Without ACLs every client may read, describe and delete groups (bits 3, 8 and 6 of Kafka's
/// AclOperation codes).
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let d = ctx.groups.describe_group(id);
            DescribeGroupsResponseGroup {
                error_code: d.error.code(),
                group_id: d.group_id,
                group_state: d.state.to_string(),
                protocol_type: d.protocol_type,
                protocol_data: d.protocol_name,
                members: d
                    .members
                    .into_iter()
                    .map(|m| DescribedGroupMember {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        member_metadata: m.metadata,
                        member_assignment: m.assignment,
                    })
                    .collect(),
                authorized_operations: if request.include_authorized_operations {
                    GROUP_OPERATIONS
                } else {
                    i32::MIN
                },
            }
        })
        .collect();
    DescribeGroupsResponse {
        throttle_time_ms: 0,
        groups,
    }
}
