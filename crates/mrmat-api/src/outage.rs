//! One log line when a dependency stops answering and one when it answers again, however
//! many requests fail in between: an outage must not flood the log.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a dependency (the database, the identity provider) is currently down.
#[derive(Debug)]
pub(crate) struct Outage {
    what: &'static str,
    level: log::Level,
    down: AtomicBool,
}

impl Outage {
    /// A tracker for `what`, e.g. "the database", whose outages are warnings; up until
    /// told otherwise.
    pub(crate) const fn new(what: &'static str) -> Self {
        Self::logged_at(what, log::Level::Warn)
    }

    /// The same, with outages logged at `level` (ERROR where an operator must act).
    pub(crate) const fn logged_at(what: &'static str, level: log::Level) -> Self {
        Self {
            what,
            level,
            down: AtomicBool::new(false),
        }
    }

    /// The dependency failed; logs on the first failure of an outage.
    pub(crate) fn failed(&self, cause: &dyn std::fmt::Display) {
        if !self.down.swap(true, Ordering::Relaxed) {
            log::log!(self.level, "{} is unavailable: {cause}", self.what);
        } else {
            log::debug!("{} is still unavailable: {cause}", self.what);
        }
    }

    /// The dependency answered; logs once when it comes back.
    pub(crate) fn answered(&self) {
        // A load first: the common case (up and staying up) then writes nothing.
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            log::info!("{} is available again", self.what);
        }
    }

    #[cfg(test)]
    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_flips_only_on_transitions() {
        let outage = Outage::new("the thing");
        assert!(!outage.is_down());
        outage.answered();
        outage.failed(&"refused");
        outage.failed(&"refused");
        assert!(outage.is_down());
        outage.answered();
        assert!(!outage.is_down());
    }
}
