//! The live configuration: the checked [`Setup`] and the rug-pull guard's verdicts that calls
//! are decided by, swapped whole when a validated edit is reloaded.
//!
//! Owns the swap and the reload loop (file changes or SIGHUP → `load_setup` → validate → swap, or
//! keep the old one and log why). A call takes one snapshot when it starts, so it is decided by
//! exactly one policy version. It must never install a setup that `check` would reject, and never
//! apply changes that need a restart (servers, ledger, mail, web): those are refused with a reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::config::{Setup, load_setup};
use crate::diag::Severity;
use crate::ledger::row::{self, Row, ToolChanged};
use crate::ledger::{Change, Ledger, NewRow};
use crate::mcp::downstream::{ToolServers, ToolSet};
use crate::pins::{self, Changed, Seen};

/// Tools whose served definition is not the trusted one, by (server, tool).
pub type ChangedTools = BTreeMap<(String, String), Changed>;

/// What calls are decided by right now.
pub struct Live {
    current: RwLock<(Arc<Setup>, Arc<ChangedTools>)>,
}

impl Live {
    pub fn new(setup: Arc<Setup>, changed: ChangedTools) -> Live {
        Live {
            current: RwLock::new((setup, Arc::new(changed))),
        }
    }

    /// The setup and the guard's verdicts in force, read together (a snapshot: later swaps do
    /// not change it).
    pub fn snapshot(&self) -> (Arc<Setup>, Arc<ChangedTools>) {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The setup in force (a snapshot: later swaps do not change it).
    pub fn setup(&self) -> Arc<Setup> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    pub fn changed(&self) -> Arc<ChangedTools> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    fn replace(&self, setup: Arc<Setup>, changed: ChangedTools) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (setup, Arc::new(changed));
    }
}

/// The rug-pull guard's verdict for the tools being served, and the rows that record it.
/// Changes already known (`known`) are not recorded again.
pub async fn guard(
    setup: &Setup,
    ledger: &Ledger,
    served: &ToolSet,
    known: &ChangedTools,
) -> Result<ChangedTools, crate::ledger::LedgerError> {
    let recorded = ledger.tool_pins()?;
    let seen: Vec<Seen> = served
        .iter()
        .map(|t| Seen {
            server: &t.server,
            tool: &t.name,
            hash: &t.definition_hash,
        })
        .collect();
    let a = pins::assess(&seen, &setup.manifests, &recorded);
    let already = |row: &ToolChanged| {
        known.iter().any(|((server, tool), c)| {
            row.tool == pins::key(server, tool) && row.now == c.now && row.was == c.was
        })
    };
    let now = crate::instant::now();
    let rows = a
        .rows
        .iter()
        .filter(|row| !matches!(row, Row::ToolChanged(c) if already(c)))
        .map(|row| NewRow::at("", now, row.clone()))
        .collect();
    ledger
        .commit(Change {
            rows,
            tools: a.trust,
            ..Change::default()
        })
        .await?;
    Ok(a.changed)
}

/// Modification time and size of every file a reload reads.
pub type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// What a reload reads, as it is now. Take it before loading, so no edit slips in between.
pub fn fingerprint(config_path: &Path, setup: &Setup) -> Fingerprint {
    let mut files = vec![config_path.to_path_buf()];
    for dir in [&setup.config.manifests_dir, &setup.config.policies_dir] {
        files.extend(crate::manifest::toml_files(dir).unwrap_or_default());
    }
    files
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (p, m)
        })
        .collect()
}

/// How a reload ended.
pub enum Reload {
    /// The edit is in force; these tools are now changed (the rug-pull guard re-ran).
    Applied(ChangedTools),
    /// The edit was refused (and recorded); the old setup stays.
    Rejected,
    /// It could not be recorded; nothing changed, and it is tried again.
    Failed,
}

/// Try to load an edited setup; on success swap it in, else keep the old one. Both are recorded.
pub async fn reload(
    config_path: &Path,
    live: &Live,
    ledger: &Ledger,
    servers: &ToolServers,
) -> Reload {
    let (old, known) = live.snapshot();
    let now = crate::instant::now();
    let active = old.policy.version.clone();
    let reject = |errors: Vec<String>| async move {
        let row = NewRow::at(
            "",
            now,
            Row::PolicyRejected(row::PolicyRejected {
                active_version: active.clone(),
                errors: errors.clone(),
            }),
        );
        tracing::error!(
            "edited configuration rejected; policy {active} stays active:\n{}",
            errors.join("\n")
        );
        match ledger.append(vec![row]).await {
            Ok(_) => Reload::Rejected,
            Err(_) => Reload::Failed,
        }
    };
    let new = match load_setup(config_path) {
        Ok(s) => s,
        Err(diags) => {
            return reject(
                diags
                    .0
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .map(ToString::to_string)
                    .collect(),
            )
            .await;
        }
    };
    if new.config != old.config {
        return reject(vec![
            "airlock.toml changed (servers, ledger, mail or web): restart airlock to apply it"
                .to_string(),
        ])
        .await;
    }
    let served = servers.tools();
    let errors: Vec<String> = new
        .validate_conditions(|server, tool| {
            served
                .route_of(server, tool)
                .and_then(|t| t.definition.get("inputSchema"))
        })
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        return reject(errors).await;
    }
    let new = Arc::new(new);
    let changed = match guard(&new, ledger, &servers.tools(), &known).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot record the reload; the old configuration stays active");
            return Reload::Failed;
        }
    };
    let loaded = NewRow::at(
        "",
        now,
        Row::PolicyLoaded(row::PolicyLoaded {
            version: new.policy.version.clone(),
            previous_version: old.policy.version.clone(),
            file: new.policy_path.display().to_string(),
            manifests: new.manifests.len() as u64,
        }),
    );
    if let Err(e) = ledger.append(vec![loaded]).await {
        tracing::error!(error = %e, "cannot record the reload; the old configuration stays active");
        return Reload::Failed;
    }
    tracing::info!(version = %new.policy.version, previous = %old.policy.version, "configuration reloaded");
    live.replace(new, changed.clone());
    Reload::Applied(changed)
}

