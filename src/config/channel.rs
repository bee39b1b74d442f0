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
    /// A Slack incoming webhook: a Block Kit message.
    Slack,
    /// A Microsoft Teams workflow webhook: an Adaptive Card.
    Teams,
}

impl ChannelKind {
    /// The word a role's `channels` uses before the name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
        }
    }
}

/// Where a channel posts: written in the file, or (a URL that is itself a credential, as Slack's
/// and Teams' are) held by an environment variable.
#[derive(Debug, Clone, PartialEq)]
pub enum UrlSource {
    Written(String),
    Env(String),
}

/// One `[[channel]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// Its name: a role names it as `KIND:NAME`, e.g. `webhook:ops`.
    pub name: String,
    /// `"webhook"`: a signed POST of each event (Standard Webhooks); `"slack"`: a message to a
    /// Slack incoming webhook; `"teams"`: an Adaptive Card to a Teams workflow webhook.
    pub kind: ChannelKind,
    /// Where events are posted: `https://…`, or `http://…` (e.g. a receiver on this machine).
    pub url: Option<String>,
    /// Instead of `url`: the environment variable holding it (Slack's and Teams' webhook URLs
    /// are credentials themselves).
    pub url_env: Option<String>,
    /// Webhooks only: the environment variable holding the signing secret, `whsec_` and the
    /// base64 of 24 to 64 random bytes (the receiver holds the same). Never written in this file.
    pub secret_env: Option<String>,
}

/// A channel as compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    pub url: UrlSource,
    /// Webhooks: the variable holding the secret.
    pub secret_env: Option<String>,
    /// Where it is defined in airlock.toml (1-based line), for messages about it.
    pub line: usize,
}

impl ChannelConfig {
    /// How a role names it.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.name)
    }
}

/// Compile every `[[channel]]`: names unique and plain, URLs http(s) without credentials, a
/// secret for webhooks only.
pub(super) fn compile(
    src: &Source,
    sections: &[Spanned<ChannelSection>],
    errors: &mut Vec<Diagnostic>,
) -> Vec<ChannelConfig> {
    let mut seen = BTreeSet::new();
    (sections.iter().enumerate())
        .map(|(i, s)| compile_one(src, i, s, &mut seen, errors))
        .collect()
}

fn compile_one(
    src: &Source,
    i: usize,
    s: &Spanned<ChannelSection>,
    seen: &mut BTreeSet<(ChannelKind, String)>,
    errors: &mut Vec<Diagnostic>,
) -> ChannelConfig {
    let (span, c) = (s.span(), s.get_ref());
    let mut bad = |what: &str, msg: String| {
        errors.push(src.error(Some(span.clone()), &format!("channel[{i}].{what}"), msg));
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
    let url = match (&c.url, &c.url_env) {
        (Some(u), None) => {
            if let Err(msg) = check_url(u) {
                bad("url", msg);
            }
            UrlSource::Written(u.clone())
        }
        (None, Some(var)) if !var.trim().is_empty() => UrlSource::Env(var.trim().to_string()),
        _ => {
            bad(
                "url",
                "give exactly one of `url` and `url_env` (the variable holding the URL)".into(),
            );
            UrlSource::Written(String::new())
        }
    };
    let secret_env = c
        .secret_env
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (c.kind, secret_env) {
        (ChannelKind::Webhook, None) => bad(
            "secret_env",
            "name the environment variable that holds the webhook's signing secret (`whsec_…`)"
                .into(),
        ),
        (ChannelKind::Slack | ChannelKind::Teams, Some(_)) => bad(
            "secret_env",
            format!(
                "a {} channel is not signed: its URL is the secret (keep it in `url_env`)",
                c.kind.as_str()
            ),
        ),
        _ => {}
    }
    ChannelConfig {
        name: c.name.clone(),
        kind: c.kind,
        url,
        secret_env: secret_env.map(str::to_string),
        line: src.line_col(span.start).0,
    }
}

fn plain_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(crate) fn check_url(u: &str) -> Result<(), String> {
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

/// The policy's roles name only channels `airlock.toml` defines, each channel's secret and URL
/// variables are set and in their form, and a chat channel of a role without sign-in is warned
/// about: errors naming the role's key or the variable.
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
        let chat = role.channels.iter().filter(|c| !c.starts_with("webhook:"));
        for c in chat.filter(|_| role.sign_in == crate::policy::SignIn::Link) {
            diags.push(src.warning(None, &format!("roles.{name}.channels"), format!("channel `{c}` shows each approver of role `{name}` a button with their own link, and the role signs in with the link alone: anyone who reads the channel could decide as any of them; give the role `sign_in = \"oidc\"`")));
        }
    }
    for (i, c) in config.channels.iter().enumerate() {
        if let Err((field, why)) = crate::channel::resolve(c) {
            diags.push(Diagnostic {
                severity: Severity::Error,
                file: config.path.clone(),
                line: c.line,
                column: 1,
                key: format!("channel[{i}].{field}"),
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
