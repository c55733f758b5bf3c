//! CreateTopics: validates names, partition counts, replication factors, assignments and configs,
//! and creates each topic independently; one bad topic does not fail the others.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::error::{BrokerError, Result};
use crate::metadata::TopicMetadata;
use crate::server::Context;
use crate::topic_config::{self, SOURCE_DEFAULT, SOURCE_TOPIC};

pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    if let Some(controller) = &ctx.controller {
        return super::cluster::create_topics(ctx, controller, header, request).await;
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in &request.topics {
        *counts.entry(t.name.clone()).or_default() += 1;
    }
    let mut answered = HashSet::new();
    let topics = request
        .topics
        .into_iter()
        .filter(|t| answered.insert(t.name.clone()))
        .map(|t| {
            let name = t.name.clone();
            if counts[&name] > 1 {
                return failure(
                    name,
                    ErrorCode::InvalidRequest,
                    "topic named more than once".into(),
                );
            }
            match create(ctx, t, request.validate_only) {
                Ok(created) => success(ctx, created, header.api_version),
                Err(e) => failure(name, e.code(), e.to_string()),
            }
        })
        .collect();
    CreateTopicsResponse {
        throttle_time_ms: 0,
        topics,
    }
}

fn create(
    ctx: &Context,
    t: CreateTopicsRequestTopic,
    validate_only: bool,
) -> Result<TopicMetadata> {
    let (partitions, replication_factor) = if t.assignments.is_empty() {
        (t.num_partitions, t.replication_factor)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(BrokerError::InvalidPartitions(
                "give either assignments or a partition count and replication factor".into(),
            ));
        }
        let node = ctx.config.node_id;
        let mut seen = HashSet::new();
        for a in &t.assignments {
            if !seen.insert(a.partition_index)
                || a.partition_index < 0
                || a.partition_index as usize >= t.assignments.len()
            {
                return Err(BrokerError::InvalidPartitions(
                    "assignments must cover partitions 0..n exactly once".into(),
                ));
            }
            if a.broker_ids.iter().any(|b| *b != node) {
                return Err(BrokerError::InvalidReplicationFactor(format!(
                    "assignment names a broker other than {node}"
                )));
            }
        }
        let rf = t.assignments[0].broker_ids.len() as i16;
        (t.assignments.len() as i32, rf)
    };
    let mut configs = BTreeMap::new();
    for c in t.configs {
        match c.value {
            Some(v) => {
                configs.insert(c.name, v);
            }
            None => {
                return Err(BrokerError::InvalidConfig(format!(
                    "config {} has a null value",
                    c.name
                )))
            }
        }
    }
    ctx.replicas.create_topic(
        &t.name,
        partitions,
        replication_factor,
        configs,
        validate_only,
    )
}

/// A new topic's effective configs as CreateTopics v5+ reports them (overrides and defaults);
/// the standalone and cluster paths both answer with this.
pub(super) fn effective_configs(
    ctx: &Context,
    configs: &BTreeMap<String, String>,
) -> Vec<CreateTopicsResponseConfig> {
    topic_config::effective(&ctx.config, configs)
        .into_iter()
        .map(|(name, value, is_default)| CreateTopicsResponseConfig {
            name: name.to_string(),
            value: Some(value),
            read_only: false,
            config_source: if is_default {
                SOURCE_DEFAULT
            } else {
                SOURCE_TOPIC
            },
            is_sensitive: false,
        })
        .collect()
}

fn success(ctx: &Context, t: TopicMetadata, version: i16) -> CreateTopicsResponseTopic {
    let configs = (version >= 5).then(|| effective_configs(ctx, &t.configs));
    CreateTopicsResponseTopic {
        name: t.name,
        topic_id: t.id,
        error_code: 0,
        error_message: None,
        num_partitions: t.partitions,
        replication_factor: t.replication_factor,
        configs,
        ..Default::default()
    }
}

fn failure(name: String, code: ErrorCode, message: String) -> CreateTopicsResponseTopic {
    CreateTopicsResponseTopic {
        name,
        error_code: code.code(),
        error_message: Some(message),
        num_partitions: -1,
        replication_factor: -1,
        configs: None,
        ..Default::default()
    }
}
