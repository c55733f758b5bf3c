//! ApiVersions: advertises exactly the APIs and versions in the codec's `SUPPORTED` table.
//! The table is the single source of truth, so nothing is offered that is not implemented.

use std::sync::Arc;

use sluice_protocol::api::SUPPORTED;
use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::{ApiVersion, ApiVersionsRequest, ApiVersionsResponse};

use crate::server::Context;

pub fn supported() -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: 0,
        api_keys: SUPPORTED
            .iter()
            .map(|s| ApiVersion {
                api_key: s.api_key,
                min_version: s.min,
                max_version: s.max,
            })
            .collect(),
        throttle_time_ms: 0,
    }
}

pub async fn handle(
    _ctx: &Arc<Context>,
    _header: &RequestHeader,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    supported()
}
