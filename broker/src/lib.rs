//! The Sluice broker.

pub mod log;
