//! DescribeCluster (key 60): the cluster id, the controller and the brokers, which the Java
//! AdminClient's `describeCluster` asks for instead of Metadata; v1 lets the client say whether
//! it wants the brokers or the controllers described.

wire_struct! {
    pub struct DescribeClusterRequest {
        include_cluster_authorized_operations: bool => 0..;
        /// 1 = brokers, 2 = controllers; v0 can only mean brokers.
        endpoint_type: i8 => 1.., default 1;
    }
}

wire_struct! {
    pub struct DescribeClusterResponse {
        throttle_time_ms: i32 => 0..;
        error_code: i16 => 0..;
        error_message: Option<String> => 0..;
        endpoint_type: i8 => 1.., default 1;
        cluster_id: String => 0..;
        controller_id: i32 => 0.., default -1;
        brokers: Vec<DescribeClusterBroker> => 0..;
        /// i32::MIN when not asked for, as the spec's default says.
        cluster_authorized_operations: i32 => 0.., default i32::MIN;
    }
}

wire_struct! {
    pub struct DescribeClusterBroker {
        broker_id: i32 => 0..;
        host: String => 0..;
        port: i32 => 0..;
        rack: Option<String> => 0..;
    }
}

crate::api!(
    60,
    "DescribeCluster",
    0..=1,
    flexible 0,
    DescribeClusterRequest,
    DescribeClusterResponse
);
