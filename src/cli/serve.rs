//! `serve`: wire the gate together — ledger, keys, tool servers, guard, desk, quarantine, meter,
//! pages, MCP over stdio (and HTTP) — run it, and shut it down gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::{runtime, runtime_file, setup};
use airlock::approval::link::LinkKey;
use airlock::channel;
use airlock::config::{Config, MailTransport, Setup};
use airlock::desk::Started;
use airlock::gate::Gate;
use airlock::ledger::{Ledger, Location, NewRow, Row, checkpoint, row};
use airlock::live::{self, Fingerprint};
use airlock::mail::Mailer;
use airlock::mcp::downstream::ToolServers;
use airlock::mcp::upstream::AgentServer;
use airlock::seal::Sealer;
use airlock::signing::Signer;
use airlock::web;

mod channels;
mod desk;
mod stop;

use channels::start_channels;
use desk::{Desked, start_desk};
use stop::{Running, Shutdown};

pub(super) fn serve(path: &Path, http_override: Option<&str>) -> anyhow::Result<ExitCode> {
    // The files as they are now: an edit made while the servers start is picked up by the watcher.
    let loaded = setup(path)?;
    let seen = live::fingerprint(path, &loaded);
    let setup = Arc::new(loaded);
    let rt = runtime()?;
    let served = rt.block_on(async move {
        // Caught before anything listens: a SIGTERM while the gate starts (its pages may already
        // answer) stops it cleanly instead of killing it.
        let mut shutdown = Shutdown::install()?;
        let cfg = &setup.config;
        let opened = open_ledger(cfg, path, http_override)?;
        let listening = listen(cfg, http_override).await?;
        let servers = connect_tool_servers(&setup).await?;
        record_start(&setup, &opened, &servers, &listening).await?;
        let desk = start_desk(&setup, &opened, servers, &listening.base_url).await?;
        let (runtime_file, instance) = write_runtime_file(cfg, listening.bound);
        let (channels, channel_status) = start_channels(cfg, &opened, &desk)?;
        let pages = pages(
            cfg,
            &opened,
            &desk,
            instance,
            &listening.base_url,
            channel_status,
        )?;
        let checkpoints = start_checkpoints(cfg, &opened).await?;
        let watchers = start_watchers(path, seen, &desk, &opened.ledger);
        log_serving(&setup, &opened, &desk, &listening.base_url);
        let (gate, chores) = start_gate(&opened, &desk).await?;
        let (agent, listeners) = start_listeners(cfg, &gate, pages, listening);
        stop::wait_for_shutdown(agent, &listeners, &mut shutdown).await?;
        let running = Running {
            gate,
            desk,
            ledger: opened.ledger,
            listeners,
            tasks: [watchers, chores],
            runtime_file,
            checkpoints,
            channels,
        };
        running.stop().await;
        Ok(ExitCode::SUCCESS)
    });
    // Everything that writes has finished above (the ledger's writer joins when its last handle
    // drops). What may remain is a blocking read of stdin by an agent that keeps the pipe open:
    // it must not keep the process alive after SIGTERM.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// What the gate opens first: the ledger and the keys, and the mailer.
struct Opened {
    signer: Signer,
    ledger: Arc<Ledger>,
    /// The approval links' key.
    key: LinkKey,
    sealer: Arc<Sealer>,
    mailer: Mailer,
}

/// Load the keys and open the ledger, held to its checkpoints before anything is appended.
fn open_ledger(cfg: &Config, path: &Path, http_override: Option<&str>) -> anyhow::Result<Opened> {
    let signer = Signer::load_or_create(&cfg.signing_key_path)?;
    let ledger = Arc::new(Ledger::open_cached(
        &replica_of(cfg, path, http_override),
        Some(signer.clone()),
        cfg.limits.ledger_cache,
    )?);
    // Before anything is appended: a ledger that does not extend its newest checkpoint was
    // rolled back or rewritten, and appending would bury that.
    if let Some((file, rows)) =
        checkpoint::guard::ledger_extends(&ledger, &cfg.checkpoints.dir, &signer.public())?
    {
        tracing::info!(rows, checkpoint = %file.display(), "the ledger extends its newest checkpoint");
    }
    let key = LinkKey::load_or_create(&cfg.key_path)?;
    let sealer = Arc::new(Sealer::load_or_create(
        &cfg.seal_key_path,
        cfg.seal_ratchet,
    )?);
    let mailer = Mailer::new(&cfg.mail)?;
    Ok(Opened {
        signer,
        ledger,
        key,
        sealer,
        mailer,
    })
}

/// The one listener, bound before the tool servers start.
struct Listening {
    /// MCP over HTTP's address, when agents are served over HTTP too.
    http: Option<SocketAddr>,
    listener: TcpListener,
    bound: SocketAddr,
    /// Where people reach the pages: `[web] public_url`, else the bound address.
    base_url: String,
}

/// Bind the pages' listener; with MCP over HTTP, the approval pages share its listener.
async fn listen(cfg: &Config, http_override: Option<&str>) -> anyhow::Result<Listening> {
    let http = cfg
        .http
        .serving(http_override, &cfg.agents, cfg.oauth.is_some())
        .map_err(anyhow::Error::msg)?;
    let (bind, what) = match http {
        Some(b) => (b, "http.bind"),
        None => (cfg.web.bind, "web.bind"),
    };
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind} ({what})"))?;
    let bound = listener.local_addr()?;
    let base_url = cfg
        .web
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    Ok(Listening {
        http,
        listener,
        bound,
        base_url,
    })
}

