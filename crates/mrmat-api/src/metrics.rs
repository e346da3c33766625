//! Prometheus metrics: requests by route template, method and status with a latency
//! histogram; introspection calls, cache hits and misses, provider latency and errors;
//! database pool size, in use and wait time; build info. Labels come from closed sets
//! (route templates, never raw paths; methods; statuses), so the number of series stays
//! bounded whatever clients send.

mod striped;

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::web;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use striped::{StripedCounter, StripedHistogram};

/// The route template a request matched, as the OpenAPI document writes it: set on each
/// route as its data, read back when the request is answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteName(pub(crate) &'static str);

/// The route label of a request that matched no route.
pub(crate) const UNMATCHED: &str = "unmatched";

/// An HTTP method, as a label. The variants are the label values, written as HTTP writes
/// methods.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum HttpMethod {
    GET,
    HEAD,
    POST,
    PUT,
    DELETE,
    OTHER,
}

impl From<&Method> for HttpMethod {
    fn from(method: &Method) -> Self {
        match *method {
            Method::GET => Self::GET,
            Method::HEAD => Self::HEAD,
            Method::POST => Self::POST,
            Method::PUT => Self::PUT,
            Method::DELETE => Self::DELETE,
            _ => Self::OTHER,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: HttpMethod,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: HttpMethod,
}

/// How an introspection call ended. The variants are the label values.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Outcome {
    /// An active access token.
    active,
    /// Inactive, or not a usable access token.
    inactive,
    /// The provider could not be asked or refused the server.
    error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

/// Whose allowance a rate-limited request spent. The variants are the label values.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum LimitKey {
    /// Its client address.
    address,
    /// The issuer and subject of its token.
    subject,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    key: LimitKey,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum PoolState {
    idle,
    in_use,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: PoolState,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric of the server, and the registry that writes them out.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, StripedCounter>,
    durations: Family<RouteLabels, StripedHistogram, fn() -> StripedHistogram>,
    introspections: Family<OutcomeLabels, Counter>,
    introspection_duration: Histogram,
    cache_hits: StripedCounter,
    cache_misses: StripedCounter,
    pool: Family<PoolLabels, Gauge>,
    pool_wait: Histogram,
    rate_limited: Family<LimitLabels, Counter>,
}

/// Latency buckets, 0.25 ms to 10 s: a warm request takes a fraction of a millisecond,
/// the database and provider bounds are seconds.
const LATENCY_BOUNDS: [f64; striped::MAX_BOUNDS] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BOUNDS)
}

fn striped_latency_histogram() -> StripedHistogram {
    StripedHistogram::new(&LATENCY_BOUNDS)
}

