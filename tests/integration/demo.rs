//! `airlock demo`, the walk-through a newcomer runs first, and `builtin = "demo-shop"`, the tool
//! server built into the binary that it (and the shipped airlock.toml) puts behind the gate.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{AIRLOCK, World, text};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The demo's ledger, exported.
fn rows(config: &Path) -> Vec<Value> {
    let out = Command::new(AIRLOCK)
        .args(["ledger", "export", "--config"])
        .arg(config)
        .output()
        .expect("run airlock ledger export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json row"))
        .collect()
}

fn verifies(config: &Path) {
    let out = Command::new(AIRLOCK)
        .args(["ledger", "verify", "--config"])
        .arg(config)
        .output()
        .expect("run airlock ledger verify");
    assert!(out.status.success(), "{}", stdout(&out));
}

/// Whether the last call of `tool` in the ledger ended with a row of `kind`.
fn ended_with(rows: &[Value], tool: &str, kind: &str) -> Vec<Value> {
    let call = rows
        .iter()
        .rev()
        .find(|r| r["kind"] == "proposal" && r["body"]["tool"] == tool)
        .map(|r| r["call_id"].clone())
        .unwrap_or_else(|| panic!("no call of {tool}"));
    rows.iter()
        .filter(|r| r["call_id"] == call && r["kind"] == kind)
        .cloned()
        .collect()
}

#[test]
fn demo_with_approve_runs_every_path_to_the_end_and_its_ledger_verifies() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    let out = Command::new(AIRLOCK)
        .args(["demo", "--approve", "--dir"])
        .arg(&dir)
        .output()
        .expect("run airlock demo");
    let said = stdout(&out);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "autopilot    search_orders        ran",
        "conditional  send_customer_email  ran",
        "deny         delete_customer      denied by the policy",
        "held         echo                 released in review, then ran",
        "approval     refund_order         approved, then ran",
        "needs approval",
        "Ledger verified",
    ] {
        assert!(said.contains(line), "no {line:?} in:\n{said}");
    }
    assert!(!said.contains("verdict \"approve\""), "{said}");
    let config = dir.join("airlock.toml");
    verifies(&config);
    let rows = rows(&config);
    // the held call was released, and ran once
    assert_eq!(ended_with(&rows, "echo", "held_released").len(), 1);
    let echoed = ended_with(&rows, "echo", "outcome");
    assert_eq!(echoed.len(), 1);
    assert_eq!(echoed[0]["body"]["status"], "ok", "{echoed:?}");
    // the refund was approved by the person, and ran once
    let decided = ended_with(&rows, "refund_order", "decision");
    assert_eq!(decided[0]["body"]["choice"], "approve", "{decided:?}");
    assert_eq!(
        ended_with(&rows, "refund_order", "execution_intent").len(),
        1
    );
    let refunded = ended_with(&rows, "refund_order", "outcome");
    assert_eq!(refunded[0]["body"]["status"], "ok", "{refunded:?}");
    // the refund's card number is redacted in every row and in the story told, and destroyed
    let all: String = rows.iter().map(ToString::to_string).collect();
    assert!(!all.contains("41111111"), "{all}");
    let story = &said[said.find("The ledger (").expect("the story")..];
    assert!(story.contains("\"card_number\":\"[redacted "), "{story}");
    assert_eq!(
        ended_with(&rows, "refund_order", "sealed_destroyed").len(),
        1
    );

    // a second run reuses the directory it made, and the ledger grows
    let again = Command::new(AIRLOCK)
        .args(["demo", "--deny", "--dir"])
        .arg(&dir)
        .output()
        .expect("run airlock demo again");
    let said = stdout(&again);
    assert!(again.status.success(), "{said}");
    assert!(said.contains("reused"), "{said}");
    assert!(said.contains("rejected in review by"), "{said}");
    assert!(
        said.contains("approval     refund_order         denied by"),
        "{said}"
    );
    verifies(&config);
}

