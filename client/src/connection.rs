//! `Connection`: one TCP connection to one broker, shared by every task that talks to it.
//! Requests are pipelined (written as they come, answered in order, matched by correlation id)
//! and each is encoded at the highest version both sides speak, learnt with ApiVersions.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sluice_protocol::api::{encode_request_frame, response_header_version, ApiMessage, Request};
use sluice_protocol::header::ResponseHeader;
use sluice_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use sluice_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{ClientError, Result};

/// The largest response accepted: a hostile or confused peer's size prefix must not become an
/// allocation of any size. Fetch responses are bounded by fetch.max.bytes (50 MiB by default).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Requests queued for writing before callers wait: the pipeline's depth.
const QUEUE_DEPTH: usize = 1024;

type Reply = oneshot::Sender<Result<Bytes>>;

/// Requests written and not yet answered, oldest first: Kafka answers in order.
type Pending = Arc<Mutex<VecDeque<(i32, Option<Reply>)>>>;

struct Outgoing {
    frame: Bytes,
    correlation_id: i32,
    /// `None` for requests the broker does not answer (Produce with acks=0).
    reply: Option<Reply>,
}

pub struct Connection {
    addr: String,
    client_id: String,
    requests: mpsc::Sender<Outgoing>,
    next_correlation_id: AtomicI32,
    /// API key -> (min, max) version the broker speaks.
    versions: HashMap<i16, (i16, i16)>,
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Connection {
    /// Connects, starts the I/O tasks and learns the broker's API versions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        setup_timeout: Duration,
    ) -> Result<Connection> {
        let io_err = |error| ClientError::Io {
            addr: addr.to_string(),
            error,
        };
        let stream = tokio::time::timeout(setup_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(format!("connecting to {addr}")))?
            .map_err(io_err)?;
        stream.set_nodelay(true).map_err(io_err)?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let pending: Pending = Default::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(
            write,
            rx,
            pending.clone(),
            closed.clone(),
            addr.to_string(),
        ));
        tokio::spawn(read_loop(read, pending, closed.clone(), addr.to_string()));
        let mut conn = Connection {
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            requests: tx,
            next_correlation_id: AtomicI32::new(0),
            versions: HashMap::new(),
            closed,
        };
        conn.versions = conn.negotiate(setup_timeout).await?;
        Ok(conn)
    }

    async fn negotiate(&self, timeout: Duration) -> Result<HashMap<i16, (i16, i16)>> {
        let request = ApiVersionsRequest {
            client_software_name: "sluice".into(),
            client_software_version: env!("CARGO_PKG_VERSION").into(),
        };
        // v3 first; a broker that does not speak it answers in v0 with UNSUPPORTED_VERSION,
        // which v0 decoding reads.
        let response = match self.send_at(3, &request, timeout).await {
            Ok(r) => r,
            Err(ClientError::Protocol { .. }) => self.send_at(0, &request, timeout).await?,
            Err(e) => return Err(e),
        };
        let response: ApiVersionsResponse =
            if response.error_code == ErrorCode::UnsupportedVersion.code() {
                self.send_at(0, &request, timeout).await?
            } else {
                response
            };
        if response.error_code != 0 {
            return Err(ClientError::broker(
                ErrorCode::from_code(response.error_code),
                None,
                format!("ApiVersions to {}", self.addr),
            ));
        }
        Ok(response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The highest version of `R` both sides speak.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let (min, max) = self
            .versions
            .get(&R::API_KEY)
            .copied()
            .ok_or(ClientError::UnsupportedVersion { api: R::NAME })?;
        let version = max.min(R::MAX_VERSION);
        if version < min.max(R::MIN_VERSION) {
            return Err(ClientError::UnsupportedVersion { api: R::NAME });
        }
        Ok(version)
    }

    /// Whether the broker speaks `R` at `version` or above.
    pub fn supports<R: Request>(&self, version: i16) -> bool {
        self.version_for::<R>().is_ok_and(|v| v >= version)
    }

    /// Sends `request` at the highest common version and waits up to `timeout` for the answer.
    pub async fn send<R: Request>(&self, request: &R, timeout: Duration) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_at(version, request, timeout).await
    }

    /// Sends at a given version; returns the version used with the response.
    pub async fn send_versioned<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<(i16, R::Response)> {
        let version = self.version_for::<R>()?;
        Ok((version, self.send_at(version, request, timeout).await?))
    }

    pub async fn send_at<R: Request>(
        &self,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let (tx, rx) = oneshot::channel();
        let correlation_id = self.enqueue(version, request, Some(tx)).await?;
        let body = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(ClientError::Disconnected(self.addr.clone())),
            Err(_) => {
                // The answers behind it would all be late too: Kafka clients drop the
                // connection, and so do we.
                self.closed.store(true, Ordering::Release);
                return Err(ClientError::Timeout(format!(
                    "{} request to {} (after {timeout:?})",
                    R::NAME,
                    self.addr
                )));
            }
        };
        let mut body = body;
        let protocol = |error| ClientError::Protocol {
            addr: self.addr.clone(),
            error,
        };
        let header =
            ResponseHeader::decode(&mut body, response_header_version(R::API_KEY, version))
                .map_err(protocol)?;
        debug_assert_eq!(header.correlation_id, correlation_id);
        <R::Response as ApiMessage>::decode_body(body, version).map_err(protocol)
    }

    /// Sends a request the broker will not answer (Produce with acks=0).
    pub async fn send_unanswered<R: Request>(&self, version: i16, request: &R) -> Result<()> {
        self.enqueue(version, request, None).await.map(|_| ())
    }

    async fn enqueue<R: Request>(
        &self,
        version: i16,
        request: &R,
        reply: Option<Reply>,
    ) -> Result<i32> {
        if self.is_closed() {
            return Err(ClientError::Disconnected(self.addr.clone()));
        }
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request_frame(correlation_id, version, Some(&self.client_id), request);
        self.requests
            .send(Outgoing {
                frame,
                correlation_id,
                reply,
            })
            .await
            .map_err(|_| ClientError::Disconnected(self.addr.clone()))?;
        Ok(correlation_id)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Dropping the sender ends the writer, which shuts the socket; the reader follows.
        self.closed.store(true, Ordering::Release);
    }
}

