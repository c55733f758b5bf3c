//! `TimestampRouter`: renames the topic from `topic.format` (default `${topic}-${timestamp}`)
//! with the record timestamp formatted in UTC by `timestamp.format` (default `yyyyMMdd`).
//!
//! Only this subset of Java's `SimpleDateFormat` is understood: `yyyy` year, `MM` month,
//! `dd` day, `HH` hour (00-23), `mm` minute, `ss` second, and `'text'` quoted literals
//! (`''` is a quote). Other ASCII letters are rejected at configure time rather than
//! silently producing a different topic than Kafka would; any other character is literal.

use super::record::ConnectRecord;
use super::util::{optional, Props};
use super::{config_error, Transformation};
use crate::error::{ConnectError, Result};

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

#[derive(Debug)]
pub struct TimestampRouter {
    topic_format: String,
    timestamp_format: Vec<Part>,
}

impl Default for TimestampRouter {
    fn default() -> Self {
        TimestampRouter {
            topic_format: "${topic}-${timestamp}".into(),
            timestamp_format: parse_format("yyyyMMdd").expect("default format parses"),
        }
    }
}

fn parse_format(s: &str) -> std::result::Result<Vec<Part>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                text.push('\'');
                i += 2;
                continue;
            }
            let end = chars[i + 1..]
                .iter()
                .position(|&c| c == '\'')
                .ok_or("unterminated quote")?;
            text.extend(&chars[i + 1..i + 1 + end]);
            i += end + 2;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            text.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let part = match (c, run) {
            ('y', 4) => Part::Year,
            ('M', 2) => Part::Month,
            ('d', 2) => Part::Day,
            ('H', 2) => Part::Hour,
            ('m', 2) => Part::Minute,
            ('s', 2) => Part::Second,
            _ => {
                return Err(format!(
                    "unsupported pattern {:?}; supported: yyyy MM dd HH mm ss",
                    c.to_string().repeat(run)
                ))
            }
        };
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(part);
        i += run;
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), by the usual
/// era-based arithmetic so no date library is needed.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn format_timestamp(parts: &[Part], millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Year => out.push_str(&format!("{year:04}")),
            Part::Month => out.push_str(&format!("{month:02}")),
            Part::Day => out.push_str(&format!("{day:02}")),
            Part::Hour => out.push_str(&format!("{:02}", sod / 3600)),
            Part::Minute => out.push_str(&format!("{:02}", sod / 60 % 60)),
            Part::Second => out.push_str(&format!("{:02}", sod % 60)),
        }
    }
    out
}

impl Transformation for TimestampRouter {
    fn configure(&mut self, props: &Props) -> Result<()> {
        *self = TimestampRouter::default();
        if let Some(f) = optional(props, "topic.format") {
            self.topic_format = f;
        }
        if let Some(f) = optional(props, "timestamp.format") {
            self.timestamp_format =
                parse_format(&f).map_err(|p| config_error("timestamp.format", p))?;
        }
        Ok(())
    }

    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let ts = record.timestamp.ok_or_else(|| {
            ConnectError::data(format!(
                "Timestamp missing on record on topic {}",
                record.topic
            ))
        })?;
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace(
                "${timestamp}",
                &format_timestamp(&self.timestamp_format, ts),
            );
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::util::test_support::props;

    fn router(pairs: &[(&str, &str)]) -> Result<TimestampRouter> {
        let mut t = TimestampRouter::default();
        let props = props(pairs);
        t.configure(&props)?;
        Ok(t)
    }

    fn route(t: &TimestampRouter, ts: Option<i64>) -> Result<String> {
        let rec = ConnectRecord {
            topic: "logs".into(),
            timestamp: ts,
            ..ConnectRecord::default()
        };
        Ok(t.apply(rec)?.unwrap().topic)
    }

    #[test]
    fn default_formats() {
        // 2023-11-14T22:13:20Z
        let t = router(&[]).unwrap();
        assert_eq!(route(&t, Some(1_700_000_000_000)).unwrap(), "logs-20231114");
    }

    #[test]
    fn custom_formats_and_quotes() {
        let t = router(&[
            ("topic.format", "${timestamp}.${topic}"),
            ("timestamp.format", "yyyy-MM-dd'T'HH:mm:ss''"),
        ])
        .unwrap();
        assert_eq!(
            route(&t, Some(1_700_000_000_123)).unwrap(),
            "2023-11-14T22:13:20'.logs"
        );
        assert_eq!(route(&t, Some(0)).unwrap(), "1970-01-01T00:00:00'.logs");
        assert_eq!(route(&t, Some(-1)).unwrap(), "1969-12-31T23:59:59'.logs");
        // Leap day.
        assert_eq!(
            route(&t, Some(951_782_400_000)).unwrap(),
            "2000-02-29T00:00:00'.logs"
        );
    }

    #[test]
    fn missing_timestamp_and_unsupported_patterns() {
        assert!(route(&router(&[]).unwrap(), None).is_err());
        for f in ["yy", "SSS", "'open"] {
            let err = router(&[("timestamp.format", f)]).unwrap_err().to_string();
            assert!(err.contains("timestamp.format:"), "{f}: {err}");
        }
    }
}
