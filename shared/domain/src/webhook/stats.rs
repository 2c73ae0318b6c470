//! Delivery statistics of an endpoint over a recent window.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::validation::UnknownVariant;

/// How far back statistics look: `1h`, `24h` or `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StatsWindow {
    #[serde(rename = "1h")]
    Hour,
    #[default]
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl StatsWindow {
    pub const ALL: [StatsWindow; 3] = [StatsWindow::Hour, StatsWindow::Day, StatsWindow::Week];

    pub fn as_str(self) -> &'static str {
        match self {
            StatsWindow::Hour => "1h",
            StatsWindow::Day => "24h",
            StatsWindow::Week => "7d",
        }
    }

    pub fn duration(self) -> chrono::Duration {
        match self {
            StatsWindow::Hour => chrono::Duration::hours(1),
            StatsWindow::Day => chrono::Duration::hours(24),
            StatsWindow::Week => chrono::Duration::days(7),
        }
    }
}

impl fmt::Display for StatsWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StatsWindow {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownVariant::new("stats window", s))
    }
}

/// One logged attempt, as far as statistics care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptSample {
    /// `None` when no HTTP answer came (timeout, network, blocked).
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub succeeded: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryStats {
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// `succeeded / attempts`, between 0 and 1; `None` without attempts.
    pub success_rate: Option<f64>,
    pub latency_ms: Latency,
    pub by_status_class: StatusClasses,
}

/// Nearest-rank percentiles of attempt durations, failed attempts (and
/// timeouts, at the endpoint's timeout) included; `None` without attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Latency {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub p99: Option<u64>,
}

/// Attempts by answer. A status outside 200–599, which no sane server
/// sends as a final answer, counts as `no_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StatusClasses {
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    pub no_response: u64,
}

pub fn summarize(samples: &[AttemptSample]) -> DeliveryStats {
    let attempts = samples.len() as u64;
    let succeeded = samples.iter().filter(|s| s.succeeded).count() as u64;
    let mut classes = StatusClasses::default();
    for sample in samples {
        *classes.of_status(sample.status) += 1;
    }
    let mut durations: Vec<u64> = samples.iter().map(|s| s.duration_ms).collect();
    durations.sort_unstable();
    DeliveryStats {
        attempts,
        succeeded,
        failed: attempts - succeeded,
        success_rate: (attempts > 0).then(|| succeeded as f64 / attempts as f64),
        latency_ms: Latency {
            p50: nearest_rank(&durations, 50),
            p95: nearest_rank(&durations, 95),
            p99: nearest_rank(&durations, 99),
        },
        by_status_class: classes,
    }
}

/// The smallest value with at least `percent` % of `sorted` at or below it.
fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Upper bounds, in ms, of the latency histogram's buckets. An attempt
/// lasts at most the longest endpoint timeout (300 s), so the last bucket
/// also holds the few milliseconds of overhead beyond it.
pub const LATENCY_BUCKETS_MS: [u64; 24] = [
    5, 10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500,
    10_000, 15_000, 20_000, 30_000, 60_000, 120_000, 300_000,
];

/// The histogram bucket of a duration.
pub fn latency_bucket(duration_ms: u64) -> usize {
    LATENCY_BUCKETS_MS
        .iter()
        .position(|&bound| duration_ms <= bound)
        .unwrap_or(LATENCY_BUCKETS_MS.len() - 1)
}

/// Counters of an endpoint's attempts over a period (an hour as stored):
/// exact counts, and latencies as a histogram over [`LATENCY_BUCKETS_MS`].
/// Summed, they give the statistics of any run of hours without reading
/// the attempts themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollup {
    pub attempts: u64,
    pub succeeded: u64,
    pub classes: StatusClasses,
    /// Attempts per bucket of [`LATENCY_BUCKETS_MS`].
    pub latency: [u64; LATENCY_BUCKETS_MS.len()],
}

