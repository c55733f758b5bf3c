//! Kafka Connect runtime foundation: the Connect data model, converters and connector API.
//! Owns everything a connector and the worker share; the worker and the connectors build on it.

pub mod connector;
pub mod converter;
pub mod data;
pub mod error;

pub use error::{ConnectError, Result};
