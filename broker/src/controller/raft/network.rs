//! The controllers' transport: openraft's RPCs as length-prefixed JSON frames over TCP on the
//! CONTROLLER listener, one reused connection per peer, with a bounded frame size.

use std::error::Error;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::{Raft, TypeConfig};
use crate::controller::image::ClusterImage;
use crate::controller::quorum_controller::{ControllerReply, ControllerRequest};
use crate::controller::records::NodeId;
use crate::error::WireError;

/// The largest frame either side sends or accepts. Snapshot chunks are kept well below it (see
/// `node`), and an append that would exceed it is split by openraft on request.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A request a non-leader forwards for the active controller to decide and commit.
    Submit(ControllerRequest),
    /// A broker-only node's long poll for the metadata: answered with this voter's image once
    /// it is past `after` (an image offset), or with none after `max_wait_ms`.
    FetchImage {
        after: u64,
        max_wait_ms: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Submit(Result<ControllerReply, WireError>),
    /// The image as snapshot JSON, and the active controller this voter knows of.
    Image {
        leader: Option<NodeId>,
        snapshot: Option<String>,
    },
}

/// Decides a forwarded submission on this node, without forwarding it again: a node that no
/// longer leads answers NOT_CONTROLLER and the forwarding node looks for the leader itself, so
/// a request never travels in circles while leadership moves.
pub trait LocalSubmit: Clone + Send + Sync + 'static {
    fn submit_here(
        &self,
        request: ControllerRequest,
    ) -> impl std::future::Future<Output = crate::error::Result<ControllerReply>> + Send;

    /// This node's image once its offset passes `after` (`None` after `wait`), and the leader.
    fn image_after(
        &self,
        after: u64,
        wait: Duration,
    ) -> impl std::future::Future<Output = (Option<NodeId>, Option<Arc<ClusterImage>>)> + Send;
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

pub fn encode<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(message).map_err(io::Error::other)?;
    if payload.len() > MAX_FRAME_BYTES {
        return Err(invalid(format!(
            "a {} byte message exceeds the {MAX_FRAME_BYTES} byte frame limit",
            payload.len()
        )));
    }
    Ok(payload)
}

pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> io::Result<T> {
    serde_json::from_slice(payload)
        .map_err(|e| invalid(format!("undecodable controller frame: {e}")))
}

/// Reads one frame: a big-endian u32 length, then that many bytes. `None` at a clean end of the
/// stream; an error for a length over the limit (before anything is allocated for it) or a
/// stream that ends inside a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(invalid(format!(
            "controller frame of {len} bytes exceeds the {MAX_FRAME_BYTES} byte limit"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            invalid(format!("controller frame of {len} bytes cut short"))
        } else {
            e
        }
    })?;
    Ok(Some(payload))
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Accepts controller connections and answers their RPCs through `raft` until the task is
/// aborted (connection tasks end with it).
pub async fn serve<L: LocalSubmit>(listener: TcpListener, raft: Raft, local: L) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let raft = raft.clone();
                    let local = local.clone();
                    connections.spawn(async move {
                        if let Err(e) = serve_connection(stream, &raft, &local).await {
                            warn!(%peer, error = %e, "closing controller connection");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off rather than spin.
                    warn!(error = %e, "controller listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<L: LocalSubmit>(
    mut stream: TcpStream,
    raft: &Raft,
    local: &L,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    while let Some(frame) = read_frame(&mut stream).await? {
        let request: RaftRequest = decode(&frame)?;
        let response = match request {
            RaftRequest::AppendEntries(rpc) => {
                RaftResponse::AppendEntries(raft.append_entries(rpc).await)
            }
            RaftRequest::Vote(rpc) => RaftResponse::Vote(raft.vote(rpc).await),
            RaftRequest::InstallSnapshot(rpc) => {
                RaftResponse::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            RaftRequest::Submit(request) => RaftResponse::Submit(
                local
                    .submit_here(request)
                    .await
                    .map_err(|e| WireError::from(&e)),
            ),
            RaftRequest::FetchImage { after, max_wait_ms } => {
                // Bounded, so a client cannot park a connection for ever.
                let wait = Duration::from_millis(max_wait_ms.min(30_000));
                let (leader, image) = local.image_after(after, wait).await;
                let snapshot = image
                    .map(|i| String::from_utf8(i.to_snapshot()))
                    .transpose()
                    .map_err(|e| invalid(format!("image is not UTF-8 JSON: {e}")))?;
                RaftResponse::Image { leader, snapshot }
            }
        };
        write_frame(&mut stream, &encode(&response)?).await?;
    }
    Ok(())
}

/// Sends one forwarded submission to the controller at `addr` on a connection of its own (so a
/// slow commit never holds up the raft RPCs on the shared peer connections) and waits up to
/// `ttl` for the leader's answer.
pub async fn forward_submit(
    addr: &str,
    request: ControllerRequest,
    ttl: Duration,
) -> crate::error::Result<ControllerReply> {
    use crate::error::BrokerError;
    let payload = encode(&RaftRequest::Submit(request))?;
    let exchange = async {
        let mut conn = TcpStream::connect(addr).await?;
        conn.set_nodelay(true)?;
        write_frame(&mut conn, &payload).await?;
        match read_frame(&mut conn).await? {
            Some(frame) => decode::<RaftResponse>(&frame),
            None => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "controller closed the connection",
            )),
        }
    };
    match tokio::time::timeout(ttl, exchange).await {
        Ok(Ok(RaftResponse::Submit(reply))) => reply.map_err(Into::into),
        Ok(Ok(_)) => Err(BrokerError::Quorum(format!(
            "controller at {addr} answered a submission with another kind of response"
        ))),
        Ok(Err(e)) => Err(BrokerError::Quorum(format!(
            "forwarding to the controller at {addr}: {e}"
        ))),
        Err(_) => Err(BrokerError::Quorum(format!(
            "no answer from the controller at {addr} within {ttl:?}"
        ))),
    }
}

/// Makes a `PeerClient` per peer from the address in the membership.
#[derive(Debug, Clone, Default)]
pub struct NetworkFactory;

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

pub struct PeerClient {
    target: u64,
    addr: String,
    conn: Option<TcpStream>,
}

/// Why a call failed, in the terms openraft reacts to: an unreachable peer is retried after a
/// backoff, a broken call at once.
enum Failure {
    Unreachable(io::Error),
    Network(io::Error),
    TooLarge,
}

fn rpc_error<E: Error>(failure: Failure) -> RPCError<u64, BasicNode, E> {
    match failure {
        Failure::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
        Failure::Network(e) => RPCError::Network(NetworkError::new(&e)),
        Failure::TooLarge => RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(1)),
    }
}

fn unexpected<E: Error>(what: &str) -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&invalid(format!(
        "peer answered a {what} request with another kind of response"
    ))))
}

