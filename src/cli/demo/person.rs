//! The person in the demo: the approver who opens the mailed link, and the reviewer on the review
//! page. In the browser that is you; with `--approve` or `--deny` the demo does over HTTP exactly
//! what a click does (the same GET, the same form POST). It talks only to the gate's own pages
//! and reads only the demo's outbox.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock::approval::link::LinkKey;
use airlock::config::Config;
use airlock::reviewer::{LINK_LIFETIME, Reviewer};
use anyhow::{Context, bail};

use crate::cli::runtime_file;

/// Who decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Person {
    /// You, in a browser: the demo prints the links and waits.
    InTheBrowser,
    /// `--approve`: release the held call, approve the refund.
    Approves,
    /// `--deny`: reject the held call, deny the refund.
    Denies,
}

impl Person {
    /// The demo's reviewer: the member of the policy's `[review] role` (ops) whose personal
    /// review link the demo prints and uses.
    pub(super) const REVIEWER: &str = "ops-approvers@example.com";

    /// Press Approve or Deny on the approval page at `link`, as a person would.
    pub(super) fn decide(self, link: &str) -> anyhow::Result<()> {
        let (action, comment) = match self {
            Person::Approves => ("approve", "approved in `airlock demo --approve`"),
            Person::Denies => ("deny", "denied in `airlock demo --deny`"),
            Person::InTheBrowser => return Ok(()),
        };
        let http = agent();
        let page = http
            .get(link)
            .call()
            .context("cannot open the approval page")?
            .body_mut()
            .read_to_string()?;
        let mut form = hidden_fields(&page);
        form.push(("action".into(), action.into()));
        form.push(("comment".into(), comment.into()));
        let status = http
            .post(link)
            .send_form(form.iter().map(|(k, v)| (k.as_str(), v.as_str())))?
            .status();
        if !status.is_success() {
            bail!("the approval page answered {status} to the decision");
        }
        Ok(())
    }

    /// Release or reject held call `id` on the review page, as a reviewer would.
    pub(super) fn review(self, page: &ReviewPage, id: &str) -> anyhow::Result<()> {
        let (action, reason) = match self {
            Person::Approves => ("release", ""),
            Person::Denies => ("reject", "rejected in `airlock demo --deny`"),
            Person::InTheBrowser => return Ok(()),
        };
        let url = format!("{}/held/{id}", page.url);
        let html = agent()
            .get(&page.url)
            .call()
            .context("cannot open the review page")?
            .body_mut()
            .read_to_string()?;
        let seen = seen_of(&html, id)
            .with_context(|| format!("the review page does not show held call {id}"))?;
        let form = [("action", action), ("reason", reason), ("seen", &seen)];
        let mut r = agent()
            .post(&url)
            .header("Accept", "application/json")
            .send_form(form)
            .context("cannot reach the review page")?;
        let body = r.body_mut().read_to_string()?;
        if !r.status().is_success() {
            bail!("the review page answered {}: {body}", r.status());
        }
        Ok(())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// The hidden inputs of the page's decision form (its nonce and what it showed).
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let marker = format!("{name}=\"");
        let at = tag.find(&marker)? + marker.len();
        tag[at..].split('"').next().map(|v| v.replace("&amp;", "&"))
    };
    page.split("<input")
        .skip(1)
        .filter_map(|rest| rest.split('>').next())
        .filter(|tag| tag.contains("type=\"hidden\""))
        .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))
        .collect()
}

/// The `seen` field of held call `id`'s form on the review page (what the page showed of it).
fn seen_of(page: &str, id: &str) -> Option<String> {
    let form = &page[page.find(&format!("/held/{id}\""))?..];
    let marker = "name=\"seen\" value=\"";
    let at = form.find(marker)? + marker.len();
    form[at..].split('"').next().map(str::to_string)
}

/// The review page of the running gate.
pub(super) struct ReviewPage {
    pub(super) url: String,
}

impl ReviewPage {
    /// From the address the running gate wrote beside its ledger and its link key.
    pub(super) fn of(config: &Config) -> anyhow::Result<ReviewPage> {
        let file = runtime_file(&config.ledger_path);
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("the gate wrote no address to {}", file.display()))?;
        let base = text
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches('/');
        let key = LinkKey::load_or_create(&config.key_path)?;
        let now = airlock::instant::now();
        let reviewer = Reviewer::new(Person::REVIEWER, "link", None, now, LINK_LIFETIME);
        Ok(ReviewPage {
            url: format!("{base}/review/{}", reviewer.token(&key)),
        })
    }
}

/// The mail files in the outbox.
pub(super) fn outbox_files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// The approval link in an .eml file (quoted-printable soft breaks undone); `None` while the
/// file is still being written (its body ends with "Approval {id} (stage N)").
pub(super) fn link_in(path: &Path) -> Option<String> {
    let raw = std::fs::read_to_string(path)
        .ok()?
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    if !raw.contains("(stage ") {
        return None;
    }
    let start = raw.find("http://").or_else(|| raw.find("https://"))?;
    raw[start..].split_whitespace().next().map(str::to_string)
}