/// Connect to the tool servers (one that cannot be reached is logged) and check the conditions
/// against the tools they serve.
async fn connect_tool_servers(setup: &Setup) -> anyhow::Result<ToolServers> {
    let (servers, problems) = ToolServers::connect(&setup.config.servers).await;
    for p in &problems {
        tracing::error!(server = %p.server, "{}", p.message);
    }
    check_conditions(setup, &servers)?;
    Ok(servers)
}

/// A condition on an argument a tool does not have could never hold: refuse to serve.
fn check_conditions(setup: &Setup, servers: &ToolServers) -> anyhow::Result<()> {
    let served = servers.tools();
    let found = setup.validate_conditions(|server, tool| {
        served
            .route_of(server, tool)
            .and_then(|t| t.definition.get("inputSchema"))
    });
    let errors: Vec<String> = found
        .iter()
        .filter(|d| d.severity == airlock::diag::Severity::Error)
        .map(ToString::to_string)
        .collect();
    for d in found
        .iter()
        .filter(|d| d.severity != airlock::diag::Severity::Error)
    {
        tracing::warn!("{d}");
    }
    if !errors.is_empty() {
        bail!(
            "{}\n{} error(s) in conditions; nothing was started",
            errors.join("\n"),
            errors.len()
        );
    }
    Ok(())
}

/// Append `gate_started`: a gate that cannot write to its ledger serves nothing.
async fn record_start(
    setup: &Setup,
    opened: &Opened,
    servers: &ToolServers,
    listening: &Listening,
) -> anyhow::Result<()> {
    let cfg = &setup.config;
    let started = row::GateStarted {
        policy_version: setup.policy.version.clone(),
        policy_file: setup.policy_path.display().to_string(),
        actor: cfg.actor.clone(),
        servers: servers
            .status()
            .into_iter()
            .map(|(name, status)| row::ServerState { name, status })
            .collect(),
        tools: servers.tools().iter().map(|t| t.exposed.clone()).collect(),
        web: row::WebAddress {
            bound: listening.bound.to_string(),
            public_url: listening.base_url.clone(),
        },
        mail: match &cfg.mail.transport {
            MailTransport::Smtp(_) => "smtp".to_string(),
            MailTransport::Outbox(d) => d.display().to_string(),
        },
        airlock_version: env!("CARGO_PKG_VERSION").to_string(),
        signing_key: opened.signer.public_hex(),
        generated_by: None,
    };
    opened
        .ledger
        .append(vec![NewRow::now("", Row::GateStarted(started))])
        .await
        .context("cannot write to the ledger; refusing to serve")?;
    Ok(())
}

