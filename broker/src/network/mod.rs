//! The network edge: accepting TCP connections and moving frames in and out of them.
//! Everything protocol-shaped happens in `request`; this module only knows sockets and sizes.

mod connection;

pub use connection::{FrameReader, FrameWriter, ReadError};
