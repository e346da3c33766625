//! Counters and histograms of the per-request metrics, split into stripes: each thread
//! adds to a stripe of its own (by its first use, round the stripes), a scrape sums them.
//!
//! prometheus-client's `Counter` is one atomic and its `Histogram` one lock, which every
//! worker writes at every request: on two cores perf put `Metrics::request` at 2.2 % of the
//! server's CPU, mostly waiting for the cache line the other worker had just written. A
//! stripe is a cache line (a histogram's, three) that one thread writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Stripes a metric is split into; threads beyond this share them.
const STRIPES: usize = 8;

/// Bounds a [`StripedHistogram`] may have (besides `+Inf`).
pub(crate) const MAX_BOUNDS: usize = 15;

/// This thread's stripe.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
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
        if let Some(cell) = self.0.get(stripe()) {
            cell.0.fetch_add(1, Ordering::Relaxed);
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
        let Some(part) = self.parts.get(stripe()) else {
            return;
        };
        let part = &part.0;
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = part.buckets.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        part.count.fetch_add(1, Ordering::Relaxed);
        // Another thread shares this stripe only beyond `STRIPES` threads: the loop
        // nearly always goes round once.
        let _ = part
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
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
        std::thread::scope(|scope| {
            for _ in 0..STRIPES + 3 {
                scope.spawn(|| (0..1000).for_each(|_| counter.inc()));
            }
        });
        assert_eq!(counter.get(), 1000 * (STRIPES as u64 + 3));
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
