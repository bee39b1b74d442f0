//! The ledger in PostgreSQL (the `integration_pg` suite only): copied from redb and back, a
//! database that goes down and comes back, rate limits counted across replicas, and a schema
//! newer than this build.

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::agents::token;
use crate::replicas::{replica, session, verify};
use crate::smtp::{Smtp, free_port, get};
use crate::support::{self, World};

#[tokio::test]
async fn a_ledger_copied_to_postgres_and_back_keeps_every_row_and_its_head() {
    // a redb ledger with some history (this world's config without its [store])
    let w = World::demo();
    let config = std::fs::read_to_string(w.config()).expect("config");
    let (redb_config, _) = config.split_once("\n[store]").expect("a [store] section");
    w.write("airlock.toml", redb_config);
    let agent = w.agent().await;
    agent.call("echo", json!({"text": "copied"})).await;
    agent
        .call("search_orders", json!({"query": "A-1001"}))
        .await;
    agent.close().await;
    let original = w.ledger_rows().await;
    assert!(original.len() >= 5);
    let export = |w: &World| {
        let out = w.airlock(&["ledger", "export"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = export(&w);
    // redb -> PostgreSQL
    let url = support::new_database();
    let out = w.airlock(&["ledger", "copy", "--to", &url]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("the same in both") && said.contains("copy OK"),
        "{said}"
    );
    // into a database that already holds a ledger: refused, nothing touched
    let again = w.airlock(&["ledger", "copy", "--to", &url]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a ledger"));
    // the copy, served: the same rows, then it grows on PostgreSQL
    w.write(
        "airlock.toml",
        &format!("{redb_config}\n[store]\nurl = {url:?}\n"),
    );
    assert_eq!(export(&w), before, "every row, byte for byte");
    let agent = w.agent().await;
    agent.call("echo", json!({"text": "on postgres"})).await;
    agent.close().await;
    let grown = w.ledger_rows().await;
    assert!(grown.len() > original.len());
    let on_pg = export(&w);
    // and back: PostgreSQL -> a new redb file
    let back = w.path("back.redb");
    let out = w.airlock(&[
        "ledger",
        "copy",
        "--to",
        back.to_str().expect("path"),
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report}");
    assert_eq!(report["same_head"], true);
    assert_eq!(report["rows"], json!(grown.len()));
    w.write(
        "airlock.toml",
        &redb_config.replace("ledger = \"ledger.redb\"", "ledger = \"back.redb\""),
    );
    assert_eq!(export(&w), on_pg);
    verify(&w);
}

/// A PostgreSQL server of the test's own (it is stopped and started again), on a free port.
struct OwnServer {
    port: String,
    dir: tempfile::TempDir,
}

impl OwnServer {
    fn run(&self, what: &str) -> String {
        let out = std::process::Command::new(format!("{}/.ci/postgres", support::REPO))
            .arg(what)
            .env("AIRLOCK_PG_PORT", &self.port)
            .env("AIRLOCK_PG_DIR", self.dir.path().join("pg"))
            .output()
            .expect(".ci/postgres");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.run("stop");
    }
}

#[tokio::test]
async fn calls_fail_closed_while_the_database_is_down_and_serving_resumes_when_it_is_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    // the postgres user must reach the cluster's directory
    #[cfg(unix)]
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let server = OwnServer {
        port: free_port().to_string(),
        dir,
    };
    let url = server.run("start");
    let w = World::demo();
    let config = std::fs::read_to_string(w.config()).expect("config");
    let (head, _) = config.split_once("\n[store]").expect("a [store] section");
    let (token, entry) = token("agent:a");
    w.write(
        "airlock.toml",
        &format!("{head}\n[store]\nurl = {url:?}\n\n{entry}"),
    );
    let gate = replica(&w);
    let agent = session(&gate, &token).await;
    let echo = |text: &str| {
        let mut call = CallToolRequestParams::new("echo");
        call.arguments = json!({"text": text}).as_object().cloned();
        call
    };
    let first = agent.call_tool(echo("before")).await.expect("answered");
    assert_ne!(first.is_error, Some(true), "{first:?}");
    assert_eq!(get(&format!("{}/readyz", gate.base)).0, 200);

    server.run("halt");
    let refused = agent.call_tool(echo("during")).await.expect("answered");
    assert_eq!(refused.is_error, Some(true), "fails closed: {refused:?}");
    let said = serde_json::to_string(&refused.content).expect("content");
    assert!(
        said.contains("ledger"),
        "a reason the agent can act on: {said}"
    );
    let (status, body) = get(&format!("{}/readyz", gate.base));
    assert_eq!(status, 503, "{body}");

    server.run("start");
    let mut back = None;
    for _ in 0..100 {
        let r = agent.call_tool(echo("after")).await.expect("answered");
        if r.is_error != Some(true) {
            back = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "serving again without a restart");
    let (status, body) = get(&format!("{}/readyz", gate.base));
    assert_eq!(status, 200, "{body}");
    // and it holds its name again (the advisory lock went with the old connections)
    let mut named = false;
    for _ in 0..50 {
        let out = std::process::Command::new("psql")
            .args([
                url.as_str(),
                "-qAt",
                "-c",
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
            ])
            .output()
            .expect("psql");
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            named = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(named, "the replica took its name back");
    let ran = std::fs::read_to_string(w.path("executed.jsonl")).unwrap_or_default();
    assert!(
        !ran.contains("during") && ran.contains("before") && ran.contains("after"),
        "nothing ran while the ledger could not record it: {ran}"
    );
    let _ = agent.cancel().await;
    drop(gate);
    verify(&w);
}

#[tokio::test]
async fn a_rate_limit_counts_the_calls_of_every_replica() {
    let smtp = Smtp::start();
    let w = World::approvals(smtp.port, r#"{ path = "deny" }"#);
    w.write(
        "p/policy.toml",
        "version = \"shared-limits\"\n[classes]\nread_only = { path = \"allow\" }\n\
         internal_reversible = { path = \"allow\", role = \"ops\", limits = [{ window = \"1h\", max_calls = 3, per = \"all\" }] }\n\
         customer_facing = { path = \"deny\" }\nfinancial = { path = \"deny\" }\ndestructive = { path = \"deny\" }\n\
         [roles]\nops = { emails = [\"ops@example.com\"] }\n",
    );
    let (token, entry) = token("agent:a");
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!("{config}\n{entry}"));
    let (a, b) = (replica(&w), replica(&w));
    let tag = |n: usize| {
        let mut call = CallToolRequestParams::new("tag_order");
        call.arguments = json!({"order_id": "A-1001", "tag": format!("t{n}")})
            .as_object()
            .cloned();
        call
    };
    let on_a = session(&a, &token).await;
    let on_b = session(&b, &token).await;
    for n in 0..2 {
        let r = on_a.call_tool(tag(n)).await.expect("answered");
        assert_ne!(r.is_error, Some(true), "{r:?}");
    }
    let r = on_b.call_tool(tag(2)).await.expect("answered");
    assert_ne!(r.is_error, Some(true), "{r:?}");
    // once B has read A's counter (every heartbeat), the fourth call crosses the shared limit
    let mut held = None;
    for n in 3..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let r = on_b.call_tool(tag(n)).await.expect("answered");
        if r.is_error == Some(true) {
            held = Some((n, r));
            break;
        }
    }
    let (n, r) = held.expect("the limit of 3 held a call");
    let said = serde_json::to_string(&r.content).expect("content");
    assert!(said.contains("limit") || said.contains("paused"), "{said}");
    let ran = w.executed("executed.jsonl").len();
    assert!(
        ran >= 3 && ran <= n,
        "{ran} executed, {n} made before the hold"
    );
    // the pause holds on A too
    let mut paused_on_a = false;
    for _ in 0..20 {
        let r = on_a.call_tool(tag(99)).await.expect("answered");
        if r.is_error == Some(true) {
            paused_on_a = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(paused_on_a, "A follows the pause B committed");
    let _ = on_a.cancel().await;
    let _ = on_b.cancel().await;
}

#[test]
fn a_database_migrated_by_a_newer_airlock_is_refused_with_a_clear_message() {
    let w = World::demo();
    let out = w.airlock(&["ledger", "verify"]);
    assert!(out.status.success(), "a fresh database is migrated");
    let url = w.database.clone().expect("a database");
    let sql = "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
               VALUES (99, 'from_the_future', '2027-01-01T00:00:00Z', '0')";
    let psql = std::process::Command::new("psql")
        .args([url.as_str(), "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    for args in [&["ledger", "verify"][..], &["serve"][..]] {
        let out = w.airlock(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("schema version 99") && err.contains("newer Airlock"),
            "{args:?}: {err}"
        );
    }
}
