//! OffsetForLeaderEpoch: where a leader epoch ends in a partition's log, which followers ask to
//! find where their log diverged and consumers ask to check their position after a leader change.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::log::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use crate::server::Context;

/// The replica id of debugging tools, which may ask any replica.
const DEBUG_REPLICA_ID: i32 = -2;

/// Consumers (-1) and followers (their broker id) get the leader's answer, so a partition this
/// broker only follows answers them NOT_LEADER_OR_FOLLOWER; the pre-v3 debug id (-2) is
/// answered from any replica, as Kafka does.
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
                .map(|p| end_offset(ctx, request.replica_id, &t.topic, p))
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
    replica_id: i32,
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
    if part.is_follower() && replica_id != DEBUG_REPLICA_ID {
        return answer(ErrorCode::NotLeaderOrFollower, undefined);
    }
    // An epoch the log cannot place is no error: (-1, -1) tells the asker to fall back (a
    // follower to its high watermark, a consumer to its reset policy), as Kafka answers.
    answer(
        ErrorCode::None,
        part.leader_end_offset_for_epoch(p.leader_epoch),
    )
}
