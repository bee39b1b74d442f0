//! Where a test world's ledger lives: in the `integration_pg` suite, a database of its own on the
//! test PostgreSQL server; and how a test plays the intruder who edits a stored row.

use std::process::Command;

use super::World;

/// Whether this build of the suite keeps every ledger in PostgreSQL: the `integration_pg` test
/// target is this same suite, compiled again under that name (see Cargo.toml).
pub fn on_postgres() -> bool {
    postgres_server().is_some()
}

/// The test PostgreSQL server's admin URL, `$AIRLOCK_TEST_PG_URL` (`scripts/test` starts a
/// throwaway cluster and sets it). The `integration_pg` suite fails without one: it never runs
/// on redb while claiming PostgreSQL, and never starts a server it would leave running.
pub fn postgres_server() -> Option<&'static str> {
    static URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        if env!("CARGO_CRATE_NAME") != "integration_pg" {
            return None;
        }
        let url = std::env::var("AIRLOCK_TEST_PG_URL").unwrap_or_default();
        assert!(
            !url.is_empty(),
            "the integration_pg suite needs a PostgreSQL server: run `scripts/test`, or set \
             AIRLOCK_TEST_PG_URL (`.ci/postgres start` starts a throwaway cluster and prints it; \
             `.ci/postgres stop` removes it)"
        );
        Some(url)
    })
    .as_deref()
}

/// A fresh database on the test server; its URL.
pub fn new_database() -> String {
    let admin = postgres_server().expect("a PostgreSQL server");
    let name = format!("airlock_t_{}", uuid::Uuid::new_v4().simple());
    let out = Command::new("psql")
        .args([admin, "-qAt", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "create database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("admin URL {admin} names no database"),
    }
}

impl World {
    /// Edit a committed row in place, as an intruder with write access to the storage would:
    /// replace the first `from` in its stored bytes with `to` (same length).
    pub fn edit_row(&self, seq: u64, from: &[u8], to: &[u8]) {
        assert_eq!(from.len(), to.len());
        if let Some(url) = &self.database {
            let sql = format!(
                "UPDATE airlock_rows SET data = overlay(data placing '\\x{to}'::bytea \
                 from position('\\x{from}'::bytea in data) for {n}) \
                 WHERE seq = {seq} AND position('\\x{from}'::bytea in data) > 0",
                to = hex(to),
                from = hex(from),
                n = from.len()
            );
            let out = Command::new("psql")
                .args([url.as_str(), "-qAt", "-v", "ON_ERROR_STOP=1", "-c", &sql])
                .output()
                .expect("psql");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        use redb::ReadableTable as _;
        let db = redb::Database::create(self.path("ledger.redb")).expect("open");
        let table_def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("rows");
        let tx = db.begin_write().expect("tx");
        {
            let mut t = tx.open_table(table_def).expect("table");
            let old = t
                .get(seq)
                .expect("get")
                .map(|g| g.value().to_vec())
                .expect("the row");
            let at = old
                .windows(from.len())
                .position(|w| w == from)
                .expect("the bytes to edit in the row");
            let mut edited = old.clone();
            edited[at..at + to.len()].copy_from_slice(to);
            t.insert(seq, edited.as_slice()).expect("insert");
        }
        tx.commit().expect("commit");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
