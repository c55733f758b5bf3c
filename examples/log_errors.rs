//! A log pipeline on Sluice Streams: reads lines like `<timestamp> <service> <LEVEL> message`
//! from app-logs, keeps the ERROR ones and counts them per service per minute.
//!
//! ```sh
//! cargo run --release --example log_errors -- --bootstrap-server localhost:9092
//! printf '2024-05-01T12:00:03Z checkout ERROR card declined\n' | kcat -b localhost:9092 -t app-logs -P
//! kcat -b localhost:9092 -t error-counts-per-minute -C -s value=Q -f '%k %s\n'
//! ```
//!
//! Counts are per tumbling one-minute window of record timestamps (`TimeWindows` with a
//! grace period of 30 s): output keys are `<service>@<window start>`, the start in UTC to
//! the minute (e.g. `checkout@2024-05-01T12:00`, a plain string, not the windowed serde's
//! layout); values are the window's count so far as 8-byte big-endian integers, updated on
//! every ERROR line, so the last value of a key is the minute's total. A line arriving once
//! stream time (the latest record timestamp seen) has passed its minute's end plus the grace
//! period is dropped: its minute is closed.

use std::time::Duration;

use sluice_examples::streams_app;
use sluice_streams::serdes::{LongSerde, StringSerde};
use sluice_streams::{
    Consumed, Grouped, Materialized, Produced, StreamsBuilder, StreamsConfig, StreamsError,
    TimeWindows, Topology, Windowed,
};

const INPUT: &str = "app-logs";
const OUTPUT: &str = "error-counts-per-minute";
/// How long after its end a minute still takes late lines.
const GRACE: Duration = Duration::from_secs(30);

/// The service of an ERROR line; None for other levels and malformed lines.
fn error_service(line: &str) -> Option<&str> {
    let mut fields = line.split_whitespace();
    let (_time, service, level) = (fields.next()?, fields.next()?, fields.next()?);
    (level == "ERROR").then_some(service)
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

/// ERROR lines counted per service and one-minute window, written as
/// `<service>@<window start minute>` -> count.
fn topology() -> Result<Topology, StreamsError> {
    let builder = StreamsBuilder::new();
    builder
        .stream::<Option<String>, String>(INPUT, Consumed::with(StringSerde, StringSerde))
        .filter(|_, line| error_service(line).is_some())
        // A new key: the lines of one service go through a repartition topic to one task.
        .group_by(
            |_, line: &String| error_service(line).unwrap_or_default().to_string(),
            Grouped::with(StringSerde, StringSerde).with_name("errors-by-service"),
        )
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            GRACE,
        ))
        .count(Materialized::as_store("error-counts"))
        .to_stream()
        // Windowed counts are never deleted, so every update has a value.
        .flat_map(|w: Windowed<String>, count: Option<i64>| {
            count.map(|n| (format!("{}@{}", w.key, utc_minute(w.window.start)), n))
        })
        .to(OUTPUT, Produced::with(StringSerde, LongSerde));
    builder.build()
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

    let topology = topology().map_err(|e| e.to_string())?;

    let config = StreamsConfig::new()
        .set("application.id", "log-errors")
        .set("bootstrap.servers", &bootstrap)
        .set("commit.interval.ms", "1000");
    streams_app::run(topology, config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_streams::TopologyTestDriver;

    #[test]
    fn formats_utc_minutes_and_picks_error_lines() {
        // 2024-05-01T12:34:56.789Z
        assert_eq!(utc_minute(1_714_566_896_789), "2024-05-01T12:34");
        assert_eq!(utc_minute(0), "1970-01-01T00:00");
        assert_eq!(
            error_service("2024-05-01T12:34:56Z checkout ERROR card declined"),
            Some("checkout")
        );
        assert_eq!(error_service("2024-05-01T12:34:56Z checkout INFO ok"), None);
        assert_eq!(error_service("garbage"), None);
    }

    #[test]
    fn counts_errors_per_service_per_minute_within_grace() {
        let d = TopologyTestDriver::new(topology().unwrap(), "log-errors").unwrap();
        let input = d.create_input_topic(INPUT, StringSerde, StringSerde);
        let noon = 1_714_564_800_000; // 2024-05-01T12:00:00Z
        let line = |at: i64, service: &str, level: &str| {
            input
                .pipe_input(None::<String>, format!("- {service} {level} x"), noon + at)
                .unwrap();
        };
        line(1_000, "checkout", "ERROR");
        line(2_000, "checkout", "INFO");
        line(3_000, "search", "ERROR");
        line(61_000, "checkout", "ERROR");
        line(59_000, "checkout", "ERROR"); // late, within grace: 12:00 counts it
        line(95_000, "search", "ERROR"); // stream time passes 12:01 + 30 s: 12:00 closes
        line(58_000, "checkout", "ERROR"); // too late: dropped
        let out = d.create_output_topic::<String, i64>(OUTPUT, StringSerde, LongSerde);
        let s = |k: &str, n: i64| (k.to_string(), n);
        assert_eq!(
            out.read_key_values_to_list().unwrap(),
            vec![
                s("checkout@2024-05-01T12:00", 1),
                s("search@2024-05-01T12:00", 1),
                s("checkout@2024-05-01T12:01", 1),
                s("checkout@2024-05-01T12:00", 2),
                s("search@2024-05-01T12:01", 1),
            ]
        );
    }
}
