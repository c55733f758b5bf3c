//! Sluice's Kafka wire protocol codec, sans-IO: bytes in, values out, and back.
//! Frames, request/response headers, the messages of every supported API, record batches, the
//! consumer group's embedded subscription/assignment format, and the group coordinator's
//! `__consumer_offsets` records.

pub mod api;
pub mod error;
pub mod error_code;
pub mod frame;
pub mod header;
#[macro_use]
mod macros;
pub mod consumer_protocol;
pub mod group_records;
pub mod messages;
pub mod records;
#[cfg(test)]
pub mod sample;
pub mod wire;

pub use error::{ProtocolError, Result};
pub use error_code::ErrorCode;
