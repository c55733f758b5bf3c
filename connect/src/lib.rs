//! Kafka Connect for Sluice: the Connect data model, converters, the connector API and the
//! standalone worker (`runtime`) that runs connectors against a Kafka cluster.

pub mod connector;
pub mod converter;
pub mod data;
pub mod error;
pub mod rest;
pub mod runtime;
pub mod transforms;

pub use error::{ConnectError, Result};
