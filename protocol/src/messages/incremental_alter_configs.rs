//! IncrementalAlterConfigs (key 44): set, delete, append to or subtract from single config keys
//! of topics and brokers, leaving the others as they are (unlike the older AlterConfigs).

wire_struct! {
    pub struct IncrementalAlterConfigsRequest {
        resources: Vec<AlterConfigsResource> => 0..;
        validate_only: bool => 0..;
    }
}

wire_struct! {
    pub struct AlterConfigsResource {
        /// 2 = topic, 4 = broker, 8 = broker logger.
        resource_type: i8 => 0..;
        resource_name: String => 0..;
        configs: Vec<AlterableConfig> => 0..;
    }
}

wire_struct! {
    pub struct AlterableConfig {
        name: String => 0..;
        /// 0 = set, 1 = delete, 2 = append, 3 = subtract.
        config_operation: i8 => 0..;
        value: Option<String> => 0..;
    }
}

wire_struct! {
    pub struct IncrementalAlterConfigsResponse {
        throttle_time_ms: i32 => 0..;
        responses: Vec<AlterConfigsResourceResponse> => 0..;
    }
}

wire_struct! {
    pub struct AlterConfigsResourceResponse {
        error_code: i16 => 0..;
        error_message: Option<String> => 0..;
        resource_type: i8 => 0..;
        resource_name: String => 0..;
    }
}

crate::api!(
    44,
    "IncrementalAlterConfigs",
    0..=1,
    flexible 1,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse
);
