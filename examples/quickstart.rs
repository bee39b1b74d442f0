//! The quickstart: this program is an agent. It starts `airlock serve` on the repository's
//! `airlock.toml` (the demo shop behind the gate), connects to it over MCP stdio exactly as Claude
//! Desktop or the Python SDK would, and makes one call down each path. The refund needs a human:
//! the approval mail lands in `./outbox`, this program prints its link, and the call waits until
//! you decide in your browser. Then it prints the outcome and the ledger rows of that call.
//!
//! `cargo run --example quickstart` (add `-- --approve` to let this program click Approve for you).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

#[path = "common/approver.rs"]
mod approver;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn call(agent: &Client, tool: &str, args: Value) -> anyhow::Result<CallToolResult> {
    let mut p = CallToolRequestParams::new(tool.to_string());
    p.arguments = args.as_object().cloned();
    Ok(agent.call_tool(p).await?)
}

fn show(what: &str, tool: &str, args: &Value, r: &CallToolResult) {
    let v = serde_json::to_value(r).unwrap_or_default();
    let text: Vec<&str> = v["content"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["text"].as_str()).collect())
        .unwrap_or_default();
    let verdict = v["_meta"]["airlock/decision"]["verdict"]
        .as_str()
        .unwrap_or(if r.is_error == Some(true) {
            "refused"
        } else {
            "ran"
        });
    println!(
        "• {what}\n  {tool} {args}\n  → {} [{verdict}] {}\n",
        if r.is_error == Some(true) {
            "NOT RUN"
        } else {
            "RESULT"
        },
        text.join(" ")
    );
}

/// What a person does in the browser: open the page, press Approve.
fn approve(link: &str) -> anyhow::Result<()> {
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let page = http.get(link).call()?.body_mut().read_to_string()?;
    let form = approver::approve_form(&page, "approved by the quickstart");
    let status = http
        .post(link)
        .send_form(form.iter().map(|(k, v)| (*k, v.as_str())))?
        .status();
    anyhow::ensure!(status.is_success(), "approval POST answered {status}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let auto_approve = std::env::args().any(|a| a == "--approve");
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
            "customer email with its evidence (the order): autopilot",
            "send_customer_email",
            json!({"to": "bob@example.com", "subject": "Your order", "body": "Shipped!", "order_id": "A-1002"}),
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
        let r = call(&agent, tool, args.clone()).await?;
        show(what, tool, &args, &r);
    }

    // The refund needs the finance role. The call waits; the mail goes to ./outbox.
    let before = approver::outbox_files(Path::new("outbox"));
    let args = json!({"order_id": "A-1001", "amount_cents": 4599, "reason": "damaged in transit"});
    let agent = std::sync::Arc::new(agent);
    let waiting = {
        let (agent, args) = (agent.clone(), args.clone());
        tokio::spawn(async move { call(&agent, "refund_order", args).await })
    };
    let mut link = None;
    for _ in 0..200 {
        if let Some(new) = approver::outbox_files(Path::new("outbox"))
            .difference(&before)
            .next()
        {
            link = approver::link_in(new);
            if link.is_some() {
                println!(
                    "• a refund: needs the finance role\n  refund_order {args}\n  → WAITING. The approval mail is in {}.",
                    new.display()
                );
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let link = link.context("no approval mail appeared in ./outbox")?;
    if auto_approve {
        println!("  --approve: opening the link and pressing Approve, as the approver would.\n");
        approve(&link)?;
    } else {
        println!(
            "\n  Open this link in your browser, look at the request, and decide (Approve, Deny, Modify, Escalate):\n\n    {link}\n\n  The agent waits for your decision...\n"
        );
    }
    let r = waiting.await??;
    show(
        "the refund, after the human decision",
        "refund_order",
        &args,
        &r,
    );
    if let Ok(agent) = std::sync::Arc::try_unwrap(agent) {
        agent.cancel().await?;
    }

    // The gate exits when its agent leaves; then the ledger can be read.
    for _ in 0..200 {
        let out = Command::new("cargo")
            .args(["run", "-q", "--bin", "airlock", "--", "ledger", "export"])
            .output()?;
        if out.status.success() {
            let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let call_id = rows
                .iter()
                .rev()
                .find(|r| r["kind"] == "envelope")
                .map(|r| r["call_id"].clone())
                .unwrap_or_default();
            println!("ledger rows of the refund (airlock ledger export):");
            for r in rows.iter().filter(|r| r["call_id"] == call_id) {
                let b = &r["body"];
                let detail = match r["kind"].as_str().unwrap_or("") {
                    "verdict" => format!(
                        "{} — {}",
                        b["verdict"],
                        b["explanation"].as_str().unwrap_or("")
                    ),
                    "envelope" => format!(
                        "role {} until {}, envelope {}",
                        b["envelope"]["role"],
                        b["envelope"]["expires_at"],
                        &b["envelope_hash"].as_str().unwrap_or("")[..12]
                    ),
                    "mail_sent" => format!("to {} via {}", b["to"], b["via"]),
                    "decision" => {
                        format!("{} by {} ({})", b["choice"], b["approver"], b["comment"])
                    }
                    "outcome" => format!("{} result {}", b["status"], b["result_sha256"]),
                    _ => String::new(),
                };
                println!(
                    "  #{:<4} {:<17} {detail}",
                    r["seq"],
                    r["kind"].as_str().unwrap_or("")
                );
            }
            let verify = Command::new("cargo")
                .args([
                    "run", "-q", "--bin", "airlock", "--", "ledger", "verify", "--json",
                ])
                .output()?;
            let report: Value = serde_json::from_slice(&verify.stdout).unwrap_or_default();
            println!(
                "\nledger ./airlock.redb: {} rows, hash chain {}",
                report["rows"],
                if verify.status.success() {
                    "OK"
                } else {
                    "FAILED"
                }
            );
            println!(
                "Next: `cargo run -q -- map`, `cargo run -q -- explain --tool refund_order`, `cargo run -q -- ledger export | tail`."
            );
            return Ok(());
        }
        if !String::from_utf8_lossy(&out.stderr).contains("open in another process") {
            anyhow::bail!(
                "ledger export failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("airlock serve did not release the ledger")
}
