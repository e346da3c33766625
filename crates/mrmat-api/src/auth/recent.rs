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
//! A JOSE token (a JWT) is found by the SHA-256 of its last segment alone, and its entry
//! keeps the rest verbatim to compare (see [`Lookup`]): hashing all of a 770-byte JWT was
//! 530 ns of a warm JWT request's 14.9 µs (perf, c=32), half of all it cost beyond an
//! opaque token's.
//!
//! Bounded: at most [`CAPACITY`] entries and [`SIGNED_BYTES`] bytes of kept token parts a
//! worker. When it is full, the expired ones go; under a flood of live tokens, all of
//! them (the shared cache still holds them).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::Identity;
use super::claims::Verdict;
use super::introspection::{TokenKey, token_key};

/// Most verdicts one worker keeps.
const CAPACITY: usize = 4096;

/// Most bytes of JOSE tokens' signed parts one worker keeps, all entries together.
const SIGNED_BYTES: usize = 2 * 1024 * 1024;

/// Longest signed part kept: a longer JOSE token is found by the digest of all of it.
const MAX_SIGNED: usize = 4 * 1024;

/// How a worker finds a token among its recent verdicts.
///
/// A JOSE token (it starts with `eyJ`, a JSON object in base64url, and has a dot) is
/// found by the SHA-256 of what follows its last dot, its signature (or a JWE's
/// authentication tag), and is the same token only when what comes before that dot is
/// the same, byte for byte. So an entry is found only by the very token it was made for:
/// a cached signature under another header or payload is not. What is kept of the token,
/// its header and payload (a JWE's encrypted parts), is no credential without the last
/// segment, which is kept only as a digest, as the shared cache keeps whole tokens.
///
/// Any other token is found by the SHA-256 of all of it, and nothing of it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lookup<'a> {
    digest: TokenKey,
    /// What must match verbatim: a JOSE token's signed part, else nothing.
    signed: &'a str,
}

impl<'a> Lookup<'a> {
    /// How `token` is found.
    pub(crate) fn of(token: &'a str) -> Self {
        // The `eyJ` makes a JOSE token's `signed` never empty, so no JOSE token is ever
        // found by another token's whole digest, nor the other way round.
        if token.starts_with("eyJ")
            && let Some((signed, signature)) = token.rsplit_once('.')
            && !signature.is_empty()
            && signed.len() <= MAX_SIGNED
        {
            return Self {
                digest: Sha256::digest(signature.as_bytes()).into(),
                signed,
            };
        }
        Self {
            digest: token_key(token),
            signed: "",
        }
    }

    /// The shared cache's key of `token` (this lookup's): the digest already made when
    /// that is of the whole token.
    pub(crate) fn token_key(&self, token: &str) -> TokenKey {
        if self.signed.is_empty() {
            self.digest
        } else {
            token_key(token)
        }
    }
}

/// One verdict, with what its token's lookup must match verbatim.
#[derive(Debug)]
struct Entry {
    signed: Box<str>,
    verdict: Verdict,
}

/// One worker's recent verdicts (`App::app_data`, one per worker: never shared).
#[derive(Debug, Default)]
pub(crate) struct Recent {
    kept: RefCell<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    entries: HashMap<TokenKey, Entry, BuildHasherDefault<DigestHasher>>,
    /// The bytes of every entry's `signed`.
    signed_bytes: usize,
}

impl Kept {
    /// Whether one more entry keeping `signed` would pass either bound.
    fn has_no_room_for(&self, signed: &str) -> bool {
        self.entries.len() >= CAPACITY || self.signed_bytes + signed.len() > SIGNED_BYTES
    }
}

impl Recent {
    /// The verdict on the token of `lookup`, when this worker has one still trusted.
    pub(crate) fn get(&self, lookup: &Lookup<'_>) -> Option<Verdict> {
        let kept = self.kept.borrow();
        let entry = kept.entries.get(&lookup.digest)?;
        (*entry.signed == *lookup.signed && entry.verdict.until() > Instant::now())
            .then(|| entry.verdict.clone())
    }

