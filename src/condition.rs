//! Conditions on a call's arguments: the typed rules that keep autopilot inside known bounds.
//!
//! Owns the condition format (`[[tool.condition]]` in manifests, `conditions = [...]` on a policy
//! class), its compilation at load time (a bad rule is a located error, never a runtime surprise),
//! its pure evaluation, and its validation against a tool's input schema. It must never do I/O
//! and never let a missing or mistyped value pass: a condition that cannot be evaluated fails.

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::policy::FailPath;

/// One condition as written. Exactly one test: `min`/`max`, `one_of`, `pattern`,
/// `min_items`/`max_items`, or `domains`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionFile {
    /// JSON pointer into the arguments (`/amount_cents`, `/to/0`, `/order/id`), or `/_meta/KEY`
    /// into the request's `_meta`.
    pub pointer: String,
    /// Numeric bounds (inclusive).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The value must equal one of these.
    pub one_of: Option<Vec<Value>>,
    /// A regular expression the string must match (anchor it with `^…$` to match the whole).
    pub pattern: Option<String>,
    /// Bounds on the length of a list.
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    /// Every address in the string or list of strings must be at one of these domains (or a
    /// subdomain), e.g. `["example.com"]`.
    pub domains: Option<Vec<String>>,
    /// Where a failing call goes: `approve` (default when a role is known) or `quarantine`.
    pub on_fail: Option<FailPath>,
    /// The role to ask when it fails (default: the class's role).
    pub role: Option<String>,
}

/// What a condition tests.
#[derive(Debug, Clone)]
pub enum Test {
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
    OneOf(Vec<Value>),
    Pattern(Regex),
    Items {
        min: Option<usize>,
        max: Option<usize>,
    },
    Domains(Vec<String>),
}

impl PartialEq for Test {
    fn eq(&self, other: &Test) -> bool {
        match (self, other) {
            (Test::Range { min: a, max: b }, Test::Range { min: c, max: d }) => a == c && b == d,
            (Test::OneOf(a), Test::OneOf(b)) => a == b,
            (Test::Pattern(a), Test::Pattern(b)) => a.as_str() == b.as_str(),
            (Test::Items { min: a, max: b }, Test::Items { min: c, max: d }) => a == c && b == d,
            (Test::Domains(a), Test::Domains(b)) => a == b,
            _ => false,
        }
    }
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub pointer: String,
    pub test: Test,
    pub on_fail: Option<FailPath>,
    pub role: Option<String>,
}

/// The verdict of one condition on one call, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub pointer: String,
    /// The rule in words, e.g. `<= 10000`.
    pub rule: String,
    /// The value found (canonical JSON), or `missing`.
    pub value: String,
}

