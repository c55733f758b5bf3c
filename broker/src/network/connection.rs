//! A client connection split in two: `FrameReader` buffers bytes until a whole size-prefixed frame
//! is there (refusing oversized ones before buffering them); `FrameWriter` sends responses,
//! coalescing those that queue up into one write.

use bytes::{Bytes, BytesMut};
use sluice_protocol::frame::{bytes_wanted, split_frame};
use sluice_protocol::ProtocolError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

pub struct FrameReader {
    stream: OwnedReadHalf,
    buffer: BytesMut,
    max_frame: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Frame(#[from] ProtocolError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed in the middle of a frame")]
    ClosedMidFrame,
}

impl FrameReader {
    pub fn new(stream: OwnedReadHalf, max_frame: usize) -> FrameReader {
        FrameReader {
            stream,
            buffer: BytesMut::with_capacity(64 * 1024),
            max_frame,
        }
    }

    /// The next whole frame, or `None` when the peer closed cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            if let Some(frame) = split_frame(&mut self.buffer, self.max_frame)? {
                return Ok(Some(frame));
            }
            // The size was checked by split_frame, so reserving what the frame wants is bounded
            // by max_frame; reading in chunks keeps a slow sender from pinning a big buffer early.
            let want = bytes_wanted(&self.buffer).clamp(4096, 1 << 20);
            self.buffer.reserve(want);
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::ClosedMidFrame)
                };
            }
        }
    }
}

/// Sends encoded response frames to the socket from its own task, so reading and handling the
/// next request overlaps with writing the previous response.
pub struct FrameWriter {
    tx: mpsc::Sender<Bytes>,
}

impl FrameWriter {
    pub fn spawn(mut stream: OwnedWriteHalf) -> (FrameWriter, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Bytes>(128);
        let task = tokio::spawn(async move {
            let mut out = BytesMut::new();
            while let Some(frame) = rx.recv().await {
                // Small responses that queued up go out in one write; large ones go as they are.
                if frame.len() >= 64 * 1024 && out.is_empty() {
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                    continue;
                }
                out.extend_from_slice(&frame);
                while out.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(f) => out.extend_from_slice(&f),
                        Err(_) => break,
                    }
                }
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
            }
            let _ = stream.shutdown().await;
        });
        (FrameWriter { tx }, task)
    }

    /// Queues a response; false if the connection's writer is gone.
    pub async fn send(&self, frame: Bytes) -> bool {
        self.tx.send(frame).await.is_ok()
    }
}
