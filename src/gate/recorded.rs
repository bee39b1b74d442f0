//! What of a call is recorded and shown: its arguments with the manifest's `redact` fields taken
//! out ([`crate::redact`]), their hash, and the proposal row (pure; the gate forwards and decides
//! on the arguments as sent, and records only these); and the record of a read that is not gated.

use serde_json::{Map, Value};

use super::{Gate, GateCall};
use crate::canonical;
use crate::decide;
use crate::ledger::{NewRow, Row, row};
use crate::manifest::ToolManifest;
use crate::redact::{Keys, Redacted};

/// The facts the record is built from.
pub(super) struct Call<'a> {
    pub call: &'a GateCall,
    pub route: Option<&'a (String, String)>,
    pub manifest: Option<&'a ToolManifest>,
    /// Redaction's keys (derived once, when the seal key is read).
    pub keys: &'a Keys,
    pub call_id: &'a str,
    pub actor: &'a str,
    /// The arguments as sent, and their canonical JSON.
    pub whole: Value,
    pub canonical: &'a str,
}

/// A call as recorded.
pub(super) struct Recorded {
    /// The fields taken out and their values (none when the manifest redacts nothing).
    pub redacted: Option<Redacted>,
    pub arguments_sha256: String,
    /// Its arguments are the arguments as recorded (markers where fields were taken out), or
    /// `null` when they are too large to run.
    pub proposal: row::Proposal,
}

/// The record of `c`: a refused call's too-large arguments are dropped from its proposal (the
/// reply cuts them to a preview).
pub(super) fn of(c: Call<'_>) -> Recorded {
    let too_large = c.canonical.len() > decide::MAX_ARGUMENT_BYTES;
    // the fields the manifest marks sensitive never reach a row, a page, a mail or a log
    let mut redacted = c
        .manifest
        .filter(|m| !m.redact.is_empty())
        .map(|m| crate::redact::redact(&c.call.arguments, &m.redact, c.keys, c.call_id));
    let (arguments, arguments_sha256) = match &mut redacted {
        None => (c.whole, canonical::sha256_hex(c.canonical.as_bytes())),
        Some(r) => {
            // only the values taken out are kept beside the record (to be sealed)
            let v = Value::Object(std::mem::take(&mut r.arguments));
            let sha = crate::redact::arguments_sha256(&v);
            (v, sha)
        }
    };
    let proposal = row::Proposal {
        tool: c.call.tool.clone(),
        server: c.route.map(|r| r.0.clone()),
        tool_name: c.route.map(|r| r.1.clone()),
        // decide denies arguments this large: they never run, so nothing else needs them
        arguments: if too_large { Value::Null } else { arguments },
        arguments_sha256: arguments_sha256.clone(),
        meta: c.call.meta.clone().map(Value::Object),
        actor: c.actor.to_string(),
        // which fields were taken out (the values are sealed, or were never kept)
        redacted: redacted
            .as_ref()
            .map(|r| r.secrets.keys().cloned().collect()),
        arguments_preview: None,
        arguments_cut: None,
        arguments_bytes: None,
    };
    Recorded {
        redacted,
        arguments_sha256,
        proposal,
    }
}

/// The arguments as recorded (an object; anything else is none).
pub(super) fn map_of(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

impl Gate {
    /// Record a read that is not gated (a resource or a prompt) before its content reaches the
    /// agent: if it cannot be recorded, it is not handed over.
    pub async fn audit(
        &self,
        actor: Option<&str>,
        row: impl FnOnce(String) -> Row,
    ) -> Result<(), String> {
        let setup = self.live.setup();
        let actor = actor.unwrap_or(setup.config.actor.as_str()).to_string();
        let id = uuid::Uuid::new_v4().to_string();
        self.ledger
            .append(vec![NewRow::now(&id, row(actor))])
            .await
            .map(|_| ())
            .map_err(|e| {
                format!("Airlock could not record this read in its ledger, so it is withheld: {e}")
            })
    }
}
