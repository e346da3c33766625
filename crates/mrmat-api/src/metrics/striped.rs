//! Counters and histograms of the per-request metrics, split into stripes: each thread
//! adds to a stripe of its own (by its first use, round the stripes), a scrape sums them.
//!
//! prometheus-client's `Counter` is one atomic and its `Histogram` one lock, which every
//! worker writes at every request: on two cores perf put `Metrics::request` at 2.2 % of the
//! server's CPU, mostly waiting for the cache line the other worker had just written. A
//! stripe is a cache line (a histogram's, three) that one thread writes.
//!
//! The first [`OWNED`] threads each own a stripe: only that thread writes it, so it adds
//! with a plain load and store, not a locked read-modify-write (four a request, which
//! wait for every store before them; perf put them at about 60 ns of greeting v1's
//! request). Later threads share the other stripes and add atomically.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Stripes a thread owns alone: the first this many threads to write a metric.
const OWNED: usize = 8;

/// Stripes a metric is split into: the owned ones, then as many that later threads share.
const STRIPES: usize = 2 * OWNED;

/// Bounds a [`StripedHistogram`] may have (besides `+Inf`).
pub(crate) const MAX_BOUNDS: usize = 15;

/// A thread's stripe, and whether the thread owns it.
#[derive(Debug, Clone, Copy)]
struct Stripe {
    index: usize,
    owned: bool,
}

impl Stripe {
    /// The stripe of the thread that is the `n`th (from 0) to write a metric.
    fn of_thread(n: usize) -> Self {
        if n < OWNED {
            Self {
                index: n,
                owned: true,
            }
        } else {
            Self {
                index: OWNED + n % (STRIPES - OWNED),
                owned: false,
            }
        }
    }

    /// Adds `n` to `cell` of this stripe.
    fn add(self, cell: &AtomicU64, n: u64) {
        if self.owned {
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Replaces the value of `cell` of this stripe with `f` of it.
    fn update(self, cell: &AtomicU64, f: impl Fn(u64) -> u64) {
        if self.owned {
            // No other thread writes this cell: a scrape reads it whole all the same.
            cell.store(f(cell.load(Ordering::Relaxed)), Ordering::Relaxed);
        } else {
            let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| Some(f(value)));
        }
    }
}

/// This thread's stripe.
fn stripe() -> Stripe {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Saturating: a count that wrapped would hand an owned stripe out twice.
        static STRIPE: Stripe = Stripe::of_thread(
            NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_add(1)))
                .unwrap_or(usize::MAX),
        );
    }
    STRIPE.with(|stripe| *stripe)
}

/// One cache line (with the adjacent line some cores fetch with it) to itself.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A counter.
#[derive(Debug, Clone, Default)]
pub(crate) struct StripedCounter(Arc<[Padded<AtomicU64>; STRIPES]>);

impl StripedCounter {
    /// Adds one.
    pub(crate) fn inc(&self) {
        let stripe = stripe();
        if let Some(cell) = self.0.get(stripe.index) {
            stripe.add(&cell.0, 1);
        }
    }

    /// The sum of the stripes.
    pub(crate) fn get(&self) -> u64 {
        self.0
            .iter()
            .map(|cell| cell.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl TypedMetric for StripedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for StripedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// One thread's part of a histogram: the sum (as `f64` bits), the count, each bucket's
/// count (the last is `+Inf`).
#[derive(Debug, Default)]
struct Part {
    sum: AtomicU64,
    count: AtomicU64,
    buckets: [AtomicU64; MAX_BOUNDS + 1],
}

/// A histogram of fixed bounds.
#[derive(Debug, Clone)]
pub(crate) struct StripedHistogram {
    bounds: Arc<[f64]>,
    parts: Arc<[Padded<Part>; STRIPES]>,
}

impl StripedHistogram {
    /// A histogram of `bounds` (ascending; at most [`MAX_BOUNDS`] of them are used).
    pub(crate) fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.iter().copied().take(MAX_BOUNDS).collect(),
            parts: Arc::default(),
        }
    }

    /// Counts `value`.
    pub(crate) fn observe(&self, value: f64) {
        let stripe = stripe();
        let Some(part) = self.parts.get(stripe.index) else {
            return;
        };
        let part = &part.0;
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = part.buckets.get(bucket) {
            stripe.add(count, 1);
        }
        stripe.add(&part.count, 1);
        stripe.update(&part.sum, |bits| (f64::from_bits(bits) + value).to_bits());
    }

    /// The sum, the count and each bucket's own count (not cumulative), `+Inf` last.
    pub(crate) fn get(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut sum = 0.0;
        let mut count = 0u64;
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .map(|bound| (bound, 0))
            .collect();
        for part in self.parts.iter() {
            let part = &part.0;
            sum += f64::from_bits(part.sum.load(Ordering::Relaxed));
            count = count.wrapping_add(part.count.load(Ordering::Relaxed));
            for ((_, total), counted) in buckets.iter_mut().zip(&part.buckets) {
                *total = total.wrapping_add(counted.load(Ordering::Relaxed));
            }
        }
        (sum, count, buckets)
    }
}

impl TypedMetric for StripedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for StripedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.get();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn a_counter_sums_what_every_thread_added() {
        let counter = StripedCounter::default();
        at_once(STRIPES + 3, |_| (0..1000).for_each(|_| counter.inc()));
        assert_eq!(counter.get(), 1000 * (STRIPES as u64 + 3));
    }

