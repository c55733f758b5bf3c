//! The cluster-mode halves of Metadata, CreateTopics, DeleteTopics and CreatePartitions: answers
//! come from the controller's committed image and topic changes go through its quorum.

use std::collections::{BTreeMap, HashMap, HashSet};

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::wire::Uuid;
use sluice_protocol::ErrorCode;

use crate::cluster::INTER_BROKER_LISTENER;
use crate::controller::{
    ClusterImage, ControllerHandle, ControllerReply, ControllerRequest, NewPartitions, NewTopic,
    TopicImage,
};
use crate::error::{BrokerError, Result};
use crate::group::OFFSETS_TOPIC;
use crate::server::Context;

/// "Authorized operations not requested", as the spec defines it.
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn metadata(
    ctx: &Context,
    controller: &ControllerHandle,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let image = controller.image().borrow().clone();
    let wanted = match request.topics {
        Some(t) if !(t.is_empty() && header.api_version == 0) => Some(t),
        _ => None,
    };
    let mut topics = Vec::new();
    match wanted {
        None => topics.extend(image.topics().map(describe)),
        Some(requested) => {
            for r in requested {
                let found = match (&r.name, r.topic_id) {
                    (Some(name), _) => image.topic(name),
                    (None, id) if id != Uuid::ZERO => image.topic_by_id(id),
                    _ => None,
                };
                topics.push(match (found, r.name) {
                    (Some(t), _) => describe(t),
                    (None, Some(name)) => {
                        auto_create(ctx, controller, name, request.allow_auto_topic_creation).await
                    }
                    (None, None) => MetadataResponseTopic {
                        error_code: ErrorCode::UnknownTopicId.code(),
                        topic_id: r.topic_id,
                        topic_authorized_operations: OPERATIONS_OMITTED,
                        ..Default::default()
                    },
                });
            }
        }
    }
    MetadataResponse {
        throttle_time_ms: 0,
        brokers: brokers(&image),
        cluster_id: Some(ctx.cluster_id.clone()),
        controller_id: controller.leader_id().unwrap_or(-1),
        topics,
        cluster_authorized_operations: OPERATIONS_OMITTED,
    }
}

/// Unfenced brokers only: a fenced one is not serving, and clients should not try it.
fn brokers(image: &ClusterImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let e = b.endpoint(INTER_BROKER_LISTENER)?;
            Some(MetadataResponseBroker {
                node_id: b.id,
                host: e.host.clone(),
                port: e.port as i32,
                rack: b.rack.clone(),
            })
        })
        .collect()
}

fn describe(t: &TopicImage) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: 0,
        name: Some(t.name.clone()),
        topic_id: t.id,
        is_internal: t.name.starts_with("__"),
        partitions: t
            .partitions
            .iter()
            .map(|(index, p)| MetadataResponsePartition {
                // Kafka's answer while no eligible replica is alive to lead.
                error_code: if p.leader < 0 {
                    ErrorCode::LeaderNotAvailable.code()
                } else {
                    0
                },
                partition_index: *index,
                leader_id: p.leader,
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replicas.clone(),
                isr_nodes: p.isr.clone(),
                offline_replicas: vec![],
            })
            .collect(),
        topic_authorized_operations: OPERATIONS_OMITTED,
    }
}

