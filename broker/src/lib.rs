//! The Sluice broker.
