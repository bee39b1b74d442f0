//! What of an approval request the agent wrote: every string in its arguments and evidence, where
//! those strings appear in a line Airlock wrote around them (the summary: the template is the
//! developer's, the filled values are the agent's), and the findings over all of it.
//!
//! Pure, like [`crate::shown`]: it reads an envelope and never changes it.

use std::ops::Range;

use serde_json::Value;

use super::{Flag, check, line};
use crate::envelope::Envelope;

/// Values shorter than this many characters are not looked for in a line: they cannot say much,
/// and would mark every `on` or `a` of the template.
const SHORTEST: usize = 3;

/// Every string value in `v`, at any depth, in document order.
pub fn strings(v: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    collect(v, &mut out);
    out
}

fn collect<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
        Value::Object(o) => o.values().for_each(|i| collect(i, out)),
        _ => {}
    }
}

/// The strings the agent wrote into an envelope: its arguments, then its evidence values.
pub fn agent_strings(e: &Envelope) -> Vec<&str> {
    let mut out = strings(&e.arguments);
    for r in &e.evidence {
        out.extend(strings(&r.value));
    }
    out
}

/// Byte ranges of `s` that show one of `values` — whole, or cut short where `s` continues with
/// `…` (as summaries shorten) — sorted and merged. `values` must be in the form `s` shows them
/// (for a summary: [`crate::summary::line_text`]).
pub fn spans(s: &str, values: &[String]) -> Vec<Range<usize>> {
    let mut found: Vec<Range<usize>> = Vec::new();
    for v in values {
        let v = v.trim();
        if v.chars().count() < SHORTEST {
            continue;
        }
        let head_len: usize = v.chars().take(SHORTEST).map(char::len_utf8).sum();
        let head = &v[..head_len];
        let mut from = 0;
        while let Some(off) = s.get(from..).and_then(|t| t.find(head)) {
            let start = from + off;
            if let Some(end) = shown_at(s, start, v) {
                found.push(start..end);
            }
            from = start + head.chars().next().map_or(1, char::len_utf8);
        }
    }
    merge(found)
}

/// Where `v` shown at `start` of `s` ends: all of it, or at least [`SHORTEST`] characters of it
/// followed by `…`.
fn shown_at(s: &str, start: usize, v: &str) -> Option<usize> {
    let mut end = start;
    let mut matched = 0;
    let mut rest = s.get(start..)?.chars();
    for want in v.chars() {
        match rest.next() {
            Some(c) if c == want => {
                end += c.len_utf8();
                matched += 1;
            }
            _ => {
                let cut = s.get(end..)?.starts_with('…') && matched >= SHORTEST;
                return cut.then_some(end + '…'.len_utf8());
            }
        }
    }
    Some(end)
}

fn merge(mut spans: Vec<Range<usize>>) -> Vec<Range<usize>> {
    spans.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in spans {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// `s` cut at `spans`: (text, written by the agent) pieces, in order, none empty.
pub fn pieces<'a>(s: &'a str, spans: &[Range<usize>]) -> Vec<(&'a str, bool)> {
    let mut out = Vec::new();
    let mut at = 0;
    for r in spans {
        if let (Some(before), Some(agent)) = (s.get(at..r.start), s.get(r.start..r.end)) {
            if !before.is_empty() {
                out.push((before, false));
            }
            out.push((agent, true));
            at = r.end;
        }
    }
    if let Some(rest) = s.get(at..).filter(|r| !r.is_empty()) {
        out.push((rest, false));
    }
    out
}

/// The agent-written parts of an envelope's summary.
pub fn summary_spans(e: &Envelope) -> Vec<Range<usize>> {
    let values: Vec<String> = agent_strings(e)
        .into_iter()
        .map(crate::summary::line_text)
        .collect();
    spans(&e.summary, &values)
}

/// Everything a person should be warned about in an envelope: its summary, its reason, its
/// argument names and values (placed by path, `items/0/sku`), and evidence from `_meta`.
pub fn flags(e: &Envelope) -> Vec<Flag> {
    let mut out = Vec::new();
    push(&mut out, "the summary", &e.summary);
    push(&mut out, "the reason", &e.reason);
    out.extend(argument_flags(&e.arguments));
    for r in e.evidence.iter().filter(|r| r.field.starts_with("_meta.")) {
        for s in strings(&r.value) {
            push(&mut out, &format!("evidence {}", line(&r.field)), s);
        }
    }
    out
}

/// The findings in a call's arguments: names and values, placed by path (`items/0/sku`).
pub fn argument_flags(arguments: &Value) -> Vec<Flag> {
    let mut out = Vec::new();
    walk(arguments, "", &mut out);
    out
}

/// The findings in one text, placed.
pub fn text_flags(place: &str, text: &str) -> Vec<Flag> {
    let mut out = Vec::new();
    push(&mut out, place, text);
    out
}

fn push(out: &mut Vec<Flag>, place: &str, text: &str) {
    for finding in check(text) {
        let flag = Flag {
            place: place.to_string(),
            finding,
        };
        if !out.contains(&flag) {
            out.push(flag);
        }
    }
}

fn walk(v: &Value, path: &str, out: &mut Vec<Flag>) {
    match v {
        Value::String(s) => push(out, path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &join(path, &i.to_string()), out);
            }
        }
        Value::Object(o) => {
            for (k, item) in o {
                let at = join(path, &line(k));
                push(out, &format!("the name of {at}"), k);
                walk(item, &at, out);
            }
        }
        _ => {}
    }
}

fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_string()
    } else {
        format!("{path}/{segment}")
    }
}
