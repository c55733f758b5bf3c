//! Sluice Streams: stream processing over the Kafka protocol, in the manner of Kafka Streams.
//! Apps read topics, transform and aggregate records by key, and write results to topics.
//!
//! # Parts
//!
//! - [`StreamsBuilder`] and the DSL ([`KStream`], [`KGroupedStream`], [`KTable`]): typed
//!   operations with plain Rust closures, checked at compile time. [`StreamsBuilder::build`]
//!   makes a [`Topology`].
//! - Windows ([`window`]): [`KGroupedStream::windowed_by`] with [`TimeWindows`] (tumbling,
//!   hopping) and [`KGroupedStream::session_windowed_by`] with [`SessionWindows`] aggregate
//!   into `KTable<Windowed<K>, _>`; stream time minus grace closes windows. Joins:
//!   [`KStream::join`]/[`KStream::left_join`] with a table, [`KTable::join`]/[`KTable::left_join`];
//!   their topics must be co-partitioned ([`Topology::copartition_groups`]).
//! - [`Topology`]: a graph of type-erased processor nodes split into sub-topologies, parts
//!   joined only through topics (a repartition topic wherever the key changes before a
//!   grouping). Records move between nodes of a sub-topology as typed values; serdes
//!   ([`serdes`]) apply only at sources, sinks and stores. The graph does no I/O.
//! - [`Task`]: one sub-topology instantiated for one input partition, with its own processors
//!   and stores ([`state`]). Raw records go in; the records to produce come out: sink
//!   records, repartition records, and one changelog record for every store write, to the
//!   store's `<application.id>-<store>-changelog` topic, from which a store is restored.
//!   Stores are in memory, or on disk ([`Materialized::as_persistent_store`]) with a
//!   checkpoint of the changelog offset they hold, so only the tail is restored. Key-value
//!   and window stores of aggregations and tables have a record cache
//!   (`statestore.cache.max.bytes`): the latest write per key (and window) waits there until
//!   the next commit (or until the task's share of the budget is full), then goes to the
//!   store, the changelog and downstream once, in the order the keys were last written.
//! - [`TopologyTestDriver`]: runs a topology in memory, without a broker, for unit tests.
//! - [`KafkaStreams`] ([`runtime`]): runs a topology against a cluster with sluice-client's
//!   consumer, producer and admin. [`StreamsConfig`] takes Kafka Streams' settings.
//!
//! # Running
//!
//! `start` checks that the source topics exist and creates the internal topics: changelogs
//! compacted, with the partition count of their store's sub-topology; repartition topics
//! with the count of the sub-topology writing them. A sub-topology reading several topics
//! needs them co-partitioned (one partition count), or `start` fails naming them. Each of
//! `num.stream.threads` threads is a member of consumer group `application.id`, subscribed to
//! every source topic, and runs task `<sub-topology>_<p>` for each partition `p` it is
//! assigned. A new task first restores its stores from their changelog partitions (from the
//! start, or a persistent store's checkpoint, to the end) with a separate consumer, between
//! polls of the group consumer (so a long restore keeps the thread in its group); it
//! processes nothing until then. Polled
//! records wait in their task's queues, one per input partition; a task takes the one with
//! the lowest timestamp among the queues' heads (so a join sees table updates and stream
//! records in time order), and waits while a partition's queue is empty but the broker has
//! records for it (`max.task.idle.ms`). What the task emits (sink, repartition and changelog
//! records) is handed to the producer.
//!
//! # Processing guarantee: at-least-once
//!
//! Every `commit.interval.ms` (default 30 s), and before partitions are revoked in a
//! rebalance or on `close`, a thread flushes its tasks' record caches and stores, waits until
//! every record its tasks produced has been acknowledged (`acks=all` by default), and only
//! then commits the offsets of the input records processed, each with its partition's time
//! (so stream time, and the windows it has closed, survive a restart or a move). So nothing is lost: an input offset is committed
//! only once everything it caused is in the cluster.
//!
//! What can repeat: after a crash (`kill -9`, power loss, a thread error, a member expelled
//! from the group because its session expired), the input records the failed member
//! processed since its last commit are processed again by the partition's next owner. Their
//! sink and repartition outputs can appear twice, and their changelog writes can repeat: the
//! next owner restores the store from a changelog that may already hold their effect and
//! applies them again, so an aggregate (a count) can be over by exactly those records (a
//! repartitioned record both re-emitted upstream and re-counted downstream can add two). A
//! clean `close` and an orderly rebalance between live members repeat nothing. Exactly-once
//! needs transactions and is not offered (`processing.guarantee=exactly_once_v2` is refused).
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
pub mod window;

pub use dsl::{
    Change, Consumed, Grouped, KGroupedStream, KStream, KTable, Materialized, Produced,
    Repartitioned, SessionWindowedKStream, Splitter, StreamsBuilder, TimeWindowedKStream,
};
pub use error::StreamsError;
pub use record::{InputRecord, OutputKind, OutputRecord, Record, TimestampExtractor};
pub use runtime::{CloseHandle, KafkaStreams, State, StreamsConfig};
pub use task::{DeserializationErrorPolicy, Task, TaskConfig};
pub use test_driver::{
    TestInputTopic, TestOutputTopic, TestRecord, TestWindowStore, TopologyTestDriver,
};
pub use topology::{InternalTopic, InternalTopicKind, TaskId, Topology};
pub use window::{
    SessionWindowedSerde, SessionWindows, TimeWindowedSerde, TimeWindows, Window, Windowed,
};
