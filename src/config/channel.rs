//! `[[channel]]`: where approvals are announced besides mail, each defined once and named by
//! roles in the policy (`channels = ["webhook:ops"]`). A channel carries news, never a decision.
//!
//! Compiles the sections (name, kind, URL; the secret's variable by name only) and checks the
//! policy's references and the secrets' presence for `check`, `serve` and a reload. It never
//! keeps a secret's value: `channel::Channels` reads it again when the gate starts.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::Config;
use crate::diag::{Diagnostic, Severity, Source};
use crate::policy::Policy;

/// What a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A POST of a JSON event signed by the Standard Webhooks scheme.
    Webhook,
}

impl ChannelKind {
    /// The word a role's `channels` uses before the name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
        }
    }
}

/// One `[[channel]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// Its name: a role names it as `KIND:NAME`, e.g. `webhook:ops`.
    pub name: String,
    /// `"webhook"`: a signed POST of each event (Standard Webhooks).
    pub kind: ChannelKind,
    /// Where events are posted: `https://…`, or `http://…` (e.g. a receiver on this machine).
    pub url: String,
    /// The environment variable holding the signing secret, `whsec_` and the base64 of 24 to 64
    /// random bytes (the receiver holds the same). Never written in this file.
    pub secret_env: String,
}

/// A channel as compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub secret_env: String,
    /// Where it is defined in airlock.toml (1-based line), for messages about it.
    pub line: usize,
}

impl ChannelConfig {
    /// How a role names it.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.name)
    }
}

/// Compile every `[[channel]]`: names unique and plain, URLs http(s) without credentials.
pub(super) fn compile(
    src: &Source,
    sections: &[Spanned<ChannelSection>],
    errors: &mut Vec<Diagnostic>,
) -> Vec<ChannelConfig> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let (span, c) = (s.span(), s.get_ref());
        let key = format!("channel[{i}]");
        let mut bad = |what: &str, msg: String| {
            errors.push(src.error(Some(span.clone()), &format!("{key}.{what}"), msg));
        };
        if !plain_name(&c.name) {
            bad(
                "name",
                format!(
                    "`{}` cannot be a channel name: 1-64 letters, digits, `-` or `_`",
                    c.name
                ),
            );
        } else if !seen.insert((c.kind, c.name.clone())) {
            bad(
                "name",
                format!(
                    "a {} channel named `{}` is defined twice",
                    c.kind.as_str(),
                    c.name
                ),
            );
        }
        if let Err(msg) = check_url(&c.url) {
            bad("url", msg);
        }
        if c.secret_env.trim().is_empty() {
            bad(
                "secret_env",
                "name the environment variable that holds the webhook's secret".into(),
            );
        }
        out.push(ChannelConfig {
            name: c.name.clone(),
            kind: c.kind,
            url: c.url.clone(),
            secret_env: c.secret_env.trim().to_string(),
            line: src.line_col(span.start).0,
        });
    }
    out
}

fn plain_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("`{u}` must be an http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("`{u}` names no host"));
    }
    if authority.contains('@') {
        return Err("credentials in the URL would be shown in the log: the webhook is signed with `secret_env` instead".into());
    }
    // what the HTTP client (ureq, by this same parser) would refuse at every attempt: refused once
    let uri: ureq::http::Uri = u
        .parse()
        .map_err(|e| format!("`{u}` is not a URL the webhook can be posted to: {e}"))?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    let after_host = authority
        .rsplit_once(']')
        .map_or(authority, |(_, rest)| rest);
    let port = after_host.rsplit_once(':').map(|(_, port)| port);
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(format!("`{u}` names a port outside 1-65535"));
    }
    Ok(())
}

/// The policy's roles name only channels `airlock.toml` defines, and each channel's secret is
/// in the environment in its form: errors naming the role's key or the variable.
pub(super) fn check(config: &Config, p: &Policy, src: &Source, diags: &mut Vec<Diagnostic>) {
    let defined: BTreeSet<String> = config
        .channels
        .iter()
        .map(ChannelConfig::reference)
        .collect();
    for (name, role) in &p.roles {
        for c in role.channels.iter().filter(|c| !defined.contains(*c)) {
            diags.push(src.error(None, &format!("roles.{name}.channels"), format!("role `{name}` names channel `{c}`, which {} does not define: add a [[channel]] with kind and name as written (`KIND:NAME`, e.g. `webhook:ops`)", config.path.display())));
        }
    }
    for c in &config.channels {
        if let Err(why) = crate::channel::secret_from_env(&c.secret_env) {
            diags.push(Diagnostic {
                severity: Severity::Error,
                file: config.path.clone(),
                line: c.line,
                column: 1,
                key: format!("channel.{}.secret_env", c.name),
                message: format!("channel `{}`: {why}", c.reference()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_url, plain_name};

    #[test]
    fn channel_names_and_urls_are_checked() {
        assert!(plain_name("ops-1_x"));
        assert!(!plain_name("a b") && !plain_name("") && !plain_name("a:b"));
        assert!(check_url("https://hooks.example.com/x").is_ok());
        assert!(check_url("http://127.0.0.1:9/x").is_ok());
        assert!(check_url("ftp://x").unwrap_err().contains("http://"));
        assert!(
            check_url("https://u:p@h/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(check_url("https:///x").unwrap_err().contains("no host"));
        // what the HTTP client cannot send to must be refused by `check`, not retried for a day
        for bad in [
            "http://exa mple.com/x",
            "https://hooks.example.com:99999/x",
            "https://hooks.example.com/a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad} accepted");
        }
        assert!(check_url("https://hooks.example.com:8443/x?team=1").is_ok());
    }
}
