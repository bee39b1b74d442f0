//! Listening: the accept loop of the one HTTP listener (the pages, `/mcp`, `/healthz`,
//! `/metrics`), bounded so that clients that never finish a request cannot take its descriptors.
//!
//! Owns the wiring of the bounds: the caps on open connections ([`caps`]), the time a request's
//! headers may take ([`conn`]'s watchdog, `header_timeout`), hyper's header timer as the idle
//! keep-alive timeout (`idle_timeout`: hyper starts it when a connection goes idle), and the
//! time a request's whole body may take (the watchdog again, `body_timeout`, from the headers to
//! the body's end: a body dripped a byte at a time is cut off). It must never read or answer a
//! request itself, and never bound how long a response takes: an agent waiting for an approval
//! holds its request open on purpose.

mod caps;
mod conn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::config::limits::Limits;

/// Descriptors kept free beyond the connection cap: the ledger, tool servers, mail, reloads.
const RESERVE: u64 = 64;

/// The connection caps and timeouts a listener serves with.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
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
            idle_timeout: limits.idle_timeout,
            body_timeout: limits.body_timeout,
            connections,
            per_address: limits.connections_per_address.min(connections),
        }
    }
}

/// Serve `router` on a bound listener until the process ends.
pub async fn serve(listener: TcpListener, router: Router, bounds: Bounds) -> std::io::Result<()> {
    let service = TowerToHyperService::new(router);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // hyper's header timer starts when a connection goes idle: the idle keep-alive timeout
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.idle_timeout);
    let open = Arc::new(Mutex::new(caps::Open::default()));
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
        let slot = match caps::claim_slot(&open, &bounds, peer.ip()) {
            Ok((slot, evicted)) => {
                // the next accept waits for the closed connection's descriptor to be given back,
                // so a burst of newcomers never holds more descriptors than the cap (and one)
                if let Some(gone) = evicted {
                    let _ = tokio::time::timeout(Duration::from_secs(1), gone.cancelled()).await;
                }
                slot
            }
            Err(cap) => {
                // closed before a byte is read; said once, then every 1,000th time
                crate::metrics::global().refused(cap);
                if refused.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                    tracing::warn!(
                        address = %peer.ip(),
                        cap,
                        connections = bounds.connections,
                        per_address = bounds.per_address,
                        "a connection over a [limits] cap was closed (every open one has a request in flight)"
                    );
                }
                continue;
            }
        };
        // without TCP_NODELAY, small responses wait out Nagle and delayed ACKs (~40 ms a call)
        let _ = stream.set_nodelay(true);
        let inner = service.clone();
        let activity = slot.activity.clone();
        // a request is in flight from its headers to the end of its response body
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            activity.request();
            let done = conn::Responded(activity.clone());
            // the body's reading ends when it is read to its end or dropped
            let read = conn::BodyRead(activity.clone());
            let req = req.map(move |body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    let _ = &read;
                    frame
                }))
            });
            let response = hyper::service::Service::call(&inner, req);
            async move {
                let r = response.await?;
                Ok::<_, std::convert::Infallible>(r.map(move |body| {
                    axum::body::Body::new(body.map_frame(move |frame| {
                        let _ = &done;
                        frame
                    }))
                }))
            }
        });
        let io = conn::Watched {
            io: stream,
            activity: slot.activity.clone(),
        };
        let connection = http1
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades();
        let (header_timeout, body_timeout) = (bounds.header_timeout, bounds.body_timeout);
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended");
                },
                () = slot.close.cancelled() => {
                    tracing::debug!("a connection without a request in flight was closed for a newcomer");
                }
                late = conn::watchdog(slot.activity.clone(), header_timeout, body_timeout) => {
                    crate::metrics::global().refused(match late {
                        conn::Late::Headers => "header_timeout",
                        conn::Late::Body => "body_timeout",
                    });
                    tracing::debug!(?late, "a connection took longer than [limits] header_timeout or body_timeout to send a request");
                }
            }
            drop(slot);
        });
    }
}
