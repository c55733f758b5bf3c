//! SyncGroup: the leader hands in the assignment; every member waits for its own share.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;

use crate::group::SyncRequest;
use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let r = ctx
        .groups
        .sync(SyncRequest {
            group_id: request.group_id,
            generation_id: request.generation_id,
            member_id: request.member_id,
            group_instance_id: request.group_instance_id,
            protocol_type: request.protocol_type,
            protocol_name: request.protocol_name,
            assignments: request
                .assignments
                .into_iter()
                .map(|a| (a.member_id, a.assignment))
                .collect(),
        })
        .await;
    SyncGroupResponse {
        throttle_time_ms: 0,
        error_code: r.error.code(),
        protocol_type: r.protocol_type,
        protocol_name: r.protocol_name,
        assignment: r.assignment,
    }
}