/// The CLI finds this gate in the runtime file; the instance nonce lets it tell this gate from
/// whatever may hold the port after a crash before the CLI sends it a token. Returns the file
/// and the nonce.
fn write_runtime_file(cfg: &Config, bound: SocketAddr) -> (PathBuf, String) {
    let runtime_file = runtime_file(&cfg.ledger_path);
    let instance = uuid::Uuid::new_v4().to_string();
    if let Err(e) = write_private(&runtime_file, &format!("http://{bound}\n{instance}\n")) {
        tracing::warn!(file = %runtime_file.display(), error = %e, "cannot write the runtime file; `airlock quarantine` and `airlock drift` will need --url");
    }
    (runtime_file, instance)
}

/// The approval, review and pause pages, with who may decide on them.
fn pages(
    cfg: &Config,
    opened: &Opened,
    desk: &Desked,
    instance: String,
    base_url: &str,
    channels: Arc<channel::Status>,
) -> anyhow::Result<Router> {
    let deciders = Arc::new(
        airlock::auth::Deciders::new(
            cfg.sign_in.as_ref(),
            desk.approvals.key(),
            &cfg.key_path,
            base_url,
        )
        .map_err(anyhow::Error::msg)?,
    );
    let web = web::Web {
        instance,
        desk: desk.desk.clone(),
        live: desk.live.clone(),
        servers: desk.servers.clone(),
        ledger: opened.ledger.clone(),
        deciders,
        sealer: opened.sealer.clone(),
        channels,
    };
    Ok(web::app(Arc::new(web)))
}

