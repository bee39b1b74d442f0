//! Upgrades keep what was open: a ledger written before the open-approvals index (states only)
//! still has its pending approvals after the new gate starts on it, and is indexed from then on.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition, TableHandle};
use serde_json::json;

use crate::smtp::{Smtp, approval_id};
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

#[tokio::test]
async fn pending_approvals_of_a_ledger_from_before_the_index_survive_the_upgrade() {
    let Some(smtp) = Smtp::start() else { return };
    let w = World::approvals(
        smtp.port,
        r#"{ path = "approve", role = "finance", timeout = "2s", on_timeout = "deny" }"#,
    );
    let (agent, mut child) = w.killable_agent().await;
    let agent = Arc::new(agent);
    let call = {
        let a = agent.clone();
        tokio::spawn(async move {
            a.try_call(
                "refund_order",
                json!({"order_id": "A-1001", "amount_cents": 77, "reason": "upgrade"}),
            )
            .await
        })
    };
    let link = smtp
        .wait_for("ann@example.com", "refund_order", 1)
        .await
        .link();
    child.kill().await.expect("kill -9");
    assert!(call.await.expect("agent task").is_err());
    drop(agent);
    w.wait_for_ledger().await;
    let ledger = w.path("ledger.redb");
    strip_index(&ledger);
    assert!(!indexed(&ledger));
    // its clock runs out while the gate is down: only a rebuilt index re-arms it at the start
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let (agent2, _child2) = w.killable_agent().await;
    let outcome = agent2
        .status_until(
            &approval_id(&link),
            "No decision before the approval expired",
        )
        .await;
    assert!(
        outcome.contains("No decision before the approval expired"),
        "{outcome}"
    );
    agent2.close().await;
    let rows = w.ledger_rows().await;
    assert_eq!(rows.iter().filter(|r| r["kind"] == "timeout").count(), 1);
    assert!(indexed(&ledger), "the upgraded ledger is indexed");
}
