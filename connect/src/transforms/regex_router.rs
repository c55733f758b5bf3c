//! `RegexRouter`: renames the topic when the whole topic name matches `regex`.
//! `replacement` uses Java's syntax (`$1`, `${name}`, `\$`), since configs are shared with Kafka.

use regex::Regex;

use super::record::ConnectRecord;
use super::util::{required, Props};
use super::{config_error, Transformation};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

#[derive(Debug, Default)]
pub struct RegexRouter {
    regex: Option<Regex>,
    replacement: Vec<Piece>,
}

impl Transformation for RegexRouter {
    fn configure(&mut self, props: &Props) -> Result<()> {
        let pattern = required(props, "regex")?;
        // Kafka uses `Matcher.matches()`, so the pattern must cover the whole topic.
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| config_error("regex", format!("invalid regex {pattern:?}: {e}")))?;
        let replacement = props.get("replacement").cloned().unwrap_or_default();
        self.replacement = parse_replacement(&replacement, &regex)
            .map_err(|problem| config_error("replacement", problem))?;
        self.regex = Some(regex);
        Ok(())
    }

    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>> {
        let regex = self
            .regex
            .as_ref()
            .expect("RegexRouter used before configure");
        if let Some(caps) = regex.captures(&record.topic) {
            let mut topic = String::new();
            for piece in &self.replacement {
                match piece {
                    Piece::Text(t) => topic.push_str(t),
                    // Java substitutes nothing for a group that did not take part in the match.
                    Piece::Group(i) => topic.push_str(caps.get(*i).map_or("", |m| m.as_str())),
                    Piece::Named(n) => topic.push_str(caps.name(n).map_or("", |m| m.as_str())),
                }
            }
            record.topic = topic;
        }
        Ok(Some(record))
    }
}

/// Parses a Java `Matcher.appendReplacement` string. Group numbers are read greedily only
/// while they stay valid for `regex`, as Java does, so `$10` with one group means `$1` then `0`.
fn parse_replacement(s: &str, regex: &Regex) -> std::result::Result<Vec<Piece>, String> {
    let groups = regex.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => text.push(escaped),
                None => return Err("ends with a lone backslash".into()),
            },
            '$' => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                if chars.peek() == Some(&'{') {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(ch) => name.push(ch),
                            None => return Err(format!("unclosed group name ${{{name}")),
                        }
                    }
                    if regex.capture_names().flatten().all(|n| n != name) {
                        return Err(format!("no group named {name:?} in regex"));
                    }
                    pieces.push(Piece::Named(name));
                } else {
                    let first = chars.next().and_then(|d| d.to_digit(10)).ok_or(
                        "$ must be followed by a group number or {name}; write \\$ for a literal $",
                    )? as usize;
                    if first > groups {
                        return Err(format!("no group {first} in regex ({groups} groups)"));
                    }
                    let mut number = first;
                    while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                        let longer = number * 10 + d as usize;
                        if longer > groups {
                            break;
                        }
                        number = longer;
                        chars.next();
                    }
                    pieces.push(Piece::Group(number));
                }
            }
            _ => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(regex: &str, replacement: &str) -> Result<RegexRouter> {
        let mut r = RegexRouter::default();
        let props: Props = [
            ("regex".to_string(), regex.to_string()),
            ("replacement".to_string(), replacement.to_string()),
        ]
        .into();
        r.configure(&props)?;
        Ok(r)
    }

    fn route(r: &RegexRouter, topic: &str) -> String {
        let rec = ConnectRecord {
            topic: topic.into(),
            ..ConnectRecord::default()
        };
        r.apply(rec).unwrap().unwrap().topic
    }

    #[test]
    fn group_references_are_substituted() {
        let r = router(r"(\w+)-(\d+)", "$2_$1").unwrap();
        assert_eq!(route(&r, "orders-7"), "7_orders");
        let r = router(r"(?<env>prod|dev)\.(.*)", "${env}-$2").unwrap();
        assert_eq!(route(&r, "prod.users"), "prod-users");
    }

    #[test]
    fn only_whole_topic_matches_are_renamed() {
        let r = router("logs", "archive").unwrap();
        assert_eq!(route(&r, "logs"), "archive");
        assert_eq!(route(&r, "app-logs"), "app-logs");
    }

    #[test]
    fn group_numbers_are_read_greedily_while_valid() {
        let r = router("(a)", "$10").unwrap();
        assert_eq!(route(&r, "a"), "a0");
        let r = router("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)", "$10").unwrap();
        assert_eq!(route(&r, "abcdefghij"), "j");
    }

    #[test]
    fn escapes_and_unmatched_groups() {
        let r = router("(x)?(y)", r"\$$1$2\\").unwrap();
        assert_eq!(route(&r, "y"), r"$y\");
    }

    #[test]
    fn bad_config_is_rejected() {
        for (regex, replacement, key) in [
            ("(", "x", "regex:"),
            ("(a)", "$2", "replacement:"),
            ("(a)", "$x", "replacement:"),
            ("(a)", "${nope}", "replacement:"),
        ] {
            let err = router(regex, replacement).unwrap_err().to_string();
            assert!(err.contains(key), "{regex} {replacement}: {err}");
        }
    }
}
