//! Fetch: reads each requested partition from its log and long-polls until `min_bytes` are there
//! or `max_wait_ms` passes. Stored batches go out byte for byte as they were written.
//! Fetch sessions (KIP-227) are declined by answering session id 0, which every client accepts.
//! Consumers read up to the high watermark of a partition this broker leads; followers (a
//! replica id of 0 or more) read up to the log end, are told where their log diverges, and
//! their fetch offsets move the leader's high watermark and ISR.

use std::sync::Arc;
use std::time::Duration;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;
use tokio::time::Instant;

use crate::error::BrokerError;
use crate::log::LogError;
use crate::replica_manager::{Partition, Role};
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
    let mut first_pass = true;
    loop {
        // Mark the current append count as seen before reading, so an append that lands after
        // this read wakes the wait below instead of being missed.
        appends.borrow_and_update();
        let (response, bytes, stop_early) = read_once(ctx, &request, first_pass);
        first_pass = false;
        let satisfied = bytes >= request.min_bytes.max(0) as usize || stop_early;
        if satisfied || Instant::now() >= deadline || shutdown.is_shutdown() {
            return response;
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, appends.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    return read_once(ctx, &request, false).0;
                }
            }
            _ = shutdown.recv() => return read_once(ctx, &request, false).0,
        }
    }
}

/// One pass over the requested partitions. Returns the response, how many record bytes it
/// carries, and whether an error or a divergence means the client should hear back now rather
/// than wait. A follower's position is recorded on the `first_pass` only: later passes of the
/// same long poll carry no news from it.
fn read_once(
    ctx: &Context,
    request: &FetchRequest,
    first_pass: bool,
) -> (FetchResponse, usize, bool) {
    let mut budget = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut had_error = false;
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
                    let mut reader = Reader {
                        ctx,
                        replica_id: request.replica_id,
                        first_pass,
                        budget: &mut budget,
                        total: &mut total,
                    };
                    let code = reader.read_partition(&topic.topic, p, &mut out);
                    let diverged = out.diverging_epoch.end_offset >= 0;
                    if code != ErrorCode::None || diverged {
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

/// What one pass reads with: the request's replica id and what is left of its byte budget.
struct Reader<'a> {
    ctx: &'a Context,
    replica_id: i32,
    first_pass: bool,
    budget: &'a mut usize,
    total: &'a mut usize,
}

impl Reader<'_> {
    fn read_partition(
        &mut self,
        topic: &str,
        p: &FetchRequestPartition,
        out: &mut FetchResponsePartition,
    ) -> ErrorCode {
        let Some(part) = self.ctx.replicas.partition(topic, p.partition) else {
            return ErrorCode::UnknownTopicOrPartition;
        };
        if let Err(code) = part.check_leader_epoch(p.current_leader_epoch) {
            return code;
        }
        let max_offset = if self.replica_id >= 0 {
            // A standalone broker has no followers and a follower none of its own: only a
            // replicated partition's leader answers other replicas.
            let Role::Leader(cell) = &part.role else {
                return ErrorCode::NotLeaderOrFollower;
            };
            if let Some(code) = self.check_follower_position(&part, p, out) {
                return code;
            }
            if out.diverging_epoch.end_offset >= 0 {
                return ErrorCode::None;
            }
            if self.first_pass {
                self.ctx
                    .replicas
                    .record_follower_fetch(cell, self.replica_id, p.fetch_offset);
            }
            // Followers copy everything; the high watermark is theirs to learn from the answer.
            i64::MAX
        } else {
            if let Role::Follower { .. } = part.role {
                return ErrorCode::NotLeaderOrFollower;
            }
            part.log.high_watermark()
        };
        self.read_log(&part, p, max_offset, out)
    }

    /// Kafka's checks of a follower's fetch position before reading: below the log start is out
    /// of range whatever the epochs say; then the last fetched epoch must end here no earlier
    /// than the fetch offset, or the follower holds records this log does not and is told
    /// where the logs part (DivergingEpoch, with no records). An epoch this log cannot place
    /// says nothing either way; the offset range check of the read decides.
    fn check_follower_position(
        &self,
        part: &Partition,
        p: &FetchRequestPartition,
        out: &mut FetchResponsePartition,
    ) -> Option<ErrorCode> {
        let log = &part.log;
        out.high_watermark = log.high_watermark();
        out.last_stable_offset = out.high_watermark;
        out.log_start_offset = log.log_start_offset();
        if p.fetch_offset < log.log_start_offset() {
            return Some(ErrorCode::OffsetOutOfRange);
        }
        if p.last_fetched_epoch >= 0 {
            let (epoch, end_offset) = part.leader_end_offset_for_epoch(p.last_fetched_epoch);
            if epoch >= 0 && (epoch < p.last_fetched_epoch || end_offset < p.fetch_offset) {
                out.diverging_epoch = FetchResponseEpochEndOffset { epoch, end_offset };
            }
        }
        None
    }

    fn read_log(
        &mut self,
        part: &Partition,
        p: &FetchRequestPartition,
        max_offset: i64,
        out: &mut FetchResponsePartition,
    ) -> ErrorCode {
        let log = &part.log;
        out.high_watermark = log.high_watermark();
        out.last_stable_offset = out.high_watermark;
        out.log_start_offset = log.log_start_offset();
        let max = (p.partition_max_bytes.max(0) as usize).min(*self.budget);
        // KIP-74: the first partition with data returns at least one whole batch, even one
        // larger than the limits, so a big batch can never wedge a consumer.
        let min_one = *self.total == 0;
        match log.read(p.fetch_offset, max, max_offset, min_one) {
            Ok(read) => {
                let n = read.records.len();
                *self.total += n;
                *self.budget = self.budget.saturating_sub(n);
                out.high_watermark = read.high_watermark;
                out.last_stable_offset = read.high_watermark;
                out.log_start_offset = read.log_start_offset;
                out.records = Some(read.records);
                ErrorCode::None
            }
            Err(LogError::OffsetOutOfRange { .. }) => ErrorCode::OffsetOutOfRange,
            Err(e) => BrokerError::Log(e).code(),
        }
    }
}
