//! One module per API: each takes the decoded request and the broker context and returns the
//! response message. Handlers hold no connection state and do no socket I/O.

pub mod api_versions;
pub mod cluster;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

/// Per-partition answers, in request order, gathered into one entry per topic as responses
/// nest them (consecutive answers for the same topic share an entry).
pub(crate) fn by_topic<P, T>(
    answers: impl IntoIterator<Item = (String, P)>,
    topic: impl Fn(String, Vec<P>) -> T,
) -> Vec<T> {
    let mut grouped: Vec<(String, Vec<P>)> = Vec::new();
    for (name, partition) in answers {
        match grouped.last_mut() {
            Some((last, partitions)) if *last == name => partitions.push(partition),
            _ => grouped.push((name, vec![partition])),
        }
    }
    grouped
        .into_iter()
        .map(|(name, partitions)| topic(name, partitions))
        .collect()
}
