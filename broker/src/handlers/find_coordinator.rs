//! FindCoordinator: which broker coordinates a group (or a transactional id). A standalone
//! broker owns every partition of `__consumer_offsets`; in a cluster it is the partition's leader.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::cluster::INTER_BROKER_LISTENER;
use crate::controller::ControllerHandle;
use crate::group::OFFSETS_TOPIC;
use crate::server::Context;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// A coordinator's node id, host and port.
type Node = (i32, String, i32);

pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let batched = header.api_version >= 4;
    let keys = if batched {
        request.coordinator_keys
    } else {
        vec![request.key]
    };
    let here = || {
        (
            ctx.config.node_id,
            ctx.advertised.host.clone(),
            ctx.advertised.port as i32,
        )
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let found = match (request.key_type, &ctx.controller) {
            (KEY_TYPE_GROUP, Some(controller)) => group_leader(ctx, controller, &key).await,
            (KEY_TYPE_GROUP, None) => ctx.groups.coordinates(&key).map(|()| here()),
            // Transactional producers are refused by InitProducerId with a clear error;
            // pointing them here gets them to that answer instead of retrying lookups.
            (KEY_TYPE_TRANSACTION, _) => Ok(here()),
            _ => Err(ErrorCode::InvalidRequest),
        };
        coordinators.push(match found {
            Ok((node_id, host, port)) => FindCoordinatorResponseCoordinator {
                key,
                node_id,
                host,
                port,
                error_code: 0,
                error_message: None,
            },
            Err(e) => FindCoordinatorResponseCoordinator {
                key,
                node_id: -1,
                host: String::new(),
                port: -1,
                error_code: e.code(),
                error_message: Some(format!("{e:?}")),
            },
        });
    }
    if batched {
        return FindCoordinatorResponse {
            coordinators,
            ..Default::default()
        };
    }
    let c = coordinators.into_iter().next().unwrap_or_default();
    FindCoordinatorResponse {
        error_code: c.error_code,
        error_message: c.error_message,
        node_id: c.node_id,
        host: c.host,
        port: c.port,
        ..Default::default()
    }
}

/// The leader of the group's offsets partition, as the committed metadata names it. Should
/// `__consumer_offsets` not exist yet, the lookup asks for it (as Kafka's first lookup does) and
/// the client asks again.
async fn group_leader(
    ctx: &Context,
    controller: &ControllerHandle,
    group: &str,
) -> Result<Node, ErrorCode> {
    let image = controller.image().borrow().clone();
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        crate::cluster::create_offsets_topic(controller, &ctx.config.offsets_topic).await;
        return Err(ErrorCode::CoordinatorNotAvailable);
    };
    let partition = ctx.groups.partition_of(group);
    let leader = topic.partitions.get(&partition).map_or(-1, |p| p.leader);
    let endpoint = image
        .broker(leader)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(INTER_BROKER_LISTENER))
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    Ok((leader, endpoint.host.clone(), endpoint.port as i32))
}
