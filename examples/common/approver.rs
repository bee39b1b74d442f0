//! What an approver does, shared by the examples that play one (`approval_rtt`; `airlock demo`
//! has its own in src/cli/demo/person.rs):
//! find the approval mail in the outbox, take its link, and fill the page's form. It reads only
//! the outbox it is given and talks only to the link in the mail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The mail files in an outbox directory.
pub fn outbox_files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// The approval link in an .eml file (quoted-printable soft breaks undone); `None` while the
/// file is still being written (its body ends with "Approval {id} (stage N)").
pub fn link_in(path: &Path) -> Option<String> {
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

/// The form that presses Approve on an approval page (its nonce and what it showed).
pub fn approve_form(page: &str, comment: &str) -> [(&'static str, String); 5] {
    let field = |name: &str| -> String {
        let marker = format!("name=\"{name}\" value=\"");
        page.find(&marker)
            .map(|i| {
                page[i + marker.len()..]
                    .split('"')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default()
    };
    [
        ("nonce", field("nonce")),
        ("rendered_at", field("rendered_at")),
        ("seen", field("seen")),
        ("action", "approve".to_string()),
        ("comment", comment.to_string()),
    ]
}
