//! Metadata: the brokers (just this one, at its advertised address) and the requested topics with
//! their partitions, creating unknown topics when auto-creation is on and the client allows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::wire::Uuid;
use sluice_protocol::ErrorCode;

use crate::error::BrokerError;
use crate::metadata::TopicMetadata;
use crate::server::Context;

/// "Authorized operations not requested", as the spec defines it.
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    if let Some(controller) = &ctx.controller {
        return super::cluster::metadata(ctx, controller, header, request).await;
    }
    let node_id = ctx.config.node_id;
    let store = ctx.replicas.metadata();
    // v0 asks for every topic with an empty list; later versions with null.
    let wanted = match request.topics {
        Some(t) if !(t.is_empty() && header.api_version == 0) => Some(t),
        _ => None,
    };
    let topics = match wanted {
        None => store
            .topics()
            .iter()
            .map(|t| describe(node_id, t))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .map(|r| {
                let found = match (&r.name, r.topic_id) {
                    (Some(name), _) => store.topic(name),
                    (None, id) if id != Uuid::ZERO => store.topic_by_id(id),
                    _ => None,
                };
                match (found, r.name) {
                    (Some(t), _) => describe(node_id, &t),
                    (None, Some(name)) => {
                        auto_create(ctx, &name, request.allow_auto_topic_creation)
                    }
                    (None, None) => MetadataResponseTopic {
                        error_code: ErrorCode::UnknownTopicId.code(),
                        topic_id: r.topic_id,
                        topic_authorized_operations: OPERATIONS_OMITTED,
                        ..Default::default()
                    },
                }
            })
            .collect(),
    };
    MetadataResponse {
        throttle_time_ms: 0,
        brokers: vec![MetadataResponseBroker {
            node_id,
            host: ctx.advertised.host.clone(),
            port: ctx.advertised.port as i32,
            rack: None,
        }],
        cluster_id: Some(ctx.cluster_id.clone()),
        controller_id: node_id,
        topics,
        cluster_authorized_operations: OPERATIONS_OMITTED,
    }
}

fn auto_create(ctx: &Context, name: &str, client_allows: bool) -> MetadataResponseTopic {
    let unknown = |code: ErrorCode| MetadataResponseTopic {
        error_code: code.code(),
        name: Some(name.to_string()),
        topic_authorized_operations: OPERATIONS_OMITTED,
        ..Default::default()
    };
    if !(client_allows && ctx.config.auto_create_topics) {
        return unknown(ErrorCode::UnknownTopicOrPartition);
    }
    match ctx
        .replicas
        .create_topic(name, -1, -1, BTreeMap::new(), false)
    {
        Ok(t) => describe(ctx.config.node_id, &t),
        // Another connection created it between our look-up and now: describe what is there.
        Err(BrokerError::TopicAlreadyExists(_)) => match ctx.replicas.metadata().topic(name) {
            Some(t) => describe(ctx.config.node_id, &t),
            None => unknown(ErrorCode::UnknownTopicOrPartition),
        },
        Err(e) => unknown(e.code()),
    }
}

fn describe(node_id: i32, t: &TopicMetadata) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: 0,
        name: Some(t.name.clone()),
        topic_id: t.id,
        is_internal: t.name.starts_with("__"),
        partitions: (0..t.partitions)
            .map(|p| MetadataResponsePartition {
                error_code: 0,
                partition_index: p,
                leader_id: node_id,
                leader_epoch: 0,
                replica_nodes: vec![node_id],
                isr_nodes: vec![node_id],
                offline_replicas: vec![],
            })
            .collect(),
        topic_authorized_operations: OPERATIONS_OMITTED,
    }
}
