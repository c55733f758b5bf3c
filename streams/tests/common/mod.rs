//! Set-up shared by the windowed-aggregation tests (`windows.rs`, `persistent.rs`): the count
//! topologies they run in memory and on disk, and piping their input.

use std::time::Duration;

use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, Materialized, Produced, SessionWindowedSerde, SessionWindows,
    StreamsBuilder, TimeWindowedSerde, TimeWindows, Topology, TopologyTestDriver,
};

pub const MIN: i64 = 60_000;

pub fn s(v: &str) -> String {
    v.to_string()
}

/// Counts "events" per key in `windows`, into the store of `m` and topic "out".
pub fn windowed_count(windows: TimeWindows, m: Materialized<String, i64>) -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("events", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::new())
        .windowed_by(windows)
        .count(m)
        .to_stream()
        .to(
            "out",
            Produced::with(
                TimeWindowedSerde::new(
                    StringSerde,
                    Duration::from_millis(windows.size_ms() as u64),
                ),
                LongSerde,
            ),
        );
    b.build().unwrap()
}

/// Counts "clicks" per user session with a 10 s inactivity gap and `grace`, into the store of
/// `m` and topic "out".
pub fn session_count(grace: Duration, m: Materialized<String, i64>) -> Topology {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("clicks", Consumed::with(StringSerde, StringSerde))
        .group_by_key(Grouped::new())
        .session_windowed_by(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(10),
            grace,
        ))
        .count(m)
        .to_stream()
        .to(
            "out",
            Produced::with(SessionWindowedSerde::new(StringSerde), LongSerde),
        );
    b.build().unwrap()
}

/// Pipes one record with value "v" per (key, timestamp) into "events".
pub fn pipe_events(d: &TopologyTestDriver, records: &[(&str, i64)]) {
    let input = d.create_input_topic("events", StringSerde, StringSerde);
    for (k, ts) in records {
        input.pipe_input(s(k), s("v"), *ts).unwrap();
    }
}
