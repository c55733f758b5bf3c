//! The subcommands of `sluice`, one module each.
//! Each returns `Err(one line)` for the user; `main` prints it and exits non-zero.

pub mod configs;
pub mod connect_standalone;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod perf;
pub mod perf_consume;
pub mod server;
pub mod tool;
pub mod topics;
