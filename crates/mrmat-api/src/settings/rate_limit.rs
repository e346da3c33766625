//! `--rate-limit`: how many requests a client may make, checked when the configuration is
//! read. The limiter itself is in `rate_limit`, above.

use std::time::Duration;

/// `N` requests a `period`: the value of `--rate-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests a period, also the burst.
    pub requests: u32,
    /// The period: a second or a minute.
    pub period: Duration,
}

impl std::str::FromStr for RateLimit {
    type Err = String;

    /// `N/s` or `N/min` (also `N/sec`, `N/second`, `N/m`, `N/minute`), N from 1 to 10^9.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a rate: write N/s or N/min, N a whole number from 1 to 1000000000"
            )
        };
        let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let requests: u32 = n.trim().parse().map_err(|_| bad())?;
        if !(1..=1_000_000_000).contains(&requests) {
            return Err(bad());
        }
        let period = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            _ => return Err(bad()),
        };
        Ok(Self { requests, period })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.period.as_secs() == 60 {
            "min"
        } else {
            "s"
        };
        write!(f, "{}/{unit}", self.requests)
    }
}
