//! Rate limits (`--rate-limit N/s` or `N/min`): GCRA, the generic cell rate algorithm, on
//! one key per caller, with a burst of N (one window's worth).
//!
//! **Which key.** A request whose bearer (or DPoP) token is valid counts against its
//! holder: issuer and subject, so many users behind one address (an office, a carrier's
//! NAT, a corporate proxy) each have their own allowance, and one user spread over many
//! addresses has one. Every other request (no token, an invalid or expired one, a
//! provider that cannot tell) counts against its client address, as the trusted proxies
//! report it (`forwarded`), IPv6 by its /64 (one host holds a whole /64). A made-up
//! token cannot escape its address's allowance: it is not valid. The token is judged by
//! the same cache the handlers use, so the handler's check that follows is a cache hit.
//!
//! **Not limited.** `/healthz*` and `/metrics` (probes and scrapers come from a few
//! addresses, often the node's, and must never be told to wait), and CORS preflights
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`: a constant answer, and
//! browsers cache it for `Access-Control-Max-Age`).
//!
//! **Answer.** Over the limit: 429 problem+json with `Retry-After` (whole seconds until
//! the next request is allowed) and, on every limited answer, the `RateLimit-Policy` and
//! `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers-10: `RateLimit-Policy:
//! "default";q=N;w=W` (N requests per W seconds) and `RateLimit: "default";r=R;t=T` (R
//! requests left; T seconds until the allowance is whole again, or on a 429 until the
//! next request is allowed, equal to `Retry-After`).
//!
//! **Memory.** The states live in a table of at most [`MAX_KEYS`] keys, plus those the
//! workers hold (at most [`HELD`] each: a worker keeps the states it used lately, and
//! such a state is never forgotten while it does). Room is made by
//! forgetting callers idle for a window (their allowance is whole anyway, so forgetting
//! them changes nothing), and under a flood of distinct addresses all mid-window, by
//! dropping one at random: an evicted caller starts again with a whole allowance, the
//! price of the bound.
//!
//! **Several instances.** Each instance counts on its own: behind a balancer the
//! effective limit is N times the replicas.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};
use bytes::BytesMut;
use mrmat_api_types::Problem;
use mrmat_api_types::problem::PROBLEM_JSON;

use crate::auth::{Issuers, Recall, Recent};
use crate::forwarded::{Client, TrustedProxies};
use crate::metrics::{LimitKey, Metrics};
use crate::settings::RateLimit;

/// Most caller states kept at once (about 100 bytes each).
pub(crate) const MAX_KEYS: usize = 100_000;

/// The `RateLimit` field.
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The `RateLimit-Policy` field.
pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The algorithm: one `u64` of state a key, its theoretical arrival time (TAT) in
/// nanoseconds since the limiter's epoch. A request is allowed when moving the TAT on by
/// one interval leaves it no further than `burst` intervals ahead of now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gcra {
    /// Nanoseconds between requests at the sustained rate.
    interval: u64,
    /// How far ahead of now the TAT may be: burst × interval.
    tolerance: u64,
}

/// What the algorithm says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Allowed; `remaining` more could come now; the allowance is whole again after
    /// `reset` nanoseconds.
    Allowed { remaining: u64, reset: u64 },
    /// Refused; the next is allowed after `retry_after` nanoseconds.
    Refused { retry_after: u64 },
}

impl Gcra {
    /// `limit.requests` a `limit.period`, with a burst of as many.
    pub(crate) fn new(limit: RateLimit) -> Self {
        let period = u64::try_from(limit.period.as_nanos()).unwrap_or(u64::MAX);
        let interval = (period / u64::from(limit.requests.max(1))).max(1);
        Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(limit.requests.max(1))),
        }
    }

    /// Judges a request at `now` against the state `tat`, and moves the state on when it
    /// is allowed. Lock-free: concurrent requests of one key retry the compare-and-swap.
    pub(crate) fn check(&self, tat: &AtomicU64, now: u64) -> Decision {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let next = current.max(now).saturating_add(self.interval);
            let limit = now.saturating_add(self.tolerance);
            if next > limit {
                return Decision::Refused {
                    retry_after: next - limit,
                };
            }
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Decision::Allowed {
                        remaining: (limit - next) / self.interval,
                        reset: next - now,
                    };
                }
                Err(actual) => current = actual,
            }
        }
    }
}

/// Whose allowance a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A client address (IPv6: its /64).
    Addr(IpAddr),
    /// What a trusted proxy called the client, or `unix` on the socket.
    Named(Arc<str>),
    /// The holder of a valid token: issuer and subject.
    Subject(Arc<str>, Arc<str>),
}

