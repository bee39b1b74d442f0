//! The CLI as developers and auditors use it: check, map, explain, schema, ledger verify.

use serde_json::{Value, json};

use crate::support::{AIRLOCK, REPO, World, on_postgres};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_passes_on_the_shipped_config() {
    // --offline: the shipped config starts its tool server with `cargo run --example demo_shop`,
    // which inside the test run would relink that binary under the other tests using it.
    // Conditions against live tool schemas are checked with the built shop in `conditions`.
    let out = std::process::Command::new(AIRLOCK)
        .args([
            "check",
            "--offline",
            "--config",
            &format!("{REPO}/airlock.toml"),
        ])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("7 tool manifest(s), policy 2026-11-24.1"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_reports_every_problem_with_file_line_and_key() {
    let w = World::empty();
    w.write_config("[gate]\nmanifests = \"m\"\npolicies = \"p\"\n\n[[server]]\nname = \"shop\"\ncommand = \"true\"\n");
    w.write(
        "p/policy.toml",
        "version = \"v1\"\n[classes]\nread_only = { path = \"allow\" }\nfinancial = { path = \"approve\", role = \"finance\", timeout = \"soonish\" }\n[roles]\nfinance = { emails = [] }\n",
    );
    w.write(
        "m/bad.toml",
        "[[tool]]\nserver = \"shop\"\nname = \"refund\"\nclass = \"finance\"\ntarget = \"payments\"\nimpact = \"money\"\nreversal = \"none: no\"\n\n\
         [[tool]]\nserver = \"warehouse\"\nname = \"ship\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"tool:unship\"\n\n\
         [[tool]]\nserver = \"shop\"\nname = \"refund\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: x\"\n",
    );
    w.write(
        "m/syntax.toml",
        "[[tool]]\nserver = \"shop\"\nname = = \"oops\"\n",
    );
    let out = w.airlock(&["check"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let bad = w.path("m/bad.toml").display().to_string();
    let policy = w.path("p/policy.toml").display().to_string();
    let syntax = w.path("m/syntax.toml").display().to_string();
    for expected in [
        format!("{bad}:4:9: error: tool[0].class: class `finance` is not defined by policy v1"),
        format!("{bad}:10:10: error: tool[1].server: no [[server]] named `warehouse`"),
        format!(
            "{bad}:19:8: error: tool[2].name: tool `shop__refund` is already described at {bad}:1"
        ),
        format!("{policy}:4:"),
        "classes.financial.timeout: `soonish` is not a duration".to_string(),
        "roles.finance.emails: a role needs at least one email address".to_string(),
        format!("{syntax}:3:"),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
}

#[test]
fn check_refuses_what_serve_would_trip_on_with_file_line_and_key() {
    let w = World::empty();
    w.write_config(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\n\n\
         [[server]]\nname = \"time\"\ncommand = \"mcp-server-tiem\"\n\n\
         [[server]]\nname = \"local\"\ncommand = \"./tool.sh\"\n\n\
         [[server]]\nname = \"shop\"\ncommand = \"true\"\n",
    );
    w.write("tool.sh", "#!/bin/sh\n"); // written without the executable bit
    w.write(
        "p/policy.toml",
        "version = \"v1\"\n[classes]\nread_only = { path = \"allow\" }\n\n[actors]\n\"agent:x\" = { classes = [\"read_only\", \"reads\"] }\n",
    );
    w.write(
        "m/time.toml",
        "[[tool]]\nserver = \"shop\"\nname = \"shop__lookup\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: reads\"\n",
    );
    let out = w.airlock(&["check", "--offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let config = w.config().display().to_string();
    let (policy, manifest) = (w.path("p/policy.toml"), w.path("m/time.toml"));
    for expected in [
        format!("{config}:7:11: error: server[0].command: cannot start `mcp-server-tiem`: it is not found on PATH"),
        format!("{config}:11:11: error: server[1].command: cannot start `./tool.sh`: {} is not executable", w.path("tool.sh").display()),
        format!("{}:3:8: error: tool[0].name: `shop__lookup` is the name agents see (server `shop` adds prefix `shop__`); a manifest names a tool as its server does: name = \"lookup\"", manifest.display()),
        format!("{}:6:39: error: actors.agent:x.classes: unknown class `reads` (the policy's classes: read_only)", policy.display()),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    // Reading the ledger does not need the tool servers installed.
    let out = w.airlock(&["ledger", "verify"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("cannot start"), "{err}");
}

#[test]
fn serve_refuses_to_start_on_a_broken_setup() {
    let w = World::empty();
    w.write_config("[gate]\nledgr = \"x\"\n");
    let out = w.airlock(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("airlock.toml:2:1") && err.contains("ledgr"),
        "{err}"
    );
    assert!(
        !w.path("airlock.redb").exists(),
        "nothing is created when the setup is broken"
    );
}

#[test]
fn explain_gives_the_decision_and_why() {
    let w = World::demo();
    let out = w.airlock(&[
        "explain",
        "--tool",
        "refund_order",
        "--args",
        r#"{"order_id":"A-1","amount_cents":5,"reason":"r"}"#,
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("verdict:  approve"), "{text}");
    assert!(
        text.contains("approver: role `finance`, timeout 30m, on timeout: deny"),
        "{text}"
    );
    assert!(
        text.contains("rule:     classes.financial (policy 2026-11-24.1)"),
        "{text}"
    );
    assert!(text.contains("[path_approve]"), "{text}");

    let out = w.airlock(&[
        "explain",
        "--tool",
        "send_customer_email",
        "--args",
        r#"{"to":"a@b.c"}"#,
        "--json",
        "--actor",
        "agent:other",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["verdict"], "approve");
    assert_eq!(v["actor"], "agent:other");
    assert_eq!(
        v["reasons"][0],
        json!({"code": "evidence_missing", "field": "order_id"})
    );

    let out = w.airlock(&["explain", "--tool", "format_disk"]);
    assert!(
        stdout(&out).contains("verdict:  quarantine") && stdout(&out).contains("[unknown_tool]"),
        "{}",
        stdout(&out)
    );

    let out = w.airlock(&["explain", "--tool", "echo", "--args", "[1]"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--args must be a JSON object"));
}

#[test]
fn map_lists_classes_paths_unclassified_and_stale_tools() {
    let w = World::empty();
    w.write(
        "m/m.toml",
        "[[tool]]\nserver = \"shop\"\nname = \"refund_order\"\nclass = \"financial\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: no\"\n\
         summary = \"Refund {amount_cents|money:USD}\"\n\
         [[tool]]\nserver = \"shop\"\nname = \"retired_tool\"\nclass = \"read_only\"\ntarget = \"t\"\nimpact = \"i\"\nreversal = \"none: no\"\n",
    );
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = {p:?}\n\n{shop}",
        p = format!("{REPO}/policies"),
        shop = w.shop_server("shop", "", "x.jsonl")
    ));
    let out = w.airlock(&["map", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let tool = |name: &str| {
        v["tools"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["tool"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let refund = tool("refund_order");
    assert_eq!(
        (
            refund["class"].as_str(),
            refund["path"].as_str(),
            refund["role"].as_str()
        ),
        (Some("financial"), Some("approve"), Some("finance"))
    );
    assert_eq!(refund["timeout"], "30m");
    assert_eq!(refund["on_timeout"], "deny");
    // the summary column: the template as written, or the default wording
    assert_eq!(refund["summary"], "Refund {amount_cents|money:USD}");
    assert_eq!(tool("retired_tool")["summary"], "retired_tool on t");
    assert_eq!(
        tool("echo")["summary"],
        Value::Null,
        "no manifest, no summary"
    );
    assert_eq!(tool("echo")["path"], "quarantine");
    assert_eq!(tool("echo")["state"], "unclassified");
    assert_eq!(tool("retired_tool")["path"], "stale");
    assert!(
        w.executed("x.jsonl").is_empty(),
        "map lists tools without calling them"
    );

    let table = stdout(&w.airlock(&["map"]));
    assert!(
        table.lines().any(|l| l.starts_with("refund_order")
            && l.contains("approve")
            && l.contains("finance")
            && l.ends_with("Refund {amount_cents|money:USD}")),
        "{table}"
    );
}

#[test]
fn schemas_are_json_schema_documents() {
    for kind in ["config", "manifest", "policy", "export"] {
        let out = std::process::Command::new(AIRLOCK)
            .args(["schema", kind])
            .output()
            .expect("run");
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(
            v["$schema"]
                .as_str()
                .is_some_and(|s| s.contains("json-schema.org")),
            "{kind}: {v}"
        );
        assert!(
            v["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Airlock")),
            "{kind}"
        );
    }
}

#[test]
fn committed_schemas_match_the_parsers() {
    for kind in ["config", "manifest", "policy", "export"] {
        let out = std::process::Command::new(AIRLOCK)
            .args(["schema", kind])
            .output()
            .expect("run");
        let generated: Value = serde_json::from_slice(&out.stdout).expect("json");
        let path = format!("{REPO}/schemas/{kind}.schema.json");
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file"))
                .expect("json");
        assert!(
            generated == committed,
            "{path} is stale: regenerate with `cargo run -q -- schema {kind} > {path}`"
        );
    }
}

#[tokio::test]
async fn verify_names_the_first_altered_row() {
    let w = World::demo();
    let agent = w.agent().await;
    agent.call("echo", json!({"text": "a"})).await;
    agent.call("echo", json!({"text": "b"})).await;
    agent.close().await;
    // an auditor's nightmare: someone edits a verdict in place
    let target = w
        .ledger_rows()
        .await
        .iter()
        .find(|r| r["kind"] == "verdict")
        .and_then(|r| r["seq"].as_u64())
        .expect("a verdict row");
    w.edit_row(target, b"\"allow\"", b"\"deny_\"");
    let out = w.airlock(&["ledger", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!(
            "FAILED at seq {target}: row content does not match its hash (altered)"
        )),
        "{}",
        stdout(&out)
    );
    let out = w.airlock(&["ledger", "verify", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["first_bad"], json!({"seq": target, "fault": "altered"}));
    assert_eq!(v["rows"], target - 1, "every row before it verified");
}

#[test]
fn verify_without_a_ledger_is_a_clear_error() {
    let w = World::demo();
    let expected = if on_postgres() {
        // PostgreSQL's equivalent of a missing file: no database server where the URL points
        let text = std::fs::read_to_string(w.config()).expect("config");
        let (head, _) = text.split_once("[store]").expect("a [store] section");
        w.write(
            "airlock.toml",
            &format!("{head}[store]\nurl = \"postgres://postgres@127.0.0.1:1/none\"\n"),
        );
        "error connecting to server"
    } else {
        "no ledger at"
    };
    let out = w.airlock(&["ledger", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(expected),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_refuses_an_agent_identity_in_any_role() {
    let w = World::empty();
    let (_, agent) = crate::agents::token("crm-bot@example.com");
    w.write_config(&format!(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\nactor = \"bot@example.com\"\n\n{agent}"
    ));
    std::fs::create_dir_all(w.path("m")).expect("mkdir");
    w.write("p/p.toml", "version = \"v\"\n[classes]\nfinancial = { path = \"approve\", role = \"finance\" }\n[roles]\nfinance = { emails = [\"Bot@Example.com\", \"ann@example.com\"] }\nops = { emails = [\"crm-bot@example.com\"] }\n[review]\nrole = \"ops\"\n");
    let out = w.airlock(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    for expected in [
        "roles.finance.emails: `bot@example.com` is an agent's identity (gate.actor), and role `finance` decides: agents never decide; remove it from the role",
        "roles.ops.emails: `crm-bot@example.com` is an agent's identity (an [[agent]] actor), and role `ops` decides",
    ] {
        assert!(said.contains(expected), "missing `{expected}` in:\n{said}");
    }
}

#[test]
fn check_refuses_an_agent_identity_listed_with_a_plus_tag_naming_role_and_agent() {
    let w = World::empty();
    w.write_config("[gate]\nmanifests = \"m\"\npolicies = \"p\"\nactor = \"bot@example.com\"\n");
    std::fs::create_dir_all(w.path("m")).expect("mkdir");
    w.write("p/p.toml", "version = \"v\"\n[classes]\nfinancial = { path = \"approve\", role = \"finance\" }\n[roles]\nfinance = { emails = [\"ann@example.com\"] }\nops = { emails = [\"ops@example.com\", \"Bot+Ops@example.com\"] }\n[review]\nrole = \"ops\"\n");
    let out = w.airlock(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    let expected = "roles.ops.emails: `Bot+Ops@example.com` is the agent identity `bot@example.com` (gate.actor) with a +tag, and role `ops` decides: agents never decide; remove it from the role";
    assert!(said.contains(expected), "missing `{expected}` in:\n{said}");
    assert!(!said.contains("roles.finance"), "finance lists no agent:\n{said}");
}

#[test]
fn approval_pages_off_loopback_need_allow_remote() {
    let w = World::empty();
    w.write("p/policy.toml", "version = \"v1\"\n[classes]\nread_only = { path = \"allow\" }\n");
    let config = |extra: &str| {
        format!("[gate]\nmanifests = \"m\"\npolicies = \"p\"\n\n[web]\nbind = \"0.0.0.0:8787\"\n{extra}")
    };
    w.write_config(&config(""));
    let out = w.airlock(&["check", "--offline"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("web.bind: 0.0.0.0:8787 is reachable from other machines")
            && text.contains("`[web] allow_remote = true`")
            && text.contains("airlock.toml:6:"),
        "{text}"
    );
    w.write_config(&config("allow_remote = true\n"));
    let text = stdout(&w.airlock(&["check", "--offline"]));
    assert!(!text.contains("web.bind"), "{text}");
}

#[test]
fn a_class_switched_on_by_its_name_alone_is_a_warning_naming_the_key_to_write() {
    let w = World::empty();
    w.write(
        "p/policy.toml",
        "version = \"v1\"\n[classes]\nread_only = { path = \"allow\" }\ndestructive = { path = \"deny\" }\npayments = { path = \"deny\", signed = true, retention = \"10y\" }\n",
    );
    std::fs::create_dir_all(w.path("m")).expect("manifests dir");
    w.write_config("[gate]\nmanifests = \"m\"\npolicies = \"p\"\n");
    let out = w.airlock(&["check", "--offline"]);
    let text = stdout(&out);
    // an older default, kept: the policy still starts, signed as before, and says what to write
    assert!(out.status.success(), "{text}");
    let policy = w.path("p/policy.toml").display().to_string();
    assert!(
        text.contains(&format!("{policy}:4:15: warning: classes.destructive.signed: `signed` is on because the class is named `destructive`")),
        "{text}"
    );
    assert!(text.contains("  destructive          deny; signed, rows kept 7y"), "{text}");
    assert!(text.contains("  payments             deny; signed, rows kept 10y"), "{text}");
    assert!(text.contains("  read_only            allow; unsigned, rows kept 1y"), "{text}");
}

#[test]
fn check_refuses_an_undefined_channel_and_a_webhook_secret_missing_or_malformed() {
    let w = World::empty();
    w.write_config(
        "[gate]\nmanifests = \"m\"\npolicies = \"p\"\n\n\
         [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\nsecret_env = \"AIRLOCK_TEST_NO_SUCH_WEBHOOK_SECRET\"\n\n\
         [[channel]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"https://hooks.example.com/a\"\nsecret_env = \"AIRLOCK_TEST_BAD_WEBHOOK_SECRET\"\n",
    );
    std::fs::create_dir_all(w.path("m")).expect("mkdir");
    w.write("p/p.toml", "version = \"v\"\n[classes]\nfinancial = { path = \"approve\", role = \"finance\" }\n[roles]\nfinance = { emails = [\"ann@example.com\"], channels = [\"webhook:ops\", \"webhook:finance\"] }\n");
    let out = std::process::Command::new(AIRLOCK)
        .args(["check", "--config", w.config().to_str().expect("utf-8")])
        .env_remove("AIRLOCK_TEST_NO_SUCH_WEBHOOK_SECRET")
        .env("AIRLOCK_TEST_BAD_WEBHOOK_SECRET", "not-a-secret")
        .output()
        .expect("run airlock");
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    let config = w.config().display().to_string();
    for expected in [
        "roles.finance.channels: role `finance` names channel `webhook:finance`, which".to_string(),
        format!("{config}:5:1: error: channel[0].secret_env: channel `webhook:ops`: the environment variable AIRLOCK_TEST_NO_SUCH_WEBHOOK_SECRET is not set"),
        format!("{config}:11:1: error: channel[1].secret_env: channel `webhook:audit`: the environment variable AIRLOCK_TEST_BAD_WEBHOOK_SECRET does not hold a webhook secret: it must start with `whsec_`"),
    ] {
        assert!(said.contains(&expected), "missing `{expected}` in:\n{said}");
    }
    assert!(!said.contains("not-a-secret"), "a secret's value is never shown:\n{said}");
}
