//! CreatePartitions: grows topics to a new partition count, each topic on its own, so one
//! refused topic does not hold back the others. The change itself is the replica manager's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::group::OFFSETS_TOPIC;
use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    if let Some(controller) = &ctx.controller {
        return super::cluster::create_partitions(controller, request).await;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *counts.entry(t.name.clone()).or_default() += 1;
    }
    let mut answered = HashSet::new();
    let results = request
        .topics
        .into_iter()
        .filter(|t| answered.insert(t.name.clone()))
        .map(|t| {
            let outcome = if counts[&t.name] > 1 {
                // Which of the copies should win is anyone's guess, so none does.
                Err((
                    ErrorCode::InvalidRequest,
                    "topic named more than once".to_string(),
                ))
            } else {
                grow(ctx, &t, request.validate_only)
            };
            let (error_code, error_message) = match outcome {
                Ok(()) => (0, None),
                Err((code, message)) => (code.code(), Some(message)),
            };
            CreatePartitionsTopicResult {
                name: t.name,
                error_code,
                error_message,
            }
        })
        .collect();
    CreatePartitionsResponse {
        throttle_time_ms: 0,
        results,
    }
}

fn grow(
    ctx: &Context,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    if t.name == OFFSETS_TOPIC {
        // Kafka lets this through, and it breaks every group: a group's coordinator partition
        // is its id's hash modulo this topic's partition count, so a new count sends groups to
        // partitions that hold none of their offsets or membership.
        return Err((
            ErrorCode::InvalidRequest,
            format!(
                "{OFFSETS_TOPIC} keeps its partition count: each group is stored in the \
                 partition its id hashes to, so a new count would orphan existing groups \
                 and their committed offsets"
            ),
        ));
    }
    let assignments: Option<Vec<Vec<i32>>> = t
        .assignments
        .as_ref()
        .map(|a| a.iter().map(|a| a.broker_ids.clone()).collect());
    ctx.replicas
        .create_partitions(&t.name, t.count, assignments.as_deref(), validate_only)
        .map(|_| ())
        .map_err(|e| (e.code(), e.to_string()))
}
