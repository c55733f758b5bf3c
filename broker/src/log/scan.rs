//! Sequential, buffered walking of the batches stored in a region of a segment file.
//! Used by recovery and the cleaner (CRC-checked, whole batches), producer-state rebuilds and
//! position lookups (headers only).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sluice_protocol::records::{verify_crc, BatchHeader, BATCH_HEADER_SIZE, LOG_OVERHEAD};

/// What the scanner found at its current position.
#[derive(Debug)]
pub(crate) enum Scanned {
    Batch {
        position: u64,
        header: BatchHeader,
    },
    /// Clean end of the region.
    End,
    /// A torn or corrupt batch starts here; nothing after it can be trusted.
    Invalid {
        position: u64,
        reason: String,
    },
}

pub(crate) struct BatchScanner<'a> {
    file: &'a File,
    end: u64,
    verify: bool,
    chunk: usize,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    /// Read cursor inside `buf`.
    off: usize,
}

impl<'a> BatchScanner<'a> {
    /// Walks `[start, end)` of `file`; with `verify`, every batch's CRC is checked (which needs
    /// the whole batch in memory), otherwise only headers are read.
    pub(crate) fn new(file: &'a File, start: u64, end: u64, verify: bool, chunk: usize) -> Self {
        BatchScanner {
            file,
            end,
            verify,
            chunk: chunk.max(BATCH_HEADER_SIZE),
            buf: Vec::new(),
            buf_pos: start,
            off: 0,
        }
    }

    pub(crate) fn position(&self) -> u64 {
        self.buf_pos + self.off as u64
    }

    /// Makes at least `need` bytes available from the cursor; false if the region is shorter.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        let have = self.buf.len() - self.off;
        if have >= need {
            return Ok(true);
        }
        let pos = self.position();
        if pos + need as u64 > self.end {
            return Ok(false);
        }
        self.buf.drain(..self.off);
        self.buf_pos = pos;
        self.off = 0;
        let want = need.max(self.chunk) as u64;
        let to_read = want.min(self.end - pos) as usize;
        let old = self.buf.len();
        self.buf.resize(to_read, 0);
        self.file
            .read_exact_at(&mut self.buf[old..], pos + old as u64)?;
        Ok(true)
    }

    /// The whole batch of `size` bytes that `next_batch` just returned. Only a verifying scanner
    /// holds whole batches in memory, so only it can answer.
    pub(crate) fn last_batch_bytes(&self, size: usize) -> &[u8] {
        assert!(self.verify, "only a verifying scanner keeps whole batches");
        &self.buf[self.off - size..self.off]
    }

    pub(crate) fn next_batch(&mut self) -> io::Result<Scanned> {
        let position = self.position();
        if position >= self.end {
            return Ok(Scanned::End);
        }
        let invalid = |reason: String| Ok(Scanned::Invalid { position, reason });
        if !self.fill(LOG_OVERHEAD.max(BATCH_HEADER_SIZE))? {
            return invalid(format!(
                "{} trailing bytes are shorter than a batch header",
                self.end - position
            ));
        }
        let header = match BatchHeader::parse(&self.buf[self.off..]) {
            Ok(h) => h,
            Err(e) => return invalid(e.to_string()),
        };
        let total = header.total_size();
        if position + total as u64 > self.end {
            return invalid(format!(
                "batch of {total} bytes is cut off after {} bytes",
                self.end - position
            ));
        }
        if self.verify {
            self.fill(total)?;
            if let Err(e) = verify_crc(&self.buf[self.off..self.off + total]) {
                return invalid(e.to_string());
            }
        }
        if self.off + total <= self.buf.len() {
            self.off += total;
        } else {
            self.buf.clear();
            self.off = 0;
            self.buf_pos = position + total as u64;
        }
        Ok(Scanned::Batch { position, header })
    }
}
