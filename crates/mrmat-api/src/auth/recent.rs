//! The verdicts one worker made or fetched lately, kept by that worker in front of the
//! shared cache.
//!
//! A warm request is then judged without a lock, an atomic or an `.await`. The shared
//! cache's lookup (moka: an async call that also records the read for its eviction
//! policy, on structures both workers write) took 5.5 % of the server's CPU on a warm
//! greeting v3 at c=32 (perf), and the large future it needs cost an allocation the
//! allocator had to consolidate for.
//!
//! Nothing changes in what is answered: an entry ends at the moment its verdict does in
//! the shared cache (`Verdict::until`), and verdicts are never withdrawn early there
//! either. The shared cache stays the one that judges once for all workers.
//!
//! Bounded: at most [`CAPACITY`] entries a worker. When it is full, the expired ones go;
//! under a flood of live tokens, all of them (the shared cache still holds them).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use super::Identity;
use super::claims::Verdict;
use super::introspection::TokenKey;

/// Most verdicts one worker keeps.
const CAPACITY: usize = 4096;

/// One worker's recent verdicts (`App::app_data`, one per worker: never shared).
#[derive(Debug, Default)]
pub(crate) struct Recent {
    verdicts: RefCell<HashMap<TokenKey, Verdict, BuildHasherDefault<DigestHasher>>>,
}

impl Recent {
    /// The verdict on the token with `key`, when this worker has one still trusted.
    pub(crate) fn get(&self, key: &TokenKey) -> Option<Verdict> {
        let verdicts = self.verdicts.borrow();
        let verdict = verdicts.get(key)?;
        (verdict.until() > Instant::now()).then(|| verdict.clone())
    }

    /// Keeps `verdict` on the token with `key` for as long as it is trusted.
    pub(crate) fn remember(&self, key: TokenKey, verdict: &Verdict) {
        let now = Instant::now();
        if verdict.until() <= now {
            return;
        }
        let mut verdicts = self.verdicts.borrow_mut();
        if verdicts.len() >= CAPACITY && !verdicts.contains_key(&key) {
            verdicts.retain(|_, kept| kept.until() > now);
            if verdicts.len() >= CAPACITY {
                verdicts.clear();
            }
        }
        // A copy of the worker's own, down to its strings: the shared cache's `Arc`s
        // would have both workers count references on one cache line at every request.
        let own = Verdict {
            principal: verdict.principal.as_deref().map(|identity| {
                Arc::new(Identity {
                    issuer: Arc::from(&*identity.issuer),
                    subject: Arc::from(&*identity.subject),
                    bound_to: identity.bound_to.as_deref().map(Arc::from),
                    ..identity.clone()
                })
            }),
            ..verdict.clone()
        };
        verdicts.insert(key, own);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.verdicts.borrow().len()
    }
}

/// The key is a SHA-256 digest, uniform and beyond a client's choosing, so its first
/// eight bytes are a hash already: SipHash would only cost time here.
#[derive(Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // The array's length comes first (the same for every key), then the digest.
        if let Some(first) = bytes.first_chunk::<8>() {
            self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(*first);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn verdict(ttl: Duration) -> Verdict {
        Verdict {
            principal: None,
            ttl,
            judged_at: Instant::now(),
        }
    }

    fn key(n: usize) -> TokenKey {
        let mut key = [0; 32];
        key[..8].copy_from_slice(&(n as u64).to_le_bytes());
        key
    }

    #[test]
    fn a_remembered_verdict_is_found_until_it_ends() {
        let recent = Recent::default();
        recent.remember(key(1), &verdict(Duration::from_millis(50)));
        assert!(recent.get(&key(1)).is_some());
        assert!(recent.get(&key(2)).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(recent.get(&key(1)).is_none());
    }

    #[test]
    fn a_verdict_that_is_not_to_be_cached_is_not_remembered() {
        let recent = Recent::default();
        recent.remember(key(1), &verdict(Duration::ZERO));
        assert!(recent.get(&key(1)).is_none());
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_verdict_ends_when_it_was_judged_plus_its_life_not_later() {
        let recent = Recent::default();
        let judged = Verdict {
            judged_at: Instant::now() - Duration::from_secs(5),
            ..verdict(Duration::from_secs(5))
        };
        recent.remember(key(1), &judged);
        assert!(recent.get(&key(1)).is_none());
    }

    #[test]
    fn the_worker_keeps_an_identity_of_its_own() {
        let recent = Recent::default();
        let shared = Verdict {
            principal: Some(Arc::new(Identity {
                issuer: Arc::from("https://idp.example"),
                primary: true,
                subject: Arc::from("alice"),
                username: "alice".into(),
                client_id: "cli".into(),
                scopes: vec!["openid".into()],
                expires_at: None,
                bound_to: None,
            })),
            ..verdict(Duration::from_secs(60))
        };
        recent.remember(key(1), &shared);
        let own = recent.get(&key(1)).and_then(|v| v.principal).unwrap();
        let shared = shared.principal.unwrap();
        assert_eq!(*own, *shared);
        assert!(!Arc::ptr_eq(&own, &shared));
        assert!(!Arc::ptr_eq(&own.subject, &shared.subject));
        assert!(!Arc::ptr_eq(&own.issuer, &shared.issuer));
    }

    #[test]
    fn the_entries_stay_within_the_bound_under_a_flood_of_live_tokens() {
        let recent = Recent::default();
        for n in 0..3 * CAPACITY {
            recent.remember(key(n), &verdict(Duration::from_secs(60)));
            assert!(recent.len() <= CAPACITY);
        }
        assert!(recent.get(&key(3 * CAPACITY - 1)).is_some());
    }

    #[test]
    fn a_full_worker_makes_room_by_forgetting_the_expired_first() {
        let recent = Recent::default();
        for n in 0..CAPACITY - 1 {
            recent.remember(key(n), &verdict(Duration::from_millis(20)));
        }
        recent.remember(key(CAPACITY), &verdict(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(30));
        recent.remember(key(CAPACITY + 1), &verdict(Duration::from_secs(60)));
        assert_eq!(recent.len(), 2);
        assert!(recent.get(&key(CAPACITY)).is_some());
    }
}
