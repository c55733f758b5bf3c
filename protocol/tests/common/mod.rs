//! Shared by the protocol's integration tests: decode a request body of any API the codec knows,
//! by key.

use bytes::{Bytes, BytesMut};
use sluice_protocol::api::ApiMessage;
use sluice_protocol::messages::*;
use sluice_protocol::ProtocolError;

/// Decodes a request body of `api_key` at `version` and encodes it again; `None` for an API
/// with no request type here.
pub fn reencode_request(
    api_key: i16,
    version: i16,
    body: Bytes,
) -> Option<Result<BytesMut, ProtocolError>> {
    fn round<T: ApiMessage>(body: Bytes, version: i16) -> Result<BytesMut, ProtocolError> {
        let msg = T::decode_body(body, version)?;
        let mut out = BytesMut::new();
        msg.encode_body(&mut out, version);
        Ok(out)
    }
    Some(match api_key {
        0 => round::<ProduceRequest>(body, version),
        1 => round::<FetchRequest>(body, version),
        2 => round::<ListOffsetsRequest>(body, version),
        3 => round::<MetadataRequest>(body, version),
        8 => round::<OffsetCommitRequest>(body, version),
        9 => round::<OffsetFetchRequest>(body, version),
        10 => round::<FindCoordinatorRequest>(body, version),
        11 => round::<JoinGroupRequest>(body, version),
        12 => round::<HeartbeatRequest>(body, version),
        13 => round::<LeaveGroupRequest>(body, version),
        14 => round::<SyncGroupRequest>(body, version),
        15 => round::<DescribeGroupsRequest>(body, version),
        16 => round::<ListGroupsRequest>(body, version),
        18 => round::<ApiVersionsRequest>(body, version),
        19 => round::<CreateTopicsRequest>(body, version),
        20 => round::<DeleteTopicsRequest>(body, version),
        22 => round::<InitProducerIdRequest>(body, version),
        23 => round::<OffsetForLeaderEpochRequest>(body, version),
        32 => round::<DescribeConfigsRequest>(body, version),
        37 => round::<CreatePartitionsRequest>(body, version),
        42 => round::<DeleteGroupsRequest>(body, version),
        44 => round::<IncrementalAlterConfigsRequest>(body, version),
        47 => round::<OffsetDeleteRequest>(body, version),
        56 => round::<AlterPartitionRequest>(body, version),
        60 => round::<DescribeClusterRequest>(body, version),
        62 => round::<BrokerRegistrationRequest>(body, version),
        63 => round::<BrokerHeartbeatRequest>(body, version),
        _ => return None,
    })
}