async fn auto_create(
    ctx: &Context,
    controller: &ControllerHandle,
    name: String,
    client_allows: bool,
) -> MetadataResponseTopic {
    let answer = |code: ErrorCode, name: String| MetadataResponseTopic {
        error_code: code.code(),
        name: Some(name),
        topic_authorized_operations: OPERATIONS_OMITTED,
        ..Default::default()
    };
    if !(client_allows && ctx.config.auto_create_topics) {
        return answer(ErrorCode::UnknownTopicOrPartition, name);
    }
    let request = ControllerRequest::CreateTopics {
        topics: vec![NewTopic {
            name: name.clone(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: None,
            configs: BTreeMap::new(),
        }],
        validate_only: false,
    };
    let outcome = match controller.submit(request).await {
        Ok(ControllerReply::TopicsCreated(mut results)) if results.len() == 1 => {
            results.remove(0).result.map(|_| ())
        }
        Ok(other) => Err(unexpected(&other)),
        Err(e) => Err(e),
    };
    match outcome {
        // Created (here or by a racing client): leaders are elected as the records apply, so
        // the client asks again, as it would of Kafka.
        Ok(()) | Err(BrokerError::TopicAlreadyExists(_)) => {
            answer(ErrorCode::LeaderNotAvailable, name)
        }
        Err(e) => answer(e.code(), name),
    }
}

/// The error code and message for one topic the controller refused, or did not answer for;
/// `None` when it was done.
fn refusal(outcome: Option<&Result<()>>) -> Option<(i16, String)> {
    match outcome {
        Some(Ok(())) => None,
        Some(Err(e)) => Some((e.code().code(), e.to_string())),
        None => Some((
            ErrorCode::UnknownServerError.code(),
            "the controller did not answer for it".into(),
        )),
    }
}

fn unexpected(reply: &ControllerReply) -> BrokerError {
    BrokerError::Quorum(format!("the controller answered with {reply:?}"))
}

pub async fn create_topics(
    ctx: &Context,
    controller: &ControllerHandle,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *counts.entry(t.name.clone()).or_default() += 1;
    }
    let mut answered = HashSet::new();
    // Slots in request order: an answer already, or a topic for the controller.
    let mut slots: Vec<std::result::Result<CreateTopicsResponseTopic, String>> = Vec::new();
    let mut submit = Vec::new();
    for t in request.topics {
        if !answered.insert(t.name.clone()) {
            continue;
        }
        let name = t.name.clone();
        if counts[&name] > 1 {
            slots.push(Ok(failure(
                name,
                ErrorCode::InvalidRequest,
                "topic named more than once".into(),
            )));
            continue;
        }
        match new_topic(t) {
            Ok(topic) => {
                submit.push(topic);
                slots.push(Err(name));
            }
            Err(e) => slots.push(Ok(failure(name, e.code(), e.to_string()))),
        }
    }
    let mut decided: HashMap<String, CreateTopicsResponseTopic> = HashMap::new();
    if !submit.is_empty() {
        let names: Vec<String> = submit.iter().map(|t| t.name.clone()).collect();
        let request = ControllerRequest::CreateTopics {
            topics: submit,
            validate_only: request.validate_only,
        };
        match controller.submit(request).await {
            Ok(ControllerReply::TopicsCreated(results)) => {
                for r in results {
                    let answer = match r.result {
                        Ok(created) => {
                            let configs = (header.api_version >= 5).then(|| {
                                super::create_topics::effective_configs(ctx, &created.configs)
                            });
                            CreateTopicsResponseTopic {
                                name: r.name.clone(),
                                topic_id: created.topic_id,
                                error_code: 0,
                                error_message: None,
                                num_partitions: created.num_partitions,
                                replication_factor: created.replication_factor,
                                configs,
                                ..Default::default()
                            }
                        }
                        Err(e) => failure(r.name.clone(), e.code(), e.to_string()),
                    };
                    decided.insert(r.name, answer);
                }
            }
            other => {
                let e = match other {
                    Ok(reply) => unexpected(&reply),
                    Err(e) => e,
                };
                for name in names {
                    decided.insert(name.clone(), failure(name, e.code(), e.to_string()));
                }
            }
        }
    }
    let topics = slots
        .into_iter()
        .map(|slot| match slot {
            Ok(answer) => answer,
            Err(name) => decided.remove(&name).unwrap_or_else(|| {
                failure(
                    name,
                    ErrorCode::UnknownServerError,
                    "the controller did not answer for this topic".into(),
                )
            }),
        })
        .collect();
    CreateTopicsResponse {
        throttle_time_ms: 0,
        topics,
    }
}

fn new_topic(t: CreateTopicsRequestTopic) -> Result<NewTopic> {
    let assignments = if t.assignments.is_empty() {
        None
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(BrokerError::InvalidPartitions(
                "give either assignments or a partition count and replication factor".into(),
            ));
        }
        let mut by_index: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for a in t.assignments {
            by_index.insert(a.partition_index, a.broker_ids);
        }
        // Partitions 0..n, each once: anything else leaves a gap or a duplicate.
        if by_index.keys().copied().ne(0..by_index.len() as i32) {
            return Err(BrokerError::InvalidPartitions(
                "assignments must cover partitions 0..n exactly once".into(),
            ));
        }
        Some(by_index.into_values().collect())
    };
    let mut configs = BTreeMap::new();
    for c in t.configs {
        let Some(value) = c.value else {
            return Err(BrokerError::InvalidConfig(format!(
                "config {} has a null value",
                c.name
            )));
        };
        configs.insert(c.name, value);
    }
    Ok(NewTopic {
        name: t.name,
        num_partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        assignments,
        configs,
    })
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

