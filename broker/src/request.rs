//! Turns one request frame into at most one response frame: reads the header, checks the API
//! and version against what we advertise, decodes the body and routes it to its handler.
//! A frame we cannot read is an error, and the connection that sent it is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sluice_protocol::api::{
    encode_response_frame, request_header_version, support_for, ApiMessage,
};
use sluice_protocol::header::RequestHeader;
use sluice_protocol::messages::*;
use sluice_protocol::{ErrorCode, ProtocolError};

use crate::handlers;
use crate::server::Context;

/// Handles one frame. `Ok(None)` means no response is due (Produce with acks=0).
/// `peer` is the client's address, which group members report as their host.
pub async fn handle_frame(
    ctx: &Arc<Context>,
    peer: Option<SocketAddr>,
    frame: Bytes,
) -> Result<Option<Bytes>, ProtocolError> {
    let (api_key, version, correlation_id) = RequestHeader::peek(&frame)?;
    let support = support_for(api_key).ok_or(ProtocolError::UnknownApiKey(api_key))?;
    if !(support.min..=support.max).contains(&version) {
        if api_key == ApiVersionsRequest::API_KEY {
            // A client newer than us: answer in v0 so it can read the ranges and retry lower.
            return Ok(Some(api_versions_unsupported(correlation_id)));
        }
        return Err(ProtocolError::UnsupportedVersion { api_key, version });
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, request_header_version(api_key, version))?;

    macro_rules! route {
        ($req:ty, $handler:path) => {{
            let request = <$req>::decode_body(body, version)?;
            let response = $handler(ctx, &header, request).await;
            Ok(Some(encode_response_frame(
                correlation_id,
                version,
                &response,
            )))
        }};
    }

    match api_key {
        ProduceRequest::API_KEY => {
            let request = ProduceRequest::decode_body(body, version)?;
            let acks = request.acks;
            let response = handlers::produce::handle(ctx, &header, request).await;
            if acks == 0 {
                return Ok(None);
            }
            Ok(Some(encode_response_frame(
                correlation_id,
                version,
                &response,
            )))
        }
        FetchRequest::API_KEY => route!(FetchRequest, handlers::fetch::handle),
        ListOffsetsRequest::API_KEY => route!(ListOffsetsRequest, handlers::list_offsets::handle),
        MetadataRequest::API_KEY => route!(MetadataRequest, handlers::metadata::handle),
        ApiVersionsRequest::API_KEY => route!(ApiVersionsRequest, handlers::api_versions::handle),
        CreateTopicsRequest::API_KEY => {
            route!(CreateTopicsRequest, handlers::create_topics::handle)
        }
        DeleteTopicsRequest::API_KEY => {
            route!(DeleteTopicsRequest, handlers::delete_topics::handle)
        }
        CreatePartitionsRequest::API_KEY => {
            route!(CreatePartitionsRequest, handlers::create_partitions::handle)
        }
        InitProducerIdRequest::API_KEY => {
            route!(InitProducerIdRequest, handlers::init_producer_id::handle)
        }
        DescribeConfigsRequest::API_KEY => {
            route!(DescribeConfigsRequest, handlers::describe_configs::handle)
        }
        DescribeClusterRequest::API_KEY => {
            route!(DescribeClusterRequest, handlers::describe_cluster::handle)
        }
        IncrementalAlterConfigsRequest::API_KEY => route!(
            IncrementalAlterConfigsRequest,
            handlers::incremental_alter_configs::handle
        ),
        FindCoordinatorRequest::API_KEY => {
            route!(FindCoordinatorRequest, handlers::find_coordinator::handle)
        }
        JoinGroupRequest::API_KEY => {
            let request = JoinGroupRequest::decode_body(body, version)?;
            let response = handlers::join_group::handle(ctx, &header, peer, request).await;
            Ok(Some(encode_response_frame(
                correlation_id,
                version,
                &response,
            )))
        }
        SyncGroupRequest::API_KEY => route!(SyncGroupRequest, handlers::sync_group::handle),
        HeartbeatRequest::API_KEY => route!(HeartbeatRequest, handlers::heartbeat::handle),
        LeaveGroupRequest::API_KEY => route!(LeaveGroupRequest, handlers::leave_group::handle),
        OffsetCommitRequest::API_KEY => {
            route!(OffsetCommitRequest, handlers::offset_commit::handle)
        }
        OffsetFetchRequest::API_KEY => route!(OffsetFetchRequest, handlers::offset_fetch::handle),
        ListGroupsRequest::API_KEY => route!(ListGroupsRequest, handlers::list_groups::handle),
        DescribeGroupsRequest::API_KEY => {
            route!(DescribeGroupsRequest, handlers::describe_groups::handle)
        }
        DeleteGroupsRequest::API_KEY => {
            route!(DeleteGroupsRequest, handlers::delete_groups::handle)
        }
        OffsetDeleteRequest::API_KEY => {
            route!(OffsetDeleteRequest, handlers::offset_delete::handle)
        }
        OffsetForLeaderEpochRequest::API_KEY => route!(
            OffsetForLeaderEpochRequest,
            handlers::offset_for_leader_epoch::handle
        ),
        other => Err(ProtocolError::UnknownApiKey(other)),
    }
}

/// ApiVersions v0 with UNSUPPORTED_VERSION and our ranges, for a version we do not speak.
fn api_versions_unsupported(correlation_id: i32) -> Bytes {
    let mut response = handlers::api_versions::supported();
    response.error_code = ErrorCode::UnsupportedVersion.code();
    encode_response_frame(correlation_id, 0, &response)
}
