//! Connectors bundled with Sluice, starting with Kafka's file connectors.
//! `register` puts them in a `ConnectorRegistry` under Kafka's class names for the worker.

mod config;
pub mod sink;
pub mod source;

pub use sink::{FileStreamSinkConnector, FileStreamSinkTask};
pub use source::{FileStreamSourceConnector, FileStreamSourceTask};

use sluice_connect::connector::ConnectorRegistry;

/// Kafka's class name for the file source, which configs name in `connector.class`.
pub const FILE_STREAM_SOURCE_CLASS: &str =
    "org.apache.kafka.connect.file.FileStreamSourceConnector";
/// Kafka's class name for the file sink.
pub const FILE_STREAM_SINK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

/// The version every connector and task here reports: this crate's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Registers every connector of this crate. The registry derives the short aliases
/// (`FileStreamSource`, `FileStreamSinkConnector`...) from the full class names.
pub fn register(registry: &mut ConnectorRegistry) {
    registry.register_source(FILE_STREAM_SOURCE_CLASS, || {
        Box::new(FileStreamSourceConnector::default())
    });
    registry.register_sink(FILE_STREAM_SINK_CLASS, || {
        Box::new(FileStreamSinkConnector::default())
    });
}
