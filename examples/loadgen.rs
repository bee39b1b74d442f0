//! `loadgen`: a closed-loop load generator for MCP `tools/call` over streamable HTTP.
//!
//! It opens MCP sessions to one URL with rmcp's client (optionally sending extra
//! headers, e.g. `Authorization: Bearer …` for Airlock), then keeps `-c` calls of one
//! tool in flight until `-n` calls have completed, after a warm-up that is not
//! measured. It prints one JSON line: calls, errors, seconds, req/s and latency
//! percentiles in microseconds.
//!
//! Concurrency model: `-c C` workers, each with one call in flight at a time (a new
//! call starts as soon as the previous one is answered). By default every worker has
//! its own session (`--sessions C`: C agents, as in mcp-proxy's own harness);
//! `--sessions 1` puts all C in-flight calls on one session (one agent calling in
//! parallel). Sessions are opened one after another before any timing starts.
//!
//! `--stdio COMMAND ARGS…` (last on the line) instead of `--url`: the server is a child process
//! spoken to over stdio (one session; every in-flight call on it), and the result line adds
//! `server_cpu_us`, the child's own CPU time per measured call (user + system, from /proc).
//!
//! What counts: a call answered with `isError: true`, a transport or protocol error, or
//! no answer within `--timeout-ms` is an error. `rps` is successful calls per second of
//! the measured phase; the percentiles are over successful calls only.
//!
//! It must never call any tool but the one it is given, talk to anything but the URL it
//! is given, retry a failed call (a failure is counted, never hidden), or print the
//! headers it sends (they may hold a token). Diagnostics go to stderr; stdout carries
//! only the result line.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::http::{HeaderName, HeaderValue};
use clap::Parser;
use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::service::{Peer, RoleClient, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Closed-loop tools/call load over MCP streamable HTTP; prints one JSON line"
)]
struct Cli {
    /// The MCP endpoint, e.g. http://127.0.0.1:9100/mcp; repeat it to spread the sessions over
    /// several (session i goes to URL i mod U: replicas behind a round-robin balancer).
    #[arg(long, required_unless_present = "stdio")]
    url: Vec<String>,
    /// Instead of a URL: start this command (with its arguments: the rest of the line) and speak
    /// MCP to it over stdio; its stderr goes to `--stderr`.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "COMMAND", conflicts_with = "url")]
    stdio: Vec<String>,
    /// Where the stdio child's stderr goes (default: discarded).
    #[arg(long, value_name = "FILE")]
    stderr: Option<std::path::PathBuf>,
    /// An extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The tool to call.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// The call's arguments, a JSON object.
    #[arg(long, default_value = r#"{"text":"hi"}"#)]
    args: String,
    /// Calls in flight at once (closed loop: one per worker).
    #[arg(short = 'c', long, default_value_t = 1)]
    concurrency: usize,
    /// Measured calls (after the warm-up).
    #[arg(short = 'n', long, default_value_t = 10_000)]
    calls: usize,
    /// Calls made before measuring, with the same concurrency.
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Sessions the workers share (worker i uses session i mod S); default: one per worker.
    #[arg(long)]
    sessions: Option<usize>,
    /// A call not answered within this many milliseconds counts as an error.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Tokio worker threads of this process (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Reuse TCP connections (a pooled client with TCP_NODELAY). rmcp's default client, used
    /// otherwise, keeps no idle connection: every POST opens a new one.
    #[arg(long)]
    keep_alive: bool,
    /// A label copied into the result line (e.g. the target's name).
    #[arg(long, default_value = "")]
    label: String,
}

