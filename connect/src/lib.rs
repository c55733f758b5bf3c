//! Kafka Connect runtime foundation.
//! Owns the data model, converters and connector API.

pub mod data;
pub mod error;

pub use error::{ConnectError, Result};
