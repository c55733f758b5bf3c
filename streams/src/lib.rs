//! Sluice Streams: stream processing over the Kafka protocol, in the manner of Kafka Streams.
//! Apps read topics, transform and aggregate records by key, and write results to topics.
//!
//! # Parts
//!
//! - [`StreamsBuilder`] and the DSL ([`KStream`], [`KGroupedStream`], [`KTable`]): typed
//!   operations with plain Rust closures, checked at compile time. [`StreamsBuilder::build`]
//!   makes a [`Topology`].
//! - [`Topology`]: a graph of type-erased processor nodes split into sub-topologies, parts
//!   joined only through topics (a repartition topic wherever the key changes before a
//!   grouping). Records move between nodes of a sub-topology as typed values; serdes
//!   ([`serdes`]) apply only at sources, sinks and stores. The graph does no I/O.
//! - [`Task`]: one sub-topology instantiated for one input partition, with its own processors
//!   and stores ([`state`]). Raw records go in; the records to produce come out: sink
//!   records, repartition records, and one changelog record for every store write, to the
//!   store's `<application.id>-<store>-changelog` topic, from which a store is restored.
//! - [`TopologyTestDriver`]: runs a topology in memory, without a broker, for unit tests.
//!
//! # Processing guarantee
//!
//! At-least-once, provided by the runtime (not in this crate yet), which is to commit a task's
//! input offsets only after every record the task produced for them (outputs, repartition and
//! changelog records) is acknowledged, and its stores are flushed. Nothing is lost. After a
//! crash or an unclean hand-over, the input records processed since the task's last commit are
//! processed again: their outputs can appear twice in output and repartition topics, and an
//! aggregate can count them twice, since the changelog the store is restored from may already
//! hold their effect. Exactly-once needs transactions and is not offered.
//!
//! ```
//! use sluice_streams::{Consumed, Grouped, Materialized, Produced, StreamsBuilder};
//! use sluice_streams::serdes::{LongSerde, StringSerde};
//! use sluice_streams::TopologyTestDriver;
//!
//! let builder = StreamsBuilder::new();
//! let lines = builder.stream::<Option<String>, String>(
//!     "lines",
//!     Consumed::with(StringSerde, StringSerde),
//! );
//! lines
//!     .flat_map_values(|l: String| {
//!         l.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
//!     })
//!     .group_by(|_, w: &String| w.clone(), Grouped::with(StringSerde, StringSerde))
//!     .count(Materialized::as_store("counts"))
//!     .to_stream()
//!     .to("counts-out", Produced::with(StringSerde, LongSerde));
//!
//! let driver = TopologyTestDriver::new(builder.build().unwrap(), "wordcount").unwrap();
//! let input = driver.create_input_topic("lines", StringSerde, StringSerde);
//! input.pipe_input(None::<String>, "a b a".to_string(), 0).unwrap();
//! let out = driver.create_output_topic::<String, i64>("counts-out", StringSerde, LongSerde);
//! assert_eq!(out.read_key_values_to_map().unwrap()["a"], 2);
//! ```

pub mod dsl;
pub mod error;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serdes;
pub mod state;
pub mod task;
pub mod test_driver;
pub mod topology;

pub use dsl::{
    Change, Consumed, Grouped, KGroupedStream, KStream, KTable, Materialized, Produced,
    Repartitioned, Splitter, StreamsBuilder,
};
pub use error::StreamsError;
pub use runtime::{CloseHandle, KafkaStreams, State, StreamsConfig};
pub use record::{InputRecord, OutputKind, OutputRecord, Record, TimestampExtractor};
pub use task::{DeserializationErrorPolicy, Task, TaskConfig};
pub use test_driver::{TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver};
pub use topology::{InternalTopic, InternalTopicKind, TaskId, Topology};
