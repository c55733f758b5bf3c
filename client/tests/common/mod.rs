//! A broker run in the test's process, on a real TCP port, for the client tests to talk to:
//! what every client test file shares.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use sluice_broker::{Broker, BrokerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct RunningBroker {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningBroker {
    /// A clean shutdown, waited for.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Starts a broker listening on `listen` (port 0: any free port) with its logs under `dir`,
/// after `tweak` has adjusted Kafka's default settings.
pub async fn start_broker(
    dir: &Path,
    listen: SocketAddr,
    tweak: impl FnOnce(&mut BrokerConfig),
) -> RunningBroker {
    let mut config = BrokerConfig::new(listen, dir.join("logs"));
    tweak(&mut config);
    let broker = Broker::start(config).await.unwrap();
    let addr = broker.local_addr();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        broker
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    RunningBroker { addr, stop, task }
}

/// Any free loopback port.
pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}
