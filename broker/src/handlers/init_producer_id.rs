//! InitProducerId: hands an idempotent producer a fresh producer id with epoch 0.
//! Transactional producers are refused until transactions exist.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;
use tracing::warn;

use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refuse = |code: ErrorCode| InitProducerIdResponse {
        error_code: code.code(),
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    };
    if request.transactional_id.is_some() {
        return refuse(ErrorCode::TransactionalIdAuthorizationFailed);
    }
    // A new id rather than an epoch bump (KIP-360): the broker keeps no per-id ownership, and a
    // fresh id fences nothing and conflicts with nothing.
    let allocated = match &ctx.producer_ids {
        Some(cluster) => cluster.next_id().await,
        None => ctx.replicas.metadata().next_producer_id(),
    };
    match allocated {
        Ok(id) => InitProducerIdResponse {
            throttle_time_ms: 0,
            error_code: 0,
            producer_id: id,
            producer_epoch: 0,
        },
        Err(e) => {
            warn!(error = %e, "could not allocate a producer id");
            // In a cluster the controller may be between leaders: a retriable answer.
            match &ctx.producer_ids {
                Some(_) => refuse(ErrorCode::CoordinatorNotAvailable),
                None => refuse(ErrorCode::KafkaStorageError),
            }
        }
    }
}