    /// Keeps `verdict` on `token` for as long as it is trusted.
    ///
    /// Not a refusal of a JOSE token: its signed part would be kept too, and made-up tokens,
    /// refused without a signature check, would then fill the byte bound eight times
    /// sooner than the count bound, emptying the worker. The shared cache keeps those.
    pub(crate) fn remember(&self, token: &str, verdict: &Verdict) {
        let now = Instant::now();
        if verdict.until() <= now {
            return;
        }
        let lookup = Lookup::of(token);
        if verdict.principal.is_none() && !lookup.signed.is_empty() {
            return;
        }
        let mut kept = self.kept.borrow_mut();
        let kept = &mut *kept;
        if let Some(replaced) = kept.entries.remove(&lookup.digest) {
            kept.signed_bytes -= replaced.signed.len();
        }
        if kept.has_no_room_for(lookup.signed) {
            kept.entries.retain(|_, entry| entry.verdict.until() > now);
            kept.signed_bytes = kept.entries.values().map(|e| e.signed.len()).sum();
            if kept.has_no_room_for(lookup.signed) {
                kept.entries.clear();
                kept.signed_bytes = 0;
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
        kept.signed_bytes += lookup.signed.len();
        kept.entries.insert(
            lookup.digest,
            Entry {
                signed: lookup.signed.into(),
                verdict: own,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.borrow().entries.len()
    }

    #[cfg(test)]
    fn signed_bytes(&self) -> usize {
        self.kept.borrow().signed_bytes
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

    impl Recent {
        fn get_token(&self, token: &str) -> Option<Verdict> {
            self.get(&Lookup::of(token))
        }
    }

    /// A verdict that names a holder, trusted for `ttl`.
    fn accepted(ttl: Duration) -> Verdict {
        Verdict {
            principal: Some(Arc::new(Identity {
                issuer: Arc::from("https://idp.example"),
                primary: true,
                subject: Arc::from("alice"),
                username: "alice".into(),
                client_id: "cli".into(),
                scopes: vec![],
                expires_at: None,
                bound_to: None,
            })),
            ..verdict(ttl)
        }
    }

    fn verdict(ttl: Duration) -> Verdict {
        Verdict {
            principal: None,
            ttl,
            judged_at: Instant::now(),
        }
    }

    /// An opaque token.
    fn key(n: usize) -> String {
        format!("opaque-{n}")
    }

    /// A JOSE token of `signed` and `signature` (their contents do not matter here).
    fn jws(signed: &str, signature: &str) -> String {
        format!("eyJhbGciOiJFUzI1NiJ9.{signed}.{signature}")
    }

    #[test]
    fn a_remembered_verdict_is_found_until_it_ends() {
        let recent = Recent::default();
        recent.remember(&key(1), &verdict(Duration::from_millis(50)));
        assert!(recent.get_token(&key(1)).is_some());
        assert!(recent.get_token(&key(2)).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(recent.get_token(&key(1)).is_none());
    }

    #[test]
    fn a_verdict_that_is_not_to_be_cached_is_not_remembered() {
        let recent = Recent::default();
        recent.remember(&key(1), &verdict(Duration::ZERO));
        assert!(recent.get_token(&key(1)).is_none());
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_verdict_ends_when_it_was_judged_plus_its_life_not_later() {
        let recent = Recent::default();
        let judged = Verdict {
            judged_at: Instant::now() - Duration::from_secs(5),
            ..verdict(Duration::from_secs(5))
        };
        recent.remember(&key(1), &judged);
        assert!(recent.get_token(&key(1)).is_none());
    }

    #[test]
    fn the_worker_keeps_an_identity_of_its_own() {
        let recent = Recent::default();
        let shared = accepted(Duration::from_secs(60));
        recent.remember(&key(1), &shared);
        let own = recent.get_token(&key(1)).and_then(|v| v.principal).unwrap();
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
            recent.remember(&key(n), &verdict(Duration::from_secs(60)));
            assert!(recent.len() <= CAPACITY);
        }
        assert!(recent.get_token(&key(3 * CAPACITY - 1)).is_some());
    }

    #[test]
    fn a_full_worker_makes_room_by_forgetting_the_expired_first() {
        let recent = Recent::default();
        for n in 0..CAPACITY - 1 {
            recent.remember(&key(n), &verdict(Duration::from_millis(20)));
        }
        recent.remember(&key(CAPACITY), &verdict(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(30));
        recent.remember(&key(CAPACITY + 1), &verdict(Duration::from_secs(60)));
        assert_eq!(recent.len(), 2);
        assert!(recent.get_token(&key(CAPACITY)).is_some());
    }

    #[test]
    fn a_jwts_verdict_is_found_by_that_very_token() {
        let recent = Recent::default();
        let token = jws(ALICE, SIGNATURE);
        recent.remember(&token, &accepted(Duration::from_secs(60)));
        assert!(recent.get_token(&token).is_some());
        assert_eq!(recent.signed_bytes(), token.rfind('.').unwrap());
    }

    /// A worker that accepted alice's JWT: payload [`ALICE`], signature [`SIGNATURE`].
    fn remembering_alices_jwt() -> Recent {
        let recent = Recent::default();
        recent.remember(&jws(ALICE, SIGNATURE), &accepted(Duration::from_secs(60)));
        recent
    }

    const ALICE: &str = "eyJzdWIiOiJhbGljZSJ9";
    const SIGNATURE: &str = "c2lnbmF0dXJl";

    #[test]
    fn a_remembered_signature_under_another_payload_is_not_found() {
        let recent = remembering_alices_jwt();
        let mallory = "eyJzdWIiOiJtYWxsb3J5In0";
        assert!(recent.get_token(&jws(mallory, SIGNATURE)).is_none());
    }

    #[test]
    fn a_remembered_payload_under_another_signature_is_not_found() {
        let recent = remembering_alices_jwt();
        assert!(recent.get_token(&jws(ALICE, "Zm9yZ2VyeQ")).is_none());
    }

    #[test]
    fn a_jose_token_with_a_long_signed_part_is_kept_as_a_digest_only() {
        let recent = Recent::default();
        let token = jws(&"A".repeat(MAX_SIGNED), "c2lnbmF0dXJl");
        recent.remember(&token, &accepted(Duration::from_secs(60)));
        assert!(recent.get_token(&token).is_some());
        assert_eq!(recent.signed_bytes(), 0);
    }

    #[test]
    fn the_kept_signed_parts_stay_within_their_byte_bound() {
        let recent = Recent::default();
        let payload = "A".repeat(MAX_SIGNED - 100);
        let count = 2 * SIGNED_BYTES / payload.len();
        for n in 0..count {
            let token = jws(&payload, &format!("sig{n}"));
            recent.remember(&token, &accepted(Duration::from_secs(60)));
            assert!(recent.signed_bytes() <= SIGNED_BYTES);
            assert_eq!(
                recent.signed_bytes(),
                recent
                    .kept
                    .borrow()
                    .entries
                    .values()
                    .map(|e| e.signed.len())
                    .sum::<usize>()
            );
        }
        assert!(
            recent
                .get_token(&jws(&payload, &format!("sig{}", count - 1)))
                .is_some()
        );
    }

    #[test]
    fn remembering_a_token_again_keeps_one_entry_and_counts_its_bytes_once() {
        let recent = Recent::default();
        let token = jws(ALICE, SIGNATURE);
        recent.remember(&token, &accepted(Duration::from_secs(60)));
        recent.remember(&token, &accepted(Duration::from_secs(60)));
        assert_eq!(recent.len(), 1);
        assert_eq!(recent.signed_bytes(), token.rfind('.').unwrap());
    }

    #[test]
    fn an_opaque_token_and_a_jwt_ending_in_it_are_two_tokens() {
        let recent = Recent::default();
        let jwt = jws(ALICE, SIGNATURE);
        recent.remember(SIGNATURE, &verdict(Duration::from_secs(60)));
        assert!(recent.get_token(&jwt).is_none());
        let recent = Recent::default();
        recent.remember(&jwt, &accepted(Duration::from_secs(60)));
        assert!(recent.get_token(SIGNATURE).is_none());
    }

    #[test]
    fn a_refused_jwt_is_left_to_the_shared_cache() {
        let recent = Recent::default();
        let jwt = jws(ALICE, SIGNATURE);
        recent.remember(&jwt, &verdict(Duration::from_secs(60)));
        assert_eq!(recent.len(), 0);
        assert_eq!(recent.signed_bytes(), 0);
    }

    #[test]
    fn the_shared_key_of_a_lookup_is_the_whole_tokens_digest() {
        let jwt = jws(ALICE, SIGNATURE);
        assert_eq!(Lookup::of(&jwt).token_key(&jwt), token_key(&jwt));
        assert_eq!(
            Lookup::of("opaque").token_key("opaque"),
            token_key("opaque")
        );
    }
}
