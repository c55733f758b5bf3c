//! A broker's connection to another broker: requests answered over real TCP, and a peer that
//! is gone or silent turned into errors rather than hangs.

mod common;

use std::time::Duration;

use sluice_broker::replication::BrokerChannel;
use sluice_protocol::messages::{ApiVersionsRequest, MetadataRequest};

#[tokio::test]
async fn requests_are_answered_in_turn() {
    let broker = common::start(|_| {}).await;
    let mut channel =
        BrokerChannel::connect(&broker.addr.to_string(), "broker-2", Duration::from_secs(5))
            .await
            .unwrap();
    let versions = channel
        .call(3, &ApiVersionsRequest::default())
        .await
        .unwrap();
    assert_eq!(versions.error_code, 0);
    assert!(
        versions.api_keys.iter().any(|k| k.api_key == 1),
        "Fetch is served"
    );
    let metadata = channel.call(12, &MetadataRequest::default()).await.unwrap();
    assert_eq!(metadata.brokers.len(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn a_silent_peer_times_out_and_a_missing_one_is_refused() {
    // Accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let _held = tokio::spawn(async move {
        let (conn, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(conn);
    });
    let mut channel = BrokerChannel::connect(&addr, "broker-2", Duration::from_millis(300))
        .await
        .unwrap();
    let e = channel
        .call(3, &ApiVersionsRequest::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");

    // Nothing listens on a port just freed.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let e = BrokerChannel::connect(&addr, "broker-2", Duration::from_secs(2))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains(&addr), "{e}");
}
