//! Timestamps as a row reads them back.
//!
//! SQLite keeps a timestamp as text, and Diesel reads it back by trying chrono's
//! `parse_from_str` with one format after another, each format string parsed anew at every
//! value. A ten-row list reads twenty, and `perf` put chrono's format parsing and the parse
//! itself at 9 % of the list's CPU on SQLite. The text Diesel writes, `2026-12-07
//! 08:43:15.123456` (`%F %T%.f`), is read here by hand; any other text goes the way Diesel
//! reads it. PostgreSQL sends a timestamp as a binary count of microseconds: Diesel's own
//! reading, unchanged.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::Timestamp;
use diesel::sqlite::{Sqlite, SqliteValue};

use super::MultiBackend;

/// A `Timestamp` column's value (`#[diesel(deserialize_as = Stamp)]` on a `NaiveDateTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromSqlRow)]
pub(crate) struct Stamp(NaiveDateTime);

impl From<Stamp> for NaiveDateTime {
    fn from(stamp: Stamp) -> Self {
        stamp.0
    }
}

impl FromSql<Timestamp, Sqlite> for Stamp {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        if let Some(at) = parse_written(value.read_text()) {
            return Ok(Self(at));
        }
        <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(Self)
    }
}

impl FromSql<Timestamp, Pg> for Stamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(Self)
    }
}

/// For queries through the connection of either backend: the value's own backend reads it.
impl FromSql<Timestamp, MultiBackend> for Stamp {
    fn from_sql(value: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        value.from_sql::<Self, Timestamp>()
    }
}

/// `YYYY-MM-DD HH:MM:SS`, then nothing or `.` and one to nine digits: what Diesel writes
/// (`%F %T%.f`) for a year of four digits. `None` for anything else, and for a date or time
/// that does not exist, which chrono then judges.
fn parse_written(text: &str) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    let (whole, fraction) = bytes.split_at_checked(19)?;
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b' ',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
    ] = *whole
    else {
        return None;
    };
    let year = number(&[y0, y1, y2, y3])?;
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        number(&[m0, m1])?,
        number(&[d0, d1])?,
    )?;
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    let time = NaiveTime::from_hms_nano_opt(
        number(&[h0, h1])?,
        number(&[i0, i1])?,
        number(&[s0, s1])?,
        nanos,
    )?;
    Some(date.and_time(time))
}

/// The value of ASCII digits, at most nine of them; `None` for any other byte.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |value, &digit| {
        digit
            .is_ascii_digit()
            .then(|| value * 10 + u32::from(digit - b'0'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// How Diesel reads the text back: chrono, format by format (the first that fits).
    fn as_diesel_reads(text: &str) -> Option<NaiveDateTime> {
        ["%F %T%.f", "%F %T"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    }

    #[test]
    fn what_diesel_writes_reads_back_as_chrono_reads_it() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        for (h, m, s, nanos) in [
            (0, 0, 0, 0),
            (8, 43, 15, 123_456_000),
            (23, 59, 59, 999_999_999),
            (12, 0, 1, 500_000_000),
            (1, 2, 3, 7),
            (9, 9, 9, 120_000),
        ] {
            let at = day.and_hms_nano_opt(h, m, s, nanos).unwrap();
            let text = at.format("%F %T%.f").to_string();
            assert_eq!(parse_written(&text), Some(at), "{text}");
            assert_eq!(parse_written(&text), as_diesel_reads(&text), "{text}");
        }
        for text in [
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.9",
            "2024-02-29 10:00:00.05",
            "2026-12-07 08:43:15.000000001",
        ] {
            assert!(parse_written(text).is_some(), "{text}");
            assert_eq!(parse_written(text), as_diesel_reads(text), "{text}");
        }
    }

    #[test]
    fn any_other_text_is_left_to_chrono() {
        for text in [
            "",
            "2026-12-07",
            "2026-12-07T08:43:15",
            "2026-12-07 08:43:15Z",
            "2026-12-07 08:43:15+01:00",
            "2026-12-07 08:43:15.",
            "2026-12-07 08:43:15.1234567890",
            "2026-12-07 08:43",
            "2026-13-07 08:43:15",
            "2025-02-29 08:43:15",
            "2026-12-07 24:00:00",
            "2026-12-07 08:60:00",
            "2026-12-07 08:43:60",
            "+2026-12-07 08:43:15",
            "2026-12-07 08:4a:15",
            "2460651.5",
            "２０２６-12-07 08:43:15",
        ] {
            assert_eq!(parse_written(text), None, "{text}");
        }
    }
}
