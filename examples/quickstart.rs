//! The quickstart: `cargo run --example quickstart [-- --approve]` runs `airlock demo`, the
//! walk-through built into the binary (src/cli/demo/): the demo shop behind the gate, one call
//! down each path, a held call and an approval that wait for you, and the ledger's story.
//!
//! It builds the `airlock` binary beside this example (cargo does not build binaries for an
//! example) and runs it with this program's arguments; it holds no demo logic of its own.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context;

fn main() -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this example's path")?;
    // target/<profile>/examples/quickstart → target/<profile>/airlock
    let profile = exe
        .parent()
        .and_then(|examples| examples.parent())
        .context("this example is not in a cargo target directory")?;
    let airlock: PathBuf = profile.join(format!("airlock{}", std::env::consts::EXE_SUFFIX));
    let release = profile.file_name().is_some_and(|p| p == "release");
    println!("… building the airlock binary (cargo build --bin airlock)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-q", "--bin", "airlock"]);
    // `cargo run` gave this program the package's CARGO_PKG_*, CARGO_MANIFEST_DIR, …; build
    // scripts (ring's) rerun when those change, so an inner cargo that sees them rebuilds what the
    // outer one built, and back again at the next `cargo run`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*key,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
            )
        {
            build.env_remove(&*key);
        }
    }
    if release {
        build.arg("--release");
    }
    anyhow::ensure!(
        build.status()?.success(),
        "cargo build --bin airlock failed"
    );
    let status = Command::new(&airlock)
        .arg("demo")
        .args(std::env::args_os().skip(1))
        .status()
        .with_context(|| format!("cannot run {}", airlock.display()))?;
    Ok(ExitCode::from(
        status.code().map_or(2, |c| c.clamp(0, 255) as u8),
    ))
}
