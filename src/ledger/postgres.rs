//! The ledger in PostgreSQL, for several replicas sharing one chain and one approval queue.
//!
//! Owns the connections (the synchronous `postgres` client runs only on this module's own
//! threads; a caller waits for its round trip, as for a redb read), the embedded migrations
//! (`postgres/migrations`, refinery), reads,
//! the replicas' heartbeats, and the approval notifications (LISTEN/NOTIFY). The writer's commit
//! is in [`commit`]. It holds the same bytes as the redb file; it must never decide anything, and
//! never acknowledge a row before PostgreSQL has committed it.
//!
//! A lost connection is dropped and made again on next use, so a replica recovers from a
//! database restart without a restart of its own.

mod backend;
mod commit;
mod copy;
mod listen;
mod replicas;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use postgres::{Client, NoTls};

pub(crate) use backend::open;
use replicas::claim;

use super::backend::Heads;
use super::error::{LedgerError, storage};
use super::schema::Table;

refinery::embed_migrations!("src/ledger/postgres/migrations");

/// Reader threads (each with its own connection).
const READERS: usize = 4;
/// Rows read per round trip when streaming the chain.
const ROW_CHUNK: i64 = 5_000;
/// Rows as stored, many in one statement (`$1` seqs, `$2` bytes): the writer's and the copy's.
const INSERT_ROWS: &str =
    "INSERT INTO airlock_rows (seq, data) SELECT * FROM unnest($1::bigint[], $2::bytea[])";
/// Serialises migrations between replicas starting at once.
const MIGRATION_LOCK: i64 = 0x0061_6972_6c6f_636b; // "airlock"

/// Where the database is: the URL as configured (never with a password) and the environment
/// variable holding the password, if one is needed.
#[derive(Debug, Clone, PartialEq)]
pub struct PgTarget {
    pub url: String,
    pub password_env: Option<String>,
    /// The replica's name, for a serving gate (`None` for the CLI's readers): the same name after
    /// a restart lets a replica take back its own unfinished work at once.
    pub replica: Option<String>,
}

impl PgTarget {
    /// The same database for a command that only reads or copies: it takes no replica's name.
    pub fn reader(&self) -> PgTarget {
        PgTarget {
            replica: None,
            ..self.clone()
        }
    }

    /// A usable URL without a password in it.
    pub fn check_url(url: &str) -> Result<(), String> {
        let c = postgres::Config::from_str(url)
            .map_err(|e| format!("`{url}` is not a PostgreSQL connection URL: {e}"))?;
        if c.get_password().is_some() {
            return Err("the URL holds a password: name an environment variable holding it in `password_env` instead".into());
        }
        if c.get_dbname().is_none() {
            return Err(format!(
                "`{url}` names no database (postgres://USER@HOST:PORT/DATABASE)"
            ));
        }
        Ok(())
    }

    fn config(&self) -> Result<postgres::Config, String> {
        let mut c = postgres::Config::from_str(&self.url).map_err(|e| e.to_string())?;
        if let Some(var) = &self.password_env {
            let p = std::env::var(var).map_err(|_| {
                format!("the database password variable `{var}` ([store] password_env) is not set")
            })?;
            c.password(p);
        }
        c.connect_timeout(Duration::from_secs(5));
        c.keepalives_idle(Duration::from_secs(10));
        // a cut-off connection must not hold the head lock for long: fail, and fail closed
        c.tcp_user_timeout(Duration::from_secs(15));
        let ours = "-c statement_timeout=30s -c lock_timeout=30s -c idle_in_transaction_session_timeout=60s";
        let options = match c.get_options() {
            Some(theirs) => format!("{theirs} {ours}"),
            None => ours.to_string(),
        };
        c.options(&options);
        c.application_name("airlock");
        Ok(c)
    }
}

type Job = Box<dyn FnOnce(&mut Option<Client>) + Send>;

/// A PostgreSQL ledger: its connection settings and a small pool of reader threads.
struct Pg {
    name: PathBuf,
    config: postgres::Config,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// This process's replica name: the configured one if no live process holds it, else a
    /// fresh one.
    replica: String,
    /// The connection holding the advisory lock on the replica's name while the process lives
    /// (PostgreSQL releases it when the process dies, with its connections).
    holder: Mutex<Option<Client>>,
    /// Whether this process serves under its configured name (and so must keep its lock).
    named: bool,
}