/// Compile a condition; the error says what is wrong with it.
pub fn compile(c: &ConditionFile) -> Result<Condition, String> {
    if !c.pointer.starts_with('/') {
        return Err(format!(
            "pointer `{}` must be a JSON pointer starting with `/`, e.g. `/amount_cents`",
            c.pointer
        ));
    }
    let mut tests = Vec::new();
    if c.min.is_some() || c.max.is_some() {
        if let (Some(a), Some(b)) = (c.min, c.max) {
            if a > b {
                return Err(format!("min {a} is above max {b}"));
            }
        }
        if c.min.is_some_and(f64::is_nan) || c.max.is_some_and(f64::is_nan) {
            return Err("min/max must be numbers".into());
        }
        tests.push(Test::Range {
            min: c.min,
            max: c.max,
        });
    }
    if let Some(v) = &c.one_of {
        if v.is_empty() {
            return Err("one_of must list at least one value".into());
        }
        tests.push(Test::OneOf(v.clone()));
    }
    if let Some(p) = &c.pattern {
        tests.push(Test::Pattern(Regex::new(p).map_err(|e| {
            format!("pattern is not a valid regular expression: {e}")
        })?));
    }
    if c.min_items.is_some() || c.max_items.is_some() {
        if let (Some(a), Some(b)) = (c.min_items, c.max_items) {
            if a > b {
                return Err(format!("min_items {a} is above max_items {b}"));
            }
        }
        tests.push(Test::Items {
            min: c.min_items,
            max: c.max_items,
        });
    }
    if let Some(d) = &c.domains {
        let d: Vec<String> = d
            .iter()
            .map(|x| x.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect();
        if d.is_empty() || d.iter().any(|x| x.is_empty() || !x.contains('.')) {
            return Err("domains must list domains such as `example.com`".into());
        }
        tests.push(Test::Domains(d));
    }
    match tests.len() {
        1 => Ok(Condition {
            pointer: c.pointer.clone(),
            test: tests.remove(0),
            on_fail: c.on_fail,
            role: c.role.clone(),
        }),
        0 => Err(
            "a condition needs one test: min/max, one_of, pattern, min_items/max_items or domains"
                .into(),
        ),
        _ => Err("a condition has exactly one test; write several conditions instead".into()),
    }
}

impl Condition {
    /// The rule in words.
    pub fn describe(&self) -> String {
        let num = |x: f64| {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                x.to_string()
            }
        };
        match &self.test {
            Test::Range {
                min: Some(a),
                max: Some(b),
            } => format!("between {} and {}", num(*a), num(*b)),
            Test::Range { min: Some(a), .. } => format!(">= {}", num(*a)),
            Test::Range { max: Some(b), .. } => format!("<= {}", num(*b)),
            Test::Range { .. } => "a number".into(),
            Test::OneOf(v) => format!(
                "one of {}",
                crate::canonical::to_string(&Value::Array(v.clone()))
            ),
            Test::Pattern(r) => format!("matches /{}/", r.as_str()),
            Test::Items { min, max } => format!(
                "{}..{} items",
                min.map_or(String::new(), |m| m.to_string()),
                max.map_or(String::new(), |m| m.to_string())
            ),
            Test::Domains(d) => format!("addresses at {}", d.join(", ")),
        }
    }

    /// Evaluate on a call. `Ok` means the condition held; `Err` that it failed (or could not be
    /// evaluated, which counts as failing).
    pub fn check(
        &self,
        arguments: &Map<String, Value>,
        meta: Option<&Map<String, Value>>,
    ) -> Result<Checked, Checked> {
        let found = lookup(&self.pointer, arguments, meta);
        let checked = |value: String| Checked {
            pointer: self.pointer.clone(),
            rule: self.describe(),
            value,
        };
        let Some(v) = found else {
            return Err(checked("missing".into()));
        };
        let shown = {
            let s = crate::canonical::to_string(v);
            if s.chars().count() > 200 {
                format!("{}…", s.chars().take(200).collect::<String>())
            } else {
                s
            }
        };
        let ok = match &self.test {
            Test::Range { min, max } => {
                v.is_number()
                    && min.is_none_or(|m| compare(v, m).is_some_and(|o| o.is_ge()))
                    && max.is_none_or(|m| compare(v, m).is_some_and(|o| o.is_le()))
            }
            Test::OneOf(options) => options.iter().any(|o| o == v || numbers_equal(o, v)),
            Test::Pattern(r) => v.as_str().is_some_and(|s| r.is_match(s)),
            Test::Items { min, max } => v.as_array().is_some_and(|a| {
                min.is_none_or(|m| a.len() >= m) && max.is_none_or(|m| a.len() <= m)
            }),
            Test::Domains(domains) => addresses(v)
                .is_some_and(|list| !list.is_empty() && list.iter().all(|a| at_domain(a, domains))),
        };
        if ok {
            Ok(checked(shown))
        } else {
            Err(checked(shown))
        }
    }

    /// Check the pointer and the test against a tool's input schema: the argument must exist
    /// and have a type the test can apply to.
    pub fn validate(&self, schema: &Value) -> Result<(), String> {
        let Some(at) = schema_at(schema, &self.pointer)? else {
            return Ok(());
        };
        let types = schema_types(at);
        if types.is_empty() {
            return Ok(());
        }
        let fits = |wanted: &[&str]| types.iter().any(|t| wanted.contains(t));
        let ok = match &self.test {
            Test::Range { .. } => fits(&["number", "integer"]),
            Test::Pattern(_) => fits(&["string"]),
            Test::Items { .. } => fits(&["array"]),
            Test::Domains(_) => fits(&["string", "array"]),
            Test::OneOf(_) => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{}` is {} in the tool's input schema; {} cannot apply",
                self.pointer,
                types.join("/"),
                self.describe()
            ))
        }
    }
}

/// The part of a tool's input schema a pointer names; `None` for `/_meta/...` (not in the schema).
pub(crate) fn schema_at<'a>(schema: &'a Value, pointer: &str) -> Result<Option<&'a Value>, String> {
    let segments: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    if segments.first().is_some_and(|s| s == "_meta") {
        return Ok(None);
    }
    let mut at = schema;
    for seg in &segments {
        at = if let Some(p) = at.get("properties").and_then(|p| p.get(seg)) {
            p
        } else if let Some(items) = at.get("items").filter(|_| seg.parse::<usize>().is_ok()) {
            items
        } else {
            return Err(format!(
                "the tool's input schema has no argument at `{pointer}`"
            ));
        };
    }
    Ok(Some(at))
}

/// The JSON Schema types a schema allows (empty when it does not say).
pub(crate) fn schema_types(at: &Value) -> Vec<&str> {
    match at.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Two JSON numbers are equal: exactly when both are integers, else as floats.
fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => {
            matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y && (a.is_f64() || b.is_f64()))
        }
    }
}

fn int(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

/// Order a JSON number against a bound without losing integer precision (above 2^53 a float
/// comparison could let a larger value pass).
fn compare(v: &Value, bound: f64) -> Option<std::cmp::Ordering> {
    if let Some(i) = int(v) {
        if bound.fract() == 0.0 && bound.abs() < 1.7e38 {
            return Some(i.cmp(&(bound as i128)));
        }
        // a fractional bound: compare the integer against the bound's floor/ceil exactly
        let (lo, hi) = (bound.floor() as i128, bound.ceil() as i128);
        return Some(if i <= lo {
            std::cmp::Ordering::Less
        } else if i >= hi {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        });
    }
    v.as_f64().and_then(|x| x.partial_cmp(&bound))
}

/// Resolve a JSON pointer against the arguments, or the request's `_meta` for `/_meta/...`.
pub(crate) fn lookup<'a>(
    pointer: &str,
    arguments: &'a Map<String, Value>,
    meta: Option<&'a Map<String, Value>>,
) -> Option<&'a Value> {
    let (root, rest): (Option<&Map<String, Value>>, &str) = match pointer.strip_prefix("/_meta") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => (meta, rest),
        _ => (Some(arguments), pointer),
    };
    let root = root?;
    let mut segs = rest
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"));
    let first = segs.next()?;
    let mut v = root.get(&first)?;
    for s in segs {
        v = match v {
            Value::Object(o) => o.get(&s)?,
            Value::Array(a) => a.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The addresses in a string (separated by `,` or `;`) or list of strings. Each part is a bare
/// address or `Name <address>`; anything else (spaces, several `@`) makes the value unreadable.
fn addresses(v: &Value) -> Option<Vec<String>> {
    let split = |s: &str| -> Option<Vec<String>> {
        s.split([',', ';'])
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|part| {
                let addr = match (part.rfind('<'), part.ends_with('>')) {
                    (Some(i), true) => &part[i + 1..part.len() - 1],
                    (None, false) => part,
                    _ => return None,
                };
                (!addr.is_empty()
                    && !addr.contains(char::is_whitespace)
                    && addr.matches('@').count() == 1)
                    .then(|| addr.to_string())
            })
            .collect()
    };
    match v {
        Value::String(s) => split(s),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().and_then(split))
            .collect::<Option<Vec<_>>>()
            .map(|l| l.concat()),
        _ => None,
    }
}

fn at_domain(address: &str, domains: &[String]) -> bool {
    let Some((local, host)) = address.rsplit_once('@') else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let plain_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    !local.is_empty()
        && plain_host
        && domains
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

#[cfg(test)]
mod tests;
