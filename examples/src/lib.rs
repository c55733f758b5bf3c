//! Examples of building on Sluice as a user would, outside its own crates. Run one with
//! `cargo run --release -p sluice-examples --example ticker_connector -- --help`.

pub mod streams_app;
