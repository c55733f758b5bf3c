//! The broker in-process on a free port, and a client that sends encoded requests over a real
//! TCP socket and decodes the answers: what the request-level tests share.
#![allow(dead_code)]

use bytes::BytesMut;
use sluice_broker::{Broker, BrokerConfig};
use sluice_protocol::api::{encode_request_frame, response_header_version, Request};
use sluice_protocol::header::ResponseHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TestBroker {
    pub addr: std::net::SocketAddr,
    /// The broker's partitions, to drive replication directly.
    pub replicas: std::sync::Arc<sluice_broker::replica_manager::ReplicaManager>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    pub dir: tempfile::TempDir,
}

pub async fn start(tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
    start_in(tempfile::tempdir().unwrap(), tweak).await
}

pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
    let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("logs"));
    tweak(&mut config);
    let broker = Broker::start(config).await.unwrap();
    let addr = broker.local_addr();
    let replicas = broker.replicas();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        broker
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    TestBroker {
        addr,
        replicas,
        stop: Some(tx),
        task,
        dir,
    }
}

impl TestBroker {
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }

    /// A clean shutdown that keeps the log dir, for a restart with other settings.
    pub async fn shut_down(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
        self.dir
    }

    /// A clean shutdown, then a new broker on the same log dir, with default settings.
    pub async fn restart(mut self) -> TestBroker {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
        start_in(self.dir, |_| {}).await
    }
}

pub struct Client {
    stream: TcpStream,
    next_id: i32,
}

impl Client {
    pub async fn connect(b: &TestBroker) -> Client {
        Client::connect_to(b.addr).await
    }

    pub async fn connect_to(addr: std::net::SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            next_id: 1,
        }
    }

    pub async fn send<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_request_frame(id, version, Some("test"), req);
        self.stream.write_all(&frame).await.unwrap();
        let size = self.stream.read_i32().await.unwrap();
        let mut body = BytesMut::zeroed(size as usize);
        self.stream.read_exact(&mut body).await.unwrap();
        let mut body = body.freeze();
        let header =
            ResponseHeader::decode(&mut body, response_header_version(R::API_KEY, version))
                .unwrap();
        assert_eq!(header.correlation_id, id);
        <R::Response as sluice_protocol::api::ApiMessage>::decode_body(body, version).unwrap()
    }
}
