//! Summaries: the one line an approver reads first ("Refund $45.99 on order A-1001").
//!
//! Owns the manifest's `summary` template format (`{field}` or `{field|formatter}`, fields named
//! like condition pointers), its parsing at load time (a bad template is a located error), its
//! rendering over a call's arguments, the default wording without a template, and the readable
//! form of an instant. It is pure: it must never do I/O, and never fail an approval — a missing or
//! mistyped value renders visibly (`⟨amount_cents missing⟩`) instead of refusing.

mod format;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

pub use format::{Format, readable_time, shorten};

/// The longest summary rendered, in characters (it is a mail subject and a page title).
const MAX_CHARS: usize = 200;

/// A parse error, with the 1-based character of the template where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {at}: {message}")]
pub struct TemplateError {
    pub at: usize,
    pub message: String,
}

/// One part of a template: literal text, or a field with its formatter.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Field),
}

/// A `{field|formatter}` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// As written (shown when the value is missing).
    pub name: String,
    /// The JSON pointer it resolves to (`order_id` → `/order_id`).
    pub pointer: String,
    pub format: Format,
}

/// A compiled `summary` template. Serialized as its source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl Template {
    /// Parse a template; the error says where and what.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.trim().is_empty() {
            return Err(err(
                1,
                "must not be empty: approvers read it (leave the key out for the default wording)",
            ));
        }
        let chars: Vec<char> = source.chars().collect();
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('{', Some('{')) | ('}', Some('}')) => {
                    text.push(chars[i]);
                    i += 2;
                }
                ('{', _) => {
                    let close = find_close(&chars, i)?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    let inner: String = chars[i + 1..close].iter().collect();
                    parts.push(Part::Field(field(&inner, i + 2)?));
                    i = close + 1;
                }
                ('}', _) => {
                    return Err(err(i + 1, "a lone `}`; write `}}` for a literal brace"));
                }
                (c, _) => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Its fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f),
            Part::Text(_) => None,
        })
    }

    /// Render over a call's arguments (and `_meta`). Never fails: a value that is missing or of
    /// the wrong kind shows as `⟨name missing⟩` / `⟨name: not a number⟩`.
    pub fn render(
        &self,
        arguments: &Map<String, Value>,
        meta: Option<&Map<String, Value>>,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => {
                    let found = crate::condition::lookup(&f.pointer, arguments, meta)
                        .filter(|v| !v.is_null());
                    match found.map(|v| f.format.apply(v)) {
                        Some(Ok(s)) => out.push_str(&s),
                        Some(Err(why)) => out.push_str(&format!("⟨{}: {why}⟩", f.name)),
                        None => out.push_str(&format!("⟨{} missing⟩", f.name)),
                    }
                }
            }
        }
        one_line(&out)
    }

    /// Check every field against a tool's input schema: the argument exists and has a type its
    /// formatter can show. Returns the problems, in words.
    pub fn validate(&self, schema: &Value) -> Vec<String> {
        self.fields()
            .filter_map(|f| {
                let at = match crate::condition::schema_at(schema, &f.pointer) {
                    Ok(Some(at)) => at,
                    Ok(None) => return None,
                    Err(e) => return Some(format!("`{{{}}}`: {e}", f.name)),
                };
                let types = crate::condition::schema_types(at);
                let wanted = f.format.accepts();
                (!types.is_empty() && !types.iter().any(|t| wanted.contains(t))).then(|| {
                    format!(
                        "`{{{}}}` is {} in the tool's input schema; `{}` needs {}",
                        f.name,
                        types.join("/"),
                        f.format,
                        wanted.join(" or ")
                    )
                })
            })
            .collect()
    }
}

/// The summary without a template: the tool and what it touches, e.g.
/// `refund_order on payments.refunds`.
pub fn default_summary(tool: &str, target: &str) -> String {
    let target = target.trim();
    if target.is_empty() || target.eq_ignore_ascii_case("none") {
        one_line(tool)
    } else {
        one_line(&format!("{tool} on {target}"))
    }
}

/// The summary of one call: its template rendered, or the default wording.
pub fn describe(
    template: Option<&Template>,
    tool: &str,
    target: &str,
    arguments: &Map<String, Value>,
    meta: Option<&Map<String, Value>>,
) -> String {
    match template {
        Some(t) => t.render(arguments, meta),
        None => default_summary(tool, target),
    }
}

fn err(at: usize, message: &str) -> TemplateError {
    TemplateError {
        at,
        message: message.to_string(),
    }
}

/// The index of the `}` closing the `{` at `open`.
fn find_close(chars: &[char], open: usize) -> Result<usize, TemplateError> {
    for (j, c) in chars.iter().enumerate().skip(open + 1) {
        match c {
            '}' => return Ok(j),
            '{' => return Err(err(j + 1, "`{` inside a field; close the field first")),
            _ => {}
        }
    }
    Err(err(
        open + 1,
        "`{` is never closed; write `{{` for a literal brace",
    ))
}

/// One field's text (between the braces), starting at character `at`.
fn field(inner: &str, at: usize) -> Result<Field, TemplateError> {
    let (name, format) = match inner.split_once('|') {
        Some((n, f)) => (n.trim(), Some(f.trim())),
        None => (inner.trim(), None),
    };
    if name.is_empty() {
        return Err(err(at, "a field needs an argument name, e.g. `{order_id}`"));
    }
    let pointer = if name.starts_with('/') {
        name.to_string()
    } else if name.contains('/') {
        return Err(err(
            at,
            &format!(
                "`{name}`: a nested field is a JSON pointer starting with `/`, e.g. `/{name}`"
            ),
        ));
    } else {
        format!("/{}", name.replace('~', "~0"))
    };
    let format = match format {
        None => Format::Plain,
        Some(f) => {
            let bar = inner.split('|').next().map_or(0, |n| n.chars().count());
            Format::parse(f).map_err(|m| err(at + bar + 1, &m))?
        }
    };
    Ok(Field {
        name: name.to_string(),
        pointer,
        format,
    })
}

/// One line of at most [`MAX_CHARS`]: line breaks become spaces, and characters that are
/// invisible or reorder text become visible escapes (`\u202E`, see [`crate::shown`]), so the line
/// reads as what runs wherever it is printed.
fn one_line(s: &str) -> String {
    format::shorten(line_text(s).trim(), MAX_CHARS)
}

/// Text as a summary shows it, before trimming and shortening: line breaks and tabs as spaces,
/// hidden characters as escapes.
pub fn line_text(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| {
            let breaks =
                (c.is_control() && c.is_whitespace()) || matches!(c, '\u{2028}' | '\u{2029}');
            if breaks { ' ' } else { c }
        })
        .collect();
    crate::shown::line(&spaced)
}

#[cfg(test)]
mod tests;