/// Start writing checkpoints (the first one now), and say where they go.
async fn start_checkpoints(cfg: &Config, opened: &Opened) -> anyhow::Result<checkpoint::Running> {
    let auditor = cfg
        .checkpoints
        .mail_to
        .as_ref()
        .map(|_| opened.mailer.clone());
    let checkpoints = checkpoint::start(
        opened.ledger.clone(),
        opened.signer.clone(),
        &cfg.checkpoints,
        auditor,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    match &cfg.checkpoints.witness {
        Some(w) => {
            tracing::info!(dir = %cfg.checkpoints.dir.display(), origin = checkpoints.origin(), witness = %w, "checkpoints written and sent to the witness")
        }
        None => {
            tracing::info!(dir = %cfg.checkpoints.dir.display(), origin = checkpoints.origin(), "checkpoints written; no [ledger] witness: a ledger rolled back together with its checkpoint directory would not be caught")
        }
    }
    Ok(checkpoints)
}

/// Watch the tool servers and the setup's files. Returns the tasks in the order they stop:
/// the watcher, the prober.
fn start_watchers(
    path: &Path,
    seen: Fingerprint,
    desk: &Desked,
    ledger: &Arc<Ledger>,
) -> [AbortHandle; 2] {
    // Every tool server pinged every few seconds: one that stops answering is `down` in /readyz.
    let prober = tokio::spawn(ToolServers::probe_every(
        desk.servers.clone(),
        airlock::mcp::downstream::health::PROBE_EVERY,
    ));
    // Edits to manifests and policy take effect when valid (file change or SIGHUP).
    let watcher = tokio::spawn(live::watch(
        path.to_path_buf(),
        seen,
        desk.live.clone(),
        ledger.clone(),
        desk.servers.clone(),
        desk.approvals.clone(),
        std::time::Duration::from_secs(1),
    ));
    [watcher.abort_handle(), prober.abort_handle()]
}

/// Say what is served, where people review, and the key the ledger is signed with.
fn log_serving(setup: &Setup, opened: &Opened, desk: &Desked, base_url: &str) {
    let Started {
        approvals: pending,
        held,
        paused,
    } = desk.waiting;
    tracing::info!(tools = desk.servers.tools().len(), policy = %setup.policy.version, ledger = %opened.ledger.path().display(), approvals = %base_url, pending, held, paused, "airlock serving MCP on stdio");
    tracing::info!(
        "review page (held calls, unclassified tools, paused autopilot): reviewers get their own link by mail when a call is held, or from `airlock quarantine list --as EMAIL`"
    );
    tracing::info!(public_key = %opened.signer.public_hex(), "ledger signing key (verify with `airlock ledger verify --public-key`)");
}

/// The gate every call passes, after the keyed calls a previous run left unfinished are
/// recorded. Returns it with its chores, in the order they stop: forgetting old call keys,
/// counting refusals.
async fn start_gate(
    opened: &Opened,
    desk: &Desked,
) -> anyhow::Result<(Arc<Gate>, [AbortHandle; 2])> {
    let gate = Arc::new(Gate::new(
        desk.live.clone(),
        opened.ledger.clone(),
        desk.servers.clone(),
        desk.forwarder.clone(),
        desk.approvals.clone(),
        desk.quarantine.clone(),
        desk.pauses.clone(),
    ));
    // Keyed autopilot calls a previous run left without a result: "unknown", never run again.
    if desk.shared.is_none() {
        let unknown = gate
            .record_unknown_key_results()
            .await
            .context("cannot record the outcome of keyed calls a previous run left unfinished")?;
        if unknown > 0 {
            tracing::warn!(
                unknown,
                "calls with an idempotency key were running when the previous run stopped: a repeat is told their outcome is unknown"
            );
        }
    }
    // Call keys past their retry window go, with any result kept under them (hourly).
    let forgetter = tokio::spawn(
        gate.clone()
            .forget_every(std::time::Duration::from_secs(3600)),
    );
    // Refused calls over an agent's `refused_per_minute`: one count row a minute.
    let counter = tokio::spawn(gate.clone().count_every_minute());
    Ok((gate, [forgetter.abort_handle(), counter.abort_handle()]))
}

/// What listens for the agents besides stdio, and how to stop it.
struct Listeners {
    /// MCP over HTTP's address, when it is served.
    http: Option<SocketAddr>,
    /// Ends MCP over HTTP's sessions.
    stop: CancellationToken,
    /// The pages (and MCP over HTTP) listening.
    web: AbortHandle,
}

/// Serve the pages, with MCP over HTTP beside them when it is configured. Returns the agents'
/// server (for stdio) and the listeners.
fn start_listeners(
    cfg: &Config,
    gate: &Arc<Gate>,
    pages: Router,
    listening: Listening,
) -> (AgentServer, Listeners) {
    let agent = AgentServer::new(gate.clone(), cfg.max_wait);
    let stop = CancellationToken::new();
    let router = match listening.http {
        Some(_) => {
            // OAuth agents: the issuer's keys fetched now, so a wrong [oauth] shows in the log at once.
            let oauth = cfg.oauth.as_ref().map(|o| {
                let resource = Arc::new(airlock::oauth::Resource::new(o.clone()));
                let early = resource.clone();
                tokio::spawn(async move { early.prefetch().await });
                resource
            });
            let agents = airlock::identity::Agents::new(cfg.agents.clone());
            pages.merge(airlock::mcp::http::router(
                agent.clone(),
                &cfg.http,
                &cfg.limits,
                agents,
                oauth,
                stop.clone(),
            ))
        }
        None => pages,
    };
    let web = tokio::spawn(web::listen::serve(
        listening.listener,
        router,
        web::listen::Bounds::of(&cfg.limits),
    ));
    if let Some(b) = listening.http {
        tracing::info!(
            agents = cfg.agents.len(),
            oauth = cfg.oauth.as_ref().map(|o| o.issuer.as_str()),
            "airlock serving MCP over streamable HTTP at http://{b}/mcp"
        );
    }
    (
        agent,
        Listeners {
            http: listening.http,
            stop,
            web: web.abort_handle(),
        },
    )
}

/// Write a file only its owner can read (replacing an old one).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(text.as_bytes())
}

/// The ledger's location, with this replica's name when it is shared: `[store] replica`, else
/// host name, config file and listen address (the same after a restart, different for two
/// replicas on one host).
fn replica_of(cfg: &airlock::config::Config, path: &Path, http: Option<&str>) -> Location {
    cfg.ledger.clone().serving_as(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        let config = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let bind = http
            .map(str::to_string)
            .or_else(|| cfg.http.bind.map(|b| b.to_string()))
            .unwrap_or_else(|| cfg.web.bind.to_string());
        format!("{}:{}:{bind}", host.trim(), config.display())
    })
}
