//! Quantities as a person says them: durations ("15 seconds", "1 minute", "3 hours", "2
//! days", in the largest whole unit, rounded down: better early than late) and sizes
//! ("64 KiB").

/// `seconds` in the largest whole unit.
pub fn duration(seconds: u64) -> String {
    let (count, unit) = match seconds {
        s if s < 60 => (s, "second"),
        s if s < 3_600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3_600, "hour"),
        s => (s / 86_400, "day"),
    };
    if count == 1 {
        format!("1 {unit}")
    } else {
        format!("{count} {unit}s")
    }
}

/// `bytes` as a person says a cap: "64 KiB", "4 MiB".
pub fn size_words(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::{duration, size_words};

    #[test]
    fn durations_are_said_in_the_largest_whole_unit() {
        assert_eq!(duration(1), "1 second");
        assert_eq!(duration(15), "15 seconds");
        assert_eq!(duration(60), "1 minute");
        assert_eq!(duration(119), "1 minute");
        assert_eq!(duration(3_599), "59 minutes");
        assert_eq!(duration(3_600), "1 hour");
        assert_eq!(duration(2 * 86_400 + 5), "2 days");
    }

    #[test]
    fn sizes_are_said_in_whole_units() {
        assert_eq!(size_words(64 * 1024), "64 KiB");
        assert_eq!(size_words(4 * 1024 * 1024), "4 MiB");
        assert_eq!(size_words(1500), "1500 bytes");
    }
}
