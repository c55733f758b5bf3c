//! The test harness's fault-injecting proxy: it forwards both ways, a cut drops traffic
//! without refusing it (as a partitioned network does), and a heal lets new connections through.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::fault_proxy::FaultProxy;

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
