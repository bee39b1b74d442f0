//! A checkpoint witness for the tests: a small HTTP receiver on loopback that keeps the body of
//! every POST and answers with the status it was told to — a real HTTP boundary, nothing more.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Witness {
    pub url: String,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Witness {
    /// Listen on a free loopback port; every POST is answered `status`.
    pub fn start(status: u16) -> Witness {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind witness");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, st) = (received.clone(), status.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(c) = conn {
                    let _ = answer(c, &r, s.load(Ordering::SeqCst));
                }
            }
        });
        Witness {
            url: format!("http://{addr}/checkpoints"),
            received,
            status,
            stop,
            addr,
        }
    }

    /// Answer every later POST with `status`.
    pub fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The bodies received so far, oldest first.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
    }
}

/// Read one request (headers, then Content-Length bytes); keep a POST's body; answer.
fn answer(mut c: TcpStream, received: &Mutex<Vec<Vec<u8>>>, status: u16) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(c.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    if request_line.starts_with("POST ") && status < 300 {
        received.lock().expect("lock").push(body);
    }
    write!(
        c,
        "HTTP/1.1 {status} Witness\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    c.flush()
}
