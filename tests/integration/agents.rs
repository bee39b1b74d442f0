//! Shared harness for agents that reach Airlock over streamable HTTP: a token per actor,
//! `airlock serve` listening on a port, and where the npm peers are installed.

use std::process::{Child, Command, Stdio};

use crate::smtp::http;
use crate::support::{AIRLOCK, World};

/// `airlock serve` with HTTP on; killed when dropped.
pub struct Serving {
    pub child: Child,
    /// `http://HOST:PORT`, where `/mcp` and the pages are.
    pub base: String,
}

impl Serving {
    /// Stop it as an operator does (SIGTERM): calls in flight finish and their outcome rows are
    /// committed before it exits.
    #[allow(dead_code)] // the replicas tests (integration_pg) use it
    pub fn stop(mut self) {
        let term = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        // a liveness bound, not a timing assertion: it must exit at all
        for _ in 0..600 {
            if self.child.try_wait().expect("try_wait").is_some() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("airlock serve was still running 30 s after SIGTERM");
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (token, its `[[agent]]` entry) from `airlock token new`.
pub fn token(actor: &str) -> (String, String) {
    let out = Command::new(AIRLOCK)
        .args(["token", "new", "--actor", actor])
        .output()
        .expect("airlock token new");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let token = text
        .split_whitespace()
        .find(|t| t.starts_with("alk_"))
        .expect("token")
        .to_string();
    let entry = text[text.find("[[agent]]").expect("entry")..].to_string();
    assert!(
        !entry.contains(&token),
        "the config entry never holds the token"
    );
    (token, entry)
}

/// Start `airlock serve` for `w` (with `args` after `serve`) and wait until `base`/healthz answers.
pub fn serve(w: &World, args: &[&str], base: &str) -> Serving {
    serve_config(&w.config(), args, base)
}

/// [`serve`] with a config file.
pub fn serve_config(config: &std::path::Path, args: &[&str], base: &str) -> Serving {
    let mut child = Command::new(AIRLOCK)
        .arg("serve")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("AIRLOCK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("airlock serve");
    for _ in 0..400 {
        if http()
            .get(&format!("{base}/healthz"))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            return Serving {
                child,
                base: base.to_string(),
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("airlock serve --http did not come up");
}