impl PeerClient {
    async fn call(
        &mut self,
        request: &RaftRequest,
        ttl: Duration,
    ) -> Result<RaftResponse, Failure> {
        let payload = match encode(request) {
            Ok(p) => p,
            Err(_) => return Err(Failure::TooLarge),
        };
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let stream = tokio::time::timeout(ttl, TcpStream::connect(&self.addr))
                    .await
                    .map_err(|_| {
                        Failure::Unreachable(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("connecting to {} timed out", self.addr),
                        ))
                    })?
                    .map_err(Failure::Unreachable)?;
                stream.set_nodelay(true).map_err(Failure::Unreachable)?;
                stream
            }
        };
        let exchange = async {
            write_frame(&mut conn, &payload).await?;
            match read_frame(&mut conn).await? {
                Some(frame) => decode::<RaftResponse>(&frame),
                None => Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "peer closed the connection",
                )),
            }
        };
        match tokio::time::timeout(ttl, exchange).await {
            Ok(Ok(response)) => {
                // Only a connection that finished its exchange is in a known state to reuse.
                self.conn = Some(conn);
                Ok(response)
            }
            Ok(Err(e)) => {
                debug!(peer = self.target, addr = %self.addr, error = %e, "controller RPC failed");
                Err(Failure::Network(e))
            }
            Err(_) => Err(Failure::Network(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer from {} within {ttl:?}", self.addr),
            ))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let entries = rpc.entries.len() as u64;
        let request = RaftRequest::AppendEntries(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(RaftResponse::AppendEntries(Ok(r))) => Ok(r),
            Ok(RaftResponse::AppendEntries(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(unexpected("append-entries")),
            // Ask openraft to send fewer entries at a time.
            Err(Failure::TooLarge) if entries > 1 => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(entries / 2),
            )),
            Err(f) => Err(rpc_error(f)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let request = RaftRequest::InstallSnapshot(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(RaftResponse::InstallSnapshot(Ok(r))) => Ok(r),
            Ok(RaftResponse::InstallSnapshot(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(unexpected("install-snapshot")),
            Err(f) => Err(rpc_error(f)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let request = RaftRequest::Vote(rpc);
        match self.call(&request, option.hard_ttl()).await {
            Ok(RaftResponse::Vote(Ok(r))) => Ok(r),
            Ok(RaftResponse::Vote(Err(e))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(unexpected("vote")),
            Err(f) => Err(rpc_error(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LeaderId, LogId, Vote};

    #[tokio::test]
    async fn frames_round_trip_and_bad_ones_are_clear_errors() {
        let request = RaftRequest::Vote(VoteRequest::new(
            Vote::new(3, 1),
            Some(LogId::new(CommittedLeaderId::new(2, 1), 7)),
        ));
        let mut wire = Vec::new();
        write_frame(&mut wire, &encode(&request).unwrap())
            .await
            .unwrap();
        let mut reader = &wire[..];
        let frame = read_frame(&mut reader).await.unwrap().unwrap();
        match decode::<RaftRequest>(&frame).unwrap() {
            RaftRequest::Vote(v) => {
                assert_eq!(v.vote, Vote::new(3, 1));
                assert_eq!(v.vote.leader_id(), &LeaderId::new(3, 1));
            }
            other => panic!("{other:?}"),
        }
        // Clean end of stream between frames.
        assert!(read_frame(&mut reader).await.unwrap().is_none());

        let too_long = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        let err = read_frame(&mut &too_long[..]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("exceeds"), "{err}");

        let cut = [0, 0, 0, 10, b'{'];
        let err = read_frame(&mut &cut[..]).await.unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");

        let err = decode::<RaftRequest>(b"{\"Vote\": 12}").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("undecodable"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_reported_as_such() {
        // A port that was free a moment ago: nothing listens there.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut client = NetworkFactory
            .new_client(2, &BasicNode::new(addr.to_string()))
            .await;
        let err = client
            .vote(
                VoteRequest::new(Vote::new(1, 1), None),
                RPCOption::new(Duration::from_millis(500)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
    }
}
