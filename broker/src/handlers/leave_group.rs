//! LeaveGroup: members leave at once instead of waiting out their session; v3+ may remove
//! several (static) members in one request.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;

use crate::group::LeaveMember;
use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let batched = header.api_version >= 3;
    let members: Vec<LeaveMember> = if batched {
        request
            .members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: request.member_id.clone(),
            group_instance_id: None,
        }]
    };
    match ctx.groups.leave(&request.group_id, &members) {
        Err(e) => LeaveGroupResponse {
            error_code: e.code(),
            ..Default::default()
        },
        Ok(errors) if !batched => LeaveGroupResponse {
            error_code: errors.first().map_or(0, |e| e.code()),
            ..Default::default()
        },
        Ok(errors) => LeaveGroupResponse {
            members: members
                .into_iter()
                .zip(errors)
                .map(|(m, e)| LeaveGroupResponseMember {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    error_code: e.code(),
                })
                .collect(),
            ..Default::default()
        },
    }
}
