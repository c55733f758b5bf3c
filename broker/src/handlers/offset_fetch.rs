//! OffsetFetch: the committed offsets of a group (v8+: of several groups), for a consumer that
//! takes over partitions or a tool that shows lag.

use std::sync::Arc;

use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::ErrorCode;

use crate::server::Context;

pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.api_version;
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let (topics, error) = fetch(ctx, &g.group_id, g.topics);
                OffsetFetchResponseGroup {
                    group_id: g.group_id,
                    topics,
                    error_code: error.code(),
                }
            })
            .collect();
        return OffsetFetchResponse {
            groups,
            ..Default::default()
        };
    }
    let (mut topics, error) = fetch(ctx, &request.group_id, request.topics);
    if version < 2 && !error.is_ok() {
        // v0-1 have no group-level error: it goes on every partition instead.
        for t in &mut topics {
            for p in &mut t.partitions {
                p.error_code = error.code();
            }
        }
    }
    OffsetFetchResponse {
        topics,
        error_code: error.code(),
        ..Default::default()
    }
}

/// One group's answer: `topics = None` asks for everything the group committed.
fn fetch(
    ctx: &Arc<Context>,
    group_id: &str,
    topics: Option<Vec<OffsetFetchRequestTopic>>,
) -> (Vec<OffsetFetchResponseTopic>, ErrorCode) {
    let wanted: Option<Vec<(String, Vec<i32>)>> = topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let fetched = match ctx.groups.fetch_offsets(group_id, wanted.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            // Asked-for partitions are still listed, so old clients see the error on each.
            let topics = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(name, ps)| OffsetFetchResponseTopic {
                    name,
                    partitions: ps.into_iter().map(no_offset).collect(),
                })
                .collect();
            return (topics, e);
        }
    };
    let topics = super::by_topic(
        fetched.into_iter().map(|(topic, partition, committed)| {
            let entry = match committed {
                Some(c) => OffsetFetchResponsePartition {
                    partition_index: partition,
                    committed_offset: c.offset,
                    committed_leader_epoch: c.leader_epoch,
                    metadata: Some(c.metadata),
                    error_code: 0,
                },
                None => no_offset(partition),
            };
            (topic, entry)
        }),
        |name, partitions| OffsetFetchResponseTopic { name, partitions },
    );
    (topics, ErrorCode::None)
}

fn no_offset(partition: i32) -> OffsetFetchResponsePartition {
    OffsetFetchResponsePartition {
        partition_index: partition,
        committed_offset: -1,
        committed_leader_epoch: -1,
        metadata: Some(String::new()),
        error_code: 0,
    }
}
