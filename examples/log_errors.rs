//! A log pipeline on Sluice Streams: reads lines like `<timestamp> <service> <LEVEL> message`
//! from app-logs, keeps the ERROR ones and counts them per service per minute.
//!
//! ```sh
//! cargo run --release --example log_errors -- --bootstrap-server localhost:9092
//! printf '2024-05-01T12:00:03Z checkout ERROR card declined\n' | kcat -b localhost:9092 -t app-logs -P
//! kcat -b localhost:9092 -t error-counts-per-minute -C -s value=Q -f '%k %s\n'
//! ```
//!
//! Output keys are `<service>@<minute>` (the minute, in UTC, of the record's timestamp, e.g.
//! `checkout@2024-05-01T12:00`); values are counts as 8-byte big-endian integers. The minute is
//! a plain grouping key, not a window: Sluice Streams' windowed aggregations (with grace for
//! late records) are not used here, so the counts of a minute never close.

use sluice_examples::streams_app;
use sluice_streams::processor::{Processor, ProcessorContext};
use sluice_streams::record::Record;
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, Materialized, Produced, StreamsBuilder, StreamsConfig, StreamsError,
};

const INPUT: &str = "app-logs";
const OUTPUT: &str = "error-counts-per-minute";

/// `<service>@<UTC minute of the record timestamp>` for an ERROR line; None for others.
fn error_key(line: &str, timestamp_ms: i64) -> Option<String> {
    let mut fields = line.split_whitespace();
    let (_time, service, level) = (fields.next()?, fields.next()?, fields.next()?);
    (level == "ERROR").then(|| format!("{service}@{}", utc_minute(timestamp_ms)))
}

/// `YYYY-MM-DDTHH:MM` in UTC (civil-from-days, proleptic Gregorian calendar).
fn utc_minute(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000);
    let (days, min_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}",
        min_of_day / 60,
        min_of_day % 60
    )
}

/// Keeps ERROR lines, keyed by service and minute: the processor API, since the key needs the
/// record's timestamp, which the DSL's closures do not see.
struct KeyErrorsByMinute;

impl Processor for KeyErrorsByMinute {
    fn process(&mut self, r: Record, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let (_, line, meta) = r.into_parts::<Option<String>, String>()?;
        if let Some(key) = error_key(&line, meta.timestamp) {
            ctx.forward(meta.into_record(key, line));
        }
        Ok(())
    }
}

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
        .process::<String, String>(
            "errors-by-service-minute",
            || Box::new(KeyErrorsByMinute),
            Vec::new(),
        )
        // The processor changed the key, which `process` does not tell the DSL: group_by
        // (rather than group_by_key) repartitions by it, so one task counts each key.
        .group_by(
            |key: &String, _| key.clone(),
            Grouped::with(StringSerde, StringSerde),
        )
        .count(Materialized::as_store("error-counts"))
        .to_stream()
        .to(OUTPUT, Produced::with(StringSerde, LongSerde));
    let topology = builder.build().map_err(|e| e.to_string())?;

    let config = StreamsConfig::new()
        .set("application.id", "log-errors")
        .set("bootstrap.servers", &bootstrap)
        .set("commit.interval.ms", "1000");
    streams_app::run(topology, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_errors_by_service_and_utc_minute() {
        // 2024-05-01T12:34:56.789Z
        let ts = 1_714_566_896_789;
        assert_eq!(utc_minute(ts), "2024-05-01T12:34");
        assert_eq!(utc_minute(0), "1970-01-01T00:00");
        assert_eq!(
            error_key("2024-05-01T12:34:56Z checkout ERROR card declined", ts).as_deref(),
            Some("checkout@2024-05-01T12:34")
        );
        assert_eq!(error_key("2024-05-01T12:34:56Z checkout INFO ok", ts), None);
        assert_eq!(error_key("garbage", ts), None);
    }
}