impl Rollup {
    /// The counters of one attempt.
    pub fn of(sample: &AttemptSample) -> Rollup {
        let mut rollup = Rollup {
            attempts: 1,
            succeeded: u64::from(sample.succeeded),
            ..Rollup::default()
        };
        *rollup.classes.of_status(sample.status) += 1;
        rollup.latency[latency_bucket(sample.duration_ms)] += 1;
        rollup
    }

    pub fn add(&mut self, other: &Rollup) {
        self.attempts += other.attempts;
        self.succeeded += other.succeeded;
        let (a, b) = (&mut self.classes, &other.classes);
        a.s2xx += b.s2xx;
        a.s3xx += b.s3xx;
        a.s4xx += b.s4xx;
        a.s5xx += b.s5xx;
        a.no_response += b.no_response;
        for (mine, theirs) in self.latency.iter_mut().zip(other.latency) {
            *mine += theirs;
        }
    }

    /// Statistics from counters alone: latencies are the upper bound of the
    /// bucket that holds each nearest-rank percentile.
    pub fn summarize(&self) -> DeliveryStats {
        let bucket_bound = |percent: u64| {
            let rank = (percent * self.attempts).div_ceil(100).max(1);
            let mut seen = 0;
            self.latency
                .iter()
                .zip(LATENCY_BUCKETS_MS)
                .find_map(|(&n, bound)| {
                    seen += n;
                    (seen >= rank).then_some(bound)
                })
        };
        DeliveryStats {
            attempts: self.attempts,
            succeeded: self.succeeded,
            failed: self.attempts - self.succeeded,
            success_rate: (self.attempts > 0).then(|| self.succeeded as f64 / self.attempts as f64),
            latency_ms: Latency {
                p50: bucket_bound(50),
                p95: bucket_bound(95),
                p99: bucket_bound(99),
            },
            by_status_class: self.classes,
        }
    }
}

