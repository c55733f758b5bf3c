//! Kafka Connect's REST API over the standalone `Worker`, with Kafka's paths and JSON shapes,
//! so existing Connect tooling (curl scripts, UIs) can drive Sluice unchanged.

mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::{ConnectError, Result};
use crate::runtime::Worker;

/// Binds the first of `listeners` (Kafka's `listeners` syntax, e.g. `http://:8083`) and serves
/// the API until `shutdown` completes. Returns the bound address, which matters for port 0.
pub async fn serve(
    worker: Arc<Worker>,
    listeners: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr> {
    let listener = listeners
        .split(',')
        .map(str::trim)
        .find(|l| !l.is_empty())
        // Kafka's default when the worker file leaves `listeners` unset.
        .unwrap_or("http://:8083");
    let target = bind_target(listener)?;
    let socket = tokio::net::TcpListener::bind(&target).await.map_err(|e| {
        ConnectError::Config(format!(
            "cannot listen on {listener} (listeners) for the REST API: {e}"
        ))
    })?;
    let addr = socket
        .local_addr()
        .map_err(|e| ConnectError::Config(format!("REST listener has no address: {e}")))?;
    let app = routes::router(worker, addr.to_string());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(socket, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the Connect REST server stopped");
        }
    });
    Ok(addr)
}

/// `http://host:port` to `host:port`; an empty host means every interface, as in Kafka.
fn bind_target(listener: &str) -> Result<String> {
    let bad = || {
        ConnectError::Config(format!(
            "listeners: {listener} is not of the form http://host:port"
        ))
    };
    let (scheme, rest) = listener.split_once("://").ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(ConnectError::Config(format!(
            "listeners: only http is supported, not {scheme} ({listener})"
        )));
    }
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_follow_kafka_syntax() {
        assert_eq!(bind_target("http://:8083").unwrap(), "0.0.0.0:8083");
        assert_eq!(bind_target("HTTP://127.0.0.1:0").unwrap(), "127.0.0.1:0");
        assert_eq!(bind_target("http://[::1]:80/").unwrap(), "[::1]:80");
        assert!(bind_target("https://:8443")
            .unwrap_err()
            .to_string()
            .contains("only http"));
        assert!(bind_target("localhost:8083").is_err());
        assert!(bind_target("http://:port").is_err());
    }
}
