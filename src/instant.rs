//! The one instant type, [`DateTime<Utc>`] (chrono's), and its text forms: the RFC 3339 text every
//! stored instant has ([`rfc3339`], [`parse_rfc3339`], [`serde_rfc3339`] for serde fields) and
//! the RFC 3339 `full-date` ([`parse_full_date`]).
//!
//! The text is a contract: ledger rows, envelopes and stored states hold it, and hashes cover it.
//! It is byte for byte what the `time` crate wrote before this module (the tests hold it to
//! `time`): the date and time, the fraction of a second only when not zero and without trailing
//! zeros, then `Z`. The parsers accept what `time`'s did, so an argument a summary shows as a
//! date is shown as before.
//!
//! Must never read the clock except in [`now`], nor write an instant in another form.

use std::fmt::Write;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};

#[cfg(test)]
mod tests;

/// Text that is not an RFC 3339 instant (or date), as `time` refused it too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 {what}: {text:?}")]
pub struct ParseError {
    what: &'static str,
    text: String,
}

/// The clock: now, in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// `2026-12-03T08:04:36.274855078Z`: four-digit year (years beyond 0000–9999, which `time`
/// refused to write and no clock gives, get chrono's sign), the fraction only when not zero and
/// without trailing zeros (a leap second as `time` took it: `:59.999999999`), `Z`.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(30);
    let year = t.year();
    let (month, day) = (t.month(), t.day());
    let (hour, minute, second) = (t.hour(), t.minute(), t.second());
    // writing to a String cannot fail
    let _ = if (0..=9999).contains(&year) {
        write!(out, "{year:04}")
    } else {
        write!(out, "{year:+05}")
    };
    let _ = write!(
        out,
        "-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
    );
    let mut nanos = t.nanosecond().min(999_999_999);
    if nanos != 0 {
        let mut width = 9;
        while nanos % 10 == 0 {
            (nanos, width) = (nanos / 10, width - 1);
        }
        let _ = write!(out, ".{nanos:0width$}");
    }
    out.push('Z');
    out
}

/// Read an RFC 3339 instant as `time` read one: `YYYY-MM-DD`, any one byte, `hh:mm:ss`, an
/// optional fraction (digits past the ninth ignored), `Z`, `z` or `±hh:mm` (hours up to 23); a
/// leap second (`:60`) only as the last second of a month in UTC, read as `:59.999999999`.
pub fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, ParseError> {
    let not = || ParseError {
        what: "instant",
        text: s.to_string(),
    };
    let mut r = Reader(s.as_bytes());
    let (year, month, day) = r.date().ok_or_else(not)?;
    r.skip(1).ok_or_else(not)?;
    let hour = r.digits(2).ok_or_else(not)?;
    r.byte(b':').ok_or_else(not)?;
    let minute = r.digits(2).ok_or_else(not)?;
    r.byte(b':').ok_or_else(not)?;
    let mut second = r.digits(2).ok_or_else(not)?;
    let mut nanos = if r.byte(b'.').is_some() {
        r.fraction().ok_or_else(not)?
    } else {
        0
    };
    let offset = r.offset().ok_or_else(not)?;
    if !r.0.is_empty() {
        return Err(not());
    }
    let leap = second == 60;
    if leap {
        (second, nanos) = (59, 999_999_999);
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).map_err(|_| not())?, month, day);
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos);
    let local = date.ok_or_else(not)?.and_time(time.ok_or_else(not)?);
    let t = local.checked_sub_signed(offset).ok_or_else(not)?.and_utc();
    if leap && !last_second_of_month(&t) {
        return Err(not());
    }
    Ok(t)
}

/// Read an RFC 3339 `full-date` as `time` read `[year]-[month]-[day]`: an optional sign, four
/// digits, two, two.
pub fn parse_full_date(s: &str) -> Result<NaiveDate, ParseError> {
    let not = || ParseError {
        what: "date",
        text: s.to_string(),
    };
    let mut r = Reader(s.as_bytes());
    let negative = r.byte(b'-').is_some();
    if !negative {
        let _ = r.byte(b'+');
    }
    let (year, month, day) = r.date().ok_or_else(not)?;
    if !r.0.is_empty() {
        return Err(not());
    }
    let year = i32::try_from(year).map_err(|_| not())?;
    let year = if negative { -year } else { year };
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(not)
}

/// Serde for a field held as its RFC 3339 text: `#[serde(with = "crate::instant::serde_rfc3339")]`.
pub mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text).map_err(D::Error::custom)
    }
}

/// [`serde_rfc3339`] for an optional field (with `default` and `skip_serializing_if`).
pub mod serde_rfc3339_option {
    use chrono::{DateTime, Utc};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::parse_rfc3339(&text)
                .map(Some)
                .map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

fn last_second_of_month(t: &DateTime<Utc>) -> bool {
    let next_day = t.date_naive().succ_opt();
    (t.hour(), t.minute(), t.second(), t.nanosecond()) == (23, 59, 59, 999_999_999)
        && next_day.is_none_or(|d| d.day() == 1)
}

/// The bytes not read yet.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        let (first, rest) = self.0.split_first()?;
        (*first == b).then(|| self.0 = rest)
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(n)?;
        let mut value = 0;
        for d in head {
            value = value * 10 + u32::from(d.checked_sub(b'0').filter(|d| *d <= 9)?);
        }
        self.0 = rest;
        Some(value)
    }

    /// `YYYY-MM-DD`, the month 1 to 12.
    fn date(&mut self) -> Option<(u32, u32, u32)> {
        let year = self.digits(4)?;
        self.byte(b'-')?;
        let month = self.digits(2).filter(|m| (1..=12).contains(m))?;
        self.byte(b'-')?;
        Some((year, month, self.digits(2)?))
    }

    /// At least one digit, as nanoseconds; digits past the ninth read and ignored.
    fn fraction(&mut self) -> Option<u32> {
        let n = self.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let (digits, rest) = self.0.split_at(n);
        let mut nanos = 0;
        let mut place = 100_000_000;
        for d in digits {
            nanos += u32::from(d - b'0') * place;
            place /= 10;
        }
        self.0 = rest;
        Some(nanos)
    }

    /// `Z`, `z` or `±hh:mm`, hours up to 23, minutes up to 59.
    fn offset(&mut self) -> Option<TimeDelta> {
        if self.byte(b'Z').or_else(|| self.byte(b'z')).is_some() {
            return Some(TimeDelta::zero());
        }
        let negative = match self.0.first()? {
            b'-' => true,
            b'+' => false,
            _ => return None,
        };
        self.skip(1)?;
        let hours = self.digits(2).filter(|h| *h <= 23)?;
        self.byte(b':')?;
        let minutes = self.digits(2).filter(|m| *m <= 59)?;
        let offset = TimeDelta::minutes(i64::from(hours * 60 + minutes));
        Some(if negative { -offset } else { offset })
    }
}

/// An instant written out, for tests: `utc(2026, 12, 3, 8, 4, 36)`.
#[cfg(test)]
pub(crate) const fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    utc_nanos(y, mo, d, h, mi, s, 0)
}

/// [`utc`] with nanoseconds.
#[cfg(test)]
pub(crate) const fn utc_nanos(
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    ns: u32,
) -> DateTime<Utc> {
    let Some(date) = NaiveDate::from_ymd_opt(y, mo, d) else {
        panic!("not a date")
    };
    let Some(t) = date.and_hms_nano_opt(h, mi, s, ns) else {
        panic!("not a time")
    };
    t.and_utc()
}
