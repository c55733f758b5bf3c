//! `FaultProxy`: a TCP forwarder placed between two processes so a test can cut the link the
//! way a network partition does (bytes stop arriving; nothing is refused) and heal it again.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    target: SocketAddr,
    addr: SocketAddr,
    cut: AtomicBool,
    closing: AtomicBool,
    /// Both ends of every forwarded connection, to end them on heal and on drop.
    streams: Mutex<Vec<TcpStream>>,
    /// The node this proxy stands in front of, and the cluster-wide isolation it obeys.
    isolation: Option<(i32, Isolation)>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards each connection to `target`.
    pub fn start(target: SocketAddr) -> FaultProxy {
        FaultProxy::start_inner(target, None)
    }

    /// As `start`, for a proxy standing in front of a port of node `node`: it drops traffic
    /// while `isolation` isolates `node`, or the node that opened the connection.
    pub fn start_isolating(target: SocketAddr, node: i32, isolation: &Isolation) -> FaultProxy {
        FaultProxy::start_inner(target, Some((node, isolation.clone())))
    }

    fn start_inner(target: SocketAddr, isolation: Option<(i32, Isolation)>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            addr,
            cut: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
            isolation,
        });
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                if accept_shared.closing.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = incoming else { continue };
                // Each on its own thread: finding the opener and connecting onwards take time,
                // and a busy machine must not make connections queue behind one another (late
                // answers become timeouts, and timeouts more reconnections).
                let shared = accept_shared.clone();
                std::thread::spawn(move || shared.forward(client));
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
        // A connection from a node is told apart by the process that opened it, which has to
        // be looked up while that socket is still open: now.
        let blackholed = match &self.isolation {
            Some((node, isolation)) => isolation.register(*node, &client, self.addr),
            None => Arc::new(AtomicBool::new(false)),
        };
        // While cut, a new connection is accepted and then left hanging, never forwarded.
        let server = if self.cut.load(Ordering::SeqCst) || blackholed.load(Ordering::SeqCst) {
            None
        } else {
            TcpStream::connect_timeout(&self.target, Duration::from_secs(5)).ok()
        };
        let Some(server) = server else {
            self.remember(&client);
            return;
        };
        if let Some((_, isolation)) = &self.isolation {
            isolation.add_stream(&blackholed, &server);
        }
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
            let blackholed = blackholed.clone();
            std::thread::spawn(move || shared.pump(from, to, &blackholed));
        }
    }

    fn pump(&self, mut from: TcpStream, mut to: TcpStream, blackholed: &AtomicBool) {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if self.cut.load(Ordering::SeqCst) || blackholed.load(Ordering::SeqCst) {
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

/// Which node, if any, is cut off from the rest of a cluster, shared by every proxy in front
/// of the cluster's nodes. Connections from processes that are not nodes (test clients) are
/// dropped only when they go to the isolated node.
///
/// A cluster's nodes all see one address per node (the Raft membership holds one per voter, and
/// followers fetch from the leader's advertised listener), so proxies cannot be placed per pair
/// of nodes by configuration. Instead every node advertises proxies in front of its own ports,
/// and each proxy finds which node opened an incoming connection: the peer's port in
/// /proc/net/tcp gives the opener's socket inode, and the node whose /proc/<pid>/fd holds that
/// socket opened it.
#[derive(Clone, Default)]
pub struct Isolation {
    state: Arc<Mutex<IsolationState>>,
}

#[derive(Default)]
struct IsolationState {
    pids: BTreeMap<i32, u32>,
    isolated: Option<i32>,
    links: Vec<Link>,
}

/// One connection accepted by one of the proxies.
struct Link {
    /// The node whose proxy accepted it.
    to: i32,
    /// The node process that opened it; None for other processes, or not known yet (a node
    /// that connected before its pid was registered is looked up again when isolating).
    from: Option<i32>,
    /// The opener's address and the proxy's, to find the opener's socket.
    peer: SocketAddr,
    proxy: SocketAddr,
    blackholed: Arc<AtomicBool>,
    /// The accepted stream and, once forwarded, the one to the node.
    streams: Vec<TcpStream>,
}

impl Isolation {
    pub fn new() -> Isolation {
        Isolation::default()
    }

    /// Node `id` now runs as process `pid` (again after each restart).
    pub fn set_pid(&self, id: i32, pid: u32) {
        self.state.lock().unwrap().pids.insert(id, pid);
    }

    /// Cuts node `id` off: every byte on the connections it opened and on every connection to
    /// its proxies, open or future, is dropped (not refused) until `heal`. Any node isolated
    /// before is healed first.
    pub fn isolate(&self, id: i32) {
        self.heal();
        let mut state = self.state.lock().unwrap();
        let pids = state.pids.clone();
        state.isolated = Some(id);
        for link in &mut state.links {
            if link.from.is_none() {
                link.from = opener(link.peer, link.proxy, &pids);
            }
            if link.to == id || link.from == Some(id) {
                link.blackholed.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Ends the isolation: the connections that were blackholed are closed (their streams have
    /// holes), and new ones pass.
    pub fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.isolated = None;
        state.links.retain(|link| {
            if link.blackholed.load(Ordering::SeqCst) {
                for s in &link.streams {
                    let _ = s.shutdown(Shutdown::Both);
                }
                return false;
            }
            true
        });
    }

    pub fn isolated(&self) -> Option<i32> {
        self.state.lock().unwrap().isolated
    }

    /// Records a connection accepted by node `to`'s proxy at `proxy`; the flag it returns says
    /// whether the connection's traffic is to be dropped, now and whenever it changes.
    fn register(&self, to: i32, client: &TcpStream, proxy: SocketAddr) -> Arc<AtomicBool> {
        let peer = client.peer_addr().ok();
        // Looked up now, while the socket surely exists, even with no node isolated: `isolate`
        // must flag a node's open connections at once, not search /proc for each of them.
        let pids = self.state.lock().unwrap().pids.clone();
        let from = peer.and_then(|peer| opener(peer, proxy, &pids));
        let mut state = self.state.lock().unwrap();
        let blackholed = Arc::new(AtomicBool::new(
            state
                .isolated
                .is_some_and(|id| id == to || from == Some(id)),
        ));
        state.links.push(Link {
            to,
            from,
            peer: peer.unwrap_or(proxy),
            proxy,
            blackholed: blackholed.clone(),
            streams: client.try_clone().into_iter().collect(),
        });
        blackholed
    }

    /// Adds the stream to the node to the link whose flag is `blackholed`.
    fn add_stream(&self, blackholed: &Arc<AtomicBool>, stream: &TcpStream) {
        let mut state = self.state.lock().unwrap();
        if let Some(link) = state
            .links
            .iter_mut()
            .find(|l| Arc::ptr_eq(&l.blackholed, blackholed))
        {
            link.streams.extend(stream.try_clone());
        }
    }
}

/// The node among `pids` whose process holds the socket connected from `peer` to `proxy`.
fn opener(peer: SocketAddr, proxy: SocketAddr, pids: &BTreeMap<i32, u32>) -> Option<i32> {
    let inode = socket_inode(peer, proxy)?;
    let wanted = format!("socket:[{inode}]");
    pids.iter().find_map(|(&id, pid)| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
            .then_some(id)
    })
}

/// The inode of the TCP socket whose local address is `local` and remote address `remote`.
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 10
                    || proc_addr(fields[1]) != Some(local)
                    || proc_addr(fields[2]) != Some(remote)
                {
                    return None;
                }
                fields[9].parse().ok().filter(|&inode| inode != 0)
            })
        })
}

/// An address as /proc/net/tcp{,6} prints it: the address as native-endian 32-bit words in
/// hex, a colon, the port in hex. IPv4-mapped IPv6 addresses come back as IPv4.
fn proc_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word in 0..ip.len() / 8 {
        let w = u32::from_str_radix(ip.get(word * 8..word * 8 + 8)?, 16).ok()?;
        bytes.extend_from_slice(&w.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}