impl Pg {
    /// Connect, bring the schema up to date (refusing one newer than this build knows), and
    /// start the readers.
    fn open(target: &PgTarget) -> Result<Arc<Pg>, LedgerError> {
        let name = PathBuf::from(&target.url);
        let config = target.config().map_err(|e| storage(&name, e))?;
        // On a thread of its own: the synchronous client must not run on an async runtime's.
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut client = config
                    .connect(NoTls)
                    .map_err(|e| storage(&name, describe(&e)))?;
                migrate(&mut client, &name)
            })
            .join()
            .unwrap_or_else(|_| Err(storage(&name, "the migration thread panicked")))
        })?;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..READERS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("airlock-pg-read-{i}"))
                .spawn(move || {
                    let mut client = None;
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(&mut client),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| storage(&name, e))?;
        }
        let fresh = || uuid::Uuid::new_v4().to_string();
        let (replica, holder) = match &target.replica {
            None => (fresh(), None),
            Some(wanted) => match std::thread::scope(|s| {
                s.spawn(|| claim(&config, wanted))
                    .join()
                    .unwrap_or_else(|_| Err("the claim thread panicked".into()))
            }) {
                Ok(Some(client)) => (wanted.clone(), Some(client)),
                Ok(None) => {
                    let other = format!("{wanted}~{}", &fresh()[..8]);
                    tracing::warn!(replica = %wanted, now = %other, "another live process serves as this replica; serving under a new name");
                    (other, None)
                }
                Err(e) => return Err(storage(&name, e)),
            },
        };
        Ok(Arc::new(Pg {
            name,
            config,
            jobs: Mutex::new(Some(tx)),
            replica,
            named: holder.is_some(),
            holder: Mutex::new(holder),
        }))
    }

    fn name(&self) -> &Path {
        &self.name
    }

    fn replica(&self) -> &str {
        &self.replica
    }

    fn connect(&self) -> Result<Client, postgres::Error> {
        self.config.connect(NoTls)
    }

    /// Run a read `f` on a reader thread's connection and wait for it. A connection found lost
    /// (the database restarted) is made again and `f` run once more on it.
    pub(super) fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, LedgerError> {
        self.run(2, f)
    }

    /// Run a write `f` the same way, once: after a lost connection it may have committed.
    pub(super) fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, LedgerError> {
        self.run(1, f)
    }

    fn run<T: Send + 'static>(
        &self,
        tries: usize,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let (reply, wait) = mpsc::channel();
        let config = self.config.clone();
        let job: Job = Box::new(move |slot: &mut Option<Client>| {
            let mut result = None;
            for _ in 0..tries {
                if slot.as_ref().is_none_or(Client::is_closed) {
                    *slot = None;
                    match config.connect(NoTls) {
                        Ok(c) => *slot = Some(c),
                        Err(e) => {
                            result = Some(Err(e));
                            break;
                        }
                    }
                }
                let Some(client) = slot.as_mut() else { break };
                let r = f(client);
                let gone = r.as_ref().is_err_and(lost);
                if gone || client.is_closed() {
                    *slot = None;
                }
                result = Some(r);
                if !gone {
                    break;
                }
            }
            if let Some(r) = result {
                let _ = reply.send(r);
            }
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            return Err(storage(&self.name, "the database readers have stopped"));
        }
        wait.recv()
            .map_err(|_| storage(&self.name, "a database reader stopped"))?
            .map_err(|e| storage(&self.name, describe(&e)))
    }

    fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let (t, k, _) = table.sql();
        let v = table.sql_read();
        let sql = format!("SELECT {v} FROM {t} WHERE {k} = $1");
        let key = key.to_string();
        self.read(move |c| Ok(c.query_opt(&sql, &[&key])?.map(|r| r.get(0))))
    }

    fn scan(&self, table: Table) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
        let (t, k, _) = table.sql();
        let v = table.sql_read();
        let sql = format!("SELECT {k}, {v} FROM {t} ORDER BY {k} COLLATE \"C\"");
        self.read(move |c| {
            Ok(c.query(&sql, &[])?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    /// The chain in order, read in chunks, until `each` returns false.
    fn rows(&self, each: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<(), LedgerError> {
        let mut after = 0i64;
        loop {
            let from = after;
            let chunk: Vec<(i64, Vec<u8>)> = self.read(move |c| {
                Ok(c.query(
                    "SELECT seq, data FROM airlock_rows WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&from, &ROW_CHUNK],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
            })?;
            let Some(last) = chunk.last().map(|(s, _)| *s) else {
                return Ok(());
            };
            for (seq, data) in &chunk {
                if !each(u64::try_from(*seq).unwrap_or(0), data) {
                    return Ok(());
                }
            }
            after = last;
        }
    }

    /// The recorded head, its signature and the last row, in one statement (one snapshot:
    /// replicas may be committing).
    fn heads(&self) -> Result<Heads, LedgerError> {
        self.read(|c| {
            let r = c.query_one(
                "SELECT (SELECT convert_from(value, 'UTF8') FROM airlock_meta WHERE key = 'head'), \
                        (SELECT convert_from(value, 'UTF8') FROM airlock_meta WHERE key = 'head_sig'), \
                        last.seq, last.data \
                 FROM (SELECT 1) AS one \
                 LEFT JOIN LATERAL (SELECT seq, data FROM airlock_rows ORDER BY seq DESC LIMIT 1) AS last ON true",
                &[],
            )?;
            let seq: Option<i64> = r.get(2);
            let data: Option<Vec<u8>> = r.get(3);
            Ok(Heads {
                head: r.get(0),
                sig: r.get(1),
                last: seq
                    .zip(data)
                    .map(|(s, d)| (u64::try_from(s).unwrap_or(0), d)),
            })
        })
    }

    /// One row's stored bytes.
    fn row(&self, seq: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.read(move |c| {
            Ok(
                c.query_opt("SELECT data FROM airlock_rows WHERE seq = $1", &[&seq])?
                    .map(|r| r.get(0)),
            )
        })
    }

    /// Retention: remove rows up to `through` and record the tombstone, under the head lock.
    fn remove_prefix(&self, through: u64, tombstone: Vec<u8>) -> Result<(), LedgerError> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        self.write(move |c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "SELECT 1 FROM airlock_meta WHERE key = 'head' FOR UPDATE",
                &[],
            )?;
            tx.execute("DELETE FROM airlock_rows WHERE seq <= $1", &[&through])?;
            tx.execute(
                "INSERT INTO airlock_meta (key, value) VALUES ('pruned', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&tombstone],
            )?;
            tx.commit()
        })
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        // closing a synchronous client blocks on its own runtime: never on an async one's thread
        if let Some(holder) = self.holder.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = std::thread::spawn(move || drop(holder)).join();
        }
    }
}

/// Whether an error means the connection is gone (not a refusal by the server): then it is made
/// again on next use.
pub(super) fn lost(e: &postgres::Error) -> bool {
    // no server error (the socket went), or the server ending the session (FATAL: shut down,
    // terminated by an administrator)
    e.as_db_error()
        .is_none_or(|db| matches!(db.severity(), "FATAL" | "PANIC"))
}

/// A database error with its server-side detail.
pub(super) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Apply the embedded migrations, one replica at a time; refuse a schema newer than this build.
fn migrate(client: &mut Client, name: &Path) -> Result<(), LedgerError> {
    let fail = |e: postgres::Error| storage(name, describe(&e));
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(fail)?;
    let result = (|| {
        let known = migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        let exists: bool = client
            .query_one(
                "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
                &[],
            )
            .map_err(fail)?
            .get(0);
        if exists {
            let found: Option<i32> = client
                .query_one("SELECT max(version) FROM refinery_schema_history", &[])
                .map_err(fail)?
                .get(0);
            if let Some(found) = found.map(i64::from).filter(|f| *f > known) {
                return Err(LedgerError::Schema {
                    path: name.to_path_buf(),
                    found: found.to_string(),
                    known: format!(
                        "{known}; a newer Airlock migrated this database: run that version"
                    ),
                });
            }
        }
        migrations::runner()
            .run(client)
            .map_err(|e| storage(name, format!("migrating the database: {e}")))?;
        Ok(())
    })();
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result
}

#[cfg(test)]
mod tests {
    use super::PgTarget;

    #[test]
    fn the_password_comes_from_the_named_variable_and_its_absence_is_named() {
        let target = |var: &str| PgTarget {
            url: "postgres://airlock@127.0.0.1:1/airlock".into(),
            password_env: Some(var.into()),
            replica: None,
        };
        let err = target("AIRLOCK_TEST_NO_SUCH_PASSWORD_VAR")
            .config()
            .expect_err("unset");
        assert!(
            err.contains("AIRLOCK_TEST_NO_SUCH_PASSWORD_VAR") && err.contains("password_env"),
            "{err}"
        );
        // PATH is set everywhere: its value becomes the password, never part of the URL
        let c = target("PATH").config().expect("set");
        assert_eq!(
            c.get_password().map(<[u8]>::to_vec),
            std::env::var("PATH").ok().map(String::into_bytes)
        );
        assert_eq!(c.get_user(), Some("airlock"));
    }
}
