//! Compression codecs of the records section of a batch: gzip, snappy (xerial framing, as the
//! Java client writes it), lz4 (frame format) and zstd, in both directions.

use crate::error::{ProtocolError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec named by bits 0-2 of a batch's attributes.
    pub fn from_attributes(attributes: i16) -> Result<Compression> {
        match attributes & 0x07 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            n => Err(ProtocolError::UnsupportedCompression(n)),
        }
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Compresses a records section as one stream.
    pub fn compress(self, _data: &[u8]) -> Result<Vec<u8>> {
        todo!("records helper")
    }

    /// Decompresses a records section, failing once the output would exceed `limit` bytes, so a
    /// small compressed batch cannot expand into unbounded memory.
    pub fn decompress(self, _data: &[u8], _limit: usize) -> Result<Vec<u8>> {
        todo!("records helper")
    }
}
