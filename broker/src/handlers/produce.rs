//! Produce: validates each partition's batches and appends them to the partition's log.
//! acks=0 gets no response at all (the dispatcher drops it); acks=1 answers once the batch is in
//! the leader's log, which on a standalone broker is every replica; acks=-1 on a replicated
//! partition waits until the ISR has it (the high watermark passed it) or the timeout passes.

use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::api::{support_for, ApiMessage};
use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;
use tracing::debug;

use crate::group::OFFSETS_TOPIC;
use crate::replica_manager::AcksAllWait;
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
    // Each acks=all write still to be committed: (topic index, partition index, wait).
    let mut waiting: Vec<(usize, usize, AcksAllWait)> = Vec::new();
    let mut responses: Vec<ProduceResponseTopic> = request
        .topic_data
        .into_iter()
        .enumerate()
        .map(|(ti, topic)| {
            let partition_responses = topic
                .partition_data
                .into_iter()
                .enumerate()
                .map(|(pi, p)| {
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
                    match ctx
                        .replicas
                        .append_records(&topic.name, p.index, p.records, request.acks)
                    {
                        Ok((info, wait)) => {
                            out.base_offset = info.base_offset;
                            out.log_append_time_ms = info.log_append_time_ms;
                            out.log_start_offset = info.log_start_offset;
                            if let Some(wait) = wait {
                                waiting.push((ti, pi, wait));
                            }
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
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    await_commits(ctx, &mut responses, waiting, timeout).await;
    ProduceResponse {
        responses,
        throttle_time_ms: 0,
        ..Default::default()
    }
}

/// Waits until every acks=all write is committed or refused, or `timeout` passes (then the rest
/// answer REQUEST_TIMED_OUT: the records stay in the leader's log, but the producer was not
/// promised they survive a leader change). Requests on other connections go on meanwhile;
/// on this one the next request waits, as responses leave in request order.
async fn await_commits(
    ctx: &Context,
    responses: &mut [ProduceResponseTopic],
    mut waiting: Vec<(usize, usize, AcksAllWait)>,
    timeout: Duration,
) {
    if waiting.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = ctx.replicas.subscribe_appends();
    let mut shutdown = ctx.shutdown.clone();
    let mut answer = |ti: usize, pi: usize, code: ErrorCode| {
        if let Some(out) = responses
            .get_mut(ti)
            .and_then(|t| t.partition_responses.get_mut(pi))
        {
            out.error_code = code.code();
        }
    };
    loop {
        // Seen before checking, so a commit that lands after the check wakes the wait below.
        changes.borrow_and_update();
        waiting.retain(|(ti, pi, wait)| match wait.outcome() {
            Some(outcome) => {
                answer(*ti, *pi, outcome.err().unwrap_or(ErrorCode::None));
                false
            }
            None => true,
        });
        if waiting.is_empty() {
            return;
        }
        let woke = tokio::select! {
            changed = tokio::time::timeout_at(deadline, changes.changed()) => matches!(changed, Ok(Ok(()))),
            _ = shutdown.recv() => false,
        };
        if !woke {
            break;
        }
    }
    for (ti, pi, wait) in waiting {
        let code = match wait.outcome() {
            Some(outcome) => outcome.err().unwrap_or(ErrorCode::None),
            None => ErrorCode::RequestTimedOut,
        };
        answer(ti, pi, code);
    }
}
