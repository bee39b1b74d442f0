//! Sign-in helpers: a real OpenID Provider (npm `oidc-provider`, started from
//! `tests/peers/oidc_provider.mjs`), a browser that keeps cookies and follows redirects one hop
//! at a time (so a test can stop at the provider's answer and tamper with it), and the approval
//! links in the `.eml` outbox.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::{Peer, REPO, World, peers_dir, require};

/// The provider's client secret in the tests (`airlock serve` reads it from this variable).
pub const SECRET_ENV: (&str, &str) = ("AIRLOCK_TEST_OIDC_SECRET", "test-client-secret");

/// `oidc-provider` on a free port, with client `airlock` (redirect URI given) and the people
/// `ann` (ann@example.com) and `eve` (eve@example.com).
pub struct Provider {
    child: Child,
    pub issuer: String,
    /// Kept open: the provider must not meet a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    pub fn start(redirect_uri: &str) -> Provider {
        require(Peer::OidcProvider);
        let port = crate::smtp::free_port();
        let mut child = Command::new("node")
            .arg(format!("{REPO}/tests/peers/oidc_provider.mjs"))
            .args([&port.to_string(), redirect_uri, SECRET_ENV.1])
            .env("AIRLOCK_PEERS_DIR", peers_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut out = BufReader::new(out);
        out.read_line(&mut line).expect("provider output");
        let issuer = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the provider did not start: {line:?}"))
            .trim()
            .to_string();
        Provider {
            child,
            issuer,
            _stdout: out,
        }
    }
}

/// One answer the browser got.
#[derive(Debug, Clone)]
pub struct Hop {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

/// A browser: a cookie store, redirects followed by [`Browser::go`] hop by hop.
pub struct Browser {
    agent: ureq::Agent,
    /// Every answer so far, in order.
    pub hops: Vec<Hop>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Browser { agent, hops: vec![] }
    }

    fn record(&mut self, url: &str, mut r: ureq::http::Response<ureq::Body>) -> Hop {
        let header = |name: &str| -> Vec<String> {
            r.headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(String::from))
                .collect()
        };
        let location = header("location").first().map(|l| absolute(url, l));
        let set_cookies = header("set-cookie");
        let hop = Hop {
            url: url.to_string(),
            status: r.status().as_u16(),
            location,
            set_cookies,
            body: r.body_mut().read_to_string().unwrap_or_default(),
        };
        self.hops.push(hop.clone());
        hop
    }

    /// One GET, no redirect followed.
    pub fn get(&mut self, url: &str) -> Hop {
        let r = self.agent.get(url).call().expect("GET");
        self.record(url, r)
    }

    /// One form POST, no redirect followed.
    pub fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Hop {
        let r = self.agent.post(url).send_form(form.iter().copied()).expect("POST");
        self.record(url, r)
    }

    /// Follow redirects from `hop` until a page (or a redirect to a URL starting with `stop`).
    pub fn follow(&mut self, mut hop: Hop, stop: Option<&str>) -> Hop {
        for _ in 0..20 {
            match &hop.location {
                Some(next) if !stop.is_some_and(|s| next.starts_with(s)) => {
                    let next = next.clone();
                    hop = self.get(&next);
                }
                _ => return hop,
            }
        }
        panic!("too many redirects: {:?}", self.hops.iter().map(|h| &h.url).collect::<Vec<_>>());
    }

    /// GET `url` and follow its redirects.
    pub fn go(&mut self, url: &str) -> Hop {
        let hop = self.get(url);
        self.follow(hop, None)
    }

    /// From the provider's login page, log in as `login` and give consent; follows the
    /// redirects after that until a page, or a redirect to a URL starting with `stop`.
    pub fn log_in(&mut self, page: &Hop, login: &str, stop: Option<&str>) -> Hop {
        let action = absolute(&page.url, &form_action(&page.body));
        let hop = self.post(&action, &[("prompt", "login"), ("login", login), ("password", "any")]);
        let mut hop = self.follow(hop, stop);
        if hop.location.is_none() && hop.body.contains("name=\"prompt\" value=\"consent\"") {
            let action = absolute(&hop.url, &form_action(&hop.body));
            let consent = self.post(&action, &[("prompt", "consent")]);
            hop = self.follow(consent, stop);
        }
        hop
    }
}

/// The `action` of the first form in a page.
fn form_action(html: &str) -> String {
    let start = html
        .find("action=\"")
        .unwrap_or_else(|| panic!("no form in the page:\n{html}"))
        + "action=\"".len();
    html[start..].split('"').next().unwrap_or_default().replace("&amp;", "&")
}

/// `location` resolved against `base` (an absolute URL, or a path on the same server).
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    format!("{}{location}", &base[..host_end])
}

/// The approval links mailed to `to` (in the world's `.eml` outbox), once there are `n`.
pub async fn outbox_links(w: &World, to: &str, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let links: Vec<String> = std::fs::read_dir(w.path("outbox"))
            .into_iter()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .map(|m| m.replace("=\r\n", "").replace("=\n", "").replace("=3D", "="))
            .filter(|m| m.contains(&format!("To: {to}")))
            .filter_map(|m| {
                let start = m.find("http://")?;
                m[start..].split_whitespace().next().map(String::from)
            })
            .collect();
        if links.len() >= n {
            return links;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} approval mails to {to} in the outbox");
}
