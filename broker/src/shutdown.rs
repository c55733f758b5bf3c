//! `Shutdown`: how a task learns the broker is stopping.
//! One watch channel is flipped once; every connection and background task holds a receiver.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new(rx: watch::Receiver<bool>) -> Shutdown {
        Shutdown { rx }
    }

    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|stopping| *stopping).await;
    }
}
