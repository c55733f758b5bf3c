//! The worker finds both file connectors through `register`, by full and short class names.
//! Also checks each name builds the right kind of connector.

use sluice_connect::connector::{Connector, ConnectorRegistry};
use sluice_connectors::{register, FILE_STREAM_SINK_CLASS, FILE_STREAM_SOURCE_CLASS};

fn registry() -> ConnectorRegistry {
    let mut r = ConnectorRegistry::new();
    register(&mut r);
    r
}

#[test]
fn source_answers_to_kafka_names() {
    let r = registry();
    for name in [
        "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "FileStreamSourceConnector",
        "FileStreamSource",
    ] {
        assert_eq!(r.resolve(name).unwrap(), FILE_STREAM_SOURCE_CLASS);
        assert!(matches!(r.create(name).unwrap(), Connector::Source(_)));
    }
}

#[test]
fn sink_answers_to_kafka_names() {
    let r = registry();
    for name in [
        "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "FileStreamSinkConnector",
        "FileStreamSink",
    ] {
        assert_eq!(r.resolve(name).unwrap(), FILE_STREAM_SINK_CLASS);
        assert!(matches!(r.create(name).unwrap(), Connector::Sink(_)));
    }
}

#[test]
fn registers_exactly_the_two_file_connectors() {
    let r = registry();
    assert_eq!(
        r.classes().collect::<Vec<_>>(),
        [FILE_STREAM_SOURCE_CLASS, FILE_STREAM_SINK_CLASS]
    );
}
