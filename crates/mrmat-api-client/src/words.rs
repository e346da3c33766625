//! Durations as a person says them: "15 seconds", "1 minute", "3 hours", "2 days", in
//! the largest whole unit, rounded down (better early than late).

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

#[cfg(test)]
mod tests {
    use super::duration;

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
}
