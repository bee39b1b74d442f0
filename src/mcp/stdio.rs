//! The agent's stdin and stdout as non-blocking pipes or sockets on tokio's reactor.
//!
//! `tokio::io::stdin()`/`stdout()` run every read and write on tokio's blocking pool: each MCP
//! message over stdio costs two thread hand-offs each way. When stdin and stdout are pipes (or
//! sockets, as Node's `child_process` makes them), they can instead be registered with the
//! reactor like any socket: the same bytes, through rmcp's same transport, without the pool.
//!
//! Owns that choice and nothing else. It must never make a descriptor non-blocking that the
//! process writes to in any other way: when stderr is the same pipe or socket as stdout (a
//! `2>&1`), or either end is a terminal or a file, it keeps tokio's blocking handles.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// Something MCP messages are read from.
pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
/// Something MCP messages are written to.
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// This process's stdin and stdout for an MCP transport, and whether they are on the reactor
/// (`false`: tokio's blocking handles).
pub fn agent_stdio() -> (Reader, Writer, bool) {
    match on_reactor() {
        Some((r, w)) => (r, w, true),
        None => (
            Box::pin(tokio::io::stdin()),
            Box::pin(tokio::io::stdout()),
            false,
        ),
    }
}

/// What kind of descriptor a standard handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fifo,
    Socket,
    Other,
}

/// Its kind and identity (device, inode).
fn identify(fd: &OwnedFd) -> Option<(Kind, (u64, u64))> {
    let meta = File::from(fd.try_clone().ok()?).metadata().ok()?;
    let ft = meta.file_type();
    let kind = if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else {
        Kind::Other
    };
    Some((kind, (meta.dev(), meta.ino())))
}

fn on_reactor() -> Option<(Reader, Writer)> {
    let input = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let (in_kind, _) = identify(&input)?;
    let (out_kind, out_id) = identify(&output)?;
    // stderr on the same pipe as stdout would turn non-blocking too, and a log line could fail
    if let Some(err) = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|e| identify(&e))
        && err.1 == out_id
    {
        return None;
    }
    Some((reader(input, in_kind)?, writer(output, out_kind)?))
}

fn reader(fd: OwnedFd, kind: Kind) -> Option<Reader> {
    match kind {
        Kind::Fifo => {
            let r = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()?;
            Some(Box::pin(r))
        }
        Kind::Socket => Some(Box::pin(socket(fd)?)),
        Kind::Other => None,
    }
}

fn writer(fd: OwnedFd, kind: Kind) -> Option<Writer> {
    match kind {
        Kind::Fifo => {
            let w = tokio::net::unix::pipe::Sender::from_owned_fd(fd).ok()?;
            Some(Box::pin(w))
        }
        Kind::Socket => Some(Box::pin(socket(fd)?)),
        Kind::Other => None,
    }
}

/// A Unix stream socket on the reactor (only one direction of it is used).
fn socket(fd: OwnedFd) -> Option<tokio::net::UnixStream> {
    let s = std::os::unix::net::UnixStream::from(fd);
    s.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(s).ok()
}