impl Metrics {
    /// A registry with every metric at zero.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("mrmat_api");
        let requests = Family::<RequestLabels, StripedCounter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let durations =
            Family::<RouteLabels, StripedHistogram, fn() -> StripedHistogram>::new_with_constructor(
                striped_latency_histogram as fn() -> StripedHistogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "Time from the request's arrival to its answer, by route template and method",
            durations.clone(),
        );
        let introspections = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "introspection_requests",
            "Token introspection calls to the identity provider, by outcome",
            introspections.clone(),
        );
        let introspection_duration = latency_histogram();
        registry.register(
            "introspection_duration_seconds",
            "Time of each introspection call to the identity provider",
            introspection_duration.clone(),
        );
        let cache_hits = StripedCounter::default();
        registry.register(
            "introspection_cache_hits",
            "Bearer tokens judged from the introspection cache",
            cache_hits.clone(),
        );
        let cache_misses = StripedCounter::default();
        registry.register(
            "introspection_cache_misses",
            "Bearer tokens not in the cache: introspected, or JWTs checked against the keys",
            cache_misses.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections, by state",
            pool.clone(),
        );
        let pool_wait = latency_histogram();
        registry.register(
            "db_pool_wait_seconds",
            "Time a request waited for a pooled database connection",
            pool_wait.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by --rate-limit, by the key whose allowance ran out",
            rate_limited.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The running build", build);
        Self {
            registry,
            requests,
            durations,
            introspections,
            introspection_duration,
            cache_hits,
            cache_misses,
            pool,
            pool_wait,
            rate_limited,
        }
    }

    /// A request refused by the rate limit.
    pub(crate) fn rate_limited(&self, key: LimitKey) {
        self.rate_limited.get_or_create(&LimitLabels { key }).inc();
    }

    /// The counter and the histogram of one route, method and status.
    fn series(
        &self,
        route: &'static str,
        method: HttpMethod,
        status: u16,
    ) -> (StripedCounter, StripedHistogram) {
        let count = self
            .requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .clone();
        let durations = self
            .durations
            .get_or_create(&RouteLabels { route, method })
            .clone();
        (count, durations)
    }

    /// One introspection call.
    pub(crate) fn introspection(&self, outcome: Outcome, took: Duration) {
        self.introspections
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
        self.introspection_duration.observe(took.as_secs_f64());
    }

    /// A token judged from the cache (`true`) or by the provider.
    pub(crate) fn cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// A wait for a pooled connection.
    pub(crate) fn pool_wait(&self, waited: Duration) {
        self.pool_wait.observe(waited.as_secs_f64());
    }

    /// The text exposition, with the pool's current `connections` and `idle`.
    pub(crate) fn render(&self, connections: u32, idle: u32) -> Result<String, std::fmt::Error> {
        self.pool
            .get_or_create(&PoolLabels {
                state: PoolState::idle,
            })
            .set(i64::from(idle));
        self.pool
            .get_or_create(&PoolLabels {
                state: PoolState::in_use,
            })
            .set(i64::from(connections.saturating_sub(idle)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A worker's handle on the shared [`Metrics`], which the request layer clones at every
/// request: an `Rc`, so the clone touches nothing another worker does (a `web::Data` clone
/// counts on the one reference count all workers share). It keeps the series of the
/// requests it counted, so a request looks nothing up in the shared families (a lock
/// every worker takes, and SipHash on the labels).
#[derive(Clone)]
pub(crate) struct WorkerMetrics(Rc<Worker>);

struct Worker {
    shared: web::Data<Metrics>,
    series: RefCell<
        HashMap<SeriesKey, (StripedCounter, StripedHistogram), BuildHasherDefault<LabelHasher>>,
    >,
}

/// A route template (by its address: each is one `&'static str` of the route table), a
/// method and a status.
type SeriesKey = (usize, HttpMethod, u16);

impl WorkerMetrics {
    /// The handle of one worker.
    pub(crate) fn new(metrics: &web::Data<Metrics>) -> Self {
        Self(Rc::new(Worker {
            shared: metrics.clone(),
            series: RefCell::default(),
        }))
    }

    /// One answered request.
    pub(crate) fn request(
        &self,
        route: &'static str,
        method: &Method,
        status: u16,
        took: Duration,
    ) {
        let method = HttpMethod::from(method);
        let key = (route.as_ptr() as usize, method, status);
        let mut series = self.0.series.borrow_mut();
        let (count, durations) = series
            .entry(key)
            .or_insert_with(|| self.0.shared.series(route, method, status));
        count.inc();
        durations.observe(took.as_secs_f64());
    }
}

impl std::ops::Deref for WorkerMetrics {
    type Target = Metrics;

    fn deref(&self) -> &Metrics {
        &self.0.shared
    }
}

/// The labels of a series come from closed sets (the route table, six methods, the
/// statuses the server answers), not from clients: a multiply-and-add hash is enough.
#[derive(Default)]
struct LabelHasher(u64);

impl Hasher for LabelHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_u16(&mut self, value: u16) {
        self.write_u64(u64::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_template_method_and_status() {
        let metrics = web::Data::new(Metrics::new());
        let worker = WorkerMetrics::new(&metrics);
        for _ in 0..2 {
            worker.request(
                "/api/resource/v1/{id}",
                &Method::GET,
                200,
                Duration::from_millis(2),
            );
        }
        let text = metrics.render(3, 1).unwrap();
        assert!(
            text.contains(
                r#"mrmat_api_http_requests_total{route="/api/resource/v1/{id}",method="GET",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"mrmat_api_db_pool_connections{state="in_use"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"mrmat_api_build_info{version=""#), "{text}");
    }
}