/// Shards of the state table, each under a lock of its own, so workers rarely wait on
/// one another.
const SHARDS: usize = 16;

/// The callers' states (GCRA's theoretical arrival time, in nanoseconds since the
/// limiter's epoch), at most [`MAX_KEYS`] of them. A plain map per shard under a lock:
/// measured with callgrind, a lookup in moka's cache cost about 900 instructions a request
/// (hashing, its concurrent table and the recency bookkeeping behind its eviction), a
/// fifth of what the limit costs in all; this costs about a third of that.
///
/// Forgetting is lossless here: a state whose arrival time has passed has its whole
/// allowance again, the same as a caller never seen. So a full shard first forgets
/// those (at most once a window, so a flood of new callers does not make every request
/// sweep it), and only when every caller in it is mid-window drops one at random, which
/// starts again with a whole allowance: the price of the bound.
#[derive(Debug)]
struct States {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    per_shard: usize,
}

/// The states of one shard, by the keyed hash of their [`Key`]: hashed once per request,
/// not once for the shard and again for the map. Two callers whose 64-bit keyed hashes
/// collide would share an allowance; with a secret per-process key, nobody can aim for
/// that, and by chance it takes billions of callers.
#[derive(Debug, Default)]
struct Shard {
    states: HashMap<u64, Arc<AtomicU64>, BuildHasherDefault<Prehashed>>,
    /// When it was last swept of whole allowances.
    swept_at: u64,
}

/// A hasher for keys that are hashes already.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; any other write still hashes something.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

impl States {
    fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// The state of the caller whose key hashes to `hash`, made if new; `window` is how
    /// long a swept shard stays unswept.
    ///
    /// A state a worker holds (see [`Held`]) is never forgotten here: its allowance is
    /// counted in one place, whichever worker answers. So the table may pass its bound by
    /// what the workers hold, at most [`HELD`] each.
    fn state(&self, hash: u64, now: u64, window: u64) -> Arc<AtomicU64> {
        let index = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(index) else {
            return Arc::default();
        };
        // A panic while holding it cannot leave a state half-written: each is one atomic.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = shard.states.get(&hash) {
            return Arc::clone(state);
        }
        let unheld = |state: &Arc<AtomicU64>| Arc::strong_count(state) == 1;
        if shard.states.len() >= self.per_shard {
            if now.saturating_sub(shard.swept_at) >= window {
                shard
                    .states
                    .retain(|_, tat| !unheld(tat) || tat.load(Ordering::Acquire) > now);
                shard.swept_at = now;
            }
            if shard.states.len() >= self.per_shard
                && let Some(victim) = shard
                    .states
                    .iter()
                    .find_map(|(hash, state)| unheld(state).then_some(*hash))
            {
                shard.states.remove(&victim);
            }
        }
        Arc::clone(shard.states.entry(hash).or_default())
    }

    /// How many callers are tracked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.states.len()))
            .sum()
    }
}

/// The most states a worker holds at once ([`Held`]); beyond, it lets go of them all.
const HELD: usize = 4096;

/// The states a worker found in the shared table lately, by the hash of their key: a
/// request of a caller seen lately takes no lock. Both workers took the lock of one
/// shard at every request of the same caller, a cache line they took from each other:
/// the lock and its map were a third of what a rate limit cost (perf). The state itself
/// is still one atomic both update.
type Held = RefCell<HashMap<u64, Arc<AtomicU64>, BuildHasherDefault<Prehashed>>>;

/// What every worker's [`RateLimiter`] shares: the algorithm, the states and the
/// constant header.
#[derive(Debug, Clone)]
pub(crate) struct SharedLimit {
    gcra: Gcra,
    states: Arc<States>,
    epoch: Instant,
    policy: HeaderValue,
}

/// The limiter of one worker: the shared limit, the states this worker holds, and a
/// `RateLimit-Policy` value of its own ([`SharedLimit::for_worker`]).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    shared: SharedLimit,
    held: Held,
}

impl std::ops::Deref for RateLimiter {
    type Target = SharedLimit;

    fn deref(&self) -> &SharedLimit {
        &self.shared
    }
}

impl RateLimiter {
    /// A limiter of `limit`, for one worker.
    #[cfg(test)]
    pub(crate) fn new(limit: RateLimit) -> Self {
        SharedLimit::new(limit).for_worker()
    }