/// What one phase (warm-up or measured) produced.
struct Phase {
    seconds: f64,
    calls: usize,
    errors: usize,
    /// Latencies of the successful calls, µs, sorted.
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

/// What one worker produced.
#[derive(Default)]
struct WorkerOut {
    calls: usize,
    errors: usize,
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<Value> {
    if cli.concurrency == 0 {
        bail!("-c must be at least 1");
    }
    let sessions = cli
        .sessions
        .unwrap_or(cli.concurrency)
        .clamp(1, cli.concurrency);
    let headers = parse_headers(&cli.headers)?;
    let arguments: JsonObject = match serde_json::from_str(&cli.args) {
        Ok(Value::Object(map)) => map,
        Ok(_) => bail!("--args must be a JSON object"),
        Err(e) => bail!("--args is not JSON: {e}"),
    };
    let params = CallToolRequestParams::new(cli.tool.clone()).with_arguments(arguments);
    let timeout = Duration::from_millis(cli.timeout_ms);
    // each session may carry every worker that uses it, so rmcp's POST limit never queues a call
    let per_session = cli.concurrency.div_ceil(sessions);

    let mut services = Vec::with_capacity(sessions);
    let mut child = None;
    if cli.stdio.is_empty() {
        for i in 0..sessions {
            let url = &cli.url[i % cli.url.len()];
            let service = connect(url, &headers, per_session, cli.keep_alive, timeout)
                .await
                .with_context(|| format!("session {} of {sessions}", i + 1))?;
            services.push(service);
        }
    } else {
        let (service, pid) = spawn(&cli.stdio, cli.stderr.as_deref(), timeout).await?;
        services.push(service);
        child = pid;
    }
    let sessions = services.len();
    if let Some(first) = services.first() {
        check_tool(first.peer(), &cli.tool, timeout).await?;
    }
    let peers: Vec<Peer<RoleClient>> = services.iter().map(|s| s.peer().clone()).collect();

    if cli.warmup > 0 {
        let warm = phase(&peers, cli.concurrency, cli.warmup, &params, timeout).await;
        if warm.errors > 0 {
            eprintln!(
                "loadgen: {} of {} warm-up calls failed; first: {}",
                warm.errors,
                warm.calls,
                warm.first_error.as_deref().unwrap_or("?")
            );
        }
    }
    let cpu_before = child.map(cpu_us);
    let measured = phase(&peers, cli.concurrency, cli.calls, &params, timeout).await;
    let server_cpu_us = match (child.map(cpu_us), cpu_before) {
        (Some(Some(after)), Some(Some(before))) if measured.calls > 0 => {
            Some(round3((after - before) as f64 / measured.calls as f64))
        }
        _ => None,
    };
    if let Some(e) = &measured.first_error {
        eprintln!(
            "loadgen: {} of {} calls failed; first: {e}",
            measured.errors, measured.calls
        );
    }
    for service in services {
        let _ = service.cancel().await;
    }

    let ok = measured.calls - measured.errors;
    let rps = if measured.seconds > 0.0 {
        ok as f64 / measured.seconds
    } else {
        0.0
    };
    let lat = &measured.latencies_us;
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<u64>() as f64 / lat.len() as f64
    };
    Ok(json!({
        "label": cli.label,
        "url": if cli.stdio.is_empty() { cli.url.join(" ") } else { format!("stdio: {}", cli.stdio.join(" ")) },
        "tool": cli.tool,
        "concurrency": cli.concurrency,
        "sessions": sessions,
        "keep_alive": cli.keep_alive,
        "warmup": cli.warmup,
        "calls": measured.calls,
        "errors": measured.errors,
        "seconds": round3(measured.seconds),
        "rps": round3(rps),
        "p50_us": percentile(lat, 0.50),
        "p90_us": percentile(lat, 0.90),
        "p99_us": percentile(lat, 0.99),
        "max_us": lat.last().copied().unwrap_or(0),
        "mean_us": round3(mean),
        "first_error": measured.first_error,
        "server_cpu_us": server_cpu_us,
    }))
}

/// `Name: value` strings as HTTP headers.
fn parse_headers(raw: &[String]) -> anyhow::Result<HashMap<HeaderName, HeaderValue>> {
    let mut out = HashMap::new();
    for h in raw {
        let Some((name, value)) = h.split_once(':') else {
            bail!("--header must be `Name: value`, got a value without a colon");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("--header name `{}`", name.trim()))?;
        // the value is never echoed: it may be a token
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| anyhow::anyhow!("--header `{name}`: not a valid header value"))?;
        out.insert(name, value);
    }
    Ok(out)
}

/// One MCP session to `url` (initialize handshake done).
async fn connect(
    url: &str,
    headers: &HashMap<HeaderName, HeaderValue>,
    max_in_flight: usize,
    keep_alive: bool,
    timeout: Duration,
) -> anyhow::Result<RunningService<RoleClient, ()>> {
    let config = StreamableHttpClientTransportConfig::with_uri(url)
        .custom_headers(headers.clone())
        .max_concurrent_requests(max_in_flight.max(16));
    let transport = if keep_alive {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            // only the URL it is given
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;
        StreamableHttpClientTransport::with_client(client, config)
    } else {
        StreamableHttpClientTransport::from_config(config)
    };
    match tokio::time::timeout(timeout, ().serve(transport)).await {
        Ok(Ok(service)) => Ok(service),
        Ok(Err(e)) => bail!("MCP handshake with {url} failed: {e}"),
        Err(_) => bail!("MCP handshake with {url} took over {timeout:?}"),
    }
}

