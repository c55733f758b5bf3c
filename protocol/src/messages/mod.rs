//! Request and response messages of every API Sluice implements, one module per API.
//! Field names follow the Kafka message specs in snake_case so they can be checked against them.

mod alter_partition;
mod api_versions;
mod broker_heartbeat;
mod broker_registration;
mod common;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;

pub use alter_partition::*;
pub use api_versions::*;
pub use broker_heartbeat::*;
pub use broker_registration::*;
pub use common::*;
pub use create_partitions::*;
pub use create_topics::*;
pub use delete_groups::*;
pub use delete_topics::*;
pub use describe_cluster::*;
pub use describe_configs::*;
pub use describe_groups::*;
pub use fetch::*;
pub use find_coordinator::*;
pub use heartbeat::*;
pub use incremental_alter_configs::*;
pub use init_producer_id::*;
pub use join_group::*;
pub use leave_group::*;
pub use list_groups::*;
pub use list_offsets::*;
pub use metadata::*;
pub use offset_commit::*;
pub use offset_delete::*;
pub use offset_fetch::*;
pub use offset_for_leader_epoch::*;
pub use produce::*;
pub use sync_group::*;

/// Round-trip checks shared by every message: for each supported version, a random value encodes,
/// decodes without leftovers, and encodes again to the same bytes. Fields outside a version are
/// dropped by the first encode, so the comparison is on bytes, not values.
#[cfg(test)]
pub(crate) fn check_round_trip<T>()
where
    T: crate::api::ApiMessage + crate::sample::Sample + std::fmt::Debug,
{
    use bytes::BytesMut;
    for version in T::MIN_VERSION..=T::MAX_VERSION {
        for seed in 0..300u64 {
            let mut rng = crate::sample::Rng::new(seed << 16 | version as u64);
            let value = T::sample(&mut rng);
            let mut first = BytesMut::new();
            value.encode_body(&mut first, version);
            let decoded = T::decode_body(first.clone().freeze(), version)
                .unwrap_or_else(|e| panic!("{} v{version} seed {seed}: {e}\n{value:?}", T::NAME));
            let mut second = BytesMut::new();
            decoded.encode_body(&mut second, version);
            assert_eq!(first, second, "{} v{version} seed {seed}", T::NAME);
        }
    }
}

#[cfg(test)]
mod golden_tests;

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! round_trips {
        ($($name:ident: $req:ty, $resp:ty;)*) => {$(
            #[test]
            fn $name() {
                check_round_trip::<$req>();
                check_round_trip::<$resp>();
            }
        )*};
    }

    round_trips! {
        api_versions_round_trip: ApiVersionsRequest, ApiVersionsResponse;
        produce_round_trip: ProduceRequest, ProduceResponse;
        fetch_round_trip: FetchRequest, FetchResponse;
        list_offsets_round_trip: ListOffsetsRequest, ListOffsetsResponse;
        metadata_round_trip: MetadataRequest, MetadataResponse;
        create_topics_round_trip: CreateTopicsRequest, CreateTopicsResponse;
        delete_topics_round_trip: DeleteTopicsRequest, DeleteTopicsResponse;
        describe_configs_round_trip: DescribeConfigsRequest, DescribeConfigsResponse;
        init_producer_id_round_trip: InitProducerIdRequest, InitProducerIdResponse;
        find_coordinator_round_trip: FindCoordinatorRequest, FindCoordinatorResponse;
        join_group_round_trip: JoinGroupRequest, JoinGroupResponse;
        sync_group_round_trip: SyncGroupRequest, SyncGroupResponse;
        heartbeat_round_trip: HeartbeatRequest, HeartbeatResponse;
        leave_group_round_trip: LeaveGroupRequest, LeaveGroupResponse;
        offset_commit_round_trip: OffsetCommitRequest, OffsetCommitResponse;
        offset_fetch_round_trip: OffsetFetchRequest, OffsetFetchResponse;
        list_groups_round_trip: ListGroupsRequest, ListGroupsResponse;
        describe_groups_round_trip: DescribeGroupsRequest, DescribeGroupsResponse;
        delete_groups_round_trip: DeleteGroupsRequest, DeleteGroupsResponse;
        offset_delete_round_trip: OffsetDeleteRequest, OffsetDeleteResponse;
        incremental_alter_configs_round_trip:
            IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse;
        create_partitions_round_trip: CreatePartitionsRequest, CreatePartitionsResponse;
        describe_cluster_round_trip: DescribeClusterRequest, DescribeClusterResponse;
        offset_for_leader_epoch_round_trip:
            OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse;
        alter_partition_round_trip: AlterPartitionRequest, AlterPartitionResponse;
        broker_registration_round_trip: BrokerRegistrationRequest, BrokerRegistrationResponse;
        broker_heartbeat_round_trip: BrokerHeartbeatRequest, BrokerHeartbeatResponse;
    }

    #[test]
    fn api_versions_v3_request_golden() {
        // ApiVersions v3 body as librdkafka sends it: compact strings "librdkafka", "2.0.2",
        // then an empty tagged-field section.
        let body = bytes::Bytes::from_static(b"\x0blibrdkafka\x062.0.2\x00");
        let req = <ApiVersionsRequest as crate::api::ApiMessage>::decode_body(body, 3).unwrap();
        assert_eq!(req.client_software_name, "librdkafka");
        assert_eq!(req.client_software_version, "2.0.2");
    }
}