pub async fn delete_topics(
    controller: &ControllerHandle,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let image = controller.image().borrow().clone();
    let mut wanted: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .into_iter()
        .map(|n| (Some(n), Uuid::ZERO))
        .collect();
    wanted.extend(request.topics.into_iter().map(|t| (t.name, t.topic_id)));
    let mut responses = Vec::new();
    let mut submit = Vec::new();
    for (name, id) in wanted {
        let topic = match &name {
            Some(n) => image.topic(n),
            None => image.topic_by_id(id),
        };
        let Some(topic) = topic else {
            let code = if name.is_some() {
                ErrorCode::UnknownTopicOrPartition
            } else {
                ErrorCode::UnknownTopicId
            };
            responses.push(DeleteTopicsResponseTopic {
                name,
                topic_id: id,
                error_code: code.code(),
                error_message: Some("no such topic".into()),
            });
            continue;
        };
        if topic.name == OFFSETS_TOPIC {
            // The coordinators serve groups from this topic while the brokers run.
            responses.push(DeleteTopicsResponseTopic {
                name: Some(topic.name.clone()),
                topic_id: topic.id,
                error_code: ErrorCode::InvalidTopicException.code(),
                error_message: Some(format!(
                    "{OFFSETS_TOPIC} is internal: delete consumer groups instead"
                )),
            });
            continue;
        }
        submit.push(topic.name.clone());
        responses.push(DeleteTopicsResponseTopic {
            name: Some(topic.name.clone()),
            topic_id: topic.id,
            ..Default::default()
        });
    }
    if submit.is_empty() {
        return DeleteTopicsResponse {
            throttle_time_ms: 0,
            responses,
        };
    }
    let outcome: HashMap<String, Result<()>> = match controller
        .submit(ControllerRequest::DeleteTopics {
            names: submit.clone(),
        })
        .await
    {
        Ok(ControllerReply::TopicsDeleted(results)) => results
            .into_iter()
            .map(|r| (r.name, r.result.map(|_| ())))
            .collect(),
        other => {
            let e = match other {
                Ok(reply) => unexpected(&reply),
                Err(e) => e,
            };
            submit
                .into_iter()
                .map(|n| (n, Err(clone_kind(&e))))
                .collect()
        }
    };
    for response in &mut responses {
        let Some(name) = &response.name else { continue };
        if response.error_code != 0 {
            continue;
        }
        // On success every broker drops the topic's replicas and committed offsets as it
        // applies the deletion (`ClusterMember::apply`).
        if let Some((code, message)) = refusal(outcome.get(name)) {
            response.error_code = code;
            response.error_message = Some(message);
        }
    }
    DeleteTopicsResponse {
        throttle_time_ms: 0,
        responses,
    }
}

/// The same error for every topic of a request the controller did not take as a whole; only
/// its kind and message matter to the client.
fn clone_kind(e: &BrokerError) -> BrokerError {
    crate::error::WireError::from(e).into()
}

pub async fn create_partitions(
    controller: &ControllerHandle,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *counts.entry(t.name.clone()).or_default() += 1;
    }
    let mut answered = HashSet::new();
    let mut results = Vec::new();
    let mut submit = Vec::new();
    for t in request.topics {
        if !answered.insert(t.name.clone()) {
            continue;
        }
        let refusal = if counts[&t.name] > 1 {
            Some((
                ErrorCode::InvalidRequest,
                "topic named more than once".into(),
            ))
        } else if t.name == OFFSETS_TOPIC {
            // Each group lives in the partition its id hashes to; a new count orphans them.
            Some((
                ErrorCode::InvalidRequest,
                format!("{OFFSETS_TOPIC} keeps its partition count"),
            ))
        } else {
            None
        };
        match refusal {
            Some((code, message)) => results.push(CreatePartitionsTopicResult {
                name: t.name,
                error_code: code.code(),
                error_message: Some(message),
            }),
            None => {
                submit.push(NewPartitions {
                    topic: t.name.clone(),
                    total_count: t.count,
                    assignments: t
                        .assignments
                        .map(|a| a.into_iter().map(|a| a.broker_ids).collect()),
                });
                results.push(CreatePartitionsTopicResult {
                    name: t.name,
                    ..Default::default()
                });
            }
        }
    }
    if submit.is_empty() {
        return CreatePartitionsResponse {
            throttle_time_ms: 0,
            results,
        };
    }
    let outcome: HashMap<String, Result<()>> = match controller
        .submit(ControllerRequest::CreatePartitions {
            topics: submit.clone(),
            validate_only: request.validate_only,
        })
        .await
    {
        Ok(ControllerReply::PartitionsCreated(results)) => {
            results.into_iter().map(|r| (r.name, r.result)).collect()
        }
        other => {
            let e = match other {
                Ok(reply) => unexpected(&reply),
                Err(e) => e,
            };
            submit
                .into_iter()
                .map(|t| (t.topic, Err(clone_kind(&e))))
                .collect()
        }
    };
    for result in &mut results {
        if result.error_code != 0 {
            continue;
        }
        if let Some((code, message)) = refusal(outcome.get(&result.name)) {
            result.error_code = code;
            result.error_message = Some(message);
        }
    }
    CreatePartitionsResponse {
        throttle_time_ms: 0,
        results,
    }
}
