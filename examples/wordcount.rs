//! Kafka's WordCountDemo on Sluice Streams: counts the words of the lines in
//! streams-plaintext-input and writes each word's running count to streams-wordcount-output.
//!
//! ```sh
//! cargo run --release --example wordcount -- --bootstrap-server localhost:9092
//! echo "all streams lead to kafka" | kcat -b localhost:9092 -t streams-plaintext-input -P
//! kcat -b localhost:9092 -t streams-wordcount-output -C -s value=Q -f '%k %s\n'
//! ```
//!
//! Keys are UTF-8 words; values are counts as 8-byte big-endian integers, as Kafka's
//! LongSerializer writes them (kcat `-s value=Q`, kafka-console-consumer with
//! `--value-deserializer org.apache.kafka.common.serialization.LongDeserializer`).

use sluice_examples::streams_app;
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{Consumed, Grouped, Materialized, Produced, StreamsBuilder, StreamsConfig};

const INPUT: &str = "streams-plaintext-input";
const OUTPUT: &str = "streams-wordcount-output";

fn main() -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sluice_client=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let bootstrap = streams_app::bootstrap_server()?;
    streams_app::ensure_topics(&bootstrap, &[INPUT, OUTPUT])?;

    let builder = StreamsBuilder::new();
    builder
        .stream::<Option<String>, String>(INPUT, Consumed::with(StringSerde, StringSerde))
        .flat_map_values(|line: String| {
            line.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word: &String| word.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(Materialized::as_store("counts-store"))
        .to_stream()
        .to(OUTPUT, Produced::with(StringSerde, LongSerde));
    let topology = builder.build().map_err(|e| e.to_string())?;

    let config = StreamsConfig::new()
        .set("application.id", "streams-wordcount")
        .set("bootstrap.servers", &bootstrap)
        // The demo's setting: results show up within a second rather than Kafka's 30 s.
        .set("commit.interval.ms", "1000");
    streams_app::run(topology, config)
}
