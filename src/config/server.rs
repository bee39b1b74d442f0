//! `[[server]]`: one tool server, as written and as validated.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::http;
use crate::diag::{Diagnostic, Source};

/// `[[server]]`: one tool server.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Unique name; manifests refer to it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Program of a stdio tool server (started as a child process): a name looked up on `PATH`
    /// (the server's `env` may set its own), or a path, relative to `cwd`.
    #[schemars(with = "Option<String>")]
    pub command: Option<Spanned<String>>,
    /// A tool server built into Airlock's own binary, started as a child over stdio (instead of
    /// `command` or `url`): `demo-shop`, the fake shop of the demo. `args` are its flags.
    #[schemars(with = "Option<String>")]
    pub builtin: Option<Spanned<String>>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables for the child process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the child, relative to this file (default: this file's directory).
    pub cwd: Option<String>,
    /// A streamable-HTTP tool server, e.g. `http://127.0.0.1:9000/mcp` (instead of `command`).
    pub url: Option<String>,
    /// Allow a `url` that is not on this machine over plain http (only on a trusted network).
    #[serde(default)]
    pub allow_remote: bool,
    /// HTTP headers sent to a `url` server, e.g. `{ Authorization = "Bearer ${SHOP_TOKEN}" }`;
    /// `${VAR}` is read from Airlock's environment when connecting, so secrets stay out of files.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Name prefix under which its tools are exposed; default `<name>__`.
    pub prefix: Option<String>,
    /// How long one call to this server may take before it is failed (default `5m`).
    pub timeout: Option<String>,
    /// How often its tools are listed again (default `30s` for a `url` server, never for a
    /// stdio one): a server that restarted may serve other tools, which are re-gated like a
    /// `tools/list_changed`.
    pub relist: Option<String>,
}

/// A validated tool server entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    /// The program of a stdio server (empty for a `url` server).
    pub command: String,
    /// A streamable-HTTP server's URL, and the headers (with `${VAR}` unresolved) sent to it.
    pub url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub prefix: String,
    pub timeout: Duration,
    /// How often its tools are listed again, if at all.
    pub relist: Option<Duration>,
}

/// The tool servers built into the binary, by their `builtin` name.
pub const BUILTINS: &[&str] = &[crate::mcp::demo_shop::BUILTIN];

/// The program and arguments that start built-in server `name`: this very executable, with the
/// hidden subcommand of that name and the server's `args`.
pub(super) fn builtin_command(
    name: &str,
    args: &[String],
) -> Result<(String, Vec<String>), String> {
    if !BUILTINS.contains(&name) {
        return Err(format!(
            "`{name}` is not a built-in tool server (built in: {})",
            BUILTINS.join(", ")
        ));
    }
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find Airlock's own executable to start `{name}`: {e}"))?;
    let mut all = vec![name.to_string()];
    all.extend(args.iter().cloned());
    Ok((exe.display().to_string(), all))
}

/// Why `command` cannot be started as a child in `cwd` with `env` added, if it cannot: the same
/// lookup the child's start makes (a bare name searched on `PATH`, a path taken from `cwd`), so
/// `check` refuses what `serve` would fail to start.
pub(super) fn why_unstartable(
    command: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Option<String> {
    if command.contains('/') {
        let path = cwd.join(command.strip_prefix("./").unwrap_or(command));
        return match executable(&path) {
            Ok(()) => None,
            Err(why) => Some(format!(
                "cannot start `{command}`: {} {why}",
                path.display()
            )),
        };
    }
    let path = env
        .get("PATH")
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let found: Vec<Result<(), &str>> = dirs.iter().map(|d| executable(&d.join(command))).collect();
    if found.iter().any(Result::is_ok) {
        return None;
    }
    let why = if found.contains(&Err("is not executable")) {
        "is on PATH but not executable (chmod +x)"
    } else {
        "is not found on PATH"
    };
    Some(format!(
        "cannot start `{command}`: it {why} ({} directories searched); install it, or give its full path",
        dirs.len()
    ))
}

fn executable(path: &Path) -> Result<(), &'static str> {
    match std::fs::metadata(path) {
        Err(_) => Err("does not exist"),
        Ok(m) if !m.is_file() => Err("is not a file"),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err("is not executable"),
        Ok(_) => Ok(()),
    }
}

