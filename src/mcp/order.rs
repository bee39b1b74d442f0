//! Order: the progress and log messages a tool server sends before a call's result reach the
//! agent before that result.
//!
//! rmcp hands each incoming notification to a task of its own but passes a response straight
//! to the waiting request, so a log line sent just before the result can be handled after the
//! call has been answered and its route closed, and be lost. [`Ordered`] counts, on the
//! transport (where messages are still in order), the notifications the relay forwards; the
//! relay counts those it has handled; a finished call waits for the two to meet (briefly, never
//! for long). It must never hold a message back, only the result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::{JsonRpcMessage, ServerNotification};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::Notify;

/// Longest a result waits for the messages received before it.
const CATCH_UP_LIMIT: Duration = Duration::from_millis(250);

/// Per tool server: relayed notifications received, and handled.
#[derive(Default)]
pub struct Counts {
    received: AtomicU64,
    handled: AtomicU64,
    progress: Notify,
}

/// Marks one received notification handled when dropped (whatever the handler did with it).
pub struct Handling<'a>(&'a Counts);

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.0.handled.fetch_add(1, Ordering::AcqRel);
        self.0.progress.notify_waiters();
    }
}

impl Counts {
    /// The relay starts handling a notification counted on receipt.
    pub fn handling(&self) -> Handling<'_> {
        Handling(self)
    }

    /// Wait until every notification received so far has been handled (at most
    /// [`CATCH_UP_LIMIT`]). Called once a call's response has arrived: everything the server sent
    /// before it was received before it.
    pub async fn catch_up(&self) {
        let target = self.received.load(Ordering::Acquire);
        let deadline = tokio::time::Instant::now() + CATCH_UP_LIMIT;
        loop {
            let woken = self.progress.notified();
            if self.handled.load(Ordering::Acquire) >= target {
                return;
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return;
            }
        }
    }
}

/// Whether the relay handles (and so counts) this notification.
fn counted(n: &ServerNotification) -> bool {
    matches!(
        n,
        ServerNotification::ProgressNotification(_)
            | ServerNotification::LoggingMessageNotification(_)
    )
}

/// A tool server's transport that counts relayed notifications as they arrive.
pub struct Ordered<T> {
    inner: T,
    counts: Arc<Counts>,
}

impl<T> Ordered<T> {
    pub fn new(inner: T, counts: Arc<Counts>) -> Ordered<T> {
        Ordered { inner, counts }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Ordered<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await;
        if let Some(JsonRpcMessage::Notification(n)) = &message {
            if counted(&n.notification) {
                self.counts.received.fetch_add(1, Ordering::AcqRel);
            }
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use super::Counts;

    #[tokio::test]
    async fn a_result_waits_for_the_messages_received_before_it() {
        let counts = Arc::new(Counts::default());
        counts.received.fetch_add(2, Ordering::AcqRel);
        let handlers = {
            let c = counts.clone();
            tokio::spawn(async move {
                for _ in 0..2 {
                    tokio::task::yield_now().await;
                    let _handled = c.handling();
                }
            })
        };
        counts.catch_up().await;
        assert_eq!(counts.handled.load(Ordering::Acquire), 2);
        handlers.await.unwrap();
    }

    #[tokio::test]
    async fn a_message_never_handled_holds_the_result_only_briefly() {
        let counts = Counts::default();
        counts.received.fetch_add(1, Ordering::AcqRel);
        counts.catch_up().await;
        assert_eq!(
            counts.handled.load(Ordering::Acquire),
            0,
            "it gave up waiting"
        );
    }
}
