//! Produce: validates each partition's batches and appends them to the partition's log.
//! acks=0 gets no response at all (the dispatcher drops it); acks 1 and -1 both answer once the
//! batch is in the leader's log, which on a single node is every replica.

use std::sync::Arc;

use sluice_protocol::api::{support_for, ApiMessage};
use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;
use tracing::debug;

use crate::group::OFFSETS_TOPIC;
use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: ProduceRequest,
) -> ProduceResponse {
    let acks_valid = matches!(request.acks, -1..=1);
    // v0-v2 carry message sets older than record batch v2; we advertise them only so old
    // librdkafka versions enable compression, and refuse them per partition.
    let accept_from = support_for(ProduceRequest::API_KEY).map_or(3, |s| s.accept_from);
    let version_valid = header.api_version >= accept_from;
    let transactional = request.transactional_id.is_some();
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let partition_responses = topic
                .partition_data
                .into_iter()
                .map(|p| {
                    let mut out = ProduceResponsePartition {
                        index: p.index,
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    };
                    let refused = if !version_valid {
                        Some(ErrorCode::UnsupportedVersion)
                    } else if !acks_valid {
                        Some(ErrorCode::InvalidRequiredAcks)
                    } else if transactional {
                        Some(ErrorCode::TransactionalIdAuthorizationFailed)
                    } else if topic.name == OFFSETS_TOPIC {
                        // The coordinator's state is what it replayed from this topic; records
                        // written behind its back would be read only after a restart.
                        Some(ErrorCode::InvalidTopicException)
                    } else {
                        None
                    };
                    if let Some(code) = refused {
                        out.error_code = code.code();
                        return out;
                    }
                    match ctx.replicas.append(&topic.name, p.index, p.records) {
                        Ok(info) => {
                            out.base_offset = info.base_offset;
                            out.log_append_time_ms = info.log_append_time_ms;
                            out.log_start_offset = info.log_start_offset;
                        }
                        Err(e) => {
                            debug!(topic = %topic.name, partition = p.index, error = %e.message, "produce refused");
                            out.error_code = e.code.code();
                            out.error_message = Some(e.message);
                        }
                    }
                    out
                })
                .collect();
            ProduceResponseTopic {
                name: topic.name,
                partition_responses,
            }
        })
        .collect();
    ProduceResponse {
        responses,
        throttle_time_ms: 0,
        ..Default::default()
    }
}
