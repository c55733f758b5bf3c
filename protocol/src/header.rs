//! Request headers (v0-v2) and response headers (v0-v1).
//! The header version follows from the API key and version; see `api::request_header_version`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::wire::{self, Ctx, Wire};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

const CLASSIC: Ctx = Ctx {
    version: 0,
    flexible: false,
};

impl RequestHeader {
    /// Reads the fixed part (api key, version, correlation id), which every header version shares,
    /// so the caller can pick the header version before reading the rest.
    pub fn peek(frame: &Bytes) -> Result<(i16, i16, i32)> {
        let mut b = frame.slice(..frame.len().min(8));
        Ok((
            i16::decode(&mut b, CLASSIC)?,
            i16::decode(&mut b, CLASSIC)?,
            i32::decode(&mut b, CLASSIC)?,
        ))
    }

    /// Decodes a header of the given version. The client id stays a classic nullable string even
    /// in v2; only the trailing tagged fields are new.
    pub fn decode(buf: &mut Bytes, header_version: i16) -> Result<RequestHeader> {
        let api_key = i16::decode(buf, CLASSIC)?;
        let api_version = i16::decode(buf, CLASSIC)?;
        let correlation_id = i32::decode(buf, CLASSIC)?;
        let client_id = if header_version >= 1 {
            <Option<String>>::decode(buf, CLASSIC)?
        } else {
            None
        };
        if header_version >= 2 {
            wire::skip_tagged_fields(buf)?;
        }
        Ok(RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        })
    }

    pub fn encode(&self, buf: &mut BytesMut, header_version: i16) {
        buf.put_i16(self.api_key);
        buf.put_i16(self.api_version);
        buf.put_i32(self.correlation_id);
        if header_version >= 1 {
            self.client_id.encode(buf, CLASSIC);
        }
        if header_version >= 2 {
            wire::put_tagged_fields(buf, &[]);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    pub correlation_id: i32,
}

impl ResponseHeader {
    pub fn encode(&self, buf: &mut BytesMut, header_version: i16) {
        buf.put_i32(self.correlation_id);
        if header_version >= 1 {
            wire::put_tagged_fields(buf, &[]);
        }
    }

    pub fn decode(buf: &mut Bytes, header_version: i16) -> Result<ResponseHeader> {
        let correlation_id = i32::decode(buf, CLASSIC)?;
        if header_version >= 1 {
            wire::skip_tagged_fields(buf)?;
        }
        Ok(ResponseHeader { correlation_id })
    }
}
