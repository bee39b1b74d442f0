//! Upgrades keep what was open: a ledger written before the open-approvals index (states only)
//! still has its pending approvals after the new gate starts on it, and is indexed from then on.

use redb::{Database, ReadableDatabase, TableDefinition, TableHandle};
use serde_json::json;

use crate::approvals::{expires_after_restart, killed_while_pending};
use crate::smtp::Smtp;
use crate::support::World;

const OPEN: TableDefinition<&str, &[u8]> = TableDefinition::new("open_approvals");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Make the file look as an older airlock left it: no index table, no mark.
fn strip_index(path: &std::path::Path) {
    let db = Database::create(path).expect("ledger opens");
    let tx = db.begin_write().expect("write");
    assert!(tx.delete_table(OPEN).expect("delete"), "the index existed");
    tx.open_table(META)
        .expect("meta")
        .remove("approvals_indexed")
        .expect("unmark");
    tx.commit().expect("commit");
}

fn indexed(path: &std::path::Path) -> bool {
    let db = Database::create(path).expect("ledger opens");
    let tx = db.begin_read().expect("read");
    let has_table = tx
        .list_tables()
        .expect("tables")
        .any(|t| t.name() == "open_approvals");
    let marked = tx
        .open_table(META)
        .expect("meta")
        .get("approvals_indexed")
        .expect("get")
        .is_some();
    has_table && marked
}

// Only in the redb suite (main.rs): PostgreSQL ledgers start with the index (migration V1), so
// there is no older format to upgrade from.
#[ignore = "needs aiosmtpd; scripts/test runs it"]
#[tokio::test]
async fn pending_approvals_of_a_ledger_from_before_the_index_survive_the_upgrade() {
    let smtp = Smtp::start();
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "2s", on_timeout = "deny" }"#,
    );
    let link = killed_while_pending(
        &w,
        &smtp,
        json!({"order_id": "A-1001", "amount_cents": 77, "reason": "upgrade"}),
    )
    .await;
    w.wait_for_ledger().await;
    let ledger = w.path("ledger.redb");
    strip_index(&ledger);
    assert!(!indexed(&ledger));
    // its clock runs out while the gate is down: only a rebuilt index re-arms it at the start
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    expires_after_restart(&w, &link).await;
    assert!(indexed(&ledger), "the upgraded ledger is indexed");
}
