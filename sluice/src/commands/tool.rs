//! What the admin tools share: connecting (--bootstrap-server, --command-config), running their
//! async work, parsing Kafka-style flag values, and printing Kafka-aligned tables.

use std::future::Future;
use std::path::PathBuf;

use clap::Args;
use sluice_client::config::split_host_port;
use sluice_client::{Admin, ClientConfig, ClientError};
use sluice_protocol::ErrorCode;

#[derive(Args)]
pub struct Connect {
    /// The broker(s) to connect to: HOST:PORT[,HOST:PORT...]
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT", required = true)]
    pub bootstrap_server: String,
    /// A client properties file (request.timeout.ms, client.id, ...), as Kafka's tools take it
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

impl Connect {
    pub fn admin(&self) -> Result<Admin, String> {
        let servers: Vec<&str> = self.bootstrap_server.split(',').map(str::trim).collect();
        if servers.iter().any(|s| split_host_port(s).is_none()) {
            return Err(format!(
                "--bootstrap-server expects HOST:PORT[,HOST:PORT...], got {:?}",
                self.bootstrap_server
            ));
        }
        let config = match &self.command_config {
            Some(path) => ClientConfig::from_file(path).map_err(|e| match e {
                ClientError::ConfigFile(m) => format!("--command-config: {m}"),
                e => e.to_string(),
            })?,
            None => ClientConfig::new(),
        };
        // The flag wins over a bootstrap.servers in the file, as in Kafka's tools.
        let config = config.set("bootstrap.servers", self.bootstrap_server.clone());
        Admin::new(config).map_err(|e| e.to_string())
    }
}

/// Runs a tool's async body to completion on a runtime of its own.
pub fn run(body: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?
        .block_on(body)
}

/// Whether the broker said `code`.
pub fn is(e: &ClientError, code: ErrorCode) -> bool {
    e.code() == Some(code)
}

/// `key=value`, with the key trimmed and non-empty.
pub fn key_value(s: &str, flag: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{flag} expects KEY=VALUE, got {s:?}")),
    }
}

/// Splits on commas outside square brackets, so a list value is written `k=[a,b]` as in
/// kafka-configs.sh.
pub fn split_outside_brackets(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `TOPIC` or `TOPIC:P[,P...]`, as --topic takes it in kafka-consumer-groups.sh.
pub fn topic_partitions(s: &str) -> Result<(String, Option<Vec<i32>>), String> {
    let Some((topic, list)) = s.split_once(':') else {
        return Ok((s.to_string(), None));
    };
    let partitions = list
        .split(',')
        .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0))
        .collect::<Option<Vec<i32>>>()
        .ok_or_else(|| {
            format!("--topic expects TOPIC or TOPIC:PARTITION[,PARTITION...], got {s:?}")
        })?;
    Ok((topic.to_string(), Some(partitions)))
}

/// Rows printed as Kafka's tools print them: each column left-aligned to its width (at least
/// `min`, more if a value is longer), one space between, the last column unpadded.
pub fn print_table(header: &[&str], min_widths: &[usize], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = min_widths.to_vec();
    for (i, h) in header.iter().enumerate() {
        widths[i] = widths[i].max(h.len());
        for row in rows {
            widths[i] = widths[i].max(row[i].len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$} ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_keep_their_commas_inside_brackets() {
        assert_eq!(
            split_outside_brackets("a=1, cleanup.policy=[compact,delete],b=2"),
            ["a=1", "cleanup.policy=[compact,delete]", "b=2"]
        );
        assert!(split_outside_brackets(" , ").is_empty());
    }

    #[test]
    fn topics_take_optional_partition_lists() {
        assert_eq!(topic_partitions("t").unwrap(), ("t".into(), None));
        assert_eq!(
            topic_partitions("t:0, 2").unwrap(),
            ("t".into(), Some(vec![0, 2]))
        );
        assert!(topic_partitions("t:x").is_err());
        assert!(key_value("=v", "--config").is_err());
        assert_eq!(
            key_value("a=b=c", "--config").unwrap(),
            ("a".into(), "b=c".into())
        );
    }
}
