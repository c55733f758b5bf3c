//! What the Sluice Streams examples share: `--bootstrap-server` parsing, creating their topics
//! when missing, and running a `KafkaStreams` until Ctrl-C (then closing it cleanly).

use std::time::Duration;

use sluice_client::admin::NewTopic;
use sluice_client::{Admin, ClientConfig};
use sluice_streams::{KafkaStreams, State, StreamsConfig, Topology};

/// The value of `--bootstrap-server H:P` (default localhost:9092).
pub fn bootstrap_server() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    let mut bootstrap = "localhost:9092".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bootstrap-server" => {
                bootstrap = args.next().ok_or("--bootstrap-server needs host:port")?;
            }
            "-h" | "--help" => {
                return Err("usage: --bootstrap-server HOST:PORT".to_string());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(bootstrap)
}

/// Creates the topics that do not exist yet (one partition each, as Kafka's quickstart does).
pub fn ensure_topics(bootstrap: &str, topics: &[&str]) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let admin = Admin::new(ClientConfig::new().set("bootstrap.servers", bootstrap))
            .map_err(|e| e.to_string())?;
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|t| NewTopic::new(*t).partitions(1))
            .collect();
        let results = admin
            .create_topics(&new, false)
            .await
            .map_err(|e| format!("cannot reach {bootstrap}: {e}"))?;
        for (topic, r) in results {
            match r {
                Ok(_) => eprintln!("created topic {topic}"),
                Err(e) if e.code() == Some(sluice_protocol::ErrorCode::TopicAlreadyExists) => {}
                Err(e) => return Err(format!("creating {topic}: {e}")),
            }
        }
        Ok(())
    })
}

/// Starts the app and runs it until Ctrl-C (or a failure), then closes it: the stream threads
/// commit what they processed and leave the group.
pub fn run(topology: Topology, config: StreamsConfig) -> Result<(), String> {
    eprintln!("{}", topology.describe());
    let mut streams = KafkaStreams::new(topology, config);
    streams.start().map_err(|e| e.to_string())?;
    eprintln!("running; Ctrl-C to stop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if streams.state() == State::Error {
                        break;
                    }
                }
            }
        }
    });
    eprintln!("closing");
    streams.close().map_err(|e| e.to_string())
}
