//! The driver with the real demo shop behind it — in this process, over a byte stream (MCP
//! through rmcp on both sides, no child process) — for what only real I/O shows: when the ledger
//! fails nothing reaches the tool server (its own log says so) and the plan's undo is applied
//! (no pause, nothing held); call keys and kept results forgotten after their window. Every
//! choice the gate makes is tested without a tool server in `plan/tests`.
use std::sync::atomic::Ordering;

use chrono::TimeDelta;

use super::{Approvals, Arc, Forwarder, Gate, GateCall, Ledger, Live, Reply, ToolServers};
use crate::approval::link::LinkKey;
use crate::config::load_setup;
use crate::drift::meter::Meter;
use crate::drift::pauses::Pauses;
use crate::ledger::Row;
use crate::ledger::tests::FailSwitch;
use crate::mail::Mailer;
use crate::quarantine::Quarantine;

/// A gate over `ledger` with the demo shop's `echo` allowed (`read_only`): the gate, the file
/// the shop logs each call it runs to, and the directory holding both.
async fn gate_over(ledger: Arc<Ledger>) -> (Gate, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let log = dir.path().join("executed.jsonl");
    w(
        "airlock.toml",
        "[[server]]\nname = \"shop\"\nbuiltin = \"demo-shop\"\nprefix = \"\"\n",
    );
    w(
        "policies/p.toml",
        "version = \"v1\"\n[classes]\nread_only = { path = \"allow\" }\n\
         limited = { path = \"allow\", limits = [{ window = \"1h\", max_calls = 1, notify = \"ops\" }] }\n\
         [roles]\nops = { emails = [\"o@example.com\"] }\n[review]\nrole = \"ops\"\n",
    );
    w(
        "tool-manifests/m.toml",
        "[[tool]]\nserver = \"shop\"\nname = \"echo\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n\
         [[tool]]\nserver = \"shop\"\nname = \"search_orders\"\nclass = \"limited\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n",
    );
    let setup = Arc::new(load_setup(&dir.path().join("airlock.toml")).unwrap());
    // the shop runs in this process, at the other end of a duplex stream
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let options = crate::mcp::demo_shop::Options {
        log: Some(log.clone()),
        quiet: true,
        ..Default::default()
    };
    tokio::spawn(crate::mcp::demo_shop::serve_stream(options, theirs));
    let shop = setup.config.servers[0].clone();
    let (servers, problems) = ToolServers::connect_streams(vec![(shop, ours)]).await;
    assert!(problems.is_empty(), "{problems:?}");
    let servers = Arc::new(servers);
    let forwarder = Forwarder::new(
        ledger.clone(),
        servers.clone(),
        Arc::new(crate::seal::Sealer::random().unwrap()),
    );
    let mailer = Mailer::new(&setup.config.mail).unwrap();
    let live = Arc::new(Live::new(setup.clone(), Default::default()));
    let desk = Approvals::new(
        live.clone(),
        ledger.clone(),
        servers.clone(),
        forwarder.clone(),
        mailer,
        LinkKey::random().unwrap(),
        "http://127.0.0.1:1".into(),
    );
    let quarantine = Arc::new(Quarantine::new(
        ledger.clone(),
        forwarder.clone(),
        live.clone(),
        LinkKey::random().unwrap(),
    ));
    let pauses = Arc::new(Pauses::new(
        Arc::new(Meter::default()),
        ledger.clone(),
        live.clone(),
        Mailer::new(&setup.config.mail).unwrap(),
        LinkKey::random().unwrap(),
        "http://127.0.0.1:1".into(),
    ));
    let gate = Gate::new(live, ledger, servers, forwarder, desk, quarantine, pauses);

    (gate, log, dir)
}

fn echo(text: &str, meta: Option<serde_json::Value>) -> GateCall {
    GateCall {
        actor: None,
        relay: None,
        tool: "echo".into(),
        arguments: serde_json::json!({"text": text})
            .as_object()
            .cloned()
            .unwrap(),
        meta: meta.and_then(|m| m.as_object().cloned()),
        cancel: None,
    }
}

#[tokio::test]
async fn when_the_ledger_cannot_be_written_the_call_never_reaches_the_tool_server() {
    let (backend, fail) = FailSwitch::new();
    let ledger = Arc::new(Ledger::open_on(backend).unwrap());
    let (gate, log, _dir) = gate_over(ledger).await;
    assert!(
        matches!(
            gate.call(echo("with a ledger", None)).await,
            Reply::Forwarded(_)
        ),
        "control: a healthy gate forwards"
    );
    fail.store(true, Ordering::SeqCst);
    match gate.call(echo("without a ledger", None)).await {
        Reply::Refused { message, details } => {
            assert!(
                message.contains("could not record this call") && message.contains("not run"),
                "{message}"
            );
            assert_eq!(details["verdict"], "allow");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let ran: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        ran.len(),
        1,
        "only the call made while the ledger worked reached the server: {ran:?}"
    );
    assert!(ran[0].contains("with a ledger"));
}

/// A limit crossed while the ledger fails: the pause it would start and the call it would hold
/// never were (the plan's undo), and nothing ran.
#[tokio::test]
async fn a_limit_crossed_when_the_ledger_fails_leaves_no_pause_and_holds_nothing() {
    let (backend, fail) = FailSwitch::new();
    let ledger = Arc::new(Ledger::open_on(backend).unwrap());
    let (gate, log, _dir) = gate_over(ledger).await;
    let search = || GateCall {
        tool: "search_orders".into(),
        arguments: serde_json::json!({"query": ""})
            .as_object()
            .cloned()
            .unwrap(),
        ..echo("", None)
    };
    assert!(matches!(gate.call(search()).await, Reply::Forwarded(_)));
    fail.store(true, Ordering::SeqCst);
    match gate.call(search()).await {
        Reply::Refused { message, details } => {
            assert!(message.contains("could not record this call"), "{message}");
            assert_eq!(details["verdict"], "quarantine", "the limit was crossed");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(gate.pauses.meter().lock().pauses().is_empty(), "undone");
    assert!(gate.quarantine.list().is_empty(), "nothing held");
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran.lines().count(), 1, "{ran}");
}

/// Call keys are kept for the retry window, then forgotten with the result kept under them.
#[tokio::test]
async fn a_call_key_and_its_result_are_forgotten_once_the_window_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(&dir.path().join("l.redb")).unwrap());
    let (gate, log, _shop) = gate_over(ledger.clone()).await;
    let keyed = || Some(serde_json::json!({"io.airlock/idempotency-key": "k1"}));
    assert!(matches!(
        gate.call(echo("once", keyed())).await,
        Reply::Forwarded(_)
    ));
    assert!(matches!(
        gate.call(echo("once", keyed())).await,
        Reply::Forwarded(_)
    ));
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran.lines().count(), 1, "the repeat was replayed: {ran}");
    assert_eq!(ledger.call_keys().unwrap().len(), 1);
    let now = crate::instant::now();
    assert_eq!(
        gate.forget_expired(now + TimeDelta::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        gate.forget_expired(now + TimeDelta::days(2)).await.unwrap(),
        1
    );
    assert!(
        ledger.call_keys().unwrap().is_empty(),
        "forgotten, result and all"
    );
    // the rows keep the proof: the outcome's result hash stays in the chain
    let mut hashed = 0;
    ledger
        .records(|r| {
            if let Ok(Ok(Row::Outcome(o))) = r.map(|r| r.row()) {
                if o.result_sha256.is_some() {
                    hashed += 1;
                }
            }
        })
        .unwrap();
    assert_eq!(hashed, 1);
}
