//! `FaultProxy`: a TCP forwarder placed between two processes so a test can cut the link the
//! way a network partition does (bytes stop arriving; nothing is refused) and heal it again.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    target: SocketAddr,
    cut: AtomicBool,
    closing: AtomicBool,
    /// Both ends of every forwarded connection, to end them on heal and on drop.
    streams: Mutex<Vec<TcpStream>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards each connection to `target`.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            cut: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                if accept_shared.closing.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = incoming else { continue };
                accept_shared.forward(client);
            }
        });
        FaultProxy { addr, shared }
    }

    /// From now on nothing crosses, in either direction, on existing or new connections:
    /// what is sent is silently dropped, as on a partitioned network, so peers find out only
    /// through their own timeouts.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
    }

    /// Lets traffic through again. Connections that lived through the cut are closed (their
    /// byte streams have holes, and real TCP connections would have timed out meanwhile);
    /// peers reconnect.
    pub fn heal(&self) {
        self.shared.close_all();
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `closing`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        self.shared.close_all();
    }
}

impl Shared {
    fn forward(self: &Arc<Self>, client: TcpStream) {
        // While cut, a new connection is accepted and then left hanging, never forwarded.
        let server = if self.cut.load(Ordering::SeqCst) {
            None
        } else {
            TcpStream::connect_timeout(&self.target, Duration::from_secs(5)).ok()
        };
        let Some(server) = server else {
            self.remember(&client);
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        self.remember(&client);
        self.remember(&server);
        for (from, to) in [
            (client.try_clone(), server.try_clone()),
            (server.try_clone(), client.try_clone()),
        ] {
            let (Ok(from), Ok(to)) = (from, to) else {
                continue;
            };
            let shared = self.clone();
            std::thread::spawn(move || shared.pump(from, to));
        }
    }

    fn pump(&self, mut from: TcpStream, mut to: TcpStream) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if self.cut.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    fn remember(&self, stream: &TcpStream) {
        if let Ok(s) = stream.try_clone() {
            self.streams.lock().unwrap().push(s);
        }
    }

    fn close_all(&self) {
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}
