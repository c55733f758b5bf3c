//! ListOffsets: a partition's earliest offset (-2), latest (-1), the offset of its largest
//! timestamp (-3), or the first offset whose timestamp is at least a given one.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::records::{Batches, RecordBatch};
use sluice_protocol::ErrorCode;

use crate::log::Log;
use crate::server::Context;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| ListOffsetsResponseTopic {
            partitions: t
                .partitions
                .iter()
                .map(|p| lookup(ctx, &t.name, p))
                .collect(),
            name: t.name,
        })
        .collect();
    ListOffsetsResponse {
        throttle_time_ms: 0,
        topics,
    }
}

fn lookup(
    ctx: &Context,
    topic: &str,
    p: &ListOffsetsRequestPartition,
) -> ListOffsetsResponsePartition {
    let mut out = ListOffsetsResponsePartition {
        partition_index: p.partition_index,
        timestamp: -1,
        offset: -1,
        leader_epoch: -1,
        ..Default::default()
    };
    let Some(part) = ctx.replicas.partition(topic, p.partition_index) else {
        out.error_code = ErrorCode::UnknownTopicOrPartition.code();
        return out;
    };
    if let Err(code) = part.check_leader_epoch(p.current_leader_epoch) {
        out.error_code = code.code();
        return out;
    }
    // A follower's high watermark trails the leader's and its log may hold uncommitted
    // records: consumers ask the leader.
    if part.is_follower() {
        out.error_code = ErrorCode::NotLeaderOrFollower.code();
        return out;
    }
    out.leader_epoch = part.leader_epoch;
    let log = &part.log;
    let found = match p.timestamp {
        LATEST => Ok(Some((log.high_watermark(), -1))),
        EARLIEST => Ok(Some((log.log_start_offset(), -1))),
        MAX_TIMESTAMP => Ok(max_timestamp(log)),
        ts => log.offset_for_timestamp(ts).map_err(|e| e.code()),
    };
    match found {
        Ok(Some((offset, timestamp))) => {
            out.offset = offset;
            out.timestamp = timestamp;
        }
        // Nothing at or after that timestamp: Kafka answers offset -1 with no error.
        Ok(None) => {}
        Err(code) => out.error_code = code.code(),
    }
    out
}

/// The offset and timestamp of the record with the largest timestamp: a scan of batch headers,
/// then of the one batch that holds it. Rarely asked (admin tools), so no index is kept for it.
fn max_timestamp(log: &Log) -> Option<(i64, i64)> {
    let mut offset = log.log_start_offset();
    let end = log.high_watermark();
    let mut best: Option<(i64, bytes::Bytes)> = None;
    while offset < end {
        let read = log.read(offset, 1 << 20, end, true).ok()?;
        if read.records.is_empty() {
            break;
        }
        for batch in Batches::new(read.records) {
            let (h, bytes) = batch.ok()?;
            if best.as_ref().map_or(true, |(ts, _)| h.max_timestamp > *ts) {
                best = Some((h.max_timestamp, bytes));
            }
            offset = h.last_offset() + 1;
        }
    }
    let (ts, bytes) = best?;
    let batch = RecordBatch::decode(&bytes, 64 << 20).ok()?;
    batch
        .records
        .iter()
        .find(|r| r.timestamp == ts)
        .map(|r| (r.offset, ts))
        .or(Some((
            batch.base_offset + batch.last_offset_delta as i64,
            ts,
        )))
}