    #[test]
    fn the_first_threads_own_a_stripe_each_and_later_ones_share_the_rest() {
        let stripes: Vec<Stripe> = (0..3 * STRIPES).map(Stripe::of_thread).collect();
        let (owned, shared): (Vec<Stripe>, Vec<Stripe>) = stripes.iter().partition(|s| s.owned);
        let owned: Vec<usize> = owned.iter().map(|s| s.index).collect();
        assert_eq!(owned, (0..OWNED).collect::<Vec<_>>());
        assert!(shared.iter().all(|s| (OWNED..STRIPES).contains(&s.index)));
    }

    /// Runs `write` on `threads` threads released at once, so that threads writing one
    /// cell write it at the same time.
    fn at_once(threads: usize, write: impl Fn(usize) + Sync) {
        let start = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let (start, write) = (&start, &write);
                scope.spawn(move || {
                    start.wait();
                    write(thread);
                });
            }
        });
    }

    #[test]
    fn owned_and_shared_stripes_keep_every_addition_of_threads_adding_at_once() {
        const EACH: u64 = 1_000_000;
        let cells: [AtomicU64; STRIPES] = Default::default();
        // Each owned stripe written by its one thread; one shared stripe by eight.
        let shared = Stripe::of_thread(OWNED);
        at_once(2 * OWNED, |thread| {
            let stripe = if thread < OWNED {
                Stripe::of_thread(thread)
            } else {
                shared
            };
            for _ in 0..EACH {
                stripe.add(&cells[stripe.index], 1);
            }
        });
        for (index, cell) in cells.iter().enumerate() {
            let expected = match index {
                i if i < OWNED => EACH,
                i if i == shared.index => EACH * OWNED as u64,
                _ => 0,
            };
            assert_eq!(cell.load(Ordering::Relaxed), expected, "stripe {index}");
        }
    }

    #[test]
    fn a_histogram_counts_every_value_of_threads_observing_at_once() {
        const THREADS: usize = 2 * STRIPES;
        const EACH: u64 = 20_000;
        let histogram = StripedHistogram::new(&[1.0]);
        at_once(THREADS, |_| {
            for _ in 0..EACH {
                histogram.observe(0.5);
                histogram.observe(2.0);
            }
        });
        let values = EACH * THREADS as u64;
        let (sum, count, buckets) = histogram.get();
        assert_eq!(count, 2 * values);
        assert_eq!(sum, 2.5 * values as f64);
        assert_eq!(buckets, vec![(1.0, values), (f64::MAX, values)]);
    }

    #[test]
    fn a_histogram_is_written_as_prometheus_clients_own() {
        let bounds = [0.001, 0.01, 0.1];
        let ours = StripedHistogram::new(&bounds);
        let theirs = Histogram::new(bounds);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (ours, theirs) = (&ours, &theirs);
                scope.spawn(move || {
                    // Binary fractions: their sums are exact in any order.
                    for value in [
                        0.000_488_281_25,
                        0.000_976_562_5,
                        0.0625,
                        0.5,
                        7.0 + f64::from(thread),
                    ] {
                        ours.observe(value);
                        theirs.observe(value);
                    }
                });
            }
        });
        let (mut a, mut b) = (Registry::default(), Registry::default());
        a.register("latency", "Latency", ours);
        b.register("latency", "Latency", theirs);
        assert_eq!(text(&a), text(&b));
    }

    #[test]
    fn a_counter_is_written_as_prometheus_clients_own() {
        let ours = StripedCounter::default();
        let theirs = prometheus_client::metrics::counter::Counter::<u64>::default();
        for _ in 0..3 {
            ours.inc();
            theirs.inc();
        }
        let (mut a, mut b) = (Registry::default(), Registry::default());
        a.register("calls", "Calls", ours);
        b.register("calls", "Calls", theirs);
        assert_eq!(text(&a), text(&b));
    }
}
