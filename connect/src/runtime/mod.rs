//! The Connect worker in standalone mode: configuration, source offset storage, task statuses
//! and the `Worker` that runs connectors' tasks against a Kafka cluster.

pub mod config;
pub mod offset_store;
mod sink_task;
mod source_task;
pub mod status;
pub mod validation;
mod worker;

pub use config::{ConnectorConfig, ConverterSpec, ErrorTolerance, WorkerConfig};
pub use offset_store::{FileOffsetBackingStore, OffsetBackingStore};
pub use status::{ConnectorStatus, ConnectorType, State, TaskStatus};
pub use validation::{ConfigInfo, ConfigInfos};
pub use worker::{ConnectorInfo, ConnectorOffset, PluginInfo, TargetState, Worker};
