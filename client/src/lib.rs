//! sluice-client: a Kafka client (producer, consumer with groups, admin) on the Sluice codec.
//! It speaks only the Kafka protocol, so it runs against Sluice, Apache Kafka or Redpanda.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod producer;

pub use admin::Admin;
pub use cluster::Cluster;
pub use config::ClientConfig;
pub use consumer::{Consumer, ConsumerRecord, TopicPartition};
pub use error::{ClientError, Result};
pub use producer::{DeliveryFuture, Producer, ProducerRecord, RecordMetadata};
