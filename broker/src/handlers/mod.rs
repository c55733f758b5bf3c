//! One module per API: each takes the decoded request and the broker context and returns the
//! response message. Handlers hold no connection state and do no socket I/O.

pub mod api_versions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_configs;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
