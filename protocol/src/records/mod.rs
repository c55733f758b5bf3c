//! Record batches (magic v2): the unit the broker stores and serves as-is.
//! `batch` reads and patches the fixed header without touching the records; `record` and
//! `compression` build and read the records inside (clients, tests, validation, compaction).

mod batch;
pub mod compression;
mod record;

pub use batch::{
    set_base_offset, set_partition_leader_epoch, verify_crc, BatchHeader, Batches,
    BATCH_HEADER_SIZE, LOG_OVERHEAD,
};
pub use compression::Compression;
pub use record::{
    encoded_record_len, finish_batch, write_record, BatchFields, Record, RecordBatch, RecordHeader,
};

#[cfg(test)]
mod tests;
