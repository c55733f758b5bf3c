//! FindCoordinator: which broker coordinates a group (or a transactional id). One broker owns
//! every partition of `__consumer_offsets` today, so the answer is this broker or an error.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::server::Context;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

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
    let coordinators: Vec<FindCoordinatorResponseCoordinator> = keys
        .into_iter()
        .map(|key| {
            let found = match request.key_type {
                KEY_TYPE_GROUP => ctx.groups.coordinates(&key),
                // Transactional producers are refused by InitProducerId with a clear error;
                // pointing them here gets them to that answer instead of retrying lookups.
                KEY_TYPE_TRANSACTION => Ok(()),
                _ => Err(ErrorCode::InvalidRequest),
            };
            match found {
                Ok(()) => FindCoordinatorResponseCoordinator {
                    key,
                    node_id: ctx.config.node_id,
                    host: ctx.advertised.host.clone(),
                    port: ctx.advertised.port as i32,
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
            }
        })
        .collect();
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