/// Some tool servers said their tool list changed: list them again, run the rug-pull guard over
/// what they serve now (a changed definition is held as at start; a new tool is gated by its
/// manifest, or quarantined), void approvals for tools that changed, and only then tell the agents.
pub async fn retool(
    live: &Live,
    ledger: &Ledger,
    servers: &ToolServers,
    desk: &crate::approval::Approvals,
) {
    let names = servers.relay().take_changed();
    if names.is_empty() {
        return;
    }
    let mut problems = Vec::new();
    let next = servers.relist(&names, &mut problems).await;
    for p in problems {
        tracing::error!(server = %p.server, "{}", p.message);
    }
    let Some(next) = next else {
        return;
    };
    let (setup, known) = live.snapshot();
    let row = NewRow::at(
        "",
        crate::instant::now(),
        Row::ToolsRelisted(row::ToolsRelisted {
            servers: names.clone(),
            tools: next.iter().map(|t| t.exposed.clone()).collect(),
        }),
    );
    let changed = match ledger.append(vec![row]).await {
        Ok(_) => guard(&setup, ledger, &next, &known).await,
        Err(e) => Err(e),
    };
    let changed = match changed {
        Ok(c) => c,
        Err(e) => {
            // fail closed: the old list stays served (and a ledger that cannot record refuses
            // every call), the agents are not told, and the servers are looked at again later
            tracing::error!(error = %e, "cannot record the changed tool list; it is not served");
            for name in &names {
                servers.relay().mark_changed(name);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    // the verdicts first, then the list: a call in between already meets the changed verdict
    live.replace(setup, changed.clone());
    servers.install(next);
    void_changed(desk, &changed).await;
    // told from a task of its own, so a slow agent cannot hold up the watcher
    let relay = servers.relay().clone();
    tokio::spawn(async move {
        relay.agents.changed(crate::mcp::agents::List::Tools).await;
    });
}

/// Void the pending approvals of tools the guard found changed.
async fn void_changed(desk: &crate::approval::Approvals, changed: &ChangedTools) {
    let voided = desk.void_changed(&changed.keys().cloned().collect()).await;
    if voided > 0 {
        tracing::warn!(
            voided,
            "pending approvals voided because their tool changed"
        );
    }
}

/// Reload on SIGHUP, and whenever a file it reads changes (checked every `every`), starting
/// from `seen`, the files as they were when the running setup was loaded. Approvals for tools
/// that a reload finds changed are voided.
pub async fn watch(
    config_path: PathBuf,
    mut seen: Fingerprint,
    live: Arc<Live>,
    ledger: Arc<Ledger>,
    servers: Arc<ToolServers>,
    desk: Arc<crate::approval::Approvals>,
    every: Duration,
) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    // HTTP tool servers are listed again now and then: one that restarted may serve other tools
    // (rmcp re-initializes its session without telling us), and those are re-gated like a change
    // it announced. The timers end with this watcher.
    let mut relisting = tokio::task::JoinSet::new();
    for (name, every) in servers.relisted() {
        let servers = servers.clone();
        relisting.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                servers.relay().mark_changed(&name);
            }
        });
    }
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hup.as_mut() {
                Some(h) => h.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<bool>();
        // Some(true): SIGHUP; Some(false): the signal stream ended; None: the poll interval.
        let woke = tokio::select! {
            s = signalled => Some(s),
            _ = tokio::time::sleep(every) => None,
            _ = servers.relay().tools_changed.notified() => {
                retool(&live, &ledger, &servers, &desk).await;
                continue;
            }
        };
        #[cfg(unix)]
        if woke == Some(false) {
            // keep polling the files, without spinning on an ended stream
            hup = None;
        }
        let forced = woke == Some(true);
        let now = fingerprint(&config_path, &live.setup());
        if forced || now != seen {
            match reload(&config_path, &live, &ledger, &servers).await {
                Reload::Applied(changed) => {
                    seen = now;
                    void_changed(&desk, &changed).await;
                }
                Reload::Rejected => seen = now,
                Reload::Failed => {}
            }
        }
    }
}
