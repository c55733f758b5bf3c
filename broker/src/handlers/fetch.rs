//! Fetch: reads each requested partition from its log and long-polls until `min_bytes` are there
//! or `max_wait_ms` passes. Stored batches go out byte for byte as they were written.
//! Fetch sessions (KIP-227) are declined by answering session id 0, which every client accepts.

use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;
use tokio::time::Instant;

use crate::error::BrokerError;
use crate::log::LogError;
use crate::server::Context;

/// Kafka's upper bound on how long a fetch may wait, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 30_000;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    if request.session_id != 0 || request.session_epoch > 0 {
        return FetchResponse {
            error_code: ErrorCode::FetchSessionIdNotFound.code(),
            ..Default::default()
        };
    }
    let wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let deadline = Instant::now() + wait;
    let mut appends = ctx.replicas.subscribe_appends();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        // Mark the current append count as seen before reading, so an append that lands after
        // this read wakes the wait below instead of being missed.
        appends.borrow_and_update();
        let (response, bytes, stop_early) = read_once(ctx, &request);
        let satisfied = bytes >= request.min_bytes.max(0) as usize || stop_early;
        if satisfied || Instant::now() >= deadline || shutdown.is_shutdown() {
            return response;
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, appends.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    return read_once(ctx, &request).0;
                }
            }
            _ = shutdown.recv() => return read_once(ctx, &request).0,
        }
    }
}

/// One pass over the requested partitions. Returns the response, how many record bytes it
/// carries, and whether an error means the client should hear back now rather than wait.
fn read_once(ctx: &Context, request: &FetchRequest) -> (FetchResponse, usize, bool) {
    let mut budget = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut had_error = false;
    let is_replica = request.replica_id >= 0;
    let responses = request
        .topics
        .iter()
        .map(|topic| FetchResponseTopic {
            topic: topic.topic.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    let mut out = FetchResponsePartition {
                        partition_index: p.partition,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        preferred_read_replica: -1,
                        // Never null: librdkafka refuses a null record set even beside an error.
                        records: Some(bytes::Bytes::new()),
                        ..Default::default()
                    };
                    let code = read_partition(
                        ctx,
                        &topic.topic,
                        p,
                        is_replica,
                        &mut budget,
                        &mut total,
                        &mut out,
                    );
                    if code != ErrorCode::None {
                        had_error = true;
                        out.error_code = code.code();
                    }
                    out
                })
                .collect(),
        })
        .collect();
    let response = FetchResponse {
        throttle_time_ms: 0,
        error_code: 0,
        session_id: 0,
        responses,
    };
    (response, total, had_error)
}

fn read_partition(
    ctx: &Context,
    topic: &str,
    p: &FetchRequestPartition,
    is_replica: bool,
    budget: &mut usize,
    total: &mut usize,
    out: &mut FetchResponsePartition,
) -> ErrorCode {
    let Some(part) = ctx.replicas.partition(topic, p.partition) else {
        return ErrorCode::UnknownTopicOrPartition;
    };
    if is_replica {
        // A standalone broker has no followers; a request claiming to be one is not honoured.
        return ErrorCode::NotLeaderOrFollower;
    }
    if let Err(code) = part.check_leader_epoch(p.current_leader_epoch) {
        return code;
    }
    let log = &part.log;
    out.high_watermark = log.high_watermark();
    out.last_stable_offset = out.high_watermark;
    out.log_start_offset = log.log_start_offset();
    let max = (p.partition_max_bytes.max(0) as usize).min(*budget);
    // KIP-74: the first partition with data returns at least one whole batch, even one larger
    // than the limits, so a big batch can never wedge a consumer.
    let min_one = *total == 0;
    match ctx
        .replicas
        .read(topic, p.partition, p.fetch_offset, max, min_one)
    {
        Ok(read) => {
            let n = read.records.len();
            *total += n;
            *budget = budget.saturating_sub(n);
            out.high_watermark = read.high_watermark;
            out.last_stable_offset = read.high_watermark;
            out.log_start_offset = read.log_start_offset;
            out.records = Some(read.records);
            ErrorCode::None
        }
        Err(BrokerError::Log(LogError::OffsetOutOfRange { .. })) => ErrorCode::OffsetOutOfRange,
        Err(e) => e.code(),
    }
}
