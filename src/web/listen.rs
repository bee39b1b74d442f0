//! Listening: the accept loop of the one HTTP listener (the pages, `/mcp`, `/healthz`,
//! `/metrics`), bounded so that clients that never finish a request cannot take its descriptors.
//!
//! Owns the caps on open connections (per listener and per client address: a connection beyond a
//! cap is closed at once, before a byte is read), hyper's header-read timeout (which hyper also
//! starts when a kept-alive connection goes idle, so it ends idle connections too), and the
//! timeout between pieces of a request body (tower-http). It must never read or answer a request
//! itself, and never bound how long a response takes: an agent waiting for an approval holds its
//! request open on purpose.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeout;

use crate::config::limits::Limits;

/// Descriptors kept free beyond the connection cap: the ledger, tool servers, mail, reloads.
const RESERVE: u64 = 64;

/// The connection caps and timeouts a listener serves with.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub connections: usize,
    pub per_address: usize,
}

impl Bounds {
    /// The configured limits, the listener's cap lowered to what the process's descriptor limit
    /// allows (after raising its soft limit to the hard one) less a reserve.
    pub fn of(limits: &Limits) -> Bounds {
        let descriptors = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
        let allowed =
            usize::try_from(descriptors.saturating_sub(RESERVE).max(16)).unwrap_or(usize::MAX);
        let connections = limits.connections.min(allowed);
        if connections < limits.connections {
            tracing::warn!(
                configured = limits.connections,
                connections,
                descriptors,
                "[limits] connections lowered to what the descriptor limit (ulimit -n) allows"
            );
        }
        Bounds {
            header_timeout: limits.header_timeout,
            body_timeout: limits.body_timeout,
            connections,
            per_address: limits.connections_per_address.min(connections),
        }
    }
}

/// Open connections, in all and by client address.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place under the caps, given back when it closes.
struct Slot {
    open: Arc<Mutex<Open>>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
        crate::metrics::global().connection(-1);
    }
}

/// A slot for a connection from `address`, or the cap it would cross.
fn take(open: &Arc<Mutex<Open>>, bounds: &Bounds, address: IpAddr) -> Result<Slot, &'static str> {
    let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
    if o.total >= bounds.connections {
        return Err("connection");
    }
    let mine = o.by_address.entry(address).or_insert(0);
    if *mine >= bounds.per_address {
        return Err("connection_per_address");
    }
    *mine += 1;
    o.total += 1;
    crate::metrics::global().connection(1);
    Ok(Slot {
        open: open.clone(),
        address,
    })
}

/// Serve `router` on a bound listener until the process ends.
pub async fn serve(listener: TcpListener, router: Router, bounds: Bounds) -> std::io::Result<()> {
    let service = TowerToHyperService::new(RequestBodyTimeout::new(router, bounds.body_timeout));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_timeout);
    let open = Arc::new(Mutex::new(Open::default()));
    let refused = AtomicU64::new(0);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // out of descriptors, or a connection reset before it was accepted: go on
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match take(&open, &bounds, peer.ip()) {
            Ok(slot) => slot,
            Err(cap) => {
                // closed before a byte is read; said once, then every 1,000th time
                crate::metrics::global().refused(cap);
                if refused.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                    tracing::warn!(
                        address = %peer.ip(),
                        cap,
                        connections = bounds.connections,
                        per_address = bounds.per_address,
                        "a connection over a [limits] cap was closed"
                    );
                }
                continue;
            }
        };
        // without TCP_NODELAY, small responses wait out Nagle and delayed ACKs (~40 ms a call)
        let _ = stream.set_nodelay(true);
        let connection = http1
            .serve_connection(TokioIo::new(stream), service.clone())
            .with_upgrades();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::{Bounds, Open, take};

    #[test]
    fn a_connection_over_either_cap_is_refused_and_a_closed_one_frees_its_place() {
        let bounds = Bounds {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            connections: 3,
            per_address: 2,
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let (a, b) = (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        let first = take(&open, &bounds, a).unwrap();
        let _second = take(&open, &bounds, a).unwrap();
        assert_eq!(
            take(&open, &bounds, a).err(),
            Some("connection_per_address")
        );
        let _third = take(&open, &bounds, b).unwrap();
        assert_eq!(take(&open, &bounds, b).err(), Some("connection"));
        drop(first);
        let _again = take(&open, &bounds, a).expect("the freed place");
        assert_eq!(open.lock().unwrap().total, 3);
        assert_eq!(open.lock().unwrap().by_address[&a], 2);
    }
}
