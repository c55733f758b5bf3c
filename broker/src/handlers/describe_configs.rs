//! DescribeConfigs: a topic's effective configs (overrides and inherited defaults) and the
//! broker's settings, filtered by the requested keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::config::BrokerConfig;
use crate::server::Context;
use crate::topic_config::{self, SOURCE_DEFAULT, SOURCE_STATIC_BROKER, SOURCE_TOPIC};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// A topic's config overrides, `None` for an unknown topic. In a cluster they are the
/// controller's committed ones, which every node shares; a standalone broker keeps its own.
fn topic_overrides(ctx: &Context, topic: &str) -> Option<BTreeMap<String, String>> {
    match &ctx.controller {
        Some(controller) => {
            let image = controller.image().borrow().clone();
            image.topic(topic).map(|_| image.topic_configs(topic))
        }
        None => ctx.replicas.metadata().topic(topic).map(|t| t.configs),
    }
}

pub async fn handle(
    ctx: &Arc<Context>,
    _header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let mut out = DescribeConfigsResponseResult {
                resource_type: r.resource_type,
                resource_name: r.resource_name.clone(),
                ..Default::default()
            };
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match topic_overrides(ctx, &r.resource_name) {
                    Some(overrides) => topic_config::effective(&ctx.config, &overrides)
                        .into_iter()
                        .map(|(k, v, is_default)| {
                            (
                                k.to_string(),
                                v,
                                if is_default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                },
                            )
                        })
                        .collect(),
                    None => {
                        out.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        out.error_message = Some(format!("no topic {}", r.resource_name));
                        Vec::new()
                    }
                },
                RESOURCE_BROKER
                    if r.resource_name.is_empty()
                        || r.resource_name == ctx.config.node_id.to_string() =>
                {
                    broker_entries(&ctx.config)
                }
                RESOURCE_BROKER => {
                    out.error_code = ErrorCode::InvalidRequest.code();
                    out.error_message = Some(format!("this is broker {}", ctx.config.node_id));
                    Vec::new()
                }
                other => {
                    out.error_code = ErrorCode::InvalidRequest.code();
                    out.error_message = Some(format!("resource type {other} is not supported"));
                    Vec::new()
                }
            };
            out.configs = entries
                .into_iter()
                .filter(|(k, _, _)| {
                    r.configuration_keys
                        .as_ref()
                        .map_or(true, |keys| keys.is_empty() || keys.contains(k))
                })
                .map(|(name, value, source)| DescribeConfigsResponseConfig {
                    name,
                    value: Some(value),
                    read_only: r.resource_type == RESOURCE_BROKER,
                    is_default: source == SOURCE_DEFAULT,
                    config_source: source,
                    is_sensitive: false,
                    ..Default::default()
                })
                .collect();
            out
        })
        .collect();
    DescribeConfigsResponse {
        throttle_time_ms: 0,
        results,
    }
}

/// The broker's effective settings: those given in its properties file as static configs, and
/// the defaults of the ones Sluice applies.
fn broker_entries(c: &BrokerConfig) -> Vec<(String, String, i8)> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-1".to_string());
    let applied = [
        ("node.id", c.node_id.to_string()),
        ("num.partitions", c.num_partitions.to_string()),
        (
            "default.replication.factor",
            c.default_replication_factor.to_string(),
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("log.segment.bytes", c.log_segment_bytes.to_string()),
        ("log.roll.ms", c.log_roll_ms.to_string()),
        (
            "log.retention.ms",
            opt(c.log_retention_ms.map(|v| v.to_string())),
        ),
        (
            "log.retention.bytes",
            opt(c.log_retention_bytes.map(|v| v.to_string())),
        ),
        (
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
        ),
        ("message.max.bytes", c.message_max_bytes.to_string()),
        (
            "socket.request.max.bytes",
            c.socket_request_max_bytes.to_string(),
        ),
        (
            "log.index.interval.bytes",
            c.log_index_interval_bytes.to_string(),
        ),
        ("log.cleaner.enable", c.log_cleaner_enable.to_string()),
        (
            "log.cleaner.backoff.ms",
            c.log_cleaner_backoff_ms.to_string(),
        ),
        (
            "log.cleaner.dedupe.buffer.size",
            c.log_cleaner_dedupe_buffer_size.to_string(),
        ),
    ];
    let mut entries: Vec<(String, String, i8)> = applied
        .into_iter()
        .map(|(k, v)| {
            let source = if c.raw.contains_key(k) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            (k.to_string(), v, source)
        })
        .collect();
    for (k, v) in &c.raw {
        if !entries.iter().any(|(name, _, _)| name == k) {
            entries.push((k.clone(), v.clone(), SOURCE_STATIC_BROKER));
        }
    }
    entries
}
