//! Checkpoints with default settings: written beside the ledger in the C2SP tlog-checkpoint
//! format (a clean stop writes one), read by `ledger verify` unasked, held to by `serve` before it
//! appends, and sent to an HTTP witness (whose failures `/readyz` names) and an auditor's mailbox.

use serde_json::{Value, json};

use crate::agents::{serve, token};
use crate::smtp::{free_port, http};
use crate::support::{Witness, World, unfold};

/// Serve `w` for `n` allowed calls, then stop cleanly.
pub async fn calls(w: &World, n: usize) {
    let agent = w.agent().await;
    for _ in 0..n {
        let _ = agent.call("search_orders", json!({"query": ""})).await;
    }
    agent.close().await;
    w.wait_for_ledger().await;
}

pub fn public_key(w: &World) -> String {
    let out = w.airlock(&["keys", "public"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// `airlock serve` as an operator starts it; it must refuse: its stderr.
pub fn refused_start(w: &World) -> String {
    let out = w.airlock(&["serve"]);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "serve started: {said}");
    said
}

/// `ledger verify --json --public-key KEY [--checkpoint FILE]`: (exit code, report).
pub fn verify(w: &World, extra: &[&str]) -> (Option<i32>, Value) {
    let key = public_key(w);
    let mut args = vec!["ledger", "verify", "--json", "--public-key", &key];
    args.extend(extra);
    let out = w.airlock(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// Verify a note with the signed-note crate's own parser, given `keys public --note`.
fn note_verifies(w: &World, note: &[u8]) -> bool {
    let out = w.airlock(&["keys", "public", "--note"]);
    let vkey = String::from_utf8(out.stdout).expect("utf-8");
    let v = signed_note::StandardVerifier::new(vkey.trim()).expect("a verifier key");
    let known = signed_note::VerifierList::new(vec![Box::new(v)]);
    signed_note::Note::from_bytes(note)
        .and_then(|n| n.verify(&known))
        .is_ok()
}

fn last_seq(rows: &[Value]) -> u64 {
    rows.last().and_then(|r| r["seq"].as_u64()).expect("rows")
}

#[tokio::test]
async fn a_clean_stop_writes_a_c2sp_checkpoint_that_verify_reads_unasked() {
    let w = World::demo();
    calls(&w, 2).await;
    let rows = w.ledger_rows().await;
    let cps = w.checkpoints();
    let (size, newest) = cps.last().expect("checkpoints beside the ledger");
    assert_eq!(*size, last_seq(&rows), "the clean stop's checkpoint has every row");
    assert!(cps.len() >= 2, "one at start, one at the stop: {cps:?}");
    let note = std::fs::read(newest).expect("read");
    let text = String::from_utf8(note.clone()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("airlock/"), "origin: {text}");
    assert_eq!(lines[1], size.to_string(), "tree size");
    assert_eq!(lines[2].len(), 44, "base64 of 32 bytes: {text}");
    assert_eq!(lines[3], "");
    assert!(lines[4].starts_with(&format!("\u{2014} {} ", lines[0])), "{text}");
    assert!(note_verifies(&w, &note), "{text}");

    let (code, report) = verify(&w, &[]);
    assert_eq!(code, Some(0), "{report}");
    let read = report["checkpoints"].as_array().expect("checkpoints");
    assert_eq!(read.len(), cps.len(), "every file in the directory, unasked");
    assert!(read.iter().all(|c| c["format"] == "tlog-checkpoint"
        && c["consistent"] == true
        && c["signature_ok"] == true));
    let out = w.airlock(&["ledger", "verify", "--public-key", &public_key(&w)]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("the ledger extends every one") && said.contains("result:      OK"), "{said}");
}

#[tokio::test]
async fn a_row_rewritten_at_a_checkpoint_makes_serve_refuse_and_verify_fail() {
    let w = World::demo();
    calls(&w, 1).await;
    let rows = w.ledger_rows().await;
    let (size, newest) = w.checkpoints().pop().expect("a checkpoint");
    let row = rows.iter().find(|r| r["seq"] == size).expect("the row");
    let time = row["time"].as_str().expect("time").to_string();
    w.edit_row(size, time.as_bytes(), time.replacen('2', "1", 1).as_bytes());
    let said = refused_start(&w);
    let file = newest.file_name().and_then(|f| f.to_str()).expect("name");
    assert!(said.contains(&format!("row {size} of the ledger")), "{said}");
    assert!(said.contains(file) && said.contains("rewritten"), "{said}");
    let (code, report) = verify(&w, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["passed"], false);
}

#[tokio::test]
async fn a_checkpoint_reaches_an_http_witness_and_verifies_from_the_bytes_it_received() {
    let witness = Witness::start(200);
    let w = World::demo();
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!(
        "{cfg}\n[ledger]\nwitness = {:?}\nmail_to = \"auditor@example.com\"\n",
        witness.url
    ));
    calls(&w, 1).await;
    let rows = w.ledger_rows().await;
    let received = witness.received();
    let last = received.last().expect("the witness received checkpoints");
    assert!(note_verifies(&w, last), "{}", String::from_utf8_lossy(last));
    let got = w.path("from-witness.txt");
    std::fs::write(&got, last).expect("write");
    let (code, report) = verify(&w, &["--checkpoint", got.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{report}");
    let given = report["checkpoints"]
        .as_array()
        .and_then(|c| c.last())
        .expect("the witness's copy");
    assert_eq!(given["name"], got.display().to_string());
    assert_eq!(given["rows"], last_seq(&rows), "the last one, of every row");
    assert_eq!((given["signature_ok"].clone(), given["consistent"].clone()), (json!(true), json!(true)));
    // and the auditor's mailbox got one too (the outbox stands in for SMTP here)
    let mailed = std::fs::read_dir(w.path("outbox"))
        .expect("outbox")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint-"));
    assert!(mailed, "a checkpoint mailed to the auditor");
}

#[tokio::test]
async fn a_witness_that_refuses_checkpoints_shows_in_readyz_until_it_takes_one() {
    let witness = Witness::start(500);
    let w = World::demo();
    let cfg = std::fs::read_to_string(w.config()).expect("config");
    w.write_config(&format!(
        "{cfg}\n{}\n[ledger]\nwitness = {:?}\n",
        token("agent:ops").1,
        witness.url
    ));
    let addr = format!("127.0.0.1:{}", free_port());
    let gate = serve(&w, &["--http", &addr], &format!("http://{addr}"));
    let readyz = || {
        let mut r = http()
            .get(&format!("{}/readyz", gate.base))
            .call()
            .expect("readyz");
        let status = r.status().as_u16();
        let body: Value =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
        (status, body)
    };
    let until = |want: &dyn Fn(u16, &Value) -> bool| {
        for _ in 0..600 {
            let (s, b) = readyz();
            if want(s, &b) {
                return (s, b);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        readyz()
    };
    let (status, body) = until(&|_, b| b["reasons"].to_string().contains("checkpoint witness"));
    assert_eq!(status, 503, "{body}");
    assert!(body["reasons"].to_string().contains("has not reached the witness"), "{body}");
    witness.answer_with(200);
    let (status, body) = until(&|s, _| s == 200);
    assert_eq!(status, 200, "taken at a retry: {body}");
    assert!(!witness.received().is_empty());
    drop(gate);
}

#[tokio::test]
async fn approval_mail_carries_the_newest_checkpoint_so_the_approvers_mailbox_witnesses_it() {
    let w = World::demo();
    let agent = w.agent().await;
    let _ = agent
        .call(
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 700, "reason": "late"}),
        )
        .await;
    agent.close().await;
    w.wait_for_ledger().await;
    let mail = std::fs::read_dir(w.path("outbox"))
        .expect("outbox")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .next()
        .expect("the approval mail");
    let mail = unfold(&mail);
    let line = mail
        .lines()
        .find(|l| l.starts_with("Ledger checkpoint"))
        .unwrap_or_else(|| panic!("no checkpoint line: {mail}"));
    let parts: Vec<&str> = line.rsplit(' ').take(3).collect();
    let (root, size, origin) = (parts[0], parts[1], parts[2]);
    let size: u64 = size.parse().expect("rows");
    let (_, file) = w
        .checkpoints()
        .into_iter()
        .find(|(rows, _)| *rows == size)
        .expect("the checkpoint the mail names is in the directory");
    let note = std::fs::read_to_string(file).expect("note");
    assert!(
        note.starts_with(&format!("{origin}\n{size}\n{root}\n")),
        "{line}\n{note}"
    );
}

/// The newest checkpoint note with its size line raised by `more`: the signature no longer
/// holds, and believed it would say the ledger lost rows. Written beside it; its path.
fn tampered(w: &World, more: u64) -> std::path::PathBuf {
    let (size, newest) = w.checkpoints().pop().expect("a checkpoint");
    let note = std::fs::read_to_string(newest).expect("note");
    let claimed = size + more;
    let edited = note.replacen(&format!("\n{size}\n"), &format!("\n{claimed}\n"), 1);
    assert_ne!(edited, note);
    let path = w.checkpoint_dir().join(format!("checkpoint-{claimed}-1.txt"));
    std::fs::write(&path, edited).expect("write");
    path
}

#[tokio::test]
async fn files_in_the_checkpoint_directory_that_prove_nothing_are_skipped_with_a_warning_naming_them() {
    let w = World::demo();
    calls(&w, 1).await;
    let junk = w.checkpoint_dir().join("checkpoint-3-1.txt");
    std::fs::write(&junk, "an editor's leftovers\n").expect("write");
    let edited = tampered(&w, 100);
    let name = |p: &std::path::Path| p.file_name().and_then(|f| f.to_str()).expect("name").to_string();

    // serve starts, warning about each file by name (its stdin is closed: no agent comes, and
    // it stops again)
    let out = w.airlock(&["serve"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("the ledger extends its newest checkpoint") && log.contains("airlock serving MCP"), "{log}");
    let warned = |file: &str, why: &str| {
        log.lines().any(|l| l.contains("WARN") && l.contains(file) && l.contains(why) && l.contains("skipped"))
    };
    assert!(warned(&name(&junk), "is not a checkpoint"), "{log}");
    assert!(warned(&name(&edited), "is not signed by this ledger's key (or was altered)"), "{log}");
    // and it ran on: calls are recorded, a new checkpoint of them written
    calls(&w, 1).await;

    let (code, report) = verify(&w, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["passed"], true);
    let skipped = report["skipped_checkpoints"].to_string();
    assert!(skipped.contains(&name(&junk)) && skipped.contains(&name(&edited)), "{report}");
    let out = w.airlock(&["ledger", "verify", "--public-key", &public_key(&w)]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.lines().any(|l| l.starts_with("warning:") && l.contains(&name(&edited)) && l.contains("not signed by this ledger's key")),
        "{said}"
    );
    assert!(said.contains("result:      OK") && !said.contains("rolled back"), "{said}");
}

#[tokio::test]
async fn a_given_checkpoint_the_key_did_not_sign_fails_verify_as_unsigned_not_as_a_rollback() {
    let w = World::demo();
    calls(&w, 1).await;
    let edited = tampered(&w, 100);
    let given = w.path("from-witness.txt");
    std::fs::rename(&edited, &given).expect("move it out of the directory");
    let path = given.to_str().expect("path");

    let (code, report) = verify(&w, &["--checkpoint", path]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["first_bad"], Value::Null, "no rollback is claimed: {report}");
    let result = report["result"].as_str().unwrap_or_default();
    assert!(
        result.contains(&format!("checkpoint {path} is not signed by this ledger's key (or was altered)"))
            && result.contains("--public-key")
            && !result.contains("rolled back"),
        "{result}"
    );
    let key = public_key(&w);
    let out = w.airlock(&["ledger", "verify", "--public-key", &key, "--checkpoint", path]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("signature INVALID") && said.contains("FAILED: checkpoint"), "{said}");
    assert!(!said.contains("rolled back") && !said.contains("NOT consistent"), "{said}");
    // a real rollback keeps its wording (rollback.rs): a validly signed checkpoint still fails it
}
