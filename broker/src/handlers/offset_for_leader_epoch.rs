//! OffsetForLeaderEpoch: where a leader epoch ends in a partition's log, which followers ask to
//! find where their log diverged and consumers ask to check their position after a leader change.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::log::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use crate::server::Context;

/// The replica id is read but changes nothing yet: every partition here is led by this broker,
/// so consumers (-1), followers (their broker id) and the pre-v3 debug id (-2) all get the
/// leader's answer. Once followers exist, a partition this broker only follows must answer
/// NOT_LEADER_OR_FOLLOWER to all but the debug id.
pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| OffsetForLeaderEpochResponseTopic {
            partitions: t
                .partitions
                .iter()
                .map(|p| end_offset(ctx, &t.topic, p))
                .collect(),
            topic: t.topic,
        })
        .collect();
    OffsetForLeaderEpochResponse {
        throttle_time_ms: 0,
        topics,
    }
}

fn end_offset(
    ctx: &Context,
    topic: &str,
    p: &OffsetForLeaderEpochRequestPartition,
) -> OffsetForLeaderEpochResponsePartition {
    let answer = |code: ErrorCode, (leader_epoch, end_offset): (i32, i64)| {
        OffsetForLeaderEpochResponsePartition {
            error_code: code.code(),
            partition: p.partition,
            leader_epoch,
            end_offset,
        }
    };
    let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
    let Some(part) = ctx.replicas.partition(topic, p.partition) else {
        return answer(ErrorCode::UnknownTopicOrPartition, undefined);
    };
    if let Err(code) = part.check_leader_epoch(p.current_leader_epoch) {
        return answer(code, undefined);
    }
    // An epoch the log cannot place is no error: (-1, -1) tells the asker to fall back (a
    // follower to its high watermark, a consumer to its reset policy), as Kafka answers.
    answer(
        ErrorCode::None,
        part.log.end_offset_for_epoch(p.leader_epoch),
    )
}
