//! `[limits]`: what one process holds at most — connections, their timeouts, MCP sessions, the
//! ledger's cache — so that a client that follows the protocol cannot make the gate run out of
//! descriptors or memory. Compiled into [`Limits`]; every default is a constant here.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use crate::diag::{Diagnostic, Source};

/// `[limits]`; every key has a default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Longest time a request's headers may take: the first request's from the connection's
    /// accept, a later one's from its first byte, e.g. `10s`.
    #[schemars(with = "Option<String>")]
    pub header_timeout: Option<Spanned<String>>,
    /// A kept-alive connection with no request for this long is closed, e.g. `60s` (longer than
    /// clients keep idle connections, so none sends on one just closed). At least
    /// `header_timeout`.
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Spanned<String>>,
    /// Longest a request's whole body may take, from its headers to its last byte, e.g. `30s`
    /// (the connection is closed past it).
    #[schemars(with = "Option<String>")]
    pub body_timeout: Option<Spanned<String>>,
    /// Most open connections on the listener (agents, pages, `/healthz`, `/metrics`); a new one
    /// beyond it is closed at once. Never more than the process's descriptor limit allows,
    /// less a reserve for the ledger, tool servers and mail. Default 512.
    #[schemars(with = "Option<u64>")]
    pub connections: Option<Spanned<u64>>,
    /// Most open connections from one client address (behind a proxy every client has the
    /// proxy's address: raise it to `connections`). Default 128.
    #[schemars(with = "Option<u64>")]
    pub connections_per_address: Option<Spanned<u64>>,
    /// Most open MCP sessions one agent holds; its next `initialize` is refused (429) until one
    /// is closed (`DELETE /mcp`) or ends idle. Default 64.
    #[schemars(with = "Option<u64>")]
    pub sessions_per_actor: Option<Spanned<u64>>,
    /// Most open MCP sessions of all agents together; the next `initialize` is refused (503).
    /// Default 1024.
    #[schemars(with = "Option<u64>")]
    pub sessions: Option<Spanned<u64>>,
    /// An MCP session with no request for this long ends, e.g. `5m`.
    #[schemars(with = "Option<String>")]
    pub session_idle: Option<Spanned<String>>,
    /// The redb ledger's page cache, e.g. `64MiB` (redb's own default is 1 GiB).
    #[schemars(with = "Option<String>")]
    pub ledger_cache: Option<Spanned<String>>,
}

/// The limits in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub connections: usize,
    pub connections_per_address: usize,
    pub sessions_per_actor: usize,
    pub sessions: usize,
    pub session_idle: Duration,
    pub ledger_cache: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            connections: 512,
            connections_per_address: 128,
            sessions_per_actor: 64,
            sessions: 1024,
            session_idle: Duration::from_secs(300),
            ledger_cache: crate::ledger::CACHE_DEFAULT,
        }
    }
}

pub(super) fn compile(
    src: &Source,
    section: &LimitsSection,
    errors: &mut Vec<Diagnostic>,
) -> Limits {
    let d = Limits::default();
    let mut fail = |v: &Spanned<_>, key: &str, msg: String| {
        errors.push(src.error(Some(v.span()), &format!("limits.{key}"), msg));
    };
    let mut duration = |v: &Option<Spanned<String>>, key: &str, default: Duration| {
        let Some(v) = v else { return default };
        crate::policy::parse_duration(v.get_ref()).unwrap_or_else(|msg| {
            fail(v, key, msg);
            default
        })
    };
    let header_timeout = duration(&section.header_timeout, "header_timeout", d.header_timeout);
    let idle_timeout = duration(&section.idle_timeout, "idle_timeout", d.idle_timeout);
    let body_timeout = duration(&section.body_timeout, "body_timeout", d.body_timeout);
    let session_idle = duration(&section.session_idle, "session_idle", d.session_idle);
    let mut count = |v: &Option<Spanned<u64>>, key: &str, default: usize| {
        let Some(v) = v else { return default };
        match usize::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => n,
            _ => {
                errors.push(src.error(
                    Some(v.span()),
                    &format!("limits.{key}"),
                    format!("`{}` must be at least 1", v.get_ref()),
                ));
                default
            }
        }
    };
    let connections = count(&section.connections, "connections", d.connections);
    let per_address = count(
        &section.connections_per_address,
        "connections_per_address",
        d.connections_per_address,
    );
    let sessions_per_actor = count(
        &section.sessions_per_actor,
        "sessions_per_actor",
        d.sessions_per_actor,
    );
    let sessions = count(&section.sessions, "sessions", d.sessions);
    let ledger_cache = match &section.ledger_cache {
        None => d.ledger_cache,
        Some(v) => parse_size(v.get_ref()).unwrap_or_else(|msg| {
            errors.push(src.error(Some(v.span()), "limits.ledger_cache", msg));
            d.ledger_cache
        }),
    };
    Limits {
        header_timeout,
        // an idle connection's next request still has its header time
        idle_timeout: idle_timeout.max(header_timeout),
        body_timeout,
        // one address never holds more than the listener
        connections_per_address: per_address.min(connections),
        connections,
        sessions_per_actor: sessions_per_actor.min(sessions),
        sessions,
        session_idle,
        ledger_cache,
    }
}

/// `64MiB`, `512 KiB`, `1GiB`, or a number of bytes; at least 1 MiB.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let unit_bytes: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}`; write e.g. `64MiB` (B, KiB, MiB or GiB)"
            ));
        }
    };
    let bytes = number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes))
        .ok_or_else(|| format!("`{s}` is not a size; write e.g. `64MiB`"))?;
    if bytes < 1 << 20 {
        return Err(format!("`{s}` is under 1 MiB; write at least `1MiB`"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units_and_refuse_what_is_not_one() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(
            parse_size("64MB")
                .unwrap_err()
                .contains("unknown unit `MB`")
        );
        assert!(parse_size("512KiB").unwrap_err().contains("under 1 MiB"));
        assert!(parse_size("MiB").unwrap_err().contains("not a size"));
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
