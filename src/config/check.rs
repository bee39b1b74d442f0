//! Cross-file loading: config + manifests + policy into a [`Setup`], with every problem located.
//! It must never stop at the first problem (people fix files in one pass) and never hand out a
//! setup that has errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Config, Setup, load_config};
use crate::diag::{Diagnostic, Diagnostics, Severity, Source};
use crate::manifest::{self, ManifestFile, ManifestSet, Reversal};
use crate::policy::{self, PathKind, Policy, PolicyFile};

/// Load `airlock.toml`, its manifests and its active policy, and check them against each other.
///
/// On success the returned setup may still carry warnings; on failure every error (and warning)
/// found is returned, not just the first.
pub fn load_setup(config_path: &Path) -> Result<Setup, Diagnostics> {
    let config = load_config(config_path)?;
    let mut diags = config.unstartable.clone();
    let policy = load_policy(&config, &mut diags);
    let manifests = load_manifests(&config, policy.as_ref().map(|(p, _)| p), &mut diags);
    if let Some((p, src)) = &policy {
        warn_policy(p, src, &mut diags);
        check_separation(&config, p, src, &mut diags);
        check_sign_in(&config, p, src, &mut diags);
        super::channel::check(&config, p, src, &mut diags);
    }
    let failed = diags.iter().any(|d| d.severity == Severity::Error);
    match policy {
        Some((policy, src)) if !failed => Ok(Setup {
            config,
            manifests,
            policy,
            policy_path: src.path,
            warnings: diags,
        }),
        _ => Err(Diagnostics(diags)),
    }
}

fn dir_files(dir: &Path, what: &str, config: &Config, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    match manifest::toml_files(dir) {
        Ok(f) => f,
        Err(e) => {
            diags.push(Diagnostic {
                severity: Severity::Error,
                file: config.path.clone(),
                line: 0,
                column: 0,
                key: format!("gate.{what}"),
                message: format!("cannot read directory {}: {e}", dir.display()),
            });
            Vec::new()
        }
    }
}

/// Read and compile one policy file on its own (for `airlock policy diff`).
pub fn load_policy_file(path: &Path) -> Result<Policy, Diagnostics> {
    let src = Source::read(path).map_err(|d| Diagnostics(vec![d]))?;
    let file: PolicyFile = src.parse().map_err(|d| Diagnostics(vec![d]))?;
    match policy::compile(&src, file) {
        (p, diags) if diags.iter().all(|d| d.severity != Severity::Error) => Ok(p),
        (_, diags) => Err(Diagnostics(diags)),
    }
}

