//! The agent's stdio: pipes (as most clients start a server) and Unix sockets (as Node's
//! `child_process` does) are both served on tokio's reactor, and calls pass through either.

use std::os::fd::OwnedFd;

use rmcp::ServiceExt;
use serde_json::json;

use crate::support::{AIRLOCK, Agent, World, text};

/// Whether `airlock serve`'s debug log says the agent's stdio is on the reactor.
fn served_on_reactor(w: &World, log: &str) -> bool {
    let said = std::fs::read_to_string(w.path(log)).expect("log");
    said.lines()
        .any(|l| l.contains("serving the agent on stdio") && l.contains("on_reactor=true"))
}

#[tokio::test]
async fn an_agent_on_pipes_is_served_on_the_reactor() {
    let w = World::demo();
    let (agent, child) = w.logged_agent("serve.log").await;
    let r = agent.call("echo", json!({"text": "through pipes"})).await;
    assert!(text(&r).contains("through pipes"), "{}", text(&r));
    agent.close().await;
    drop(child);
    assert!(served_on_reactor(&w, "serve.log"));
}

#[tokio::test]
async fn an_agent_on_a_unix_socket_is_served_on_the_reactor() {
    let w = World::demo();
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
    let theirs_out = theirs.try_clone().expect("dup");
    let mut child = tokio::process::Command::new(AIRLOCK)
        .args(["serve", "--config"])
        .arg(w.config())
        .env("AIRLOCK_LOG", "debug")
        .stdin(std::process::Stdio::from(OwnedFd::from(theirs)))
        .stdout(std::process::Stdio::from(OwnedFd::from(theirs_out)))
        .stderr(std::fs::File::create(w.path("serve.log")).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn airlock serve");
    mine.set_nonblocking(true).expect("non-blocking");
    let (read, write) = tokio::net::UnixStream::from_std(mine)
        .expect("socket")
        .into_split();
    let client = ().serve((read, write)).await.expect("MCP handshake over a socket");
    let agent = Agent { client };
    let r = agent.call("echo", json!({"text": "through a socket"})).await;
    assert!(text(&r).contains("through a socket"), "{}", text(&r));
    agent.close().await;
    let _ = child.wait().await;
    assert!(served_on_reactor(&w, "serve.log"));
}
