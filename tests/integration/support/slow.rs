//! The slow tool server of the cancellation tests: `tests/peers/python_slow_server.py`, on the
//! official MCP Python SDK, over stdio (started by Airlock) or streamable HTTP (started here). Its
//! tool `slow` writes `started`, then `finished` or `cancelled`, to a record file.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Peer, REPO, python, require};

/// The script's path.
fn script() -> String {
    format!("{REPO}/tests/peers/python_slow_server.py")
}

/// A `[[server]]` table named `slow` running the slow server over stdio, recording to `record`.
pub fn slow_server(record: &Path) -> String {
    require(Peer::PythonSdk);
    format!(
        "[[server]]\nname = \"slow\"\ncommand = {python:?}\nargs = [{script:?}, \"--record\", {record:?}]\n",
        python = python().display().to_string(),
        script = script(),
        record = record.display().to_string(),
    )
}

/// The slow server over streamable HTTP on a free loopback port, stopped when dropped.
pub struct SlowHttp {
    child: Child,
    pub url: String,
}

impl SlowHttp {
    /// Start it and wait (up to 60 s) until it accepts connections.
    pub fn start(record: &Path) -> SlowHttp {
        require(Peer::PythonSdk);
        let port = crate::smtp::free_port();
        let mut child = Command::new(python())
            .arg(script())
            .arg("--record")
            .arg(record)
            .args(["--http", &port.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("python (the peers' virtual environment)");
        for _ in 0..600 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return SlowHttp {
                    child,
                    url: format!("http://127.0.0.1:{port}/mcp"),
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the slow server exited before it listened: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("the slow server never listened on port {port}");
    }
}

impl Drop for SlowHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The record's lines once it has more than `n` (polled up to 60 s; fewer if it never does).
pub async fn record_after(record: &Path, n: usize) -> Vec<String> {
    let read = || -> Vec<String> {
        std::fs::read_to_string(record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    for _ in 0..600 {
        if read().len() > n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    read()
}
