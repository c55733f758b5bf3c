//! The test harness's fault-injecting proxy: a cut drops traffic without refusing it and a heal
//! lets new connections through; an isolation cuts off one node (found by its process) alone.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::fault_proxy::{FaultProxy, Isolation};

/// An echo server on a free port.
fn echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn round_trip(stream: &mut TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(text)?;
    let mut back = vec![0u8; text.len()];
    stream.read_exact(&mut back)?;
    Ok(back)
}

#[test]
fn a_cut_drops_traffic_and_a_heal_restores_it() {
    let proxy = FaultProxy::start(echo());
    let mut conn = TcpStream::connect(proxy.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert_eq!(round_trip(&mut conn, b"hello").unwrap(), b"hello");

    proxy.cut();
    assert!(proxy.is_cut());
    // Neither refused nor answered: the read times out.
    let lost = round_trip(&mut conn, b"lost").unwrap_err();
    assert!(
        matches!(
            lost.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{lost:?}"
    );
    let mut during = TcpStream::connect(proxy.addr).unwrap();
    during
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(round_trip(&mut during, b"x").is_err());

    proxy.heal();
    let mut after = TcpStream::connect(proxy.addr).unwrap();
    after
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(round_trip(&mut after, b"again").unwrap(), b"again");
}

/// This test process stands in for node 1 (its connections are looked up by pid like a
/// node's); the echo servers stand for nodes 2 and 3 behind their proxies.
#[test]
fn isolating_a_node_drops_its_links_and_only_its_links() {
    let isolation = Isolation::new();
    isolation.set_pid(1, std::process::id());
    let to_2 = FaultProxy::start_isolating(echo(), 2, &isolation);
    let to_3 = FaultProxy::start_isolating(echo(), 3, &isolation);
    let connect = |proxy: &FaultProxy| {
        let conn = TcpStream::connect(proxy.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        conn
    };
    let mut old_2 = connect(&to_2);
    assert_eq!(round_trip(&mut old_2, b"before").unwrap(), b"before");

    // Node 1 cut off: its open and new connections both go quiet.
    isolation.isolate(1);
    assert_eq!(isolation.isolated(), Some(1));
    assert!(round_trip(&mut old_2, b"lost").is_err());
    assert!(round_trip(&mut connect(&to_3), b"lost").is_err());

    // Node 3 cut off instead: node 1 reaches node 2 again (on a new connection; the one that
    // lived through the isolation is closed), but not node 3.
    isolation.isolate(3);
    let mut buf = [0u8; 1];
    assert!(
        matches!(old_2.read(&mut buf), Ok(0) | Err(_)),
        "a blackholed connection is closed when its isolation ends"
    );
    assert_eq!(round_trip(&mut connect(&to_2), b"back").unwrap(), b"back");
    assert!(round_trip(&mut connect(&to_3), b"lost").is_err());

    isolation.heal();
    assert_eq!(isolation.isolated(), None);
    assert_eq!(
        round_trip(&mut connect(&to_3), b"healed").unwrap(),
        b"healed"
    );
}
