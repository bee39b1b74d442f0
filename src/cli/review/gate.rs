//! The running gate, as the review commands reach it: its address (the runtime file `serve`
//! writes, checked against the instance nonce, or `--url`), the short-lived personal tokens made
//! from the key file, and the personal links printed for people who must decide on their own
//! page. It must never decide anything: the gate does, over its review endpoints.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use serde_json::Value;

use super::super::{report, runtime_file};
use airlock::approval::link::LinkKey;
use airlock::config::{Config, load_config};
use airlock::reviewer::{CLI_LIFETIME, LINK_LIFETIME, Reviewer};

/// The OS user running the CLI, from the process's real uid (not `$USER`, which the caller
/// sets at will): `name (uid N)` from /etc/passwd, or `uid N`. It proves only who ran the
/// command on this machine; the token itself proves only access to the link key file.
fn os_user() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(str::to_string))
        });
    let Some(uid) = uid else {
        return "unknown".into();
    };
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_string())
        })
    });
    match name {
        Some(n) => format!("{n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

pub(super) struct Gate {
    pub(super) base: String,
    key: LinkKey,
    /// Who runs this command (recorded with what it decides).
    os_user: String,
}

/// (base URL, instance nonce) from the runtime file a running `serve` writes.
pub(super) fn runtime(config: &Config) -> Option<(String, String)> {
    let text = std::fs::read_to_string(runtime_file(&config.ledger_path)).ok()?;
    let mut lines = text.lines().map(str::trim);
    let base = lines.next()?.trim_end_matches('/').to_string();
    Some((base, lines.next().unwrap_or("").to_string()))
}

impl Gate {
    pub(super) fn find(config: &Config, url: Option<&str>) -> anyhow::Result<Option<Gate>> {
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let Some((base, instance)) = runtime(config) else {
                    return Ok(None);
                };
                // Only a gate that knows the nonce gets a token: after a crash the file
                // may name a port something else holds now.
                if !Gate::is_instance(&base, &instance) {
                    return Ok(None);
                }
                base
            }
        };
        if !config.key_path.exists() {
            bail!(
                "no link key at {} (has `airlock serve` ever run with this config?)",
                config.key_path.display()
            );
        }
        let key = LinkKey::load_or_create(&config.key_path)?;
        Ok(Some(Gate {
            base,
            key,
            os_user: os_user(),
        }))
    }

    pub(super) fn is_instance(base: &str, instance: &str) -> bool {
        !instance.is_empty()
            && Gate::agent()
                .get(&format!("{base}/healthz"))
                .call()
                .ok()
                .and_then(|r| {
                    r.headers()
                        .get("x-airlock-instance")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == instance)
                })
                .unwrap_or(false)
    }

    pub(super) fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// A token for one command, as `email`, from the CLI.
    pub(super) fn token(&self, email: &str) -> String {
        let now = airlock::instant::now();
        Reviewer::new(email, "cli", Some(self.os_user.clone()), now, CLI_LIFETIME).token(&self.key)
    }

    /// `email`'s personal review page (a link to hand to them, valid 24 hours).
    pub(super) fn page_for(&self, email: &str) -> String {
        let now = airlock::instant::now();
        let r = Reviewer::new(email, "link", None, now, LINK_LIFETIME);
        format!("{}/review/{}", self.base, r.token(&self.key))
    }

    /// `email`'s personal page of the pause call `id` tripped (valid 24 hours).
    pub(super) fn pause_page_for(&self, id: &str, email: &str) -> String {
        let now = airlock::instant::now();
        let r = Reviewer::new(email, "link", None, now, LINK_LIFETIME);
        format!("{}/p/{id}/{}", self.base, r.token(&self.key))
    }

    /// What the review page shows, read as the operator (reading decides nothing).
    pub(super) fn state(&self) -> anyhow::Result<Value> {
        let reader = format!("cli:{}", self.os_user);
        let url = format!("{}/review/{}/state", self.base, self.token(&reader));
        let mut r = Gate::agent()
            .get(&url)
            .header("Accept", "application/json")
            .call()
            .with_context(|| format!("cannot reach airlock serve at {}", self.base))?;
        let body = r.body_mut().read_to_string()?;
        if !r.status().is_success() {
            bail!(
                "airlock serve at {} answered {}: {body}",
                self.base,
                r.status()
            );
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// Act as `email` (the gate decides whether that person may).
    pub(super) fn post(
        &self,
        path: &str,
        email: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let url = format!("{}/review/{}/{path}", self.base, self.token(email));
        let mut r = Gate::agent()
            .post(&url)
            .header("Accept", "application/json")
            .send_form(form.iter().copied())
            .with_context(|| format!("cannot reach airlock serve at {}", self.base))?;
        let body = r.body_mut().read_to_string()?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|_| anyhow!("airlock serve answered {}: {body}", r.status()))?;
        match v.get("error").and_then(Value::as_str) {
            Some(e) => bail!("{e}"),
            None => Ok(v),
        }
    }
}

/// Refuse, before asking the gate, a matter that requires (`need`, as the gate's state says)
/// more than a command line can give: `who` decides on `page`, their own.
pub(super) fn needs_their_page(need: &Value, who: &str, page: &str) -> anyhow::Result<()> {
    let what = match (need["sign_in"] == "oidc", need["second_factor"].is_string()) {
        (false, false) => return Ok(()),
        (true, true) => "signing in with the company account and a code from an authenticator app",
        (true, false) => "signing in with the company account",
        (false, true) => "a code from an authenticator app (TOTP)",
    };
    println!("{page}");
    bail!(
        "deciding this needs {what}, which `--as {who}` cannot give from the command line, so nothing was decided: {who} decides on their own page, printed above (valid 24 hours; theirs alone, do not forward it)"
    )
}

pub(super) fn config(path: &Path) -> anyhow::Result<Config> {
    load_config(path).map_err(report)
}

pub(super) fn running(path: &Path, url: Option<&str>) -> anyhow::Result<Gate> {
    let c = config(path)?;
    Gate::find(&c, url)?.ok_or_else(|| {
        anyhow!(
            "no running `airlock serve` found (nothing answers at the address in {}): start it, or pass --url",
            runtime_file(&c.ledger_path).display()
        )
    })
}
