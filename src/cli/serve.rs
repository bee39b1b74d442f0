//! `serve`: wire the gate together — ledger, keys, tool servers, guard, desk, quarantine, meter,
//! pages, MCP over stdio (and HTTP) — run it, and shut it down gracefully.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use super::{runtime, runtime_file, setup};
use airlock::approval::Approvals;
use airlock::approval::link::LinkKey;
use airlock::config::MailTransport;
use airlock::desk::Desk;
use airlock::drift::meter::Meter;
use airlock::drift::pauses::Pauses;
use airlock::forward::Forwarder;
use airlock::gate::Gate;
use airlock::ledger::{Ledger, Location, NewRow, Row, checkpoint, row};
use airlock::live::{self, Live};
use airlock::mail::Mailer;
use airlock::mcp::downstream::ToolServers;
use airlock::mcp::upstream::AgentServer;
use airlock::quarantine::Quarantine;
use airlock::quarantine::notice::Notices;
use airlock::signing::Signer;
use airlock::web;

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
        let signer = Signer::load_or_create(&cfg.signing_key_path)?;
        let ledger = Arc::new(Ledger::open_cached(&replica_of(cfg, path, http_override), Some(signer.clone()), cfg.limits.ledger_cache)?);
        // Before anything is appended: a ledger that does not extend its newest checkpoint was
        // rolled back or rewritten, and appending would bury that.
        if let Some((file, rows)) = checkpoint::guard::ledger_extends(&ledger, &cfg.checkpoints.dir, &signer.public())? {
            tracing::info!(rows, checkpoint = %file.display(), "the ledger extends its newest checkpoint");
        }
        let key = LinkKey::load_or_create(&cfg.key_path)?;
        let sealer = Arc::new(airlock::seal::Sealer::load_or_create(&cfg.seal_key_path, cfg.seal_ratchet)?);
        let mailer = Mailer::new(&cfg.mail)?;
        // With MCP over HTTP, the approval pages share its listener.
        let http_bind = cfg.http.serving(http_override, &cfg.agents, cfg.oauth.is_some()).map_err(anyhow::Error::msg)?;
        let (bind, what) = match http_bind { Some(b) => (b, "http.bind"), None => (cfg.web.bind, "web.bind") };
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind} ({what})"))?;
        let bound = listener.local_addr()?;
        let base_url = cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{bound}"));
        let (servers, problems) = ToolServers::connect(&cfg.servers).await;
        for p in &problems {
            tracing::error!(server = %p.server, "{}", p.message);
        }
        // A condition on an argument a tool does not have could never hold: refuse to serve.
        let served = servers.tools();
        let found = setup.validate_conditions(|server, tool| served.route_of(server, tool).and_then(|t| t.definition.get("inputSchema")));
        let errors: Vec<String> = found.iter().filter(|d| d.severity == airlock::diag::Severity::Error).map(ToString::to_string).collect();
        for d in found.iter().filter(|d| d.severity != airlock::diag::Severity::Error) {
            tracing::warn!("{d}");
        }
        if !errors.is_empty() {
            bail!("{}\n{} error(s) in conditions; nothing was started", errors.join("\n"), errors.len());
        }
        let started = row::GateStarted {
            policy_version: setup.policy.version.clone(),
            policy_file: setup.policy_path.display().to_string(),
            actor: cfg.actor.clone(),
            servers: servers.status().into_iter().map(|(name, status)| row::ServerState { name, status }).collect(),
            tools: servers.tools().iter().map(|t| t.exposed.clone()).collect(),
            web: row::WebAddress { bound: bound.to_string(), public_url: base_url.clone() },
            mail: match &cfg.mail.transport { MailTransport::Smtp(_) => "smtp".to_string(), MailTransport::Outbox(d) => d.display().to_string() },
            airlock_version: env!("CARGO_PKG_VERSION").to_string(),
            signing_key: signer.public_hex(),
            generated_by: None,
        };
        ledger
            .append(vec![NewRow::now("", Row::GateStarted(started))])
            .await
            .context("cannot write to the ledger; refusing to serve")?;
        let servers = Arc::new(servers);
        let forwarder = Forwarder::new(ledger.clone(), servers.clone(), sealer.clone()).outcome_before_reply(cfg.outcome_before_reply);
        // Sharing the ledger with other replicas, only what dead replicas left is recorded (below).
        let shared = ledger.replicated();
        let unknown = match shared { None => forwarder.record_unknown_outcomes_left().await.context("cannot record the outcome of calls a previous run left unrecorded")?, Some(_) => 0 };
        if unknown > 0 {
            tracing::warn!(unknown, "calls forwarded by the previous run have no recorded outcome (it stopped in between): recorded as `unknown`");
        }
        // The rug-pull guard: compare what the servers present with what was reviewed.
        let changed = live::guard(&setup, &ledger, &servers.tools(), &Default::default()).await.context("cannot record tool definitions")?;
        for ((server, tool), c) in &changed {
            tracing::warn!(%server, %tool, was = %c.was, now = %c.now, "tool definition changed: quarantined until reviewed (pin the new definition_hash in its manifest)");
        }
        let changed_keys = changed.keys().cloned().collect();
        let live = Arc::new(Live::new(setup.clone(), changed));
        let approvals = Approvals::new(live.clone(), ledger.clone(), servers.clone(), forwarder.clone(), mailer.clone(), key.clone(), base_url.clone());
        let quarantine = Arc::new(Quarantine::new(ledger.clone(), forwarder.clone(), live.clone(), key.clone()));
        quarantine.tell_with(Notices::new(live.clone(), ledger.clone(), mailer.clone(), key.clone(), base_url.clone()));
        let meter = Meter::load_as(ledger.drift()?, shared.as_ref().map(|r| r.replica())).map_err(|e| anyhow::anyhow!("cannot reload rate-limit counters: {e}"))?;
        let meter = Arc::new(meter);
        let pauses = Arc::new(Pauses::new(meter.clone(), ledger.clone(), live.clone(), mailer.clone(), key, base_url.clone()));
        // The one desk for every human decision: one start for every kind of item.
        let desk = Desk::new(approvals.clone(), quarantine.clone(), pauses.clone(), live.clone(), ledger.clone());
        let started = desk.start().await.context("cannot reload what waits for a decision (approvals, held calls)")?;
        let (pending, held, paused) = (started.approvals, started.held, started.paused);
        // The seal's key chain: what waits is sealed again once an epoch and the file drops older keys.
        tokio::spawn(desk.clone().run_seal_chain(sealer.clone()));
        // Sharing the ledger: take back this replica's own leftovers and any dead replica's, then
        // keep up with the others.
        let replicas = match &shared {
            None => None,
            Some(shared) => {
                let parts = airlock::replica::Parts { ledger: ledger.clone(), desk: desk.clone(), forwarder: forwarder.clone(), meter };
                airlock::replica::join(shared, &parts).await.map_err(anyhow::Error::msg).context("cannot join the other replicas")?;
                Some(tokio::spawn(airlock::replica::run(shared.clone(), parts)))
            }
        };
        let voided = approvals.void_changed(&changed_keys).await;
        if voided > 0 {
            tracing::warn!(voided, "pending approvals voided because their tool changed");
        }
        let runtime_file = runtime_file(&cfg.ledger_path);
        // The CLI finds this gate here; the instance nonce lets it tell this gate from whatever
        // may hold the port after a crash before the CLI sends it a token.
        let instance = uuid::Uuid::new_v4().to_string();
        if let Err(e) = write_private(&runtime_file, &format!("http://{bound}\n{instance}\n")) {
            tracing::warn!(file = %runtime_file.display(), error = %e, "cannot write the runtime file; `airlock quarantine` and `airlock drift` will need --url");
        }
        let deciders = Arc::new(airlock::auth::Deciders::new(cfg.sign_in.as_ref(), approvals.key(), &cfg.key_path, &base_url).map_err(anyhow::Error::msg)?);
        let pages = web::app(Arc::new(web::Web { instance, desk: desk.clone(), live: live.clone(), servers: servers.clone(), ledger: ledger.clone(), deciders, sealer: sealer.clone() }));
        // Edits to manifests and policy take effect when valid (file change or SIGHUP).
        let auditor = cfg.checkpoints.mail_to.as_ref().map(|_| mailer.clone());
        let checkpoints = checkpoint::start(ledger.clone(), signer.clone(), &cfg.checkpoints, auditor).await.map_err(anyhow::Error::msg)?;
        match &cfg.checkpoints.witness {
            Some(w) => tracing::info!(dir = %cfg.checkpoints.dir.display(), origin = checkpoints.origin(), witness = %w, "checkpoints written and sent to the witness"),
            None => tracing::info!(dir = %cfg.checkpoints.dir.display(), origin = checkpoints.origin(), "checkpoints written; no [ledger] witness: a ledger rolled back together with its checkpoint directory would not be caught"),
        }
        // Every tool server pinged every few seconds: one that stops answering is `down` in /readyz.
        let prober = tokio::spawn(airlock::mcp::downstream::ToolServers::probe_every(servers.clone(), airlock::mcp::downstream::health::PROBE_EVERY));
        let watcher = tokio::spawn(live::watch(path.to_path_buf(), seen, live.clone(), ledger.clone(), servers.clone(), approvals.clone(), std::time::Duration::from_secs(1)));
        tracing::info!(tools = servers.tools().len(), policy = %setup.policy.version, ledger = %ledger.path().display(), approvals = %base_url, pending, held, paused, "airlock serving MCP on stdio");
        tracing::info!("review page (held calls, unclassified tools, paused autopilot): reviewers get their own link by mail when a call is held, or from `airlock quarantine list --as EMAIL`");
        tracing::info!(public_key = %signer.public_hex(), "ledger signing key (verify with `airlock ledger verify --public-key`)");
        let gate = Arc::new(Gate::new(live, ledger.clone(), servers.clone(), forwarder, approvals.clone(), quarantine.clone(), pauses));
        // Keyed autopilot calls a previous run left without a result: "unknown", never run again.
        if shared.is_none() {
            let unknown = gate.record_unknown_key_results().await.context("cannot record the outcome of keyed calls a previous run left unfinished")?;
            if unknown > 0 {
                tracing::warn!(unknown, "calls with an idempotency key were running when the previous run stopped: a repeat is told their outcome is unknown");
            }
        }
        // Call keys past their retry window go, with any result kept under them (hourly).
        let forgetter = tokio::spawn(gate.clone().forget_every(std::time::Duration::from_secs(3600)));
        // Refused calls over an agent's `refused_per_minute`: one count row a minute.
        let counter = tokio::spawn(gate.clone().count_every_minute());
        let agent = AgentServer::new(gate.clone(), cfg.max_wait);
        let stop = tokio_util::sync::CancellationToken::new();
        // OAuth agents: the issuer's keys fetched now, so a wrong [oauth] shows in the log at once.
        let oauth = match (http_bind, &cfg.oauth) {
            (Some(_), Some(o)) => {
                let resource = Arc::new(airlock::oauth::Resource::new(o.clone()));
                let early = resource.clone();
                tokio::spawn(async move { early.prefetch().await });
                Some(resource)
            }
            _ => None,
        };
        let router = match http_bind {
            Some(_) => pages.merge(airlock::mcp::http::router(agent.clone(), &cfg.http, &cfg.limits, airlock::identity::Agents::new(cfg.agents.clone()), oauth, stop.clone())),
            None => pages,
        };
        let web = tokio::spawn(web::listen::serve(listener, router, web::listen::Bounds::of(&cfg.limits)));
        if let Some(b) = http_bind {
            tracing::info!(agents = cfg.agents.len(), oauth = cfg.oauth.as_ref().map(|o| o.issuer.as_str()), "airlock serving MCP over streamable HTTP at http://{b}/mcp");
        }
        // A signal ends serving at any time (and still drains); stdio closing ends it unless HTTP
        // agents are served too, which keep being served until a signal.
        let signalled = tokio::select! {
            served = agent.serve_stdio() => {
                match served {
                    Err(e) if http_bind.is_some() => tracing::info!("no agent on stdio ({e})"),
                    other => other?,
                }
                false
            }
            _ = shutdown.wait() => true,
        };
        if http_bind.is_some() && !signalled {
            tracing::info!("stdio agent gone; serving HTTP agents until SIGTERM or Ctrl-C");
            shutdown.wait().await;
        }
        stop.cancel();
        // The agent has gone. Let calls already running finish and record their outcome; pending
        // approvals stay pending in the ledger for the next start.
        gate.drain(std::time::Duration::from_secs(30)).await;
        desk.drain(std::time::Duration::from_secs(30)).await;
        // Outcome rows answered before they were durable are queued: commit them before exit.
        if let Err(e) = ledger.flush().await {
            tracing::error!(error = %e, "cannot commit the last outcome rows; the next start records them as unknown");
        }
        web.abort();
        watcher.abort();
        prober.abort();
        forgetter.abort();
        counter.abort();
        if let Some(r) = replicas {
            r.abort();
        }
        if let Some(shared) = &shared {
            let shared = shared.clone();
            let _ = tokio::task::spawn_blocking(move || shared.leave()).await;
        }
        let _ = std::fs::remove_file(&runtime_file);
        // The last checkpoint, with every row of this run, to the directory and the witness.
        checkpoints.stop().await;
        Ok(ExitCode::SUCCESS)
    });
    // Everything that writes has finished above (the ledger's writer joins when its last handle
    // drops). What may remain is a blocking read of stdin by an agent that keeps the pipe open:
    // it must not keep the process alive after SIGTERM.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

/// SIGTERM or Ctrl-C (SIGINT), listened for from the moment it is installed.
struct Shutdown {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> std::io::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Shutdown {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
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
