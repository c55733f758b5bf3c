//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;

use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let error = ctx.groups.heartbeat(
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse {
        throttle_time_ms: 0,
        error_code: error.code(),
    }
}
