//! The mail a test world's gate wrote to its `.eml` outbox, as a person reads it: quoted-printable
//! soft breaks and `=3D` undone. Reads only the outbox it is given.

use super::World;

/// A mail's text with quoted-printable soft breaks and `=3D` undone.
pub fn unfold(mail: &str) -> String {
    mail.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// Every mail in the world's outbox so far (none if it does not exist yet), unfolded.
pub fn outbox_mails(w: &World) -> Vec<String> {
    std::fs::read_dir(w.path("outbox"))
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .map(|m| unfold(&m))
        .collect()
}
