//! A real SMTP server for the tests: aiosmtpd (PyPI) with its Mailbox handler, one per test, and
//! helpers to read what arrived and follow the approval link over real HTTP.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{Peer, python, require};

pub struct Smtp {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Received {
    /// The first approval link in the body.
    pub fn link(&self) -> String {
        let start = self
            .body
            .find("http://")
            .unwrap_or_else(|| panic!("no link in mail:\n{}", self.body));
        self.body[start..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// The approval id in a link `<base>/a/<id>/<slot>/<token>`.
pub fn approval_id(link: &str) -> String {
    link.rsplit('/').nth(2).unwrap_or_default().to_string()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Smtp {
    /// Start aiosmtpd on a free port (the test fails if it is not installed).
    pub fn start() -> Smtp {
        Smtp::start_on(free_port())
    }

    /// Start aiosmtpd on a given port (a test may configure the port before the server exists).
    pub fn start_on(port: u16) -> Smtp {
        require(Peer::Smtp);
        let dir = tempfile::tempdir().expect("maildir");
        let child = Command::new(python())
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(dir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Smtp { child, port, dir };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start on port {port}");
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.dir.path().join("mail").join(sub)) {
                files.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
        // maildir names are not chronological: order by arrival
        files.sort_by_key(|p| {
            (
                std::fs::metadata(p).and_then(|m| m.modified()).ok(),
                p.clone(),
            )
        });
        files
    }

    /// Every message received so far.
    pub fn all(&self) -> Vec<Received> {
        self.files()
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|raw| parse(&raw))
            .collect()
    }

    /// Wait for the message to `to` that asks about approval `id`.
    pub async fn wait_for_approval(&self, to: &str, id: &str) -> Received {
        for _ in 0..600 {
            if let Some(m) = self
                .all()
                .into_iter()
                .find(|m| m.to.contains(to) && m.body.contains(&format!("/a/{id}/")))
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail to {to} for approval {id}");
    }

    /// Wait for a message to `to` about `subject` whose link is none of `seen`.
    pub async fn wait_for_new(&self, to: &str, subject: &str, seen: &[&str]) -> Received {
        for _ in 0..600 {
            if let Some(m) = self.all().into_iter().find(|m| {
                m.to.contains(to)
                    && m.subject.contains(subject)
                    && !seen.contains(&m.link().as_str())
            }) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no new mail to {to} about {subject:?}");
    }

    /// Wait for the `n`-th (1-based) message to `to` whose subject contains `subject`.
    pub async fn wait_for(&self, to: &str, subject: &str, n: usize) -> Received {
        for _ in 0..600 {
            let hits: Vec<Received> = self
                .all()
                .into_iter()
                .filter(|m| m.to.contains(to) && m.subject.contains(subject))
                .collect();
            if hits.len() >= n {
                return hits[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no mail #{n} to {to} about {subject:?}; got: {:?}",
            self.all()
                .iter()
                .map(|m| (&m.to, &m.subject))
                .collect::<Vec<_>>()
        );
    }
}

/// Headers and a decoded body (lettre may use quoted-printable).
/// One message as stored (a maildir file, or an outbox `.eml`), its subject decoded.
pub fn parse(raw: &str) -> Received {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .or_else(|| raw.split_once("\n\n"))
        .unwrap_or((raw, ""));
    // long headers are folded onto continuation lines (RFC 5322 §2.2.3): unfold them
    let head = head.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", "\t");
    let header = |name: &str| {
        head.lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            })
            .map(|l| l[name.len() + 1..].trim().to_string())
            .unwrap_or_default()
    };
    let qp = header("Content-Transfer-Encoding").eq_ignore_ascii_case("quoted-printable");
    let body = if qp {
        decode_qp(body)
    } else {
        body.to_string()
    };
    Received {
        to: header("To"),
        subject: decode_words(&header("Subject")),
        body,
    }
}

/// A header with RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) decoded; the space
/// between two encoded words is dropped, as the RFC says. Plain text is kept as it is.
fn decode_words(h: &str) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    let mut last_encoded = false;
    for (i, word) in h.split(' ').enumerate() {
        let parts: Vec<&str> = word.split('?').collect();
        let encoded = parts.len() == 5 && parts[0] == "=" && parts[4] == "=";
        let decoded = encoded.then(|| match parts[2].to_ascii_lowercase().as_str() {
            "b" => base64::engine::general_purpose::STANDARD
                .decode(parts[3])
                .ok()
                .and_then(|b| String::from_utf8(b).ok()),
            "q" => Some(decode_qp(&parts[3].replace('_', " "))),
            _ => None,
        });
        match decoded.flatten() {
            Some(text) => {
                if i > 0 && !last_encoded {
                    out.push(' ');
                }
                out.push_str(&text);
                last_encoded = true;
            }
            None => {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(word);
                last_encoded = false;
            }
        }
    }
    out
}

fn decode_qp(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.replace("=\r\n", "").replace("=\n", "");
    let b = bytes.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&bytes[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP client that returns 4xx/5xx responses instead of failing, and keeps no cookies.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET a page: (status, headers as lowercase name → value, body).
pub fn get_with_headers(url: &str) -> (u16, std::collections::BTreeMap<String, String>, String) {
    let mut r = http().get(url).call().expect("GET");
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    (
        r.status().as_u16(),
        headers,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// GET a page: (status, body).
pub fn get(url: &str) -> (u16, String) {
    let mut r = http().get(url).call().expect("GET");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

/// The value of a hidden form field.
pub fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Open the link and submit its form with `action` (and extra fields): (status, body).
pub fn decide(link: &str, action: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let (status, page) = get(link);
    assert_eq!(status, 200, "GET {link}: {page}");
    decide_on(link, &page, action, extra)
}

/// Post a decision with the form of `page`, a page of `link` already fetched.
pub fn decide_on(link: &str, page: &str, action: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let (nonce, at, seen) = (
        field(page, "nonce"),
        field(page, "rendered_at"),
        field(page, "seen"),
    );
    let mut form: Vec<(&str, &str)> = vec![
        ("nonce", &nonce),
        ("rendered_at", &at),
        ("seen", &seen),
        ("action", action),
    ];
    form.extend_from_slice(extra);
    post(link, &form)
}

pub fn post(link: &str, form: &[(&str, &str)]) -> (u16, String) {
    let mut r = http()
        .post(link)
        .send_form(form.iter().copied())
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}