fn load_policy(config: &Config, diags: &mut Vec<Diagnostic>) -> Option<(Policy, Source)> {
    let files = dir_files(&config.policies_dir, "policies", config, diags);
    let chosen: Vec<&PathBuf> = match &config.policy_name {
        Some(name) => files
            .iter()
            .filter(|p| p.file_stem().is_some_and(|s| s == name.as_str()))
            .collect(),
        None => files.iter().collect(),
    };
    let problem = match (chosen.len(), &config.policy_name) {
        (1, _) => None,
        (0, Some(name)) => Some(format!(
            "no policy file `{name}.toml` in {}",
            config.policies_dir.display()
        )),
        (0, None) => Some(format!(
            "no policy file (*.toml) in {}",
            config.policies_dir.display()
        )),
        (_, _) => Some(format!(
            "{} policy files in {}; exactly one is active: choose it with `policy = \"<file stem>\"`",
            chosen.len(),
            config.policies_dir.display()
        )),
    };
    if let Some(message) = problem {
        diags.push(Diagnostic {
            severity: Severity::Error,
            file: config.path.clone(),
            line: 0,
            column: 0,
            key: "gate.policy".into(),
            message,
        });
        return None;
    }
    let src = match Source::read(chosen[0]) {
        Ok(s) => s,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let file: PolicyFile = match src.parse() {
        Ok(f) => f,
        Err(d) => {
            diags.push(d);
            return None;
        }
    };
    let (policy, errors) = policy::compile(&src, file);
    // With errors the policy is still used to check the manifests; load_setup then refuses it.
    diags.extend(errors);
    Some((policy, src))
}

fn load_manifests(
    config: &Config,
    policy: Option<&Policy>,
    diags: &mut Vec<Diagnostic>,
) -> ManifestSet {
    let mut set = ManifestSet::default();
    // exposed name -> origin, to refuse two entries an agent could not tell apart
    let mut exposed: BTreeMap<String, String> = BTreeMap::new();
    let mut reversal_checks = Vec::new();
    for path in dir_files(&config.manifests_dir, "manifests", config, diags) {
        let src = match Source::read(&path) {
            Ok(s) => s,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let file: ManifestFile = match src.parse() {
            Ok(f) => f,
            Err(d) => {
                diags.push(d);
                continue;
            }
        };
        let entries = match manifest::compile(&src, file) {
            Ok(e) => e,
            Err(errs) => {
                diags.extend(errs);
                continue;
            }
        };
        for (i, (m, spans)) in entries.into_iter().enumerate() {
            let key = format!("tool[{i}]");
            let Some(server) = config.servers.iter().find(|s| s.name == m.server) else {
                let known: Vec<_> = config.servers.iter().map(|s| s.name.as_str()).collect();
                diags.push(src.error(
                    Some(spans.server),
                    &format!("{key}.server"),
                    format!(
                        "no [[server]] named `{}` in {} (known: {})",
                        m.server,
                        config.path.display(),
                        known.join(", ")
                    ),
                ));
                continue;
            };
            if let Some(bare) = m.name.strip_prefix(server.prefix.as_str()) {
                if !server.prefix.is_empty() && !bare.is_empty() {
                    diags.push(src.error(
                        Some(spans.name.clone()),
                        &format!("{key}.name"),
                        format!(
                            "`{}` is the name agents see (server `{}` adds prefix `{}`); a manifest names a tool as its server does: name = \"{bare}\"",
                            m.name, m.server, server.prefix
                        ),
                    ));
                    continue;
                }
            }
            if let Some(p) = policy {
                check_against_policy(&src, &key, &m, &spans, p, diags);
            }
            let name = server.exposed(&m.name);
            if let Some(first) = exposed.get(&name) {
                diags.push(src.error(
                    Some(spans.name.clone()),
                    &format!("{key}.name"),
                    format!("tool `{name}` is already described at {first}"),
                ));
                continue;
            }
            exposed.insert(name, m.origin.clone());
            if let Reversal::Tool { tool } = &m.reversal {
                reversal_checks.push((
                    src.clone(),
                    spans.reversal.clone(),
                    key.clone(),
                    m.server.clone(),
                    tool.clone(),
                ));
            }
            set.insert(m);
        }
    }
    for (src, span, key, server, tool) in reversal_checks {
        if set.get(&server, &tool).is_none() {
            diags.push(src.error(
                Some(span),
                &format!("{key}.reversal"),
                format!(
                    "reversal tool `{tool}` is not described by any manifest for server `{server}`"
                ),
            ));
        }
    }
    set
}

/// One manifest entry against the policy: its class is defined, and every role its limits and
/// conditions name exists.
fn check_against_policy(
    src: &Source,
    key: &str,
    m: &manifest::ToolManifest,
    spans: &manifest::EntrySpans,
    p: &Policy,
    diags: &mut Vec<Diagnostic>,
) {
    if !p.classes.contains_key(&m.class) {
        let known: Vec<_> = p.classes.keys().map(String::as_str).collect();
        diags.push(src.error(
            Some(spans.class.clone()),
            &format!("{key}.class"),
            format!(
                "class `{}` is not defined by policy {} (known: {})",
                m.class,
                p.version,
                known.join(", ")
            ),
        ));
    }
    let class_role = p.classes.get(&m.class).and_then(|c| c.role.as_ref());
    for l in &m.limits {
        let problem = match l.notify.as_ref().or(class_role) {
            Some(n) if !p.roles.contains_key(n) => Some(format!("unknown role `{n}`")),
            None => Some("a limit needs a role to tell when it pauses autopilot: set `notify` or give the class a `role`".to_string()),
            Some(_) => None,
        };
        if let Some(msg) = problem {
            diags.push(src.error(Some(spans.entry.clone()), &format!("{key}.limit"), msg));
        }
    }
    for c in &m.conditions {
        if let Some(role) = c.role.as_ref().filter(|r| !p.roles.contains_key(*r)) {
            diags.push(src.error(
                Some(spans.entry.clone()),
                &format!("{key}.condition"),
                format!("unknown role `{role}` (define it under [roles] in the policy)"),
            ));
        }
    }
}

/// Separation of duties, checked at load: no agent identity (`gate.actor`, an `[[agent]]`
/// actor) is a member of any role, since every role decides something — compared as the
/// authority rule compares them (case and an address's `+tag` aside).
fn check_separation(config: &Config, p: &Policy, src: &Source, diags: &mut Vec<Diagnostic>) {
    let agents: Vec<(&str, &str)> = std::iter::once((config.actor.as_str(), "gate.actor"))
        .chain(
            config
                .agents
                .iter()
                .map(|a| (a.actor.as_str(), "an [[agent]] actor")),
        )
        .collect();
    for (name, role) in &p.roles {
        for (agent, what) in &agents {
            let listed = role
                .emails
                .iter()
                .find(|e| crate::authority::same_identity(e, agent));
            let Some(listed) = listed else { continue };
            let who = if listed.trim().eq_ignore_ascii_case(agent.trim()) {
                format!("`{agent}` is an agent's identity ({what})")
            } else {
                format!("`{listed}` is the agent identity `{agent}` ({what}) with a +tag")
            };
            diags.push(src.error(
                None,
                &format!("roles.{name}.emails"),
                format!(
                    "{who}, and role `{name}` decides: agents never decide; remove it from the role"
                ),
            ));
        }
    }
    if let Some(o) = &config.oauth {
        for (name, role) in &p.roles {
            for listed in role.emails.iter().filter(|e| o.names(e)) {
                diags.push(src.error(
                    None,
                    &format!("roles.{name}.emails"),
                    format!("`{listed}` starts with `{}`, the name of OAuth agents ([oauth] actor_prefix), and role `{name}` decides: agents never decide; remove it from the role", o.actor_prefix),
                ));
            }
        }
    }
    if p.review_role.is_none() && !config.servers.is_empty() {
        diags.push(src.warning(
            None,
            "review.role",
            "no [review] role: a call to a tool no manifest describes (or held by a condition or limit that names no role) is refused, not held for review",
        ));
    }
}

/// A role that signs in needs a provider to sign in with.
fn check_sign_in(config: &Config, p: &Policy, src: &Source, diags: &mut Vec<Diagnostic>) {
    if config.sign_in.is_some() {
        return;
    }
    for (name, role) in &p.roles {
        if role.sign_in == policy::SignIn::Oidc {
            diags.push(src.error(None, &format!("roles.{name}.sign_in"), format!("role `{name}` signs in with `oidc`, but {} has no [sign_in]: add one with the provider's `issuer` and `client_id` (see README, Sign-in)", config.path.display())));
        }
    }
}

fn warn_policy(p: &Policy, src: &Source, diags: &mut Vec<Diagnostic>) {
    for (name, rule) in &p.classes {
        if rule.path == PathKind::Conditional && !rule.require_evidence && !rule.require_reversal {
            diags.push(src.warning(None, &format!("classes.{name}"), "conditional class states no requirement, so no call can prove it is inside bounds: every call takes `on_fail`"));
        }
    }
}

impl Setup {
    /// Every agent identity (`gate.actor`, each `[[agent]]` actor, and with `[oauth]` every
    /// name starting with its actor prefix): none of them ever decides.
    pub fn agent_ids(&self) -> crate::authority::AgentIds<'_> {
        let ids = crate::authority::AgentIds::new(
            std::iter::once(self.config.actor.as_str())
                .chain(self.config.agents.iter().map(|a| a.actor.as_str())),
        );
        match &self.config.oauth {
            Some(o) => ids.with_prefix(&o.actor_prefix),
            None => ids,
        }
    }
}
