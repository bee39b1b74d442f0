//! `[[server]]`: one tool server, as written and as validated.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

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
pub(super) fn unstartable(
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

impl ServerConfig {
    /// The name an agent sees for `tool` of this server.
    pub fn exposed(&self, tool: &str) -> String {
        format!("{}{tool}", self.prefix)
    }
}