/// One MCP session to a child process over stdio, and the child's pid.
async fn spawn(
    command: &[String],
    stderr: Option<&std::path::Path>,
    timeout: Duration,
) -> anyhow::Result<(RunningService<RoleClient, ()>, Option<u32>)> {
    let Some((program, args)) = command.split_first() else {
        bail!("--stdio needs a command");
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    let err = match stderr {
        Some(path) => std::process::Stdio::from(
            std::fs::File::create(path).with_context(|| format!("--stderr {}", path.display()))?,
        ),
        None => std::process::Stdio::null(),
    };
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = transport.id();
    match tokio::time::timeout(timeout, ().serve(transport)).await {
        Ok(Ok(service)) => Ok((service, pid)),
        Ok(Err(e)) => bail!("MCP handshake with {program} over stdio failed: {e}"),
        Err(_) => bail!("MCP handshake with {program} took over {timeout:?}"),
    }
}

/// User + system CPU time a process has used so far, in µs (Linux `/proc`; None elsewhere).
fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the fields after the command name, which is in parentheses and may hold spaces
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000 / clock_ticks_per_second())
}

/// `getconf CLK_TCK` (the unit of /proc's CPU times), asked once.
fn clock_ticks_per_second() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse().ok())
            .filter(|hz| *hz > 0)
            .unwrap_or(100)
    })
}

/// Fail early, with the names on offer, when the server does not list `tool`.
async fn check_tool(peer: &Peer<RoleClient>, tool: &str, timeout: Duration) -> anyhow::Result<()> {
    let tools = match tokio::time::timeout(timeout, peer.list_all_tools()).await {
        Ok(Ok(tools)) => tools,
        Ok(Err(e)) => bail!("tools/list failed: {e}"),
        Err(_) => bail!("tools/list took over {timeout:?}"),
    };
    if tools.iter().any(|t| t.name == tool) {
        return Ok(());
    }
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    bail!(
        "the server lists no tool `{tool}`; it lists: {}",
        names.join(", ")
    )
}

/// `total` calls by `workers` closed-loop workers; worker i uses `peers[i % peers.len()]`.
async fn phase(
    peers: &[Peer<RoleClient>],
    workers: usize,
    total: usize,
    params: &CallToolRequestParams,
    timeout: Duration,
) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers {
        let Some(peer) = peers.get(w % peers.len().max(1)).cloned() else {
            break;
        };
        let next = next.clone();
        let params = params.clone();
        handles.push(tokio::spawn(async move {
            worker(peer, next, total, params, timeout).await
        }));
    }
    let mut out = WorkerOut::default();
    for handle in handles {
        match handle.await {
            Ok(w) => {
                out.calls += w.calls;
                out.errors += w.errors;
                out.latencies_us.extend(w.latencies_us);
                if out.first_error.is_none() {
                    out.first_error = w.first_error;
                }
            }
            Err(e) => {
                out.first_error
                    .get_or_insert(format!("worker panicked: {e}"));
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    out.latencies_us.sort_unstable();
    Phase {
        seconds,
        calls: out.calls,
        errors: out.errors,
        latencies_us: out.latencies_us,
        first_error: out.first_error,
    }
}

/// Take call numbers from `next` until `total` are taken; one call in flight at a time.
async fn worker(
    peer: Peer<RoleClient>,
    next: Arc<AtomicUsize>,
    total: usize,
    params: CallToolRequestParams,
    timeout: Duration,
) -> WorkerOut {
    let mut out = WorkerOut {
        latencies_us: Vec::with_capacity(total / 8 + 1),
        ..WorkerOut::default()
    };
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let t = Instant::now();
        let answer = tokio::time::timeout(timeout, peer.call_tool(params.clone())).await;
        let elapsed = t.elapsed();
        out.calls += 1;
        let failure = match answer {
            Ok(Ok(result)) if result.is_error != Some(true) => None,
            Ok(Ok(result)) => Some(format!("isError: {}", error_text(&result))),
            Ok(Err(e)) => Some(format!("call failed: {e}")),
            Err(_) => Some(format!("no answer within {timeout:?}")),
        };
        match failure {
            None => out
                .latencies_us
                .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)),
            Some(f) => {
                out.errors += 1;
                out.first_error.get_or_insert(f);
            }
        }
    }
    out
}

/// The text of an error result, shortened for a diagnostic line.
fn error_text(result: &rmcp::model::CallToolResult) -> String {
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join(" ");
    text.chars().take(300).collect()
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
