//! The client's connection and metadata layer against an in-process broker: version
//! negotiation, pipelining many requests on one connection, metadata and leaders, and what
//! happens when the broker goes away.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sluice_client::cluster::Lane;
use sluice_client::config::CommonConfig;
use sluice_client::{ClientConfig, ClientError, Cluster};
use sluice_protocol::messages::{ApiVersionsRequest, MetadataRequest};

fn cluster(addr: std::net::SocketAddr) -> Arc<Cluster> {
    let config = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("request.timeout.ms", "5000");
    Cluster::new(CommonConfig::from_config(&config, "test").unwrap(), true)
}

#[tokio::test]
async fn negotiates_pipelines_and_finds_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        common::start_broker(dir.path(), common::any_port(), |c| c.num_partitions = 3).await;
    let addr = broker.addr;
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

    broker.stop().await;
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
