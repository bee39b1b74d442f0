//! One connection's activity, as the listener bounds it: whether a request is in flight, when
//! the bytes of the next one began to arrive, whether a request's body is still being read, and
//! the watchdog that closes a connection whose request headers take longer than `[limits]
//! header_timeout` or whose request body takes longer than `[limits] body_timeout` (from its
//! headers to its last byte, however it is dripped). hyper's own header timer (set to
//! `idle_timeout`) ends connections that stay idle between requests.
//!
//! It must never read, parse or answer a request: it only counts bytes in and requests served.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What a connection is doing.
#[derive(Debug)]
pub(super) struct Activity {
    /// When it was accepted.
    opened: Instant,
    /// Requests in flight (from their headers to the end of their response body).
    active: AtomicUsize,
    /// Milliseconds after `opened` (+1) when the bytes of the next request began; 0: none yet.
    started: AtomicU64,
    served: AtomicBool,
    /// Requests whose body has not been read to its end (or dropped) yet.
    reading: AtomicUsize,
    /// Milliseconds after `opened` (+1) when the last request's headers were in.
    requested: AtomicU64,
    /// Wakes the watchdog when a deadline appears (a request begins, or its headers are in).
    changed: tokio::sync::Notify,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            active: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            served: AtomicBool::new(false),
            reading: AtomicUsize::new(0),
            requested: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Bytes came in: while no request is in flight, the next one has begun.
    fn bytes_in(&self) {
        if self.active.load(Ordering::SeqCst) == 0
            && self
                .started
                .compare_exchange(0, self.ms(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    /// A request's headers are in; its body is to be read.
    pub(super) fn request(&self) {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.reading.fetch_add(1, Ordering::SeqCst);
        self.requested.store(self.ms(), Ordering::SeqCst);
        self.started.store(0, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        // the body's deadline may come before the headers' one the watchdog sleeps towards
        self.changed.notify_one();
    }

    /// A request's body has been read to its end, or dropped unread.
    pub(super) fn body_read(&self) {
        let _ = self
            .reading
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// A response's body has ended (or was dropped).
    pub(super) fn responded(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// No request in flight: waiting for its first request, or idle between two.
    pub(super) fn idle(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0
    }

    /// Nothing is being worked on for the client: no request in flight, or only requests whose
    /// bodies are still arriving (nothing has been done with them yet). Such a connection may
    /// be closed for a newcomer at a cap.
    pub(super) fn unserved(&self) -> bool {
        self.active.load(Ordering::SeqCst) <= self.reading.load(Ordering::SeqCst)
    }

    /// By when the body being read must be in: `body` after its request's headers.
    fn body_deadline(&self, body: Duration) -> Option<Instant> {
        if self.reading.load(Ordering::SeqCst) == 0 {
            return None;
        }
        let ms = self.requested.load(Ordering::SeqCst).max(1);
        Some(self.opened + Duration::from_millis(ms - 1) + body)
    }

    /// By when the headers being waited for must be in: the first request's from the accept,
    /// a later one's from its first byte; none while a request is in flight or the connection
    /// idles after one (hyper's idle timer has that).
    fn header_deadline(&self, header: Duration) -> Option<Instant> {
        if !self.idle() {
            return None;
        }
        match self.started.load(Ordering::SeqCst) {
            0 if self.served.load(Ordering::SeqCst) => None,
            0 => Some(self.opened + header),
            ms => Some(self.opened + Duration::from_millis(ms - 1) + header),
        }
    }
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Late {
    Headers,
    Body,
}

/// Returns when the connection has taken longer than `header` to send a request's headers, or
/// longer than `body` to send a request's body.
pub(super) async fn watchdog(a: Arc<Activity>, header: Duration, body: Duration) -> Late {
    loop {
        let deadlines = [
            (a.header_deadline(header), Late::Headers),
            (a.body_deadline(body), Late::Body),
        ];
        let next = deadlines
            .into_iter()
            .filter_map(|(d, late)| d.map(|d| (d, late)))
            .min_by_key(|(d, _)| *d);
        let until = match next {
            Some((d, late)) if Instant::now() >= d => return late,
            Some((d, _)) => d,
            None => Instant::now() + header.min(body),
        };
        // until the deadline, or until a new one appears
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = a.changed.notified() => {}
        }
    }
}

/// Ends a request body's reading when dropped (read to its end, or dropped unread).
pub(super) struct BodyRead(pub(super) Arc<Activity>);

impl Drop for BodyRead {
    fn drop(&mut self) {
        self.0.body_read();
    }
}

/// Ends a request's activity when dropped (with its response body, or its failed future).
pub(super) struct Responded(pub(super) Arc<Activity>);

impl Drop for Responded {
    fn drop(&mut self) {
        self.0.responded();
    }
}

/// A socket whose reads tell the connection's [`Activity`].
pub(super) struct Watched<T> {
    pub(super) io: T,
    pub(super) activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_in();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Activity;

    #[test]
    fn headers_are_timed_from_the_accept_then_from_each_request_s_first_byte() {
        let h = Duration::from_secs(10);
        let a = Activity::new();
        assert_eq!(
            a.header_deadline(h),
            Some(a.opened + h),
            "the first request, from the accept"
        );
        a.request();
        assert_eq!(
            a.header_deadline(h),
            None,
            "a request in flight is not timed here"
        );
        a.responded();
        assert!(a.idle());
        assert_eq!(
            a.header_deadline(h),
            None,
            "idle after a response: hyper's idle timer"
        );
        let before = tokio::time::Instant::now();
        a.bytes_in();
        let d = a.header_deadline(h).expect("the next request has begun");
        assert!(d >= before + h - Duration::from_millis(1) && d <= tokio::time::Instant::now() + h);
        a.request();
        a.bytes_in();
        assert_eq!(
            a.header_deadline(h),
            None,
            "bytes of a request in flight start nothing"
        );
        a.responded();
        a.responded();
        assert!(a.idle(), "never below zero");
    }

    #[test]
    fn a_body_is_timed_from_its_headers_and_its_connection_is_unserved_until_it_is_read() {
        let b = Duration::from_secs(30);
        let a = Activity::new();
        assert_eq!(a.body_deadline(b), None, "no request, no body");
        let before = tokio::time::Instant::now();
        a.request();
        assert!(
            a.unserved(),
            "a body still arriving: nothing done for the client yet"
        );
        let d = a.body_deadline(b).expect("a body is being read");
        assert!(d >= before + b - Duration::from_millis(1) && d <= tokio::time::Instant::now() + b);
        a.body_read();
        assert_eq!(a.body_deadline(b), None, "read to its end");
        assert!(!a.unserved() && !a.idle(), "its request is being worked on");
        a.responded();
        assert!(a.unserved() && a.idle());
        a.body_read();
        assert_eq!(a.body_deadline(b), None, "never below zero");
    }

    /// A body deadline shorter than the header timeout is kept: the watchdog, asleep towards
    /// the header deadline, is woken when the headers are in (virtual time, no waiting).
    #[tokio::test(start_paused = true)]
    async fn a_body_deadline_before_the_header_deadline_is_not_slept_through() {
        let (header, body) = (Duration::from_secs(10), Duration::from_secs(2));
        let a = std::sync::Arc::new(Activity::new());
        let watching = tokio::spawn(super::watchdog(a.clone(), header, body));
        tokio::time::sleep(Duration::from_secs(1)).await;
        a.request();
        let late = tokio::time::timeout(Duration::from_secs(5), watching).await;
        let late = late
            .expect("cut at the body's deadline, not the header's")
            .unwrap();
        assert_eq!(late, super::Late::Body);
    }
}
