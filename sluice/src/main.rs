//! The `sluice` command: one binary whose subcommands stand in for Kafka's scripts.
//! Each subcommand lives in `commands/`; this file only parses arguments and sets up logging.

mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka-compatible streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (kafka-server-start.sh)
    Server(commands::server::ServerArgs),
    /// Produce stdin lines as records (kafka-console-producer.sh)
    ConsoleProducer(commands::console_producer::ConsoleProducerArgs),
    /// Measure the cluster with the Sluice clients (kafka-producer-perf-test.sh)
    Perf(commands::perf::PerfArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => commands::server::run(args),
        Command::ConsoleProducer(args) => commands::console_producer::run(args),
        Command::Perf(args) => commands::perf::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sluice: {message}");
            ExitCode::FAILURE
        }
    }
}
