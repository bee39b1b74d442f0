//! Listening: the accept loop of the one HTTP listener (the pages, `/mcp`, `/healthz`,
//! `/metrics`), bounded so that clients that never finish a request cannot take its descriptors.
//!
//! Owns the caps on open connections (per listener and per client address: a connection beyond a
//! cap is closed at once, before a byte is read), hyper's header-read timeout (which hyper also
//! starts when a kept-alive connection goes idle, so it ends idle connections too), and the
//! timeout between pieces of a request body (tower-http). It must never read or answer a request
//! itself, and never bound how long a response takes: an agent waiting for an approval holds its
//! request open on purpose.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
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

/// Open connections, in all and by client address, and those that have not yet sent a whole
/// request (the ones a newcomer may push out).
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Connection number (in order of arrival) → its address and how to close it, until its
    /// first request's headers are in.
    waiting: BTreeMap<u64, (IpAddr, CancellationToken)>,
    next: u64,
}

/// A connection's place under the caps, given back when it closes.
struct Slot {
    open: Arc<Mutex<Open>>,
    address: IpAddr,
    number: u64,
    close: CancellationToken,
}

impl Slot {
    /// Its first request's headers are in: it is no longer pushed out for a newcomer.
    fn served(&self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.waiting.remove(&self.number);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        open.waiting.remove(&self.number);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
        crate::metrics::global().connection(-1);
    }
}

/// A slot for a connection from `address`. At a cap, the oldest connection (of that address, at
/// its cap) that has not yet sent a whole request is closed to make room — so clients that never
/// finish their headers cannot keep an approver or a health check out —; when every connection
/// has been served, the newcomer is refused: the cap it would cross.
fn take(open: &Arc<Mutex<Open>>, bounds: &Bounds, address: IpAddr) -> Result<Slot, &'static str> {
    let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
    let mine = o.by_address.get(&address).copied().unwrap_or(0);
    let cap = if mine >= bounds.per_address {
        Some(("connection_per_address", Some(address)))
    } else if o.total >= bounds.connections {
        Some(("connection", None))
    } else {
        None
    };
    if let Some((cap, scope)) = cap {
        let oldest = o
            .waiting
            .iter()
            .find(|(_, (a, _))| scope.is_none_or(|s| s == *a))
            .map(|(n, _)| *n);
        let Some((_, close)) = oldest.and_then(|n| o.waiting.remove(&n)) else {
            return Err(cap);
        };
        // its slot is given back when its task ends, a moment from now
        close.cancel();
        crate::metrics::global().refused(&format!("{cap}_waiting"));
    }
    *o.by_address.entry(address).or_insert(0) += 1;
    o.total += 1;
    let number = o.next;
    o.next += 1;
    let close = CancellationToken::new();
    o.waiting.insert(number, (address, close.clone()));
    crate::metrics::global().connection(1);
    Ok(Slot {
        open: open.clone(),
        address,
        number,
        close,
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
            Ok(slot) => Arc::new(slot),
            Err(cap) => {
                // closed before a byte is read; said once, then every 1,000th time
                crate::metrics::global().refused(cap);
                if refused.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                    tracing::warn!(
                        address = %peer.ip(),
                        cap,
                        connections = bounds.connections,
                        per_address = bounds.per_address,
                        "a connection over a [limits] cap was closed (every open one has been served)"
                    );
                }
                continue;
            }
        };
        // without TCP_NODELAY, small responses wait out Nagle and delayed ACKs (~40 ms a call)
        let _ = stream.set_nodelay(true);
        let inner = service.clone();
        let marker = slot.clone();
        let svc = hyper::service::service_fn(move |req| {
            marker.served();
            hyper::service::Service::call(&inner, req)
        });
        let connection = http1
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended");
                },
                () = slot.close.cancelled() => {
                    tracing::debug!("a connection still sending its headers was closed for a newcomer");
                }
            }
            drop(slot);
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
    fn at_a_cap_the_oldest_connection_still_sending_headers_makes_room_and_served_ones_never_do() {
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
        let second = take(&open, &bounds, a).unwrap();
        // a's third: a's oldest that has not sent a request makes room
        let third = take(&open, &bounds, a).unwrap();
        assert!(first.close.is_cancelled() && !second.close.is_cancelled());
        drop(first);
        second.served();
        third.served();
        // every connection of a has been served: a's next is refused
        assert_eq!(
            take(&open, &bounds, a).err(),
            Some("connection_per_address")
        );
        let fourth = take(&open, &bounds, b).unwrap();
        // the listener is full: b's own waiting one makes room for b's next
        let fifth = take(&open, &bounds, b).unwrap();
        assert!(fourth.close.is_cancelled());
        drop(fourth);
        fifth.served();
        assert_eq!(take(&open, &bounds, b).err(), Some("connection"));
        drop(second);
        let _again = take(&open, &bounds, b).expect("the freed place");
        assert_eq!(open.lock().unwrap().total, 3);
        assert_eq!(open.lock().unwrap().by_address[&b], 2);
    }
}
