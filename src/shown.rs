//! Text as it is shown to a person: what an approver reads on a page or in a mail is what runs.
//!
//! Owns the rules that turn untrusted text (arguments, their names, summaries filled with them,
//! reasons quoting them) into display text:
//! - characters that are invisible, reorder text or steer a terminal — Unicode `Cc`, `Cf` (the
//!   bidi controls among them), line and paragraph separators, the other default-ignorable
//!   fillers, private-use and unassigned code points — become visible escapes: `\u202E` (four hex
//!   digits), `\u{E0041}` beyond the BMP, and `\n` `\t` `\r` in one-line text. Backslashes are not
//!   escaped: the warning line (present only when a real character was escaped) is the authority;
//! - words that mix scripts (`pаypal` with a Cyrillic `а`) are flagged, with what they look like;
//! - [`warning`] words the findings as one line for the page and the mail;
//! - [`break_links`] defangs URL schemes (`https[:]//`) and `www[.]` for plain-text mail;
//! - [`request`] gathers what of an approval request the agent wrote: its strings, where they
//!   appear in a line Airlock wrote (so they can be marked), and the flags over all of it.
//!
//! It is pure. It must never change what runs: the stored arguments, the envelope and its hash
//! are never touched — only the text a person reads is made here, and the page's `seen` hash
//! covers that text.

pub mod request;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_script::{Script, UnicodeScript};
use unicode_security::MixedScript;

/// Why a character is shown as an escape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// A bidirectional control: it makes the text read in another order than it is.
    Bidi,
    /// Zero-width, a format character, a filler or a line separator: it shows as nothing.
    Invisible,
    /// A C0/C1 control character (a terminal may act on it).
    Control,
    /// Private-use or unassigned: no one knows what it looks like.
    Unknown,
}

impl Hidden {
    fn words(self) -> &'static str {
        match self {
            Hidden::Bidi => "reorders text",
            Hidden::Invisible => "invisible",
            Hidden::Control => "control character",
            Hidden::Unknown => "unassigned or private-use",
        }
    }
}

/// Something a person should know about a text before trusting how it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A character shown as its escape (`\u202E`).
    Hidden { escape: String, kind: Hidden },
    /// A word whose letters come from more than one script (UTS #39 mixed-script), or a non-ASCII
    /// word that passes for an ASCII one letter by letter (a Cyrillic `А-1001`, a fullwidth `Ａ`).
    MixedScript {
        word: String,
        scripts: Vec<&'static str>,
        /// The all-ASCII word it can be taken for, when there is one.
        looks_like: Option<String>,
    },
}

/// A finding and where it was found (`order_id`, `the summary`), for the warning line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub place: String,
    pub finding: Finding,
}

/// How a character that is not shown as itself is shown, or `None`.
pub fn kind(c: char) -> Option<Hidden> {
    match c {
        '\u{061C}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' => Some(Hidden::Bidi),
        // default-ignorable or blank, though not `Cf`: combining grapheme joiner, Hangul
        // fillers, Khmer inherent vowels, Mongolian and other variation selectors, braille blank
        '\u{034F}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{180B}'..='\u{180D}'
        | '\u{180F}'
        | '\u{2800}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FFA0}'
        | '\u{E0100}'..='\u{E01EF}' => Some(Hidden::Invisible),
        c => match get_general_category(c) {
            GeneralCategory::Control => Some(Hidden::Control),
            GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator => Some(Hidden::Invisible),
            GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate => Some(Hidden::Unknown),
            _ => None,
        },
    }
}

/// `\u202E`, or `\u{E0041}` beyond the BMP.
fn escape(c: char) -> String {
    let n = u32::from(c);
    if n > 0xFFFF {
        format!("\\u{{{n:X}}}")
    } else {
        format!("\\u{n:04X}")
    }
}

/// Text on one line: every hidden character as its escape, line breaks and tabs as `\n` `\r` `\t`.
pub fn line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if kind(c).is_some() => out.push_str(&escape(c)),
            c => out.push(c),
        }
    }
    out
}

/// Text that may span lines (a `<pre>`, a description): line breaks and tabs stay, every other
/// hidden character becomes its escape.
pub fn block(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(c),
            c if kind(c).is_some() => out.push_str(&escape(c)),
            c => out.push(c),
        }
    }
    out
}

/// JSON text (as serde_json writes it) with every hidden character as a JSON escape — `\u202E`,
/// a surrogate pair beyond the BMP — so it still parses to exactly the same value. serde_json
/// already escapes control characters inside strings, so line breaks left are its layout.
pub fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(c),
            c if kind(c).is_some() => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04X}", u));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// What a person should be warned about in `s`: each hidden character once (line breaks and tabs
/// are shown as escapes but are not hidden), then each word mixing scripts once.
pub fn check(s: &str) -> Vec<Finding> {
    let mut found = Vec::new();
    for c in s.chars() {
        if matches!(c, '\n' | '\r' | '\t') {
            continue;
        }
        if let Some(kind) = kind(c) {
            let f = Finding::Hidden {
                escape: escape(c),
                kind,
            };
            if !found.contains(&f) {
                found.push(f);
            }
        }
    }
    for word in s.split(|c: char| !is_word_char(c)) {
        if word.is_empty() || word.is_ascii() {
            continue;
        }
        let like = looks_like(word);
        // one script is flagged only when the whole word passes for ASCII (`А-1001` in Cyrillic,
        // fullwidth `Ａ`): words of another language are left alone
        if word.is_single_script() && like.is_none() {
            continue;
        }
        let f = Finding::MixedScript {
            word: word.to_string(),
            scripts: scripts(word),
            looks_like: like,
        };
        if !found.contains(&f) {
            found.push(f);
        }
    }
    found
}

