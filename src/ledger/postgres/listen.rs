//! Approval changes pushed between replicas: every commit that changes an approval notifies
//! channel `airlock_approvals` with `"<approval id> <replica>"` (ids hold no space; a replica's
//! name may); each replica listens on its own
//! connection and hands the other replicas' notices to its desk.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::super::backend::Notice;
use super::Pg;

/// The channel every approval change is announced on.
pub(super) const CHANNEL: &str = "airlock_approvals";

pub(super) fn start(pg: Arc<Pg>) -> UnboundedReceiver<Notice> {
    let (tx, rx) = unbounded_channel();
    let weak = Arc::downgrade(&pg);
    let me = pg.replica.clone();
    drop(pg);
    let spawned = std::thread::Builder::new()
        .name("airlock-pg-listen".into())
        .spawn(move || run(&weak, &me, &tx));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the approval listener");
    }
    rx
}

fn run(pg: &Weak<Pg>, me: &str, tx: &UnboundedSender<Notice>) {
    let mut first = true;
    loop {
        let Some(db) = pg.upgrade() else { return };
        let client = db.connect();
        drop(db);
        let mut client = match client.and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %super::describe(&e), "approval listener: database unreachable; retrying");
                std::thread::sleep(Duration::from_secs(1));
                if tx.is_closed() {
                    return;
                }
                continue;
            }
        };
        if !first && tx.send(Notice::Resync).is_err() {
            return;
        }
        first = false;
        loop {
            let next = {
                let mut notes = client.notifications();
                let mut waiting = notes.timeout_iter(Duration::from_millis(500));
                postgres::fallible_iterator::FallibleIterator::next(&mut waiting).transpose()
            };
            match next {
                Some(Ok(n)) => {
                    let Some((id, from)) = n.payload().split_once(' ') else {
                        continue;
                    };
                    if from != me && tx.send(Notice::Approval(id.to_string())).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %super::describe(&e), "approval listener disconnected; reconnecting");
                    break;
                }
                None => {
                    if tx.is_closed() || pg.strong_count() == 0 {
                        return;
                    }
                    if client.is_closed() {
                        break;
                    }
                }
            }
        }
    }
}
