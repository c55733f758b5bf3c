//! DescribeConfigs (key 32): the configs of topics and brokers, with where each value comes from.

wire_struct! {
    pub struct DescribeConfigsRequest {
        resources: Vec<DescribeConfigsRequestResource> => 0..;
        include_synonyms: bool => 1..;
        include_documentation: bool => 3..;
    }
}

wire_struct! {
    pub struct DescribeConfigsRequestResource {
        resource_type: i8 => 0..;
        resource_name: String => 0..;
        configuration_keys: Option<Vec<String>> => 0..;
    }
}

wire_struct! {
    pub struct DescribeConfigsResponse {
        throttle_time_ms: i32 => 0..;
        results: Vec<DescribeConfigsResponseResult> => 0..;
    }
}

wire_struct! {
    pub struct DescribeConfigsResponseResult {
        error_code: i16 => 0..;
        error_message: Option<String> => 0..;
        resource_type: i8 => 0..;
        resource_name: String => 0..;
        configs: Vec<DescribeConfigsResponseConfig> => 0..;
    }
}

wire_struct! {
    pub struct DescribeConfigsResponseConfig {
        name: String => 0..;
        value: Option<String> => 0..;
        read_only: bool => 0..;
        is_default: bool => 0..0;
        config_source: i8 => 1.., default -1;
        is_sensitive: bool => 0..;
        synonyms: Vec<DescribeConfigsResponseSynonym> => 1..;
        config_type: i8 => 3..;
        documentation: Option<String> => 3..;
    }
}

wire_struct! {
    pub struct DescribeConfigsResponseSynonym {
        name: String => 1..;
        value: Option<String> => 1..;
        source: i8 => 1..;
    }
}

crate::api!(32, "DescribeConfigs", 1..=4, flexible 4, DescribeConfigsRequest, DescribeConfigsResponse);
