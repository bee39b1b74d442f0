//! Stopping a forwarded call on its tool server: when the agent that waits for it cancels it, or
//! when the future awaiting it is dropped.
//!
//! Owns the `notifications/cancelled` Airlock sends a tool server for its own request, and the
//! grace during which that server's messages are not attributed to any agent (it may still be
//! running the call a moment). It must never cancel a request Airlock did not send, and never
//! cancel a call no agent waits on (an approved or released one carries no token).

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CancelledNotificationParam, RequestId};
use rmcp::service::{Peer, RoleClient};
use tokio_util::sync::CancellationToken;

use crate::mcp::relay::Relay;

/// Why the tool server is told to stop.
const REASON: &str = "the agent cancelled the call";

/// How long an abandoned call keeps its server's messages from being attributed to an agent.
const ABANDONED_GRACE: Duration = Duration::from_secs(5);

/// Tells a tool server to stop a request whose caller went away: at once with [`Abandon::fire`],
/// or when dropped while armed.
pub(super) struct Abandon(Option<Armed>);

struct Armed {
    peer: Peer<RoleClient>,
    id: RequestId,
    relay: Arc<Relay>,
    server: String,
}

impl Abandon {
    pub(super) fn arm(
        peer: Peer<RoleClient>,
        id: RequestId,
        relay: Arc<Relay>,
        server: &str,
    ) -> Self {
        Abandon(Some(Armed {
            peer,
            id,
            relay,
            server: server.to_string(),
        }))
    }

    /// The request was answered: nothing to stop.
    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }

    /// Send `notifications/cancelled` for the request (once; rmcp then answers the request
    /// locally as cancelled) and keep the server's messages unattributed for a while.
    pub(super) fn fire(&mut self) {
        let Some(Armed {
            peer,
            id,
            relay,
            server,
        }) = self.0.take()
        else {
            return;
        };
        let lingering = relay.unrouted(&server);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tracing::info!(server, request = %id, "telling the tool server to stop a call its agent cancelled");
                if let Err(e) = peer
                    .notify_cancelled(CancelledNotificationParam::new(
                        Some(id),
                        Some(REASON.into()),
                    ))
                    .await
                {
                    tracing::warn!(server, error = %e, "could not tell the tool server to stop a cancelled call");
                }
                tokio::time::sleep(ABANDONED_GRACE).await;
                drop(lingering);
            });
        }
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        self.fire();
    }
}

/// Resolves when the agent cancels; never without a token (no agent waits on the call).
pub(super) async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}
