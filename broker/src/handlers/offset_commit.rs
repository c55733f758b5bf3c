//! OffsetCommit: a consumer records how far it got in each partition, checked against its
//! group membership and generation, and stored in `__consumer_offsets`.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::group::{CommitOffset, CommitRequest};
use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    // Partitions that do not exist are refused one by one, as Kafka does; the rest go to
    // the coordinator together.
    let mut known = Vec::new();
    let mut answers: Vec<(String, i32, Option<ErrorCode>)> = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            if !ctx.partition_exists(&topic.name, p.partition_index) {
                answers.push((
                    topic.name.clone(),
                    p.partition_index,
                    Some(ErrorCode::UnknownTopicOrPartition),
                ));
                continue;
            }
            answers.push((topic.name.clone(), p.partition_index, None));
            known.push(CommitOffset {
                topic: topic.name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.clone(),
            });
        }
    }
    let errors = ctx
        .groups
        .commit_offsets(&CommitRequest {
            group_id: request.group_id,
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id,
            group_instance_id: request.group_instance_id,
            retention_time_ms: request.retention_time_ms,
            offsets: known,
        })
        .await;
    let mut errors = errors.into_iter();
    let topics = super::by_topic(
        answers.into_iter().map(|(topic, partition, error)| {
            let error =
                error.unwrap_or_else(|| errors.next().unwrap_or(ErrorCode::UnknownServerError));
            let entry = OffsetCommitResponsePartition {
                partition_index: partition,
                error_code: error.code(),
            };
            (topic, entry)
        }),
        |name, partitions| OffsetCommitResponseTopic { name, partitions },
    );
    OffsetCommitResponse {
        throttle_time_ms: 0,
        topics,
    }
}
