//! Replicas on one database: each holds an advisory lock on its name while it runs, beats every
//! second, and adopts (in one transaction, so exactly once) the work of a replica gone silent.

use std::time::Duration;

use postgres::{Client, NoTls};

use super::super::backend::Adopted;
use super::{LedgerError, Pg, describe};

impl Pg {
    /// Say this replica is alive, then adopt what replicas silent for longer than `dead_after`
    /// left: their open approvals (index entries) and their unsettled forwarded calls. Each dead
    /// replica is adopted by exactly one replica (its row is deleted in the adopting transaction).
    /// With `own`, also what this replica's previous run left (it holds its name's lock, so
    /// that run is over).
    pub(super) fn heartbeat(
        &self,
        dead_after: Duration,
        own: bool,
    ) -> Result<Adopted, LedgerError> {
        if !own {
            self.keep_name();
        }
        let me = self.replica.clone();
        let secs = dead_after.as_secs_f64();
        let own = own
            && self
                .holder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some();
        self.write(move |c| {
            c.execute(
                "INSERT INTO airlock_replicas (id, seen) VALUES ($1, now()) \
                 ON CONFLICT (id) DO UPDATE SET seen = now()",
                &[&me],
            )?;
            let mut tx = c.transaction()?;
            let dead: Vec<String> = tx
                .query(
                    "DELETE FROM airlock_replicas WHERE id IN (SELECT id FROM airlock_replicas \
                     WHERE id <> $1 AND seen < now() - make_interval(secs => $2) \
                     FOR UPDATE SKIP LOCKED) RETURNING id",
                    &[&me, &secs],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut dead = dead;
            if own {
                dead.push(me.clone());
            }
            if dead.is_empty() {
                tx.commit()?;
                return Ok(Adopted::default());
            }
            // the writer's lock order: the head first, then the rows it changes
            tx.execute(
                "SELECT 1 FROM airlock_meta WHERE key = 'head' FOR UPDATE",
                &[],
            )?;
            // every table with an owner: (key, value) of each row this replica adopts
            let mut adopt = |table: &str, key: &str, value: &str| {
                tx.query(
                    &format!(
                        "UPDATE {table} SET owner = $1 WHERE owner = ANY($2) RETURNING {key}, {value}"
                    ),
                    &[&me, &dead],
                )
                .map(|rows| {
                    rows.iter()
                        .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1)))
                        .collect::<Vec<_>>()
                })
            };
            let approvals = adopt("airlock_open_approvals", "id", "entry")?;
            let forwarded = adopt("airlock_forwarded", "call_id", "route")?;
            let held = adopt("airlock_held", "id", "state")?
                .into_iter()
                .map(|(_, state)| state)
                .collect();
            tx.commit()?;
            Ok(Adopted {
                replicas: dead,
                approvals,
                forwarded,
                held,
            })
        })
    }

    /// After a database restart the connection holding this replica's name is gone: take the
    /// name again (on a thread of its own: the client never runs on an async runtime's thread).
    fn keep_name(&self) {
        if !self.named {
            return;
        }
        let mut holder = self.holder.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = holder.as_mut() {
            let alive = std::thread::scope(|s| {
                s.spawn(|| client.is_valid(Duration::from_secs(2)).is_ok())
                    .join()
                    .unwrap_or(false)
            });
            if alive {
                return;
            }
        }
        if let Some(old) = holder.take() {
            let _ = std::thread::spawn(move || drop(old)).join();
        }
        let claimed = std::thread::scope(|s| {
            s.spawn(|| claim(&self.config, &self.replica))
                .join()
                .unwrap_or_else(|_| Err("the claim thread panicked".into()))
        });
        match claimed {
            Ok(Some(c)) => *holder = Some(c),
            Ok(None) => {
                tracing::error!(replica = %self.replica, "another process took this replica's name while the database was away")
            }
            Err(e) => {
                tracing::warn!(replica = %self.replica, error = %e, "cannot take this replica's name again yet")
            }
        }
    }

    /// Leave cleanly: mark this replica silent since forever, so another (or the next to
    /// start) adopts what it leaves open at its next heartbeat instead of after `dead_after`.
    pub(super) fn leave(&self) {
        let me = self.replica.clone();
        let _ = self.read(move |c| {
            c.execute(
                "UPDATE airlock_replicas SET seen = 'epoch' WHERE id = $1",
                &[&me],
            )
            .map(|_| ())
        });
    }
}

/// Take the advisory lock on a replica name on a connection of its own: `None` if a live
/// process holds it.
pub(super) fn claim(config: &postgres::Config, name: &str) -> Result<Option<Client>, String> {
    let mut client = config.connect(NoTls).map_err(|e| describe(&e))?;
    let key = format!("airlock.replica:{name}");
    let got: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .map_err(|e| describe(&e))?
        .get(0);
    Ok(got.then_some(client))
}
