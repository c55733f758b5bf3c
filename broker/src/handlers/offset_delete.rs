//! OffsetDelete: forgets a group's committed offsets for partitions it no longer consumes.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let mut known = Vec::new();
    let mut answers = Vec::new();
    for t in &request.topics {
        for p in &t.partitions {
            let hosted = ctx.partition_exists(&t.name, p.partition_index);
            answers.push((t.name.clone(), p.partition_index, hosted));
            if hosted {
                known.push((t.name.clone(), p.partition_index));
            }
        }
    }
    let errors = match ctx.groups.delete_offsets(&request.group_id, &known).await {
        Ok(errors) => errors,
        Err(e) => {
            return OffsetDeleteResponse {
                error_code: e.code(),
                ..Default::default()
            }
        }
    };
    let mut errors = errors.into_iter();
    let topics = super::by_topic(
        answers.into_iter().map(|(topic, partition, hosted)| {
            let error = if hosted {
                errors.next().unwrap_or(ErrorCode::UnknownServerError)
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            let entry = OffsetDeleteResponsePartition {
                partition_index: partition,
                error_code: error.code(),
            };
            (topic, entry)
        }),
        |name, partitions| OffsetDeleteResponseTopic { name, partitions },
    );
    OffsetDeleteResponse {
        error_code: 0,
        throttle_time_ms: 0,
        topics,
    }
}
