//! JoinGroup: a member joins (or rejoins) a group and waits, parked, until the rebalance it
//! starts or joins completes; the leader's answer carries every member's subscription.

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;

use crate::group::JoinRequest;
use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    peer: Option<SocketAddr>,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = header.api_version;
    let r = ctx
        .groups
        .join(JoinRequest {
            group_id: request.group_id,
            member_id: request.member_id,
            group_instance_id: request.group_instance_id,
            client_id: header.client_id.clone().unwrap_or_default(),
            // Kafka prints hosts as InetAddress.toString(): a leading slash.
            client_host: peer.map_or_else(String::new, |p| format!("/{}", p.ip())),
            session_timeout_ms: request.session_timeout_ms,
            // v0 has no rebalance timeout: the session timeout plays both parts.
            rebalance_timeout_ms: if request.rebalance_timeout_ms < 0 {
                request.session_timeout_ms
            } else {
                request.rebalance_timeout_ms
            },
            protocol_type: request.protocol_type,
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name, p.metadata))
                .collect(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        })
        .await;
    JoinGroupResponse {
        throttle_time_ms: 0,
        error_code: r.error.code(),
        generation_id: r.generation_id,
        protocol_type: r.protocol_type,
        protocol_name: r.protocol_name,
        leader: r.leader,
        skip_assignment: r.skip_assignment,
        member_id: r.member_id,
        members: r
            .members
            .into_iter()
            .map(|m| JoinGroupResponseMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                metadata: m.metadata,
            })
            .collect(),
    }
}
