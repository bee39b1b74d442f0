//! The auditor's side: the signing key, `ledger verify` against a trusted key and a checkpoint,
//! `ledger show`, filtered and CSV exports, and an export verified by a script that shares no
//! code with Airlock.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{REPO, World, Peer, require};

fn stdout(w: &World, args: &[&str]) -> String {
    let out = w.airlock(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A gate that served a read, a denied deletion and a refund awaiting approval.
async fn history() -> World {
    let w = World::demo();
    let agent = w.agent().await;
    let _ = agent.call("search_orders", json!({"query": ""})).await;
    let _ = agent
        .call("delete_customer", json!({"email": "alice@example.com"}))
        .await;
    let _ = agent
        .call(
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 700, "reason": "late"}),
        )
        .await;
    agent.close().await;
    w.wait_for_ledger().await;
    w
}

fn python_verify(file: &std::path::Path, key: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(format!("{REPO}/examples/verify_export.py"))
        .arg(file);
    if let Some(k) = key {
        cmd.args(["--public-key", k]);
    }
    let out = cmd.output().expect("python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn an_export_verifies_independently_and_the_ledger_holds_to_its_checkpoint() {
    require(Peer::Python);
    let w = history().await;
    let public = stdout(&w, &["keys", "public"]).trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    let out = w.airlock(&["keys", "init"]);
    assert!(
        !out.status.success(),
        "an existing key is never overwritten"
    );

    // the whole export, checked by a script that shares no code with Airlock
    let export = w.path("ledger.jsonl");
    std::fs::write(&export, stdout(&w, &["ledger", "export"])).expect("write export");
    let (ok, said) = python_verify(&export, Some(&public));
    assert!(ok, "{said}");
    assert!(
        said.contains("signature(s) verified") && !said.contains(" 0 signature"),
        "{said}"
    );
    let (ok, said) = python_verify(&export, Some(&"11".repeat(32)));
    assert!(
        !ok && said.contains("does not verify"),
        "another key fails: {said}"
    );
    let text = std::fs::read_to_string(&export).expect("export");
    let forged = text.replacen("alice@example.com", "mallory@example.com", 1);
    assert_ne!(text, forged);
    std::fs::write(&export, forged).expect("write");
    let (ok, said) = python_verify(&export, None);
    assert!(!ok && said.contains("altered"), "{said}");

    // verify with the trusted key and a checkpoint
    let cp = w.path("cp.txt");
    stdout(
        &w,
        &["ledger", "checkpoint", "--out", cp.to_str().expect("path")],
    );
    let report: Value = serde_json::from_str(&stdout(
        &w,
        &[
            "ledger",
            "verify",
            "--json",
            "--public-key",
            &public,
            "--checkpoint",
            cp.to_str().expect("path"),
        ],
    ))
    .expect("json");
    assert_eq!(report["first_bad"], Value::Null, "{report}");
    assert_eq!(report["checkpoints"][0]["consistent"], true);
    assert!(
        report["signatures"]["signed_rows"].as_u64().unwrap_or(0) >= 4,
        "{report}"
    );
    let out = w.airlock(&["ledger", "verify", "--public-key", &"11".repeat(32)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a key that did not sign fails verification"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature row does not verify"));
}

#[tokio::test]
async fn show_tells_the_whole_story_of_one_call_and_exports_filter() {
    let w = history().await;
    // the refund's call id, from a filtered export
    let financial = stdout(&w, &["ledger", "export", "--class", "financial"]);
    let rows: Vec<Value> = financial
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["call_id"] == rows[0]["call_id"]),
        "only the refund's rows"
    );
    let kinds: Vec<&str> = rows.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert!(
        kinds.starts_with(&["proposal", "verdict", "envelope"]),
        "{kinds:?}"
    );
    let call = rows[0]["call_id"].as_str().expect("call id");

    let shown = stdout(&w, &["ledger", "show", call]);
    assert!(shown.contains("envelope as the approver saw it"), "{shown}");
    assert!(shown.contains("\"amount_cents\": 700"), "{shown}");
    assert!(
        shown.contains("approve: class `financial` needs approval by role `finance`"),
        "{shown}"
    );
    let approval = rows
        .iter()
        .find_map(|r| r["body"]["approval_id"].as_str())
        .expect("approval id");
    assert!(
        stdout(&w, &["ledger", "show", approval, "--json"]).contains(call),
        "an approval id finds its call"
    );
    assert!(
        !w.airlock(&["ledger", "show", "no-such-id"])
            .status
            .success()
    );

    let csv = stdout(
        &w,
        &["ledger", "export", "--format", "csv", "--verdict", "deny"],
    );
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("seq,time,kind,call_id,tool,class,verdict,prev,hash,body")
    );
    let data: Vec<&str> = lines.collect();
    assert!(
        !data.is_empty()
            && data
                .iter()
                .all(|l| l.contains(",delete_customer,destructive,deny,")),
        "{csv}"
    );
    let future = stdout(&w, &["ledger", "export", "--since", "2100-01-01T00:00:00Z"]);
    assert!(future.is_empty(), "nothing after 2100");
    assert!(
        !w.airlock(&["ledger", "export", "--since", "yesterday"])
            .status
            .success()
    );
    assert!(
        !w.airlock(&["ledger", "export", "--verdict", "allowed"])
            .status
            .success()
    );

    // nothing of today has outlived its retention
    let said = stdout(&w, &["ledger", "prune", "--dry-run"]);
    assert!(
        said.contains("nothing has expired") && said.contains("kept from seq 1"),
        "{said}"
    );
}

