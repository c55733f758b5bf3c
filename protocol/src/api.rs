//! The tables of APIs Sluice implements and the traits that tie a request to its response.
//! `ApiVersions` answers from `SUPPORTED`, so what is advertised is exactly what the broker serves.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ProtocolError, Result};
use crate::header::{RequestHeader, ResponseHeader};
use crate::messages::*;
use crate::wire::{Ctx, Wire};

/// A message type of one API, with the version range Sluice implements.
pub trait ApiMessage: Wire {
    const API_KEY: i16;
    const NAME: &'static str;
    const MIN_VERSION: i16;
    const MAX_VERSION: i16;
    /// `i16::MAX` for an API with no flexible version.
    const FIRST_FLEXIBLE: i16;

    fn ctx(version: i16) -> Ctx {
        Ctx::new(version, version >= Self::FIRST_FLEXIBLE)
    }

    fn supports(version: i16) -> bool {
        (Self::MIN_VERSION..=Self::MAX_VERSION).contains(&version)
    }

    /// Decodes a whole body: bytes left over mean the client and we disagree on the layout.
    fn decode_body(mut body: Bytes, version: i16) -> Result<Self> {
        let msg = Self::decode(&mut body, Self::ctx(version))?;
        if !body.is_empty() {
            return Err(ProtocolError::TrailingBytes(body.len()));
        }
        Ok(msg)
    }

    fn encode_body(&self, buf: &mut BytesMut, version: i16) {
        self.encode(buf, Self::ctx(version))
    }
}

/// A request message, and the response message that answers it.
pub trait Request: ApiMessage {
    type Response: ApiMessage;
}

/// One row of ApiVersions: an API key and the versions offered.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub api_key: i16,
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    /// Versions below this are advertised but answered with UNSUPPORTED_VERSION; see Produce.
    pub accept_from: i16,
    pub first_flexible: i16,
}

macro_rules! support {
    ($t:ty) => {
        support!($t, <$t as ApiMessage>::MIN_VERSION)
    };
    ($t:ty, $accept:expr) => {
        ApiSupport {
            api_key: <$t as ApiMessage>::API_KEY,
            name: <$t as ApiMessage>::NAME,
            min: <$t as ApiMessage>::MIN_VERSION,
            max: <$t as ApiMessage>::MAX_VERSION,
            accept_from: $accept,
            first_flexible: <$t as ApiMessage>::FIRST_FLEXIBLE,
        }
    };
}

/// Every API the broker answers. Produce advertises from v0 because librdkafka before 2.11.1
/// only enables compression when the broker's Produce range includes 0, yet the record batch
/// format needs v3: v0-v2 requests are answered with UNSUPPORTED_VERSION.
pub const SUPPORTED: &[ApiSupport] = &[
    support!(ProduceRequest, 3),
    support!(FetchRequest),
    support!(ListOffsetsRequest),
    support!(MetadataRequest),
    support!(ApiVersionsRequest),
    support!(CreateTopicsRequest),
    support!(DeleteTopicsRequest),
    support!(InitProducerIdRequest),
    support!(DescribeConfigsRequest),
    support!(OffsetCommitRequest),
    support!(OffsetFetchRequest),
    support!(FindCoordinatorRequest),
    support!(JoinGroupRequest),
    support!(HeartbeatRequest),
    support!(LeaveGroupRequest),
    support!(SyncGroupRequest),
    support!(DescribeGroupsRequest),
    support!(ListGroupsRequest),
    support!(DeleteGroupsRequest),
    support!(IncrementalAlterConfigsRequest),
    support!(OffsetDeleteRequest),
    support!(CreatePartitionsRequest),
    support!(DescribeClusterRequest),
    support!(OffsetForLeaderEpochRequest),
];

/// APIs the codec implements but the broker's listener does not serve: brokers send them to the
/// controller quorum. Kept apart from `SUPPORTED` so that ApiVersions never offers clients an API
/// nobody here answers, while headers of these APIs are still framed right.
pub const CONTROLLER_APIS: &[ApiSupport] = &[
    support!(AlterPartitionRequest),
    support!(BrokerRegistrationRequest),
    support!(BrokerHeartbeatRequest),
];

/// The broker's row for an API: `None` for an API the broker does not serve.
pub fn support_for(api_key: i16) -> Option<&'static ApiSupport> {
    SUPPORTED.iter().find(|s| s.api_key == api_key)
}

/// Every API the codec can encode and decode, served by the broker or not.
pub fn known() -> impl Iterator<Item = &'static ApiSupport> {
    SUPPORTED.iter().chain(CONTROLLER_APIS)
}

/// The codec's row for an API, whoever serves it.
pub fn known_for(api_key: i16) -> Option<&'static ApiSupport> {
    known().find(|s| s.api_key == api_key)
}

/// Request header version for an API version: v2 in flexible versions, v1 otherwise.
pub fn request_header_version(api_key: i16, api_version: i16) -> i16 {
    match known_for(api_key) {
        Some(s) if api_version >= s.first_flexible => 2,
        _ => 1,
    }
}

/// Response header version: v1 in flexible versions, except ApiVersions, which is always v0 so a
/// client that does not yet know our versions can read it.
pub fn response_header_version(api_key: i16, api_version: i16) -> i16 {
    if api_key == ApiVersionsRequest::API_KEY {
        return 0;
    }
    match known_for(api_key) {
        Some(s) if api_version >= s.first_flexible => 1,
        _ => 0,
    }
}

/// Encodes a whole response frame: size prefix, header and body.
pub fn encode_response_frame<R: ApiMessage>(correlation_id: i32, version: i16, body: &R) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let header = ResponseHeader { correlation_id };
    header.encode(&mut buf, response_header_version(R::API_KEY, version));
    body.encode_body(&mut buf, version);
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

/// Encodes a whole request frame (used by clients and tests).
pub fn encode_request_frame<R: Request>(
    correlation_id: i32,
    version: i16,
    client_id: Option<&str>,
    body: &R,
) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let header = RequestHeader {
        api_key: R::API_KEY,
        api_version: version,
        correlation_id,
        client_id: client_id.map(str::to_owned),
    };
    header.encode(&mut buf, request_header_version(R::API_KEY, version));
    body.encode_body(&mut buf, version);
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_apis_are_known_but_not_served() {
        for s in CONTROLLER_APIS {
            assert!(
                support_for(s.api_key).is_none(),
                "{} is in both tables",
                s.name
            );
            assert_eq!(known_for(s.api_key).map(|k| k.name), Some(s.name));
        }
        for key in [56, 62, 63] {
            assert!(known_for(key).is_some_and(|s| s.first_flexible == 0));
        }
        let served = support_for(23).expect("the broker answers OffsetForLeaderEpoch");
        assert_eq!((served.min, served.max, served.first_flexible), (0, 4, 4));
        assert_eq!(known().count(), SUPPORTED.len() + CONTROLLER_APIS.len());
    }

    #[test]
    fn header_versions_follow_each_apis_flexible_versions() {
        assert_eq!(request_header_version(23, 3), 1);
        assert_eq!(request_header_version(23, 4), 2);
        assert_eq!(response_header_version(23, 4), 1);
        // Known only to the codec, yet framed with flexible headers as the spec says.
        assert_eq!(request_header_version(63, 0), 2);
        assert_eq!(response_header_version(62, 0), 1);
        // An API nobody here implements falls back to the classic header.
        assert_eq!(request_header_version(999, 0), 1);
    }
}
