//! The codec's error type.
//! Every failure to decode is a value, never a panic; the broker maps these to a Kafka error code
//! or to closing the connection.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("truncated input: needed {needed} bytes, {remaining} remain")]
    Truncated { needed: usize, remaining: usize },
    #[error("invalid length {0}")]
    InvalidLength(i64),
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    FrameTooLarge { size: i64, max: usize },
    #[error("varint is longer than its type allows")]
    VarintOverflow,
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of api key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    #[error("non-nullable field was null")]
    UnexpectedNull,
    #[error("{0} trailing bytes after the message body")]
    TrailingBytes(usize),
    #[error("unknown {kind} version {version}")]
    UnknownVersion { kind: &'static str, version: i16 },
    #[error("corrupt record batch: {0}")]
    CorruptBatch(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("unsupported compression codec {0}")]
    UnsupportedCompression(i16),
    #[error("compression error: {0}")]
    Compression(String),
}

pub type Result<T> = std::result::Result<T, ProtocolError>;