#[tokio::test]
async fn the_gate_writes_checkpoints_and_replay_and_stats_read_the_history() {
    let w = World::demo();
    let config = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&config.replace(
        "max_wait = \"1s\"",
        "max_wait = \"1s\"\ncheckpoints = \"cps\"\ncheckpoint_every = \"1s\"",
    ));
    let agent = w.agent().await;
    let _ = agent
        .call("delete_customer", json!({"email": "alice@example.com"}))
        .await;
    let _ = agent.call("search_orders", json!({"query": ""})).await;
    let mut written = Vec::new();
    for _ in 0..100 {
        written = std::fs::read_dir(w.path("cps"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    agent.close().await;
    w.wait_for_ledger().await;
    assert!(!written.is_empty(), "the gate wrote a checkpoint");
    let mut args = vec!["ledger", "verify", "--json"];
    for p in &written {
        args.extend(["--checkpoint", p.to_str().expect("path")]);
    }
    let report: Value = serde_json::from_str(&stdout(&w, &args)).expect("json");
    assert_eq!(report["passed"], true, "{report}");

    // replay: a policy that lets ops approve deletions moves exactly the denied one
    let policy = std::fs::read_to_string(format!("{REPO}/policies/default.toml"))
        .expect("policy")
        .replace(
            "destructive         = { path = \"deny\", signed = true }",
            "destructive         = { path = \"approve\", role = \"ops\", signed = true }",
        );
    w.write("candidate.toml", &policy);
    let candidate = w.path("candidate.toml");
    let r: Value = serde_json::from_str(&stdout(
        &w,
        &[
            "replay",
            "--policy",
            candidate.to_str().expect("path"),
            "--json",
        ],
    ))
    .expect("json");
    assert_eq!(r["changes"], json!({"deny → approve(ops)": 1}), "{r}");
    assert_eq!(r["unchanged"], 1);
    let text = stdout(
        &w,
        &["replay", "--policy", candidate.to_str().expect("path")],
    );
    assert!(
        text.contains("delete_customer: deny → approve(ops)"),
        "{text}"
    );

    let stats = stdout(&w, &["stats"]);
    assert!(
        stats.contains("0 approval request(s)") && stats.contains("no flags"),
        "{stats}"
    );
}
