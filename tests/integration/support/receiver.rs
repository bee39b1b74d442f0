//! The far end of a webhook channel: `tests/peers/channel_receiver.py`, which checks every POST
//! with the Standard Webhooks reference library (PyPI `standardwebhooks`) and logs what it got,
//! one JSON line each (path, query, headers, body, verified, error, attempt, status). Its answers
//! follow the URL's query (`?fail=N`, `?status=CODE`); it never decides anything for a test.
//! `/slack…` and `/teams…` paths are unsigned chat channels: format-checked, with `schema_errors`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Peer, REPO, python, require};

/// The receiver on a loopback port the system chose, stopped when dropped.
pub struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Start it with the Standard Webhooks secret `secret` (`whsec_…`) and wait (up to 30 s)
    /// until it listens.
    pub fn start(secret: &str) -> Receiver {
        require(Peer::Receiver);
        let dir = tempfile::tempdir().expect("receiver dir");
        let (port_file, log) = (dir.path().join("port"), dir.path().join("received.jsonl"));
        let mut child = Command::new(python())
            .arg(format!("{REPO}/tests/peers/channel_receiver.py"))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .env("WEBHOOK_SECRET", secret)
            .stdout(Stdio::null())
            .spawn()
            .expect("python (the peers' virtual environment)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let port = std::fs::read_to_string(&port_file).ok();
            if let Some(port) = port.and_then(|p| p.trim().parse().ok()) {
                return Receiver {
                    child,
                    port,
                    log,
                    _dir: dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the webhook receiver exited before it listened: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the webhook receiver wrote no port within 30 s");
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`, and may carry a query).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What it received so far, in order (a line still being written is left for later).
    pub fn entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter_map(|l| l.strip_suffix('\n'))
            .map(|l| serde_json::from_str(l).expect("a JSON line of the receiver's log"))
            .collect()
    }

    /// What it received, once that is at least `n` requests; polled until `within` has passed,
    /// then the test fails showing what did arrive (a deadline, not a timing assertion).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let entries = self.entries();
            if entries.len() >= n {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "the webhook receiver got {} of {n} requests within {within:?}: {entries:#?}",
                entries.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
