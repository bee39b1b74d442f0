//! What `check` (and `serve`, before it listens) validates against the tools' live input
//! schemas: conditions, limits that add up an argument, summary templates and `redact` pointers.
//! Pure over a schema lookup; it must never start or call a tool server itself.

use super::Setup;
use crate::diag::Diagnostic;

impl Setup {
    /// Whether any manifest or class states something `check` validates against the tools' live
    /// input schemas (conditions, summed limits, summaries, `redact` pointers).
    pub fn has_conditions(&self) -> bool {
        self.manifests
            .iter()
            .any(|m| !m.conditions.is_empty() || !m.limits.is_empty())
            || self
                .policy
                .classes
                .values()
                .any(|c| !c.conditions.is_empty() || !c.limits.is_empty())
            || self
                .manifests
                .iter()
                .any(|m| m.summary.is_some() || !m.redact.is_empty())
    }

    /// Validate every condition against the input schema of each tool it applies to, as the tool
    /// servers describe them (`schema_of(server, tool)`; `None` when the tool is not served).
    pub fn validate_conditions<'a>(
        &self,
        schema_of: impl Fn(&str, &str) -> Option<&'a serde_json::Value>,
    ) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for m in self.manifests.iter() {
            let (file, line) = m
                .origin
                .rsplit_once(':')
                .map_or((m.origin.as_str(), 0), |(f, l)| (f, l.parse().unwrap_or(0)));
            let class_conditions = self
                .policy
                .classes
                .get(&m.class)
                .map(|c| c.conditions.as_slice())
                .unwrap_or_default();
            let own = m
                .conditions
                .iter()
                .map(|c| (c, format!("tool {}/{} condition", m.server, m.name)));
            let inherited = class_conditions
                .iter()
                .map(|c| (c, format!("classes.{}.conditions", m.class)));
            // A limit that adds up an argument needs that argument, as a number.
            let class_limits = self
                .policy
                .classes
                .get(&m.class)
                .map(|c| c.limits.as_slice())
                .unwrap_or_default();
            let sums: Vec<(crate::condition::Condition, String)> = m
                .limits
                .iter()
                .map(|l| (l, format!("tool {}/{} limit", m.server, m.name)))
                .chain(
                    class_limits
                        .iter()
                        .map(|l| (l, format!("classes.{}.limits", m.class))),
                )
                .filter_map(|(l, key)| match &l.metric {
                    crate::drift::Metric::Sum { pointer, .. } => {
                        let f: crate::condition::ConditionFile = serde_json::from_value(
                            serde_json::json!({"pointer": pointer, "min": 0}),
                        )
                        .ok()?;
                        crate::condition::compile(&f).ok().map(|c| (c, key))
                    }
                    crate::drift::Metric::Calls { .. } => None,
                })
                .collect();
            for (c, key) in own
                .chain(inherited)
                .chain(sums.iter().map(|(c, k)| (c, k.clone())))
            {
                let Some(schema) = schema_of(&m.server, &m.name) else {
                    out.push(Diagnostic {
                        severity: crate::diag::Severity::Warning,
                        file: std::path::PathBuf::from(file),
                        line,
                        column: 1,
                        key,
                        message: format!("`{}/{}` is not served right now, so its conditions were not checked against its input schema", m.server, m.name),
                    });
                    break;
                };
                if let Err(message) = c.validate(schema) {
                    out.push(Diagnostic {
                        severity: crate::diag::Severity::Error,
                        file: std::path::PathBuf::from(file),
                        line,
                        column: 1,
                        key,
                        message: format!("{} (tool `{}`)", message, m.name),
                    });
                }
            }
        }
        out.extend(self.validate_summaries(&schema_of));
        out.extend(self.validate_redactions(&schema_of));
        out
    }

    /// Every manifest `redact` pointer must name an argument of its tool's input schema (a tool
    /// not served right now is skipped, as for summaries).
    pub fn validate_redactions<'a>(
        &self,
        schema_of: impl Fn(&str, &str) -> Option<&'a serde_json::Value>,
    ) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for m in self.manifests.iter() {
            let Some(schema) = schema_of(&m.server, &m.name) else {
                continue;
            };
            let file = m
                .origin
                .rsplit_once(':')
                .map_or(m.origin.as_str(), |(f, _)| f);
            for (j, (pointer, line)) in m.redact.iter().zip(&m.redact_lines).enumerate() {
                if let Err(message) = crate::condition::schema_at(schema, pointer) {
                    out.push(Diagnostic {
                        severity: crate::diag::Severity::Error,
                        file: std::path::PathBuf::from(file),
                        line: *line,
                        column: 1,
                        key: format!("tool {}/{} redact[{j}]", m.server, m.name),
                        message: format!(
                            "{message} (tool `{}`): nothing there would be redacted",
                            m.name
                        ),
                    });
                }
            }
        }
        out
    }

    /// Validate every manifest `summary` template's fields against its tool's input schema, as
    /// conditions are (a tool not served right now is skipped: its summary shows what it finds).
    pub fn validate_summaries<'a>(
        &self,
        schema_of: impl Fn(&str, &str) -> Option<&'a serde_json::Value>,
    ) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for m in self.manifests.iter() {
            let (Some(template), Some(schema)) = (&m.summary, schema_of(&m.server, &m.name)) else {
                continue;
            };
            let (file, line) = m
                .origin
                .rsplit_once(':')
                .map_or((m.origin.as_str(), 0), |(f, l)| (f, l.parse().unwrap_or(0)));
            for message in template.validate(schema) {
                out.push(Diagnostic {
                    severity: crate::diag::Severity::Error,
                    file: std::path::PathBuf::from(file),
                    line,
                    column: 1,
                    key: format!("tool {}/{} summary", m.server, m.name),
                    message: format!("{message} (tool `{}`)", m.name),
                });
            }
        }
        out
    }
}
