//! `BrokerChannel`: this broker's own connection to another broker, for follower fetches (and
//! requests to the active controller): one request at a time, bounded frames, a deadline on each.

use std::time::Duration;

use sluice_protocol::api::{encode_request_frame, response_header_version, ApiMessage, Request};
use sluice_protocol::header::ResponseHeader;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::error::{BrokerError, Result};
use crate::network::{FrameReader, ReadError};

/// The largest answer accepted from a peer. A follower's fetch asks for at most
/// replica.fetch.response.max.bytes (10 MiB by default in Kafka); this leaves room for larger
/// settings while keeping a confused peer's size prefix from becoming any allocation at all.
const MAX_RESPONSE_BYTES: usize = 128 << 20;

pub struct BrokerChannel {
    peer: String,
    client_id: String,
    reader: FrameReader,
    writer: OwnedWriteHalf,
    next_correlation_id: i32,
    timeout: Duration,
}

impl BrokerChannel {
    /// Connects to `peer` (`host:port`); `client_id` names this broker in the peer's logs.
    pub async fn connect(peer: &str, client_id: &str, timeout: Duration) -> Result<BrokerChannel> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(peer))
            .await
            .map_err(|_| peer_error(peer, "connection timed out"))?
            .map_err(|e| peer_error(peer, &format!("cannot connect: {e}")))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(BrokerChannel {
            peer: peer.to_string(),
            client_id: client_id.to_string(),
            reader: FrameReader::new(read, MAX_RESPONSE_BYTES),
            writer: write,
            next_correlation_id: 0,
            timeout,
        })
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Sends `request` at `version` and waits for its answer. Any failure leaves the channel
    /// unusable (a late answer would be taken for the next request's), so callers drop it and
    /// connect again.
    pub async fn call<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request_frame(id, version, Some(&self.client_id), request);
        let exchange = async {
            self.writer.write_all(&frame).await?;
            match self.reader.read_frame().await {
                Ok(Some(body)) => Ok(body),
                Ok(None) => Err(peer_error(&self.peer, "connection closed")),
                Err(ReadError::Io(e)) => Err(BrokerError::Io(e)),
                Err(e) => Err(peer_error(&self.peer, &e.to_string())),
            }
        };
        let mut body = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| peer_error(&self.peer, "request timed out"))??;
        let header =
            ResponseHeader::decode(&mut body, response_header_version(R::API_KEY, version))?;
        if header.correlation_id != id {
            return Err(peer_error(
                &self.peer,
                &format!(
                    "answer for request {} while waiting for {id}",
                    header.correlation_id
                ),
            ));
        }
        Ok(<R::Response as ApiMessage>::decode_body(body, version)?)
    }
}

fn peer_error(peer: &str, what: &str) -> BrokerError {
    BrokerError::Peer(format!("{peer}: {what}"))
}