/// Letters, digits and combining marks make up a word; anything else separates words.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            get_general_category(c),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
        )
}

/// The scripts of a word's letters, in order of appearance (Common and Inherited left out).
fn scripts(word: &str) -> Vec<&'static str> {
    let mut names = Vec::new();
    for c in word.chars() {
        let s = c.script();
        if matches!(s, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        if !names.contains(&s.full_name()) {
            names.push(s.full_name());
        }
    }
    names
}

/// The word with each non-ASCII letter replaced by the ASCII one it is confusable with (UTS #39
/// skeleton, character by character), when every one has such a twin.
fn looks_like(word: &str) -> Option<String> {
    let mut out = String::new();
    for c in word.chars() {
        if c.is_ascii() {
            out.push(c);
            continue;
        }
        let mut buf = [0u8; 4];
        let twin: String = unicode_security::skeleton(c.encode_utf8(&mut buf)).collect();
        let mut chars = twin.chars();
        match (chars.next(), chars.next()) {
            (Some(t), None) if t.is_ascii_alphanumeric() => out.push(t),
            _ => return None,
        }
    }
    (out != word).then_some(out)
}

/// The most findings a warning line lists; the rest are counted.
const LISTED: usize = 6;

/// One line of warning for findings, or `None` when there are none. Places are written as given
/// (escape them first); the line has no markup.
pub fn warning(flags: &[Flag]) -> Option<String> {
    if flags.is_empty() {
        return None;
    }
    let mut hidden: Vec<(String, Vec<String>)> = Vec::new();
    let mut mixed = Vec::new();
    for f in flags.iter().take(LISTED) {
        match &f.finding {
            Finding::Hidden { escape, kind } => {
                let item = format!("{escape} ({})", kind.words());
                match hidden.iter_mut().find(|(p, _)| *p == f.place) {
                    Some((_, items)) if !items.contains(&item) => items.push(item),
                    Some(_) => {}
                    None => hidden.push((f.place.clone(), vec![item])),
                }
            }
            Finding::MixedScript {
                word,
                scripts,
                looks_like,
            } => {
                let like = looks_like
                    .as_ref()
                    .map_or(String::new(), |l| format!(", looks like “{l}”"));
                let how = match scripts.as_slice() {
                    [one] => format!("is written in {one} letters"),
                    many => format!("mixes {} letters", and(many)),
                };
                mixed.push(format!("“{word}” in {} {how}{like}", f.place));
            }
        }
    }
    let mut parts = Vec::new();
    if !hidden.is_empty() {
        let each: Vec<String> = hidden
            .iter()
            .map(|(place, items)| format!("{} in {place}", and(items)))
            .collect();
        parts.push(format!(
            "hidden characters, shown as escapes: {}",
            each.join("; ")
        ));
    }
    if !mixed.is_empty() {
        parts.push(format!("look-alike letters: {}", mixed.join("; ")));
    }
    let more = flags.len().saturating_sub(LISTED);
    let more = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    Some(format!(
        "This request contains {}{more}. Read it as escaped before deciding.",
        parts.join("; and ")
    ))
}

/// `a`, `a and b`, `a, b and c`.
fn and<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

/// Plain-text mail: URL schemes (`https://` → `https[:]//`) and `www.` (→ `www[.]`) broken, so
/// a mail client makes no link of them. Bare domain names are left as they are.
pub fn break_links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    // every `://`, whatever precedes it: a link cannot hide behind an odd scheme
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        out.push_str("[:]//");
        rest = &after[3..];
    }
    out.push_str(rest);
    break_www(&out)
}

fn break_www(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < s.len() {
        let tail = &s[i..];
        let boundary = prev.is_none_or(|p| !p.is_alphanumeric());
        if boundary
            && tail
                .get(..4)
                .is_some_and(|w| w.eq_ignore_ascii_case("www."))
        {
            out.push_str(tail.get(..3).unwrap_or("www"));
            out.push_str("[.]");
            prev = Some('.');
            i += 4;
            continue;
        }
        let Some(c) = tail.chars().next() else { break };
        out.push(c);
        prev = Some(c);
        i += c.len_utf8();
    }
    out
}

/// The longest a value the agent wrote stands in a mail's body, in characters (escapes
/// included); a longer one is cut, its length given, and the page shows it whole.
pub const MAIL_VALUE_CHARS: usize = 300;

/// `text` (already shown: escaped, one line) cut past [`MAIL_VALUE_CHARS`] with its length and
/// `page`, where it is shown whole.
pub fn cut_for_mail(text: String, page: &str) -> String {
    let n = text.chars().count();
    if n <= MAIL_VALUE_CHARS {
        return text;
    }
    format!(
        "{} [cut: {n} characters in all; {page} shows it whole]",
        crate::summary::shorten(&text, MAIL_VALUE_CHARS)
    )
}

#[cfg(test)]
mod tests;
