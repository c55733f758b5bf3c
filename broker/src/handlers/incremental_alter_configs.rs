//! IncrementalAlterConfigs: checks each resource's operations and applies a topic's all at once
//! or not at all; the change itself, persisted and put in force, is the replica manager's.

use std::collections::HashSet;
use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::server::Context;
use crate::topic_config::AlterOp;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut seen = HashSet::new();
    let repeated: HashSet<(i8, String)> = request
        .resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.clone()))
        .filter(|key| !seen.insert(key.clone()))
        .collect();
    let responses = request
        .resources
        .into_iter()
        .map(|r| {
            let key = (r.resource_type, r.resource_name.clone());
            let outcome = if repeated.contains(&key) {
                // Which of the copies would win is anyone's guess; Kafka refuses them all.
                Err((
                    ErrorCode::InvalidRequest,
                    "the resource appears more than once in the request".to_string(),
                ))
            } else {
                alter(ctx, &r, request.validate_only)
            };
            let (error_code, error_message) = match outcome {
                Ok(()) => (0, None),
                Err((code, message)) => (code.code(), Some(message)),
            };
            AlterConfigsResourceResponse {
                error_code,
                error_message,
                resource_type: r.resource_type,
                resource_name: r.resource_name,
            }
        })
        .collect();
    IncrementalAlterConfigsResponse {
        throttle_time_ms: 0,
        responses,
    }
}

fn alter(
    ctx: &Context,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (ErrorCode, String)> {
    match r.resource_type {
        RESOURCE_TOPIC => {
            let changes = operations(r)?;
            ctx.replicas
                .alter_topic_configs(&r.resource_name, &changes, validate_only)
                .map(|_| ())
                .map_err(|e| (e.code(), e.to_string()))
        }
        // Answering success without applying anything would leave an operator believing a
        // broker setting changed; saying so plainly is the honest answer.
        RESOURCE_BROKER => Err((
            ErrorCode::InvalidRequest,
            "dynamic broker configs are not supported: set them in the broker's properties \
             file and restart it"
                .to_string(),
        )),
        other => Err((
            ErrorCode::InvalidRequest,
            format!("resource type {other} is not supported; only topics (2) can be altered"),
        )),
    }
}

/// The resource's operations, refusing the request-level mistakes Kafka answers with
/// INVALID_REQUEST: a key named twice, an unknown operation, a missing value.
fn operations(r: &AlterConfigsResource) -> Result<Vec<(String, AlterOp)>, (ErrorCode, String)> {
    let invalid = |message: String| (ErrorCode::InvalidRequest, message);
    let mut names = HashSet::new();
    r.configs
        .iter()
        .map(|c| {
            if !names.insert(c.name.as_str()) {
                return Err(invalid(format!(
                    "config {} is named more than once",
                    c.name
                )));
            }
            let value = || {
                c.value
                    .clone()
                    .ok_or_else(|| invalid(format!("config {} has a null value", c.name)))
            };
            let op = match c.config_operation {
                OP_SET => AlterOp::Set(value()?),
                OP_DELETE => AlterOp::Delete,
                OP_APPEND => AlterOp::Append(value()?),
                OP_SUBTRACT => AlterOp::Subtract(value()?),
                other => {
                    return Err(invalid(format!(
                        "unknown config operation {other} for config {}",
                        c.name
                    )))
                }
            };
            Ok((c.name.clone(), op))
        })
        .collect()
}
