//! Metadata (key 3): the brokers of the cluster and the partitions and leaders of topics.
//! A null topic list (an empty one in v0) asks for every topic.

use crate::wire::Uuid;

wire_struct! {
    pub struct MetadataRequest {
        topics: Option<Vec<MetadataRequestTopic>> => 0..;
        allow_auto_topic_creation: bool => 4.., default true;
        include_cluster_authorized_operations: bool => 8..10;
        include_topic_authorized_operations: bool => 8..;
    }
}

wire_struct! {
    pub struct MetadataRequestTopic {
        topic_id: Uuid => 10..;
        name: Option<String> => 0..;
    }
}

wire_struct! {
    pub struct MetadataResponse {
        throttle_time_ms: i32 => 3..;
        brokers: Vec<MetadataResponseBroker> => 0..;
        cluster_id: Option<String> => 2..;
        controller_id: i32 => 1.., default -1;
        topics: Vec<MetadataResponseTopic> => 0..;
        cluster_authorized_operations: i32 => 8..10, default i32::MIN;
    }
}

wire_struct! {
    pub struct MetadataResponseBroker {
        node_id: i32 => 0..;
        host: String => 0..;
        port: i32 => 0..;
        rack: Option<String> => 1..;
    }
}

wire_struct! {
    pub struct MetadataResponseTopic {
        error_code: i16 => 0..;
        name: Option<String> => 0..;
        topic_id: Uuid => 10..;
        is_internal: bool => 1..;
        partitions: Vec<MetadataResponsePartition> => 0..;
        topic_authorized_operations: i32 => 8.., default i32::MIN;
    }
}

wire_struct! {
    pub struct MetadataResponsePartition {
        error_code: i16 => 0..;
        partition_index: i32 => 0..;
        leader_id: i32 => 0..;
        leader_epoch: i32 => 7.., default -1;
        replica_nodes: Vec<i32> => 0..;
        isr_nodes: Vec<i32> => 0..;
        offline_replicas: Vec<i32> => 5..;
    }
}

crate::api!(3, "Metadata", 0..=12, flexible 9, MetadataRequest, MetadataResponse);
