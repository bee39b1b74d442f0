//! The instant's text held to `time`'s, which wrote every instant stored before chrono: the same
//! bytes out, the same texts accepted and read as the same instants.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use proptest::prelude::{Just, Strategy, any, prop_assert_eq, prop_oneof, proptest};
use time::format_description::well_known::Rfc3339;

use super::{parse_full_date, parse_rfc3339, rfc3339};

/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the years `time` writes.
const FIRST: i64 = -62_167_219_200;
const LAST: i64 = 253_402_300_799;
/// 1970 to 9999, the years a clock gives.
const EPOCH: i64 = 0;

fn nanos() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        (1..1_000u32).prop_map(|ms| ms * 1_000_000),
        (1..1_000_000u32).prop_map(|us| us * 1_000),
        (1..100u32).prop_map(|n| n * 10_000_000),
        1..1_000_000_000u32,
    ]
}

fn both(secs: i64, nanos: u32) -> (DateTime<Utc>, time::OffsetDateTime) {
    let chrono = DateTime::from_timestamp(secs, nanos).expect("in chrono's range");
    let nanos = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).expect("in time's range");
    (chrono, time)
}

/// Unix nanoseconds, the instant either crate read.
fn unix_nanos(t: &DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn time_reads(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

fn two(range: std::ops::Range<u32>) -> impl Strategy<Value = String> {
    range.prop_map(|n| format!("{n:02}"))
}

/// Texts near an RFC 3339 instant: fields in and past their ranges, separators, fractions of
/// any length, offsets, and trailing bytes.
fn near_instant() -> impl Strategy<Value = String> {
    let date = (0..10_000u32, two(0..14), two(0..33));
    let sep = prop_oneof![
        Just("T"),
        Just("t"),
        Just(" "),
        Just("_"),
        Just("é"),
        Just("")
    ];
    let clock = (two(0..26), two(0..61), two(0..62));
    let fraction = prop_oneof![
        Just(String::new()),
        Just(".".to_string()),
        "\\.[0-9]{1,12}",
        "\\.[0-9]{9}0{1,3}",
    ];
    let offset = prop_oneof![
        Just("Z".to_string()),
        Just("z".to_string()),
        Just(String::new()),
        ("[+-]", two(0..26), two(0..62)).prop_map(|(s, h, m)| format!("{s}{h}:{m}")),
        ("[+-]", two(0..24)).prop_map(|(s, h)| format!("{s}{h}")),
    ];
    let tail = prop_oneof![Just(""), Just(""), Just(""), Just(" "), Just("Z")];
    (date, sep, clock, fraction, offset, tail).prop_map(
        |((y, mo, d), sep, (h, mi, s), f, o, tail)| {
            format!("{y:04}-{mo}-{d}{sep}{h}:{mi}:{s}{f}{o}{tail}")
        },
    )
}

proptest! {
    #[test]
    fn written_as_time_wrote_it(secs in EPOCH..=LAST, nanos in nanos()) {
        let (chrono, time) = both(secs, nanos);
        let before = time.format(&Rfc3339).expect("time writes it");
        prop_assert_eq!(rfc3339(&chrono), before);
    }

    #[test]
    fn every_year_time_wrote_is_written_the_same(secs in FIRST..=LAST, nanos in nanos()) {
        let (chrono, time) = both(secs, nanos);
        prop_assert_eq!(rfc3339(&chrono), time.format(&Rfc3339).expect("time writes it"));
    }

    #[test]
    fn read_back_as_written(secs in FIRST..=LAST, nanos in nanos()) {
        let (chrono, _) = both(secs, nanos);
        let text = rfc3339(&chrono);
        prop_assert_eq!(parse_rfc3339(&text), Ok(chrono));
        prop_assert_eq!(time_reads(&text), Some(unix_nanos(&chrono)));
    }

    #[test]
    fn reads_what_time_read(text in near_instant()) {
        prop_assert_eq!(parse_rfc3339(&text).ok().as_ref().map(unix_nanos), time_reads(&text), "{}", text);
    }

    #[test]
    fn reads_what_time_read_of_any_text(text in any::<String>()) {
        prop_assert_eq!(parse_rfc3339(&text).ok().as_ref().map(unix_nanos), time_reads(&text));
    }

    #[test]
    fn reads_dates_as_time_read_them(
        sign in prop_oneof![Just(""), Just("+"), Just("-")],
        year in prop_oneof![(0..10_000u32).prop_map(|y| format!("{y:04}")), "[0-9]{1,6}"],
        month in two(0..14),
        day in two(0..33),
        tail in prop_oneof![Just(""), Just(""), Just("T"), Just(" ")],
    ) {
        let text = format!("{sign}{year}-{month}-{day}{tail}");
        let format = time::format_description::parse("[year]-[month]-[day]").expect("format");
        let time = time::Date::parse(&text, &format)
            .ok()
            .map(|d| (d.year(), u32::from(u8::from(d.month())), u32::from(d.day())));
        let ours = parse_full_date(&text).ok().map(|d| (d.year(), d.month(), d.day()));
        prop_assert_eq!(ours, time, "{}", text);
    }
}

#[test]
fn a_text_from_the_ledger_reads_and_writes_back() {
    for text in [
        "2026-12-03T19:51:38.1880987Z",
        "2026-12-03T08:04:36Z",
        "2026-12-03T08:04:36.5Z",
        "2026-12-03T08:04:36.000000001Z",
    ] {
        let t = parse_rfc3339(text).expect("reads");
        assert_eq!(rfc3339(&t), text);
    }
}

#[test]
fn an_offset_is_read_as_its_instant_and_written_in_utc() {
    let t = parse_rfc3339("2026-12-03T10:04:36+02:00").expect("reads");
    assert_eq!(rfc3339(&t), "2026-12-03T08:04:36Z");
}

#[test]
fn a_leap_second_is_read_only_at_the_end_of_a_month() {
    let t = parse_rfc3339("2016-12-31T23:59:60Z").expect("reads");
    assert_eq!(rfc3339(&t), "2016-12-31T23:59:59.999999999Z");
    assert!(parse_rfc3339("2016-12-30T23:59:60Z").is_err());
    assert!(parse_rfc3339("2017-01-01T00:59:60+01:00").is_ok());
}

#[test]
fn a_date_reads_with_its_sign() {
    assert_eq!(
        parse_full_date("2026-12-03"),
        Ok(NaiveDate::from_ymd_opt(2026, 12, 3).expect("date"))
    );
    assert!(parse_full_date("2026-12-3").is_err());
    assert!(parse_full_date("2026-02-30").is_err());
}

#[test]
fn a_serde_field_is_its_text() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Held {
        #[serde(with = "super::serde_rfc3339")]
        at: DateTime<Utc>,
    }
    let text = r#"{"at":"2026-12-03T19:51:38.1880987Z"}"#;
    let held: Held = serde_json::from_str(text).expect("reads");
    assert_eq!(serde_json::to_string(&held).expect("writes"), text);
    assert!(serde_json::from_str::<Held>(r#"{"at":"yesterday"}"#).is_err());
    assert!(serde_json::from_str::<Held>(r#"{"at":0}"#).is_err());
}
