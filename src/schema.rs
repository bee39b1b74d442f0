//! JSON Schemas of the three files people write and of the ledger export, generated from the
//! serde types with schemars.
//!
//! Owns nothing but the mapping from a file kind to its schema; it must never diverge from the
//! types that actually parse the files (it is generated from them).

use schemars::schema_for;
use serde_json::Value;

/// The files Airlock reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Config,
    Manifest,
    Policy,
    /// One line of `airlock ledger export --format jsonl`.
    Export,
}

/// The JSON Schema for a file kind.
pub fn schema(kind: FileKind) -> Value {
    let s = match kind {
        FileKind::Config => schema_for!(crate::config::ConfigFile),
        FileKind::Manifest => schema_for!(crate::manifest::ManifestFile),
        FileKind::Policy => schema_for!(crate::policy::PolicyFile),
        FileKind::Export => schema_for!(crate::ledger::Record),
    };
    s.to_value()
}

#[cfg(test)]
mod tests {
    use super::{FileKind, schema};

    #[test]
    fn schemas_name_the_contract_keys() {
        let c = schema(FileKind::Config).to_string();
        for key in [
            "manifests",
            "policies",
            "ledger",
            "actor",
            "command",
            "prefix",
        ] {
            assert!(
                c.contains(&format!("\"{key}\"")),
                "config schema lacks {key}"
            );
        }
        let m = schema(FileKind::Manifest).to_string();
        for key in ["server", "name", "class", "target", "impact", "reversal"] {
            assert!(
                m.contains(&format!("\"{key}\"")),
                "manifest schema lacks {key}"
            );
        }
        let p = schema(FileKind::Policy).to_string();
        for key in ["version", "classes", "roles", "on_timeout", "emails"] {
            assert!(
                p.contains(&format!("\"{key}\"")),
                "policy schema lacks {key}"
            );
        }
        assert!(p.contains("\"conditional\""));
    }
}
