//! The fixed 61-byte header of a v2 record batch, CRC checks and iteration over stored batches.
//! The CRC covers attributes onwards, so base offset and leader epoch can be rewritten in place.

use bytes::Bytes;

use crate::error::{ProtocolError, Result};
use crate::records::Compression;

/// Bytes before the batch length field ends: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the whole fixed header, up to and including the record count.
pub const BATCH_HEADER_SIZE: usize = 61;

const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

/// The fixed header of a record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field: the whole batch is `LOG_OVERHEAD + batch_length` bytes.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

impl BatchHeader {
    /// Parses the header at the start of `b`. Checks the magic and that the declared length is at
    /// least a header; does not check that the whole batch is present (see `total_size`).
    pub fn parse(b: &[u8]) -> Result<BatchHeader> {
        if b.len() < BATCH_HEADER_SIZE {
            return Err(ProtocolError::Truncated {
                needed: BATCH_HEADER_SIZE,
                remaining: b.len(),
            });
        }
        let h = BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic: b[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes(b[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap()),
            attributes: be_i16(b, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        };
        if h.magic != 2 {
            return Err(ProtocolError::CorruptBatch(format!(
                "unsupported magic {}",
                h.magic
            )));
        }
        if (h.batch_length as i64) < (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(ProtocolError::CorruptBatch(format!(
                "batch length {} is shorter than a header",
                h.batch_length
            )));
        }
        Ok(h)
    }

    /// Size of the whole batch in bytes, header included.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn compression(&self) -> Result<Compression> {
        Compression::from_attributes(self.attributes)
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    pub fn has_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    /// The sequence number of the last record, wrapping as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// Checks a whole batch's CRC-32C (attributes to the end).
pub fn verify_crc(batch: &[u8]) -> Result<()> {
    let h = BatchHeader::parse(batch)?;
    if batch.len() < h.total_size() {
        return Err(ProtocolError::Truncated {
            needed: h.total_size(),
            remaining: batch.len(),
        });
    }
    let actual = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..h.total_size()]);
    if actual != h.crc {
        return Err(ProtocolError::CorruptBatch(format!(
            "crc mismatch: stored {:#010x}, computed {:#010x}",
            h.crc, actual
        )));
    }
    Ok(())
}

/// Computes and stores the CRC of a batch whose other fields are final.
pub(crate) fn write_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[0..8].copy_from_slice(&offset.to_be_bytes());
}

pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Iterates over the batches in a buffer of concatenated batches (a produce request's records, a
/// segment's bytes, a fetch response). Yields each whole batch with its parsed header. A partial
/// batch at the end (fetch responses may cut one) ends the iteration; `remainder` tells its size.
pub struct Batches {
    buf: Bytes,
}

impl Batches {
    pub fn new(buf: Bytes) -> Batches {
        Batches { buf }
    }

    /// Bytes left after the last whole batch.
    pub fn remainder(&self) -> usize {
        self.buf.len()
    }
}

impl Iterator for Batches {
    type Item = Result<(BatchHeader, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < LOG_OVERHEAD {
            return None;
        }
        let length = be_i32(&self.buf, 8);
        if length < 0 {
            let e = ProtocolError::CorruptBatch(format!("negative batch length {length}"));
            self.buf.clear();
            return Some(Err(e));
        }
        let total = LOG_OVERHEAD + length as usize;
        if self.buf.len() < total {
            return None;
        }
        let batch = self.buf.split_to(total);
        match BatchHeader::parse(&batch) {
            Ok(h) => Some(Ok((h, batch))),
            Err(e) => {
                self.buf.clear();
                Some(Err(e))
            }
        }
    }
}
