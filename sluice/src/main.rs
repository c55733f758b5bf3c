//! The `sluice` command: one binary whose subcommands stand in for Kafka's scripts.
//! Each subcommand lives in `commands/`; this file only parses arguments and sets up logging.

mod commands;

/// Every record crosses threads (read on one, produced or written out on another) and lives
/// in many small allocations; mimalloc frees across threads far more cheaply than glibc's
/// malloc, which profiles of the Connect pipeline showed as its largest single cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
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
    /// Create, list, describe and delete topics (kafka-topics.sh)
    Topics(commands::topics::TopicsArgs),
    /// Describe and alter topic configs (kafka-configs.sh)
    Configs(commands::configs::ConfigsArgs),
    /// List, describe, reset and delete consumer groups (kafka-consumer-groups.sh)
    ConsumerGroups(commands::consumer_groups::ConsumerGroupsArgs),
    /// Print a topic's records (kafka-console-consumer.sh)
    ConsoleConsumer(commands::console_consumer::ConsoleConsumerArgs),
    /// Produce stdin lines as records (kafka-console-producer.sh)
    ConsoleProducer(commands::console_producer::ConsoleProducerArgs),
    /// Measure the cluster with the Sluice clients (kafka-producer-perf-test.sh)
    Perf(commands::perf::PerfArgs),
    /// Run a Kafka Connect worker and its connectors in this process (connect-standalone.sh)
    ConnectStandalone(commands::connect_standalone::ConnectStandaloneArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("Error: {} (see --help)", one_line(&e.to_string()));
            return ExitCode::FAILURE;
        }
    };
    // Long-running services log their progress; one-shot tools stay quiet.
    let server = matches!(
        cli.command,
        Command::Server(_) | Command::ConnectStandalone(_)
    );
    // A tool's stdout is its answer and its stderr is for errors: routine client logging
    // would be noise there, so tools log warnings only unless RUST_LOG says otherwise.
    let default_level = if server { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Server(args) => commands::server::run(args),
        Command::Topics(args) => commands::topics::run(args),
        Command::Configs(args) => commands::configs::run(args),
        Command::ConsumerGroups(args) => commands::consumer_groups::run(args),
        Command::ConsoleConsumer(args) => commands::console_consumer::run(args),
        Command::ConsoleProducer(args) => commands::console_producer::run(args),
        Command::Perf(args) => commands::perf::run(args),
        Command::ConnectStandalone(args) => commands::connect_standalone::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) if server => {
            eprintln!("sluice: {message}");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// clap's message without its usage block, on one line.
fn one_line(rendered: &str) -> String {
    let message = rendered.split("\n\n").next().unwrap_or(rendered);
    let message = message.strip_prefix("error: ").unwrap_or(message);
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