#[test]
fn demo_refuses_a_directory_it_did_not_make() {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::write(tmp.path().join("notes.txt"), "mine").expect("write");
    let out = Command::new(AIRLOCK)
        .args(["demo", "--approve", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("run airlock demo");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("was not made by `airlock demo`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("notes.txt")).expect("read"),
        "mine"
    );
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// What a person does on the approval page: open it and press `action`.
fn press(link: &str, action: &str) {
    let page = http()
        .get(link)
        .call()
        .expect("GET the approval page")
        .body_mut()
        .read_to_string()
        .expect("page");
    let field = |name: &str| -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let at = page.find(&marker).expect(name) + marker.len();
        page[at..].split('"').next().unwrap_or("").to_string()
    };
    let form = [
        ("nonce", field("nonce")),
        ("rendered_at", field("rendered_at")),
        ("seen", field("seen")),
        ("action", action.to_string()),
        ("comment", "not this one".to_string()),
    ];
    let status = http()
        .post(link)
        .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))
        .expect("POST the decision")
        .status();
    assert!(status.is_success(), "{status}");
}

/// What a reviewer does on the review page: release held call `id` (the form's POST).
fn release(page: &str, id: &str) {
    let seen = crate::support::seen_on(page, id);
    let status = http()
        .post(&format!("{page}/held/{id}"))
        .send_form([("action", "release"), ("seen", seen.as_str())])
        .expect("POST the release")
        .status();
    assert!(status.is_success(), "{status}");
}

/// The text after `marker` on `line`, up to the next space.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let at = line.find(marker)? + marker.len();
    line[at..].split_whitespace().next()
}

