//! The quickstart: this program is an agent. It starts `airlock serve` on the repository's
//! `airlock.toml` (the demo shop behind the gate), connects to it over MCP stdio exactly as Claude
//! Desktop or the Python SDK would, makes one call down each path, and prints what came back and
//! what the ledger recorded.
//!
//! Run it from the repository root: `cargo run --example quickstart`.

use std::process::Command;

use anyhow::Context;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Build first so the gate and the demo shop start at once instead of compiling mid-handshake.
    let status = Command::new("cargo")
        .args(["build", "-q", "--bin", "airlock", "--example", "demo_shop"])
        .status()?;
    anyhow::ensure!(status.success(), "cargo build failed");

    println!(
        "Airlock quickstart: this program is the agent; `airlock serve` gates the demo shop.\n"
    );
    let mut serve = tokio::process::Command::new("cargo");
    serve
        .args([
            "run",
            "-q",
            "--bin",
            "airlock",
            "--",
            "serve",
            "--config",
            "airlock.toml",
        ])
        .env("AIRLOCK_LOG", "warn");
    let agent =
        ().serve(TokioChildProcess::new(serve)?)
            .await
            .context("MCP handshake with airlock")?;

    let tools: Vec<String> = agent
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    println!("tools/list → {}\n", tools.join(", "));

    let calls = [
        (
            "a read: autopilot",
            "search_orders",
            json!({"query": "A-1001"}),
        ),
        (
            "a reversible change with an undo tool: autopilot",
            "tag_order",
            json!({"order_id": "A-1002", "tag": "vip"}),
        ),
        (
            "customer email with its evidence (order id): autopilot",
            "send_customer_email",
            json!({"to": "bob@example.com", "subject": "Your order", "body": "Shipped!", "order_id": "A-1002"}),
        ),
        (
            "customer email without evidence: needs the support role",
            "send_customer_email",
            json!({"to": "bob@example.com", "subject": "Hi", "body": "Hello"}),
        ),
        (
            "a refund: needs the finance role",
            "refund_order",
            json!({"order_id": "A-1001", "amount_cents": 4599, "reason": "damaged"}),
        ),
        (
            "a deletion: denied by policy",
            "delete_customer",
            json!({"email": "alice@example.com"}),
        ),
        (
            "a tool no manifest describes: quarantined",
            "wire_transfer",
            json!({"iban": "XX00", "amount": 1}),
        ),
    ];
    for (what, tool, args) in calls {
        let mut p = CallToolRequestParams::new(tool);
        p.arguments = args.as_object().cloned();
        let r = agent.call_tool(p).await?;
        let v = serde_json::to_value(&r)?;
        let text: Vec<&str> = v["content"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["text"].as_str()).collect())
            .unwrap_or_default();
        let verdict = v["_meta"]["airlock/decision"]["verdict"]
            .as_str()
            .unwrap_or("allow");
        println!(
            "• {what}\n  {tool} {args}\n  → {} [{}] {}\n",
            if r.is_error == Some(true) {
                "REFUSED"
            } else {
                "RAN"
            },
            verdict,
            text.join(" ")
        );
    }
    agent.cancel().await?;

    // The gate exits when its agent leaves; give it a moment to release the ledger file.
    for _ in 0..100 {
        let out = Command::new("cargo")
            .args([
                "run", "-q", "--bin", "airlock", "--", "ledger", "verify", "--json",
            ])
            .output()?;
        if out.status.success() {
            let report: Value = serde_json::from_slice(&out.stdout)?;
            println!(
                "ledger ./airlock.redb: {} rows, hash chain OK, head {}",
                report["rows"],
                report["head"].as_str().unwrap_or("?")
            );
            println!(
                "\nNext: `cargo run -q -- ledger export | tail -3`, `cargo run -q -- map`, `cargo run -q -- explain --tool refund_order`."
            );
            return Ok(());
        }
        if !String::from_utf8_lossy(&out.stderr).contains("open in another process") {
            anyhow::bail!(
                "ledger verify failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("airlock serve did not release the ledger")
}