/// Every `[[server]]`, validated: the servers, and those that could not be started as written
/// (reported by `load_setup`, not here). Errors go to `errors` with file, line and key.
pub(super) fn compile_all(
    src: &Source,
    dir: &Path,
    sections: &[Spanned<ServerSection>],
    errors: &mut Vec<Diagnostic>,
) -> (Vec<ServerConfig>, Vec<Diagnostic>) {
    let mut servers: Vec<ServerConfig> = Vec::new();
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    let mut unstartable = Vec::new();
    for (i, s) in sections.iter().enumerate() {
        let key = format!("server[{i}]");
        let span = s.span();
        let s = s.get_ref();
        let name = s.name.get_ref().clone();
        if !valid_name(&name) {
            errors.push(src.error(
                Some(s.name.span()),
                &format!("{key}.name"),
                format!("`{name}` must be 1-64 characters of [A-Za-z0-9_-]"),
            ));
        }
        if servers.iter().any(|o| o.name == name) {
            errors.push(src.error(
                Some(s.name.span()),
                &format!("{key}.name"),
                format!("server `{name}` is defined twice"),
            ));
        }
        let Some((command, args)) = program(src, span.clone(), s, &key, errors) else {
            continue;
        };
        let prefix = s.prefix.clone().unwrap_or_else(|| format!("{name}__"));
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            errors.push(src.error(
                Some(span.clone()),
                &format!("{key}.prefix"),
                format!(
                    "prefix `{prefix}` may only use [A-Za-z0-9_.-] (it becomes part of tool names)"
                ),
            ));
        }
        // Two prefixes where one starts the other could expose the same name for two tools.
        if let Some((p, other)) = prefixes
            .iter()
            .find(|(p, _)| p.starts_with(prefix.as_str()) || prefix.starts_with(p.as_str()))
        {
            let how = if *p == prefix {
                "is also used by".to_string()
            } else {
                format!("overlaps prefix `{p}` of")
            };
            errors.push(src.error(
                Some(span.clone()),
                &format!("{key}.prefix"),
                format!("prefix `{prefix}` {how} server `{other}`: their tools could be confused"),
            ));
        }
        prefixes.insert(prefix.clone(), name.clone());
        let cwd = s
            .cwd
            .as_ref()
            .map_or_else(|| dir.to_path_buf(), |c| dir.join(c));
        if s.cwd.is_some() && !cwd.is_dir() {
            let why = format!("working directory {} is not a directory", cwd.display());
            unstartable.push(src.error(Some(span.clone()), &format!("{key}.cwd"), why));
        } else if let Some(c) = &s.command {
            if let Some(why) = why_unstartable(c.get_ref(), &cwd, &s.env) {
                unstartable.push(src.error(Some(c.span()), &format!("{key}.command"), why));
            }
        }
        // a duration field of this server: parsed (≥ 1s), or its error recorded
        let mut duration = |field: &str, value: &str| {
            crate::policy::parse_duration(value)
                .map_err(|msg| {
                    errors.push(src.error(Some(span.clone()), &format!("{key}.{field}"), msg));
                })
                .ok()
        };
        let timeout = s
            .timeout
            .as_deref()
            .and_then(|t| duration("timeout", t))
            .unwrap_or(Duration::from_secs(300));
        let relist = match s.relist.as_deref() {
            Some(t) => duration("relist", t),
            None => s.url.as_ref().map(|_| Duration::from_secs(30)),
        };
        servers.push(ServerConfig {
            name,
            command,
            url: s.url.clone(),
            headers: s.headers.clone(),
            args,
            env: s.env.clone(),
            cwd,
            prefix,
            timeout,
            relist,
        });
    }
    (servers, unstartable)
}

/// What starts a server: (program, arguments) of a stdio one (`command`, or a `builtin` resolved
/// to this executable), or an empty program for a `url` one; `None` after recording its error.
fn program(
    src: &Source,
    span: std::ops::Range<usize>,
    s: &ServerSection,
    key: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<(String, Vec<String>)> {
    match (&s.command, &s.url, &s.builtin) {
        (Some(c), None, None) if !c.get_ref().trim().is_empty() => {
            Some((c.get_ref().clone(), s.args.clone()))
        }
        (None, Some(u), None) => match http::check_server_url(u, s.allow_remote) {
            Ok(()) => Some((String::new(), s.args.clone())),
            Err(why) => {
                errors.push(src.error(Some(span), &format!("{key}.url"), why));
                None
            }
        },
        (None, None, Some(b)) => match builtin_command(b.get_ref(), &s.args) {
            Ok(found) => Some(found),
            Err(why) => {
                errors.push(src.error(Some(b.span()), &format!("{key}.builtin"), why));
                None
            }
        },
        (None, None, None) => {
            errors.push(src.error(
                Some(span),
                &format!("{key}.command"),
                "a server needs a `command` to start (or a `url`, or a `builtin`)",
            ));
            None
        }
        (Some(_), None, None) => {
            errors.push(src.error(Some(span), &format!("{key}.command"), "`command` is empty"));
            None
        }
        _ => {
            errors.push(src.error(
                Some(span),
                key,
                "give one of `command`, `url` or `builtin`, not several",
            ));
            None
        }
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl ServerConfig {
    /// The name an agent sees for `tool` of this server.
    pub fn exposed(&self, tool: &str) -> String {
        format!("{}{tool}", self.prefix)
    }
}