    fn check(&self, key: Key) -> Decision {
        let now = self.now();
        let hash = self.states.hasher.hash_one(&key);
        let mut held = self.held.borrow_mut();
        if let Some(state) = held.get(&hash) {
            return self.gcra.check(state, now);
        }
        if held.len() >= HELD {
            held.clear();
        }
        let state = self.states.state(hash, now, self.gcra.tolerance);
        let decision = self.gcra.check(&state, now);
        held.insert(hash, state);
        decision
    }
}

impl SharedLimit {
    /// The limit `limit`, shared by every worker.
    pub(crate) fn new(limit: RateLimit) -> Self {
        let window = limit.period.as_secs().max(1);
        let policy = HeaderValue::from_str(&format!("\"default\";q={};w={window}", limit.requests))
            .unwrap_or_else(|_| HeaderValue::from_static("\"default\""));
        Self {
            gcra: Gcra::new(limit),
            states: Arc::new(States::new(MAX_KEYS)),
            epoch: Instant::now(),
            policy,
        }
    }

    /// The limiter of one worker: the same states, and a `RateLimit-Policy` value of its
    /// own. Every allowed answer clones that value, and a clone of one value all workers
    /// share counts on a reference count they take from each other's caches.
    pub(crate) fn for_worker(&self) -> RateLimiter {
        RateLimiter {
            shared: Self {
                policy: HeaderValue::from_bytes(self.policy.as_bytes())
                    .unwrap_or_else(|_| self.policy.clone()),
                ..self.clone()
            },
            held: RefCell::default(),
        }
    }

    fn now(&self) -> u64 {
        // Never 0, the state of a key never seen.
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }
}

/// How much room a worker's buffer of `RateLimit` values takes at a time.
const VALUE_CHUNK: usize = 4096;