async fn write_loop(
    write: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    addr: String,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, write);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Everything already queued goes out in one flush.
        while let Some(req) = next.take() {
            if let Some(reply) = req.reply {
                // Registered before writing, so the answer can never arrive first.
                pending
                    .lock()
                    .expect("pending lock")
                    .push_back((req.correlation_id, Some(reply)));
            }
            if let Err(e) = out.write_all(&req.frame).await {
                tracing::debug!(%addr, error = %e, "write failed");
                fail(&pending, &closed, &addr);
                return;
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().await {
            tracing::debug!(%addr, error = %e, "write failed");
            fail(&pending, &closed, &addr);
            return;
        }
        if closed.load(Ordering::Acquire) {
            break;
        }
    }
    let _ = out.shutdown().await;
    fail(&pending, &closed, &addr);
}

async fn read_loop(
    mut read: tokio::net::tcp::OwnedReadHalf,
    pending: Pending,
    closed: Arc<AtomicBool>,
    addr: String,
) {
    loop {
        let size = match read.read_i32().await {
            Ok(n) if n >= 4 && (n as usize) <= MAX_RESPONSE_BYTES => n as usize,
            Ok(n) => {
                tracing::warn!(%addr, size = n, "response size out of bounds; closing");
                break;
            }
            Err(_) => break,
        };
        let mut body = BytesMut::zeroed(size);
        if read.read_exact(&mut body).await.is_err() {
            break;
        }
        let correlation_id = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let waiting = pending.lock().expect("pending lock").pop_front();
        match waiting {
            Some((expected, reply)) if expected == correlation_id => {
                if let Some(reply) = reply {
                    // The caller may have given up (timeout); nothing to do then.
                    let _ = reply.send(Ok(body.freeze()));
                }
            }
            other => {
                tracing::warn!(%addr, correlation_id, expected = ?other.map(|o| o.0), "response out of order; closing");
                break;
            }
        }
    }
    fail(&pending, &closed, &addr);
}

/// Marks the connection dead and answers everything still waiting.
fn fail(pending: &Mutex<VecDeque<(i32, Option<Reply>)>>, closed: &AtomicBool, addr: &str) {
    closed.store(true, Ordering::Release);
    let waiting: Vec<_> = pending.lock().expect("pending lock").drain(..).collect();
    for (_, reply) in waiting {
        if let Some(reply) = reply {
            let _ = reply.send(Err(ClientError::Disconnected(addr.to_string())));
        }
    }
}
