//! DeleteTopics: removes topics by name (or by id from v6), their metadata and their logs.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::wire::Uuid;
use sluice_protocol::ErrorCode;

use crate::group::OFFSETS_TOPIC;
use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    if let Some(controller) = &ctx.controller {
        return super::cluster::delete_topics(controller, request).await;
    }
    // v1-v5 name topics in `topic_names`; v6 in `topics`, by name or by id.
    let mut wanted: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .into_iter()
        .map(|n| (Some(n), Uuid::ZERO))
        .collect();
    wanted.extend(request.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let store = ctx.replicas.metadata();
            let topic = match &name {
                Some(n) => store.topic(n),
                None => store.topic_by_id(id),
            };
            let Some(topic) = topic else {
                let code = if name.is_some() {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::UnknownTopicId
                };
                return DeleteTopicsResponseTopic {
                    name,
                    topic_id: id,
                    error_code: code.code(),
                    error_message: Some("no such topic".into()),
                };
            };
            if topic.name == OFFSETS_TOPIC {
                // The coordinator serves groups from this topic while the broker runs.
                return DeleteTopicsResponseTopic {
                    name: Some(topic.name),
                    topic_id: topic.id,
                    error_code: ErrorCode::InvalidTopicException.code(),
                    error_message: Some(format!(
                        "{OFFSETS_TOPIC} is internal: delete consumer groups instead"
                    )),
                };
            }
            match ctx.replicas.delete_topic(&topic.name) {
                Ok(_) => {
                    // A topic created again under the same name must not resume at offsets
                    // committed for the old one (Kafka drops them too).
                    ctx.groups.forget_topic(&topic.name);
                    DeleteTopicsResponseTopic {
                        name: Some(topic.name),
                        topic_id: topic.id,
                        error_code: 0,
                        error_message: None,
                    }
                }
                Err(e) => DeleteTopicsResponseTopic {
                    name: Some(topic.name),
                    topic_id: topic.id,
                    error_code: e.code().code(),
                    error_message: Some(e.to_string()),
                },
            }
        })
        .collect();
    DeleteTopicsResponse {
        throttle_time_ms: 0,
        responses,
    }
}
