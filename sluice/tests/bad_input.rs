//! Malformed and hostile frames against the real broker: each gets an error response or a closed
//! connection, the broker logs a line, stays up, and its memory stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::BrokerProcess;
use sluice_protocol::api::{encode_request_frame, ApiMessage};
use sluice_protocol::header::ResponseHeader;
use sluice_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

fn connect(broker: &BrokerProcess) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response frame, or `None` if the broker closed the connection.
fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    if s.read_exact(&mut size).is_err() {
        return None;
    }
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

fn api_versions(broker: &BrokerProcess, version: i16) -> ApiVersionsResponse {
    let mut s = connect(broker);
    let frame = encode_request_frame(7, version, Some("test"), &ApiVersionsRequest::default());
    s.write_all(&frame).unwrap();
    let mut body = read_frame(&mut s).expect("ApiVersions response");
    let header = ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(header.correlation_id, 7);
    // An unsupported version is answered in v0.
    let v = if ApiVersionsRequest::supports(version) {
        version
    } else {
        0
    };
    ApiVersionsResponse::decode_body(body, v).unwrap()
}

/// Sends raw bytes and expects the connection to be closed without a response.
fn expect_closed(broker: &BrokerProcess, bytes: &[u8]) {
    let mut s = connect(broker);
    s.write_all(bytes).unwrap();
    assert!(
        read_frame(&mut s).is_none(),
        "expected the broker to close the connection"
    );
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut b = (body.len() as i32).to_be_bytes().to_vec();
    b.extend_from_slice(body);
    b
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn hostile_frames_are_refused_and_the_broker_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[("socket.request.max.bytes", "1048576")]);
    let ok = api_versions(&broker, 3);
    assert_eq!(ok.error_code, 0);
    let rss_before = rss_kib(broker.pid());

    // A size larger than socket.request.max.bytes: closed before the body is buffered.
    expect_closed(&broker, &i32::MAX.to_be_bytes());
    expect_closed(&broker, &2_000_000i32.to_be_bytes());
    // A negative size.
    expect_closed(&broker, &(-5i32).to_be_bytes());
    // An unknown API key.
    expect_closed(&broker, &frame(&[0x7f, 0x00, 0, 0, 0, 0, 1, 0, 0xff, 0xff]));
    // A known API at a version we do not implement (Metadata v99).
    expect_closed(&broker, &frame(&[0, 3, 0, 99, 0, 0, 0, 1, 0xff, 0xff]));
    // A truncated body: Metadata v1 declaring one topic but ending.
    expect_closed(
        &broker,
        &frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 1]),
    );
    // Garbage.
    expect_closed(&broker, &frame(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]));
    // A huge declared array count in a tiny frame (Metadata v1 topics = 2^31-1).
    expect_closed(
        &broker,
        &frame(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]),
    );
    // The same in a flexible version: a compact array count near u32::MAX (Metadata v9).
    expect_closed(
        &broker,
        &frame(&[
            0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0x00, 0xfe, 0xff, 0xff, 0xff, 0x0f,
        ]),
    );
    // A huge tagged-field count in the request header (ApiVersions v3).
    expect_closed(
        &broker,
        &frame(&[
            0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0x0f,
        ]),
    );

    // A produce with a corrupt batch gets CORRUPT_MESSAGE, not a closed connection: covered by
    // the in-process request tests. Many oversized claims in a row must not grow memory.
    for _ in 0..200 {
        expect_closed(&broker, &50_000_000i32.to_be_bytes());
    }

    // An ApiVersions version from the future: answered in v0 with UNSUPPORTED_VERSION.
    let newer = api_versions(&broker, 99);
    assert_eq!(newer.error_code, 35);
    assert!(!newer.api_keys.is_empty());

    // Still serving, one log line per refusal, memory bounded.
    assert_eq!(api_versions(&broker, 3).error_code, 0);
    let refusals = common::log_lines(&broker, "closing connection").len();
    assert!(
        refusals >= 10,
        "expected a log line per refusal, got {refusals}:\n{}",
        broker.log()
    );
    let rss_after = rss_kib(broker.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[test]
fn a_slow_sender_of_a_large_frame_does_not_preallocate_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path(), &[]);
    let rss_before = rss_kib(broker.pid());
    // 50 connections each claim a 100 MB frame (just under the default limit) and send 10 bytes.
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut s = connect(&broker);
        let mut b = BytesMut::new();
        b.put_i32(100_000_000);
        b.put_slice(&[0u8; 10]);
        s.write_all(&b).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = rss_kib(broker.pid());
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB for 50 partial frames"
    );
    drop(held);
    assert_eq!(api_versions(&broker, 0).error_code, 0);
}
