//! sluice-config: Kafka-compatible configuration for the Sluice server.
//! Owns reading `.properties` files and turning them into typed, validated configs.

mod error;
pub mod properties;
pub mod server;

pub use error::ConfigError;
pub use properties::{parse_override, Properties};
pub use server::{Listener, ProcessRole, QuorumVoter, ServerConfig};