thread_local! {
    /// The `RateLimit` values of this worker, written one after the other into shared
    /// chunks: a value is a slice of a chunk, and a chunk is one allocation for about a
    /// hundred answers instead of one each.
    static VALUES: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `"default";r=<remaining>;t=<seconds>`, the `RateLimit` value of an allowed request:
/// written with `itoa` (`format!` cost a twentieth of a greeting) into this worker's
/// chunk.
fn ratelimit_value(remaining: u64, reset_seconds: u64) -> HeaderValue {
    let mut remaining_text = itoa::Buffer::new();
    let mut reset_text = itoa::Buffer::new();
    let value = VALUES.with_borrow_mut(|chunk| {
        if chunk.capacity() < 64 {
            chunk.reserve(VALUE_CHUNK);
        }
        chunk.extend_from_slice(b"\"default\";r=");
        chunk.extend_from_slice(remaining_text.format(remaining).as_bytes());
        chunk.extend_from_slice(b";t=");
        chunk.extend_from_slice(reset_text.format(reset_seconds).as_bytes());
        chunk.split().freeze()
    });
    // Digits and ASCII punctuation only: always a valid header value.
    HeaderValue::from_maybe_shared(value)
        .unwrap_or_else(|_| HeaderValue::from_static("\"default\""))
}

/// Whole seconds, rounded up.
fn seconds(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

/// Paths that are never limited: probes and scrapers.
fn exempt(path: &str) -> bool {
    path == "/healthz" || path.starts_with("/healthz/") || path == "/metrics" || path == "/metrics/"
}

/// A CORS preflight.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The token of `Authorization: Bearer|DPoP <token>`, if there is one such header.
fn token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    ((scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop"))
        && !token.is_empty())
    .then_some(token)
}

/// The address key: IPv4 as it is, IPv6 by its /64.
fn address_key(client: Client) -> Key {
    match client {
        Client::Addr(IpAddr::V6(v6)) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            Key::Addr(IpAddr::V6(bits.into()))
        }
        Client::Addr(addr) => Key::Addr(addr),
        Client::Named(name) => Key::Named(name.into()),
    }
}

/// Whose allowance `req` spends.
async fn key_of(req: &ServiceRequest) -> Key {
    if let (Some(token), Some(issuers)) =
        (token(req.headers()), req.app_data::<web::Data<Issuers>>())
    {
        let recent = req.app_data::<Recent>();
        let judged = match issuers.recall(recent, token) {
            Recall::Known(judged) => judged,
            // Boxed: the judging future is large, and held inline it made this
            // middleware's future (moved at every request, token or not) cost a tenth of
            // a greeting in copies alone.
            Recall::Unknown(key) => Box::pin(issuers.judge(recent, key, token)).await,
        };
        if let Ok(principal) = judged
            && principal.expires_at.is_none_or(|at| at > SystemTime::now())
        {
            return Key::Subject(principal.issuer.clone(), principal.subject.clone());
        }
    }
    let client = match req.app_data::<web::Data<TrustedProxies>>() {
        Some(proxies) => proxies.client_addr(req.request()),
        None => TrustedProxies::default().client_addr(req.request()),
    };
    address_key(client)
}

/// What the limit makes of one request.
#[derive(Debug)]
pub(crate) enum Admission {
    /// No limit applies (none configured, a probe, a preflight).
    Free,
    /// Allowed: the `RateLimit-Policy` and `RateLimit` values its answer carries.
    Allowed {
        policy: HeaderValue,
        state: HeaderValue,
    },
    /// Over the limit: the 429 to answer instead (boxed: an allowed request should not
    /// move a whole response around).
    Refused(Box<HttpResponse>),
}

impl Admission {
    /// Adds the `RateLimit` fields of an allowed request to its answer.
    pub(crate) fn label(self, headers: &mut HeaderMap) {
        if let Self::Allowed { policy, state } = self {
            headers.insert(RATELIMIT_POLICY, policy);
            headers.insert(RATELIMIT, state);
        }
    }
}

/// Spends `req`'s allowance, if a [`RateLimiter`] is registered and the path is limited.
pub(crate) async fn admit(req: &ServiceRequest) -> Admission {
    // Borrowed from the request, not cloned: see `RateLimiter::for_worker`.
    let limiter = match req.app_data::<web::Data<RateLimiter>>() {
        Some(limiter) if !exempt(req.path()) && !is_preflight(req.method(), req.headers()) => {
            limiter
        }
        _ => return Admission::Free,
    };
    let key = key_of(req).await;
    let kind = match key {
        Key::Subject(..) => LimitKey::subject,
        _ => LimitKey::address,
    };
    match limiter.check(key) {
        Decision::Allowed { remaining, reset } => Admission::Allowed {
            policy: limiter.policy.clone(),
            state: ratelimit_value(remaining, seconds(reset)),
        },
        Decision::Refused { retry_after } => {
            if let Some(metrics) = req.app_data::<web::Data<Metrics>>() {
                metrics.rate_limited(kind);
            }
            let wait = seconds(retry_after).max(1);
            let status = StatusCode::TOO_MANY_REQUESTS;
            let problem = Problem::new(
                status.as_u16(),
                status.canonical_reason().unwrap_or("Too Many Requests"),
                format!(
                    "more than {} requests; retry in {wait} s",
                    limiter_policy_text(limiter)
                ),
            );
            Admission::Refused(Box::new(
                HttpResponse::build(status)
                    .content_type(PROBLEM_JSON)
                    .insert_header((header::RETRY_AFTER, wait))
                    .insert_header((RATELIMIT_POLICY, limiter.policy.clone()))
                    .insert_header((RATELIMIT, format!("\"default\";r=0;t={wait}")))
                    .body(serde_json::to_string(&problem).unwrap_or_default()),
            ))
        }
    }
}

/// "N a second" or "N a minute", for the problem's detail.
fn limiter_policy_text(limiter: &RateLimiter) -> String {
    let per = limiter.gcra.tolerance / limiter.gcra.interval.max(1);
    if limiter.gcra.tolerance >= 60_000_000_000 {
        format!("{per} a minute")
    } else {
        format!("{per} a second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECOND: u64 = 1_000_000_000;

    fn gcra(text: &str) -> Gcra {
        Gcra::new(text.parse().unwrap())
    }

    #[test]
    fn rates_parse_and_bad_ones_are_refused() {
        let limit: RateLimit = "10/s".parse().unwrap();
        assert_eq!(limit.requests, 10);
        assert_eq!(limit.period, Duration::from_secs(1));
        let limit: RateLimit = " 600 / min ".parse().unwrap();
        assert_eq!((limit.requests, limit.period.as_secs()), (600, 60));
        assert_eq!(limit.to_string(), "600/min");
        for bad in [
            "",
            "10",
            "0/s",
            "-1/s",
            "1.5/s",
            "10/h",
            "10/",
            "/s",
            "x/s",
            "2000000000/s",
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_burst_of_n_then_refusals_until_an_interval_passes() {
        let gcra = gcra("5/s");
        let state = AtomicU64::new(0);
        let now = 10 * SECOND;
        for left in (0..5).rev() {
            match gcra.check(&state, now) {
                Decision::Allowed { remaining, .. } => assert_eq!(remaining, left),
                refused => panic!("{refused:?}"),
            }
        }
        assert_eq!(
            gcra.check(&state, now),
            Decision::Refused {
                retry_after: SECOND / 5
            }
        );
        // Refusals do not spend anything: the wait does not grow.
        assert_eq!(
            gcra.check(&state, now + SECOND / 10),
            Decision::Refused {
                retry_after: SECOND / 10
            }
        );
        assert!(matches!(
            gcra.check(&state, now + SECOND / 5),
            Decision::Allowed { remaining: 0, .. }
        ));
    }

    #[test]
    fn the_sustained_rate_is_n_a_period() {
        let gcra = gcra("10/s");
        let state = AtomicU64::new(0);
        let start = 100 * SECOND;
        let mut allowed = 0;
        // A request every millisecond for ten seconds: the burst, then ten a second.
        for ms in 0..10_000u64 {
            if matches!(
                gcra.check(&state, start + ms * 1_000_000),
                Decision::Allowed { .. }
            ) {
                allowed += 1;
            }
        }
        assert!((100..=110).contains(&allowed), "{allowed}");
    }

    #[test]
    fn an_idle_key_has_its_whole_allowance_again() {
        let gcra = gcra("3/min");
        let state = AtomicU64::new(0);
        for _ in 0..3 {
            assert!(matches!(
                gcra.check(&state, SECOND),
                Decision::Allowed { .. }
            ));
        }
        let Decision::Refused { retry_after } = gcra.check(&state, SECOND) else {
            panic!("a fourth at once is refused");
        };
        assert_eq!(retry_after, 20 * SECOND);
        assert_eq!(
            gcra.check(&state, 61 * SECOND),
            Decision::Allowed {
                remaining: 2,
                reset: 20 * SECOND
            }
        );
    }

    #[test]
    fn concurrent_requests_of_one_key_never_exceed_the_burst() {
        let gcra = gcra("1000/min");
        let state = Arc::new(AtomicU64::new(0));
        let allowed = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let state = state.clone();
                    scope.spawn(move || {
                        (0..1000)
                            .filter(|_| {
                                matches!(gcra.check(&state, SECOND), Decision::Allowed { .. })
                            })
                            .count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(allowed, 1000);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = address_key(Client::Addr("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = address_key(Client::Addr("2001:db8:1:2:bbbb::9".parse().unwrap()));
        let c = address_key(Client::Addr("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            address_key(Client::Addr("192.0.2.1".parse().unwrap())),
            Key::Addr("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn a_flood_of_addresses_stays_within_the_bound() {
        let limiter = RateLimiter::new("1/min".parse().unwrap());
        for i in 0..(MAX_KEYS as u32 + 20_000) {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(i));
            let _ = limiter.check(Key::Addr(addr));
        }
        assert!(
            limiter.states.len() <= MAX_KEYS + SHARDS + HELD,
            "{}",
            limiter.states.len()
        );
    }

    #[test]
    fn the_workers_spend_one_allowance_of_a_caller() {
        let shared = SharedLimit::new("3/min".parse().unwrap());
        let (a, b) = (shared.for_worker(), shared.for_worker());
        let caller = || Key::Addr(IpAddr::from([10, 0, 0, 1]));
        for worker in [&a, &b, &a] {
            assert!(matches!(worker.check(caller()), Decision::Allowed { .. }));
        }
        assert!(matches!(b.check(caller()), Decision::Refused { .. }));
        assert!(matches!(a.check(caller()), Decision::Refused { .. }));
    }

    #[test]
    fn a_state_a_worker_holds_outlives_a_flood_of_other_callers() {
        let shared = SharedLimit::new("1/min".parse().unwrap());
        let (a, b) = (shared.for_worker(), shared.for_worker());
        let caller = || Key::Addr(IpAddr::from([10, 0, 0, 1]));
        assert!(matches!(a.check(caller()), Decision::Allowed { .. }));
        for i in 0..(MAX_KEYS as u32 + 20_000) {
            let _ = b.check(Key::Addr(IpAddr::V4(std::net::Ipv4Addr::from(i))));
        }
        // Had the table forgotten it, the other worker would start the caller afresh.
        assert!(matches!(b.check(caller()), Decision::Refused { .. }));
    }

    #[test]
    fn only_bearer_and_dpop_tokens_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(token(&headers), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("dpop  xyz "),
        );
        assert_eq!(token(&headers), Some("xyz"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(token(&headers), None);
    }

    #[test]
    fn probes_and_scrapes_are_exempt() {
        for path in ["/healthz", "/healthz/", "/healthz/ready", "/metrics"] {
            assert!(exempt(path), "{path}");
        }
        for path in ["/healthzx", "/api/greeting/v1/", "/metricsx"] {
            assert!(!exempt(path), "{path}");
        }
    }
}
