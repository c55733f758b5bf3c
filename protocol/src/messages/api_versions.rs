//! ApiVersions (key 18): the first request of every client, answered from `api::SUPPORTED`.
//! Its response header is always v0, and an unsupported request version is answered in v0.

wire_struct! {
    pub struct ApiVersionsRequest {
        client_software_name: String => 3..;
        client_software_version: String => 3..;
    }
}

wire_struct! {
    pub struct ApiVersionsResponse {
        error_code: i16 => 0..;
        api_keys: Vec<ApiVersion> => 0..;
        throttle_time_ms: i32 => 1..;
    }
}

wire_struct! {
    pub struct ApiVersion {
        api_key: i16 => 0..;
        min_version: i16 => 0..;
        max_version: i16 => 0..;
    }
}

crate::api!(18, "ApiVersions", 0..=3, flexible 3, ApiVersionsRequest, ApiVersionsResponse);
