//! Timestamps on the wire: RFC 3339 in UTC, exactly as chrono writes a `DateTime<Utc>`
//! (`SecondsFormat::AutoSi` with `Z`: no fraction, or 3, 6 or 9 digits, whichever holds
//! the nanoseconds), written into a stack buffer.
//!
//! Hand-written because chrono's `Serialize` goes through `collect_str`: serde_json then
//! escapes every fragment chrono's formatter writes, one `write_char` at a time. In a
//! profile of a ten-resource list (callgrind) the two timestamps of each resource cost
//! more instructions than the rest of the request's JSON; written here they are one
//! `serialize_str` of a finished 20 to 30 bytes. Reading stays chrono's.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::Serializer;

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`: the longest form written here.
const MAX_LEN: usize = 30;

/// `serialize_with` for a `DateTime<Utc>` field.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match write(at, &mut buf).and_then(|len| std::str::from_utf8(&buf[..len]).ok()) {
        Some(text) => serializer.serialize_str(text),
        // Years outside 0000-9999 and leap seconds: rare enough for chrono's own path.
        None => serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// Writes `at` into `buf`; its length, or `None` for what only chrono writes.
fn write(at: &DateTime<Utc>, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    digits(&mut buf[0..4], year);
    buf[4] = b'-';
    digits(&mut buf[5..7], at.month());
    buf[7] = b'-';
    digits(&mut buf[8..10], at.day());
    buf[10] = b'T';
    digits(&mut buf[11..13], at.hour());
    buf[13] = b':';
    digits(&mut buf[14..16], at.minute());
    buf[16] = b':';
    digits(&mut buf[17..19], at.second());
    let mut len = 19;
    let (fraction, places) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    if places > 0 {
        buf[len] = b'.';
        digits(&mut buf[len + 1..len + 1 + places], fraction);
        len += 1 + places;
    }
    buf[len] = b'Z';
    Some(len + 1)
}

/// `value` in decimal, zero-padded to fill `out`.
fn digits(out: &mut [u8], mut value: u32) {
    for byte in out.iter_mut().rev() {
        // `value % 10` is below 10: the cast keeps it whole.
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{NaiveDate, TimeZone};
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    fn ours(at: DateTime<Utc>) -> String {
        serde_json::to_string(&Ours(at)).unwrap()
    }

    fn chronos(at: DateTime<Utc>) -> String {
        serde_json::to_string(&at).unwrap()
    }

    fn at(year: i32, nanos: u32) -> DateTime<Utc> {
        let date = NaiveDate::from_ymd_opt(year, 12, 6).unwrap();
        Utc.from_utc_datetime(&date.and_hms_nano_opt(15, 38, 32, nanos).unwrap())
    }

    #[test]
    fn every_fraction_length_is_written_as_chrono_writes_it() {
        for nanos in [
            0,
            1,
            999_999_999,
            100_000_000,
            120_000_000,
            174_000_000,
            174_543_000,
            174_543_001,
            5_000,
            5_000_000,
            500,
        ] {
            assert_eq!(
                ours(at(2026, nanos)),
                chronos(at(2026, nanos)),
                "{nanos} ns"
            );
        }
    }

    #[test]
    fn dates_across_the_calendar_are_written_as_chrono_writes_them() {
        // Every day of a leap year and of an ordinary one, at varied times.
        for year in [0, 1, 999, 1970, 2024, 2026, 9999] {
            let mut day = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
            let mut step: u32 = 0;
            while day.year() == year {
                step = step.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let time = day
                    .and_hms_nano_opt(step % 24, step % 60, (step / 7) % 60, step % 1_000_000_000)
                    .unwrap();
                let at = Utc.from_utc_datetime(&time);
                assert_eq!(ours(at), chronos(at));
                day = day.succ_opt().unwrap();
            }
        }
    }

    #[test]
    fn years_beyond_four_digits_and_leap_seconds_fall_back_to_chrono() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        for at in [at(10_000, 0), at(-1, 5_000), Utc.from_utc_datetime(&leap)] {
            assert_eq!(ours(at), chronos(at));
        }
    }
}