#[test]
fn demo_waits_for_the_person_on_the_review_page_and_the_approval_page() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut demo = Command::new(AIRLOCK)
        .args(["demo", "--dir"])
        .arg(tmp.path().join("demo"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start airlock demo");
    let out = demo.stdout.take().expect("stdout");
    let mut said = String::new();
    let mut held = None;
    for line in BufReader::new(out).lines() {
        let line = line.expect("a line of output");
        if let Some(id) = after(&line, "held for review as ") {
            held = Some(id.trim_end_matches(';').to_string());
        }
        if let (Some(page), Some(id)) = (
            after(&line, "Review page (it lists the held call): "),
            &held,
        ) {
            release(page, id);
        }
        if let Some(link) = after(&line, "The approver's link: ") {
            press(link, "deny");
        }
        said.push_str(&line);
        said.push('\n');
    }
    assert!(demo.wait().expect("demo ends").success(), "{said}");
    assert!(
        said.contains("held         echo                 released in review, then ran"),
        "{said}"
    );
    assert!(
        said.contains("approval     refund_order         denied by finance-approvers@example.com"),
        "{said}"
    );
    verifies(&tmp.path().join("demo/airlock.toml"));
}

#[tokio::test]
async fn a_builtin_demo_shop_serves_and_checks() {
    let w = World::empty();
    w.write(
        "tool-manifests/demo_shop.toml",
        include_str!("../../tool-manifests/demo_shop.toml"),
    );
    w.write(
        "policies/default.toml",
        include_str!("../../policies/default.toml"),
    );
    w.write_config(
        "[gate]\nledger = \"ledger.redb\"\nmax_wait = \"1s\"\n[web]\nbind = \"127.0.0.1:0\"\n\n[[server]]\nname = \"shop\"\nbuiltin = \"demo-shop\"\nargs = [\"--log\", \"executed.jsonl\"]\nprefix = \"\"\n",
    );
    let out = w.airlock(&["check"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let said = stdout(&out);
    assert!(said.contains("1 server(s), 7 tool manifest(s)"), "{said}");
    // The shipped policy writes its switches: no warning, and check explains each class.
    assert!(!said.contains("warning"), "{said}");
    for class in [
        "  financial            approve by finance, 30m then deny; signed, rows kept 7y",
        "  destructive          deny; signed, rows kept 7y",
        "  read_only            allow; unsigned, rows kept 1y",
        "  internal_reversible  allow by ops [requires reversal], on_fail approve",
    ] {
        assert!(said.contains(class), "missing `{class}` in:\n{said}");
    }
    let agent = w.agent().await;
    let r = agent
        .call("search_orders", serde_json::json!({"query": "A-1002"}))
        .await;
    assert!(text(&r).contains("bob@example.com"), "{}", text(&r));
    agent.close().await;
    // the shop ran as the builtin, with its args (its own log, in the config's directory)
    assert_eq!(w.executed("executed.jsonl"), ["search_orders"]);
}

#[test]
fn check_names_file_line_and_key_of_an_unknown_builtin() {
    let w = World::empty();
    w.write_config(
        "[gate]\nledger = \"ledger.redb\"\n\n[[server]]\nname = \"shop\"\nbuiltin = \"demo-shopp\"\n\n[[server]]\nname = \"both\"\nbuiltin = \"demo-shop\"\ncommand = \"true\"\n",
    );
    let out = w.airlock(&["check"]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let config = w.config().display().to_string();
    assert!(
        said.contains(&format!("{config}:6:")) && said.contains("server[0].builtin"),
        "{said}"
    );
    assert!(
        said.contains("`demo-shopp` is not a built-in tool server"),
        "{said}"
    );
    assert!(
        said.contains("server[1]") && said.contains("not several"),
        "{said}"
    );
}

/// The README's quickstart and "look around" commands, read from the README itself and run as
/// written (the release binary's path replaced by this build's) in a directory laid out like the
/// repository's root: the shipped airlock.toml, manifests and policies, and `airlock demo`'s
/// default `./airlock-demo`.
#[test]
fn the_readme_look_around_commands_work_as_written() {
    let root = tempfile::tempdir().expect("temp dir");
    for dir in ["tool-manifests", "policies"] {
        std::fs::create_dir(root.path().join(dir)).expect("mkdir");
        for f in std::fs::read_dir(Path::new(crate::support::REPO).join(dir)).expect("dir") {
            let f = f.expect("entry").path();
            let to = root.path().join(dir).join(f.file_name().expect("name"));
            std::fs::copy(&f, to).expect("copy");
        }
    }
    let repo = |rel: &str| Path::new(crate::support::REPO).join(rel);
    std::fs::copy(repo("airlock.toml"), root.path().join("airlock.toml")).expect("copy");
    let readme = std::fs::read_to_string(repo("README.md")).expect("README");
    let block = |after: &str| -> Vec<String> {
        let from = readme
            .find(after)
            .unwrap_or_else(|| panic!("`{after}` in README"));
        let text = &readme[from..];
        let start = text.find("```sh\n").expect("a sh block") + 6;
        let end = start + text[start..].find("```").expect("its end");
        let lines = text[start..end].lines().filter(|l| !l.trim().is_empty());
        lines
            .map(|l| l.replace("target/release/airlock", AIRLOCK))
            .collect()
    };
    let run = |line: &str| {
        let out = Command::new("bash")
            .args(["-o", "pipefail", "-c", line])
            .current_dir(root.path())
            .output()
            .expect("bash");
        let said = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "`{line}` failed:\n{said}");
        assert!(
            !stdout(&out).trim().is_empty(),
            "`{line}` printed nothing:\n{said}"
        );
        stdout(&out)
    };
    // the quickstart's second command (the first is the build), with --approve as a person would
    let quickstart = block("## Quickstart");
    assert!(quickstart[1].contains(" demo"), "{quickstart:?}");
    run(&format!(
        "{} --approve",
        quickstart[1].split('#').next().unwrap_or_default().trim()
    ));
    let look = block("Then look around");
    assert_eq!(look.len(), 5, "{look:?}");
    let said: Vec<String> = look.iter().map(|l| run(l)).collect();
    assert!(said[0].contains("refund_order"), "map: {}", said[0]);
    assert!(said[1].contains("approve"), "explain: {}", said[1]);
    assert!(said[2].contains("7 tool manifest(s)"), "check: {}", said[2]);
    assert_eq!(said[3].lines().count(), 3, "export | tail -3: {}", said[3]);
    assert!(said[4].to_lowercase().contains("ok"), "verify: {}", said[4]);
}

#[test]
fn what_a_run_writes_only_its_owner_reads_under_umask_022() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("demo");
    // a umask that leaves files readable by everyone, as most shells have
    let out = Command::new("sh")
        .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(AIRLOCK)
        .args(["demo", "--approve", "--dir"])
        .arg(&dir)
        .output()
        .expect("run airlock demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir.join("airlock.redb")), 0o600, "the ledger");
    for (sub, what) in [
        ("outbox", "the outbox"),
        ("airlock.redb.checkpoints", "the checkpoints"),
    ] {
        let d = dir.join(sub);
        assert_eq!(mode(&d), 0o700, "{what}");
        let files: Vec<_> = std::fs::read_dir(&d).expect("dir").flatten().collect();
        assert!(!files.is_empty(), "{what} has files");
        for f in files {
            assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
        }
    }
    for key in [
        "airlock.key",
        "airlock.signing.key",
        "airlock.seal.key",
        "airlock.seal.chain",
    ] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    // links are not logged unless asked for (the demo prints the one it follows itself)
    let log = std::fs::read_to_string(dir.join("gate.log")).unwrap_or_default();
    assert!(!log.contains("approval link:"), "{log}");
}
