//! The client's connection and metadata layer against an in-process broker: version
//! negotiation, pipelining many requests on one connection, metadata and leaders, and what
//! happens when the broker goes away.

use std::sync::Arc;
use std::time::Duration;

use sluice_broker::{Broker, BrokerConfig};
use sluice_client::cluster::Lane;
use sluice_client::config::CommonConfig;
use sluice_client::{ClientConfig, ClientError, Cluster};
use sluice_protocol::messages::{ApiVersionsRequest, MetadataRequest};

async fn broker(
    dir: &std::path::Path,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut config = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("logs"));
    config.num_partitions = 3;
    let broker = Broker::start(config).await.unwrap();
    let addr = broker.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        broker
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (addr, tx, task)
}

fn cluster(addr: std::net::SocketAddr) -> Arc<Cluster> {
    let config = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("request.timeout.ms", "5000");
    Cluster::new(CommonConfig::from_config(&config, "test").unwrap(), true)
}

#[tokio::test]
async fn negotiates_pipelines_and_finds_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop, task) = broker(dir.path()).await;
    let c = cluster(addr);
    let conn = c.any_connection().await.unwrap();
    assert_eq!(conn.version_for::<MetadataRequest>().unwrap(), 12);
    assert_eq!(conn.version_for::<ApiVersionsRequest>().unwrap(), 3);

    // 200 requests in flight on one connection come back, each to its caller.
    let mut calls = Vec::new();
    for _ in 0..200 {
        let conn = conn.clone();
        calls.push(tokio::spawn(async move {
            conn.send(
                &MetadataRequest {
                    topics: Some(vec![]),
                    ..Default::default()
                },
                Duration::from_secs(5),
            )
            .await
            .map(|r| r.brokers.len())
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), 1);
    }

    let t = c.topic("auto-created").await.unwrap();
    assert_eq!(t.partitions.len(), 3);
    let (leader, _) = c.leader("auto-created", 2).await.unwrap();
    assert_eq!(leader, 1);
    let to_leader = c.connection(leader, Lane::Fetch).await.unwrap();
    assert!(!to_leader.is_closed());
    let missing = c.leader("auto-created", 7).await.unwrap_err();
    assert!(missing.to_string().contains("no partition 7"), "{missing}");

    let _ = stop.send(());
    task.await.unwrap();
    // The broker is gone: waiting callers learn it instead of hanging.
    let e = conn
        .send(&MetadataRequest::default(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Disconnected(_)), "{e}");
}

#[tokio::test]
async fn unreachable_bootstrap_is_one_clear_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = cluster(free);
    let e = c.any_connection().await.unwrap_err();
    assert!(matches!(e, ClientError::NoBrokers(_)), "{e}");
    assert!(e.to_string().contains(&free.to_string()), "{e}");
}
