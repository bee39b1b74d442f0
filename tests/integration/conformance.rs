//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance@0.1.10`, every
//! server scenario, pending ones included) run twice against our conformance tool server
//! (`examples/conformance_server`): directly, and through Airlock with every tool manifested as
//! allowed. Airlock must be invisible: the same scenarios pass both ways. The side-by-side table
//! is written to `target/tmp/conformance.md`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::agents;
use crate::support::npm_bin;
use crate::smtp::free_port;
use crate::support::{REPO, World, example, Peer, require};

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Scenario → (checks passed, checks failed), from the suite's summary.
type Results = BTreeMap<String, (u32, u32)>;

/// Run every server scenario against `url`.
fn suite(url: &str, out: &std::path::Path) -> Results {
    let run = Command::new(npm_bin("conformance"))
        .args(["server", "--url", url, "--suite", "all", "-o"])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("run the conformance suite");
    let text = String::from_utf8_lossy(&run.stdout);
    let summary = text
        .split("=== SUMMARY ===")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary from the suite:\n{text}\n{run:?}"));
    // "✓ tools-list: 1 passed, 0 failed"
    let results: Results = summary
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['✓', '✗', ' ']);
            let (name, counts) = l.split_once(": ")?;
            if name.starts_with("Total") {
                return None;
            }
            let mut n = counts
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<u32>().unwrap_or(0));
            Some((name.to_string(), (n.next()?, n.next()?)))
        })
        .collect();
    assert!(results.len() >= 31, "too few scenarios parsed:\n{summary}");
    results
}

fn wait_for_port(port: u16, what: &str) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{what} did not listen on {port}");
}

#[ignore = "needs the MCP conformance suite; scripts/test runs it"]
#[tokio::test]
async fn the_conformance_suite_passes_the_same_through_airlock_as_directly() {
    require(Peer::Conformance);
    let w = World::empty();

    // the tool server, alone
    let port = free_port();
    let _server = Running(
        Command::new(example("conformance_server"))
            .args(["--http", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("conformance server"),
    );
    wait_for_port(port, "the conformance server");
    let direct = suite(&format!("http://127.0.0.1:{port}/mcp"), &w.path("direct"));

    // the same server behind Airlock, every tool allowed by its manifest
    let (token, entry) = agents::token("agent:conformance");
    let gate_port = free_port();
    w.write_config(&format!(
        "[gate]\nmanifests = {m:?}\npolicies = {p:?}\nledger = \"l.redb\"\nmax_wait = \"5s\"\n[web]\nbind = \"127.0.0.1:0\"\n[mail]\noutbox = \"outbox\"\n[http]\nbind = \"127.0.0.1:{gate_port}\"\n\n[[server]]\nname = \"conformance\"\nurl = \"http://127.0.0.1:{port}/mcp\"\nprefix = \"\"\n\n{entry}",
        m = format!("{REPO}/examples/conformance"),
        p = format!("{REPO}/policies"),
    ));
    let gate = agents::serve(&w, &[], &format!("http://127.0.0.1:{gate_port}"));
    // the suite cannot send a header: a small proxy adds the agent's bearer token
    let mut proxy = Command::new("node")
        .arg(format!("{REPO}/examples/conformance/bearer-proxy.mjs"))
        .arg(&gate.base)
        .arg(&token)
        .stdout(Stdio::piped())
        .spawn()
        .expect("bearer proxy");
    let mut line = String::new();
    BufReader::new(proxy.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("proxy port");
    let proxy = Running(proxy);
    let proxy_port = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("proxy said {line:?}"));
    let through = suite(
        &format!("http://127.0.0.1:{proxy_port}/mcp"),
        &w.path("through"),
    );
    drop(proxy);
    // group commit at work: the gate reports how its rows were committed
    let health = crate::smtp::http()
        .get(&format!("{}/healthz", gate.base))
        .call()
        .expect("healthz")
        .body_mut()
        .read_to_string()
        .expect("healthz body");
    let health: serde_json::Value = serde_json::from_str(&health).expect("healthz json");
    let ledger = &health["ledger"];
    let (commits, changes) = (ledger["commits"].as_u64(), ledger["changes"].as_u64());
    assert!(
        commits.is_some_and(|c| c > 0) && commits <= changes,
        "healthz ledger counters: {health}"
    );
    drop(gate);

    // the table, for the README and the issue
    let total = |r: &Results| r.values().fold((0, 0), |(p, f), (a, b)| (p + a, f + b));
    let mut table =
        String::from("| scenario | direct (passed/failed) | through Airlock |\n|---|---|---|\n");
    for (name, d) in &direct {
        let t = through.get(name).copied().unwrap_or((0, 0));
        table.push_str(&format!("| {name} | {}/{} | {}/{} |\n", d.0, d.1, t.0, t.1));
    }
    let (dt, tt) = (total(&direct), total(&through));
    table.push_str(&format!(
        "| **total** | **{}/{}** | **{}/{}** |\n",
        dt.0, dt.1, tt.0, tt.1
    ));
    let report = std::path::Path::new(REPO).join("target/tmp/conformance.md");
    let _ = std::fs::create_dir_all(report.parent().unwrap_or(std::path::Path::new(".")));
    let _ = std::fs::write(&report, &table);
    eprintln!("{table}");

    assert_eq!(dt.1, 0, "our conformance server fails scenarios:\n{table}");
    let differ: Vec<&String> = direct
        .iter()
        .filter(|(name, d)| through.get(*name) != Some(d))
        .map(|(name, _)| name)
        .collect();
    assert!(
        differ.is_empty(),
        "Airlock changed the outcome of {differ:?}:\n{table}"
    );

    // and everything the suite did through the gate was recorded as the suite's agent
    w.wait_for_ledger().await;
    let out = w.airlock(&["ledger", "verify"]);
    assert!(out.status.success(), "{out:?}");
    let rows = w.ledger_rows().await;
    for tool in ["test_simple_text", "test_sampling", "test_elicitation"] {
        assert!(
            rows.iter().any(|r| r["kind"] == "proposal"
                && r["body"]["tool"] == tool
                && r.to_string().contains("agent:conformance")),
            "no proposal of {tool} by agent:conformance in the ledger"
        );
    }
    assert!(
        rows.iter().any(|r| r["kind"] == "resource_read"),
        "reads are recorded"
    );
}