impl StatusClasses {
    /// The counter of an answer's class.
    fn of_status(&mut self, status: Option<u16>) -> &mut u64 {
        match status {
            Some(200..=299) => &mut self.s2xx,
            Some(300..=399) => &mut self.s3xx,
            Some(400..=499) => &mut self.s4xx,
            Some(500..=599) => &mut self.s5xx,
            _ => &mut self.no_response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample(status: Option<u16>, duration_ms: u64) -> AttemptSample {
        AttemptSample {
            status,
            duration_ms,
            succeeded: matches!(status, Some(200..=299)),
        }
    }

    #[test]
    fn windows() {
        for w in StatsWindow::ALL {
            assert_eq!(w.as_str().parse::<StatsWindow>(), Ok(w));
            assert_eq!(serde_json::to_value(w).unwrap(), json!(w.as_str()));
            assert_eq!(
                serde_json::from_value::<StatsWindow>(json!(w.as_str())).unwrap(),
                w
            );
        }
        assert_eq!(StatsWindow::Week.duration(), chrono::Duration::hours(168));
        assert_eq!(StatsWindow::Hour.duration(), chrono::Duration::minutes(60));
        assert_eq!(StatsWindow::default(), StatsWindow::Day);
        assert!("1d".parse::<StatsWindow>().is_err());
        assert!("hour".parse::<StatsWindow>().is_err());
    }

    #[test]
    fn empty_window() {
        let stats = summarize(&[]);
        assert_eq!(stats.attempts, 0);
        assert_eq!(stats.success_rate, None);
        assert_eq!(stats.latency_ms, Latency::default());
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(
            json,
            json!({
                "attempts": 0, "succeeded": 0, "failed": 0, "success_rate": null,
                "latency_ms": {"p50": null, "p95": null, "p99": null},
                "by_status_class": {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "no_response": 0}
            })
        );
    }

    #[test]
    fn summary() {
        let mut samples: Vec<AttemptSample> = (1..=100).map(|ms| sample(Some(200), ms)).collect();
        samples[0] = sample(Some(503), 1);
        samples[1] = sample(None, 2);
        samples[2] = sample(Some(404), 3);
        samples[3] = sample(Some(302), 4);
        samples[4] = sample(Some(102), 5);
        let stats = summarize(&samples);
        assert_eq!(
            (stats.attempts, stats.succeeded, stats.failed),
            (100, 95, 5)
        );
        assert_eq!(stats.success_rate, Some(0.95));
        assert_eq!(
            stats.latency_ms,
            Latency {
                p50: Some(50),
                p95: Some(95),
                p99: Some(99)
            }
        );
        assert_eq!(
            stats.by_status_class,
            StatusClasses {
                s2xx: 95,
                s3xx: 1,
                s4xx: 1,
                s5xx: 1,
                no_response: 2
            }
        );
        let one = summarize(&[sample(Some(200), 7)]);
        assert_eq!(
            one.latency_ms,
            Latency {
                p50: Some(7),
                p95: Some(7),
                p99: Some(7)
            }
        );
    }

    proptest! {
        #[test]
        fn percentiles_are_ordered_and_counts_add_up(
            samples in proptest::collection::vec(
                (proptest::option::of(100u16..700), 0u64..60_000, any::<bool>())
                    .prop_map(|(status, duration_ms, succeeded)| AttemptSample { status, duration_ms, succeeded }),
                1..300,
            )
        ) {
            let stats = summarize(&samples);
            let max = samples.iter().map(|s| s.duration_ms).max().unwrap();
            let min = samples.iter().map(|s| s.duration_ms).min().unwrap();
            let Latency { p50, p95, p99 } = stats.latency_ms;
            let (p50, p95, p99) = (p50.unwrap(), p95.unwrap(), p99.unwrap());
            prop_assert!(min <= p50 && p50 <= p95 && p95 <= p99 && p99 <= max);
            prop_assert_eq!(stats.attempts, samples.len() as u64);
            prop_assert_eq!(stats.succeeded + stats.failed, stats.attempts);
            let c = stats.by_status_class;
            prop_assert_eq!(c.s2xx + c.s3xx + c.s4xx + c.s5xx + c.no_response, stats.attempts);
            let rate = stats.success_rate.unwrap();
            prop_assert!((0.0..=1.0).contains(&rate));
        }

        /// Rolled up in any split, the counters give the exact counts, and
        /// each percentile the bound of the bucket holding the exact one.
        #[test]
        fn rollups_count_exactly_and_bound_percentiles(
            samples in proptest::collection::vec(
                (proptest::option::of(100u16..700), 0u64..400_000, any::<bool>())
                    .prop_map(|(status, duration_ms, succeeded)| AttemptSample { status, duration_ms, succeeded }),
                1..300,
            ),
            split in 0usize..300,
        ) {
            let split = split.min(samples.len());
            let mut hours = [Rollup::default(), Rollup::default()];
            for (i, sample) in samples.iter().enumerate() {
                hours[usize::from(i >= split)].add(&Rollup::of(sample));
            }
            let [mut total, second] = hours;
            total.add(&second);
            let exact = summarize(&samples);
            let rolled = total.summarize();
            prop_assert_eq!(rolled.attempts, exact.attempts);
            prop_assert_eq!(rolled.succeeded, exact.succeeded);
            prop_assert_eq!(rolled.by_status_class, exact.by_status_class);
            prop_assert_eq!(rolled.success_rate, exact.success_rate);
            for (got, want) in [
                (rolled.latency_ms.p50, exact.latency_ms.p50),
                (rolled.latency_ms.p95, exact.latency_ms.p95),
                (rolled.latency_ms.p99, exact.latency_ms.p99),
            ] {
                let want = want.unwrap();
                prop_assert_eq!(got, Some(LATENCY_BUCKETS_MS[latency_bucket(want)]));
            }
        }
    }

    #[test]
    fn buckets() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(5), 0);
        assert_eq!(latency_bucket(6), 1);
        assert_eq!(latency_bucket(300_000), 23);
        assert_eq!(
            latency_bucket(300_040),
            23,
            "overhead past the longest timeout"
        );
        assert!(LATENCY_BUCKETS_MS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Rollup::default().summarize(), summarize(&[]));
    }
}
