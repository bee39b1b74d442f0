//! The formatters a summary field may name: `money:CUR`, `number`, `date`, `short:N`, and the
//! readable form of an instant. Pure; a value a formatter cannot show is an `Err` with the reason
//! in words, which the template renders in place of the value.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;

/// How a field's value is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// A string as it is; anything else as JSON.
    Plain,
    /// An integer amount in minor units (cents), shown in `currency`.
    Money { currency: String },
    /// A number with thousands separators.
    Number,
    /// An RFC 3339 string, a `YYYY-MM-DD` date or unix seconds, as a readable UTC date.
    Date,
    /// The value shortened to at most N characters (the last one `…`).
    Short(usize),
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Plain => write!(f, "plain"),
            Format::Money { currency } => write!(f, "money:{currency}"),
            Format::Number => write!(f, "number"),
            Format::Date => write!(f, "date"),
            Format::Short(n) => write!(f, "short:{n}"),
        }
    }
}

const KNOWN: &str = "money:CUR, number, date, short:N";

impl Format {
    /// Parse `name[:arg]`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Format, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s.trim(), None),
        };
        match (name, arg) {
            ("money", Some(c)) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
                Ok(Format::Money {
                    currency: c.to_string(),
                })
            }
            ("money", _) => {
                Err("`money` needs an ISO 4217 currency code in capitals, e.g. `money:USD`".into())
            }
            ("number", None) => Ok(Format::Number),
            ("date", None) => Ok(Format::Date),
            ("short", Some(n)) => match n.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(Format::Short(n)),
                _ => Err(format!("`short:{n}`: N must be a length from 1 to 1000")),
            },
            ("short", None) => Err("`short` needs a length, e.g. `short:40`".into()),
            ("number" | "date", Some(_)) => Err(format!("`{name}` takes no argument")),
            _ => Err(format!("unknown formatter `{name}` (known: {KNOWN})")),
        }
    }

    /// The JSON Schema types this formatter can show.
    pub fn accepts(&self) -> &'static [&'static str] {
        match self {
            Format::Money { .. } => &["integer", "number"],
            Format::Number => &["integer", "number"],
            Format::Date => &["string", "integer", "number"],
            Format::Plain | Format::Short(_) => &[
                "string", "integer", "number", "boolean", "object", "array", "null",
            ],
        }
    }

    /// Show a value, or say why it cannot be shown this way.
    pub fn apply(&self, v: &Value) -> Result<String, String> {
        match self {
            Format::Plain => Ok(shorten(&text(v), 80)),
            Format::Money { currency } => money(v, currency),
            Format::Number => number(v),
            Format::Date => date(v),
            Format::Short(n) => Ok(shorten(&text(v), *n)),
        }
    }
}

/// An instant as people read it: `Thu 3 Dec 2026, 08:34 UTC`.
pub fn readable_time(t: DateTime<Utc>) -> String {
    t.format("%a %-d %b %Y, %H:%M UTC").to_string()
}

/// At most `n` characters, the last one `…` when shortened.
pub fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => crate::canonical::to_string(v),
    }
}

/// A JSON integer (or a float with no fraction, exactly representable), as i128.
fn whole(v: &Value) -> Option<i128> {
    if let Some(i) = v.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = v.as_u64() {
        return Some(i128::from(u));
    }
    v.as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0)
        .map(|f| f as i128)
}

/// Digits of `n` (non-negative) with `,` every three.
fn grouped(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Digits after the point in a currency's minor unit (ISO 4217).
fn decimals(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

fn money(v: &Value, currency: &str) -> Result<String, String> {
    if !v.is_number() {
        return Err("not a number".into());
    }
    let minor = whole(v).ok_or("not a whole number of minor units")?;
    let d = decimals(currency);
    let scale = 10_i128.pow(d);
    let (units, frac) = (minor.abs() / scale, minor.abs() % scale);
    let mut amount = grouped(&units.to_string());
    if d > 0 {
        amount.push_str(&format!(".{frac:0width$}", width = d as usize));
    }
    let sign = if minor < 0 { "-" } else { "" };
    let symbol = match currency {
        "USD" => Some("$"),
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        _ => None,
    };
    Ok(match symbol {
        Some(s) => format!("{sign}{s}{amount}"),
        None => format!("{sign}{amount} {currency}"),
    })
}

fn number(v: &Value) -> Result<String, String> {
    if !v.is_number() {
        return Err("not a number".into());
    }
    let repr = v.to_string();
    if repr.contains(['e', 'E']) {
        return Ok(repr);
    }
    let (sign, rest) = match repr.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", repr.as_str()),
    };
    Ok(match rest.split_once('.') {
        Some((int, frac)) => format!("{sign}{}.{frac}", grouped(int)),
        None => format!("{sign}{}", grouped(rest)),
    })
}

fn date(v: &Value) -> Result<String, String> {
    let not = || "not a date".to_string();
    match v {
        Value::String(s) => {
            if let Ok(t) = crate::instant::parse_rfc3339(s.trim()) {
                return Ok(readable_time(t));
            }
            let d = crate::instant::parse_full_date(s.trim()).map_err(|_| not())?;
            Ok(d.format("%a %-d %b %Y").to_string())
        }
        Value::Number(_) => {
            let secs = whole(v)
                .and_then(|s| i64::try_from(s).ok())
                .ok_or_else(not)?;
            // the years `time` took unix seconds in, so a number reads as it did
            DateTime::from_timestamp_secs(secs)
                .filter(|t| (-9999..=9999).contains(&t.year()))
                .map(readable_time)
                .ok_or_else(not)
        }
        _ => Err(not()),
    }
}
