//! Test-only construction of v2 record batches: with raw filler record bytes where the storage
//! layer does not look inside batches, with real keyed records where compaction does.

use bytes::Bytes;
use sluice_protocol::records::{Compression, Record, RecordBatch};

pub(crate) struct TestBatch {
    pub count: i32,
    pub timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Bytes of the records section.
    pub payload: usize,
}

impl Default for TestBatch {
    fn default() -> Self {
        TestBatch {
            count: 1,
            timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            payload: 39,
        }
    }
}

impl TestBatch {
    pub fn build(&self) -> Vec<u8> {
        let total = 61 + self.payload;
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((total - 12) as i32).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(self.count - 1).to_be_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&self.producer_id.to_be_bytes());
        b.extend_from_slice(&self.producer_epoch.to_be_bytes());
        b.extend_from_slice(&self.base_sequence.to_be_bytes());
        b.extend_from_slice(&self.count.to_be_bytes());
        b.extend((0..self.payload).map(|i| (i % 251) as u8));
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    pub fn bytes(&self) -> Bytes {
        Bytes::from(self.build())
    }
}

/// A plain batch of `count` records at `timestamp`.
pub(crate) fn batch(count: i32, timestamp: i64) -> Bytes {
    TestBatch {
        count,
        timestamp,
        ..Default::default()
    }
    .bytes()
}

/// An idempotent producer's batch.
pub(crate) fn producer_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Bytes {
    TestBatch {
        count,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..Default::default()
    }
    .bytes()
}

/// A batch of real records, for tests that look inside batches (compaction): `(key, value)`
/// pairs at offset deltas 0, 1, 2, ..., all at `timestamp`, compressed with `compression`.
pub(crate) fn keyed_batch(
    records: &[(Option<&str>, Option<&str>)],
    timestamp: i64,
    compression: Compression,
) -> Bytes {
    keyed_producer_batch(-1, -1, -1, records, timestamp, compression)
}

/// As [`keyed_batch`], from an idempotent producer.
pub(crate) fn keyed_producer_batch(
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records: &[(Option<&str>, Option<&str>)],
    timestamp: i64,
    compression: Compression,
) -> Bytes {
    let bytes = |s: Option<&str>| s.map(|s| Bytes::copy_from_slice(s.as_bytes()));
    let mut batch = RecordBatch::new(
        records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                offset: i as i64,
                timestamp,
                key: bytes(*k),
                value: bytes(*v),
                headers: Vec::new(),
            })
            .collect(),
    );
    batch.compression = compression;
    batch.producer_id = producer_id;
    batch.producer_epoch = producer_epoch;
    batch.base_sequence = base_sequence;
    batch.encode().unwrap()
}
