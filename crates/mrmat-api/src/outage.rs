//! One log line when a dependency stops answering and one when it answers again, however
//! many requests fail in between: an outage must not flood the log.
//!
//! A dependency may fail in part (the database refusing writes while it still serves
//! reads, when another process holds SQLite's write lock): each part is tracked on its own,
//! the outage is logged when the first part fails and its end when the last one recovers,
//! so a read that succeeds does not announce a recovery the writers have not seen.
//!
//! Every start and end of an outage also moves [`transitions`], which the shared readiness
//! verdict is checked against: a probe right after a request saw the provider or the
//! database fail (or answer again) gets a fresh verdict, not the one cached before.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// How many outages started or ended in this process so far.
static TRANSITIONS: AtomicU64 = AtomicU64::new(0);

/// A number that changes whenever an outage of any dependency starts or ends. (One for
/// the process: servers embedded side by side, as in the tests, only re-check sooner.)
pub(crate) fn transitions() -> u64 {
    TRANSITIONS.load(Ordering::Acquire)
}

/// A part of a dependency that can fail on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part(u8);

impl Part {
    /// The dependency as a whole.
    pub(crate) const WHOLE: Part = Part(1);
    /// Reading.
    pub(crate) const READS: Part = Part(1 << 1);
    /// Writing.
    pub(crate) const WRITES: Part = Part(1 << 2);
}

/// Whether a dependency (the database, the identity provider) is currently down.
#[derive(Debug)]
pub(crate) struct Outage {
    what: &'static str,
    level: log::Level,
    /// How the log says it broke and healed.
    verbs: (&'static str, &'static str),
    down: AtomicU8,
}

impl Outage {
    /// A tracker for `what`, e.g. "the database", whose outages are warnings; up until
    /// told otherwise.
    pub(crate) const fn new(what: &'static str) -> Self {
        Self::logged_at(what, log::Level::Warn)
    }

    /// The same, with outages logged at `level` (ERROR where an operator must act).
    pub(crate) const fn logged_at(what: &'static str, level: log::Level) -> Self {
        Self::described(what, level, ("is unavailable", "is available again"))
    }

    /// The same, with the log's own words for breaking and healing.
    pub(crate) const fn described(
        what: &'static str,
        level: log::Level,
        verbs: (&'static str, &'static str),
    ) -> Self {
        Self {
            what,
            level,
            verbs,
            down: AtomicU8::new(0),
        }
    }

    /// `part` failed; logs when this starts an outage.
    pub(crate) fn failed(&self, part: Part, cause: &dyn std::fmt::Display) {
        let before = self.down.fetch_or(part.0, Ordering::Relaxed);
        if before & part.0 != part.0 {
            // A part newly down: whatever readiness said before is stale.
            TRANSITIONS.fetch_add(1, Ordering::AcqRel);
        }
        if before == 0 {
            log::log!(self.level, "{} {}: {cause}", self.what, self.verbs.0);
        } else {
            log::debug!("{} still {}: {cause}", self.what, self.verbs.0);
        }
    }

    /// `part` answered, which shows the dependency as a whole answers too; logs when
    /// this ends the outage.
    pub(crate) fn answered(&self, part: Part) {
        let cleared = part.0 | Part::WHOLE.0;
        // A load first: the common case (up and staying up) then writes nothing.
        if self.down.load(Ordering::Relaxed) & cleared == 0 {
            return;
        }
        let before = self.down.fetch_and(!cleared, Ordering::Relaxed);
        if before & cleared != 0 {
            TRANSITIONS.fetch_add(1, Ordering::AcqRel);
        }
        if before & cleared != 0 && before & !cleared == 0 {
            log::info!("{} {}", self.what, self.verbs.1);
        }
    }

    #[cfg(test)]
    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_flips_only_on_transitions() {
        let outage = Outage::new("the thing");
        assert!(!outage.is_down());
        outage.answered(Part::WHOLE);
        outage.failed(Part::WHOLE, &"refused");
        outage.failed(Part::WHOLE, &"refused");
        assert!(outage.is_down());
        outage.answered(Part::WHOLE);
        assert!(!outage.is_down());
    }

    #[test]
    fn failing_and_answering_again_move_the_transitions() {
        let outage = Outage::new("the thing");
        let start = transitions();
        outage.failed(Part::WHOLE, &"refused");
        let failed = transitions();
        assert!(failed > start);
        outage.answered(Part::WHOLE);
        assert!(transitions() > failed);
    }

    #[test]
    fn reads_that_work_do_not_end_an_outage_of_writes() {
        let outage = Outage::new("the database");
        outage.failed(Part::WRITES, &"locked");
        outage.answered(Part::READS);
        assert!(outage.is_down());
        outage.answered(Part::WRITES);
        assert!(!outage.is_down());
    }

    #[test]
    fn the_outage_ends_when_every_failed_part_answered() {
        let outage = Outage::new("the database");
        outage.failed(Part::READS, &"refused");
        outage.failed(Part::WRITES, &"refused");
        outage.answered(Part::READS);
        assert!(outage.is_down());
        outage.answered(Part::WRITES);
        assert!(!outage.is_down());
    }
}
