//! What operators watch: the worker processes alive, the jobs of each queue
//! by state, and a per-minute rollup of finished attempts (throughput, wait
//! and run times) that workers write as they record outcomes, so that no
//! page counts the whole table.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, Timestamp};

/// A worker process, as its heartbeats describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// The queues it serves and the slots of each; `*` is every queue.
    pub queues: Vec<WorkerQueue>,
    pub slots: u32,
    /// Jobs it holds: running, or finished and not yet recorded.
    pub running: u32,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerQueue {
    pub name: String,
    pub slots: u32,
}

/// How long a process that stopped beating stays listed as gone before its
/// row is deleted.
pub const WORKER_FORGOTTEN_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A queue's jobs by state, counted from the partial indexes (live jobs and
/// the failed and cancelled ones), never the completed rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub queue: String,
    /// Pending or waiting to retry, and due.
    pub waiting: i64,
    /// Pending or waiting to retry, due later.
    pub scheduled: i64,
    pub running: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// When the longest-waiting due job was due.
    pub oldest_due: Option<Timestamp>,
}

/// What a rollup count measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// From due to started, of every finished attempt.
    Wait,
    /// From started to finished, of a completed attempt.
    Run,
    /// From started to finished, of a failed attempt.
    Failed,
}

impl Metric {
    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::Wait => "wait",
            Metric::Run => "run",
            Metric::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Metric> {
        [Metric::Wait, Metric::Run, Metric::Failed]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

/// How many attempts of a minute fell in a bucket of a metric. Buckets are
/// a quarter of a power of two of microseconds wide (about ±9 %).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupCount {
    /// The minute's start.
    pub minute: Timestamp,
    pub queue: String,
    pub metric: Metric,
    pub bucket: i32,
    pub count: i64,
}

const MINUTE_MICROS: i64 = 60_000_000;

/// A rollup count summed over every queue, as charts read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketCount {
    pub minute: Timestamp,
    pub metric: Metric,
    pub bucket: i32,
    pub count: i64,
}

/// The start of the minute `at` is in.
pub fn minute_of(at: Timestamp) -> Timestamp {
    Timestamp::from_micros(at.as_micros().div_euclid(MINUTE_MICROS) * MINUTE_MICROS)
}

/// The bucket of a duration: `floor(4 × log2(µs))`, durations under 1 µs in 0.
pub(crate) fn bucket_of(d: Duration) -> i32 {
    let micros = d.as_micros().max(1) as f64;
    (4.0 * micros.log2()).floor() as i32
}

/// A bucket's middle, in milliseconds.
pub(crate) fn bucket_ms(bucket: i32) -> f64 {
    2f64.powf((f64::from(bucket) + 0.5) / 4.0) / 1000.0
}

/// Attempts recorded in this process and not yet written, summed by queue,
/// minute, metric and bucket: a second's attempts become a few rows.
#[derive(Debug, Default)]
pub struct Rollup {
    by_queue: BTreeMap<String, BTreeMap<(Timestamp, Metric, i32), i64>>,
}

impl Rollup {
    /// One finished attempt of `queue`, finished at `at`.
    pub fn record(
        &mut self,
        at: Timestamp,
        queue: &str,
        completed: bool,
        waited: Duration,
        ran: Duration,
    ) {
        let counts = match self.by_queue.get_mut(queue) {
            Some(counts) => counts,
            None => self.by_queue.entry(queue.to_owned()).or_default(),
        };
        let minute = minute_of(at);
        let run = if completed {
            Metric::Run
        } else {
            Metric::Failed
        };
        for (metric, d) in [(Metric::Wait, waited), (run, ran)] {
            *counts.entry((minute, metric, bucket_of(d))).or_default() += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_queue.is_empty()
    }

    /// The counts so far, sorted by minute, queue, metric and bucket (the
    /// order writers lock rows in), leaving the rollup empty.
    pub fn take(&mut self) -> Vec<RollupCount> {
        let mut counts: Vec<RollupCount> = std::mem::take(&mut self.by_queue)
            .into_iter()
            .flat_map(|(queue, counts)| {
                counts
                    .into_iter()
                    .map(move |((minute, metric, bucket), count)| RollupCount {
                        minute,
                        queue: queue.clone(),
                        metric,
                        bucket,
                        count,
                    })
            })
            .collect();
        counts.sort_by(|a, b| {
            (a.minute, &a.queue, a.metric, a.bucket).cmp(&(b.minute, &b.queue, b.metric, b.bucket))
        });
        counts
    }

    /// Puts counts back (after a write that failed), to be written next time.
    pub fn restore(&mut self, counts: Vec<RollupCount>) {
        for c in counts {
            *self
                .by_queue
                .entry(c.queue)
                .or_default()
                .entry((c.minute, c.metric, c.bucket))
                .or_default() += c.count;
        }
    }
}

/// One minute of every queue's finished attempts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MinuteStats {
    pub minute: Timestamp,
    pub completed: i64,
    pub failed: i64,
    pub wait_p50_ms: f64,
    pub wait_p95_ms: f64,
    pub run_p50_ms: f64,
    pub run_p95_ms: f64,
}

/// Minutes, oldest first, with the wait and run times' percentiles (run
/// times of completed and failed attempts).
pub fn minutes(counts: &[BucketCount]) -> Vec<MinuteStats> {
    let mut by_minute: BTreeMap<Timestamp, [BTreeMap<i32, i64>; 3]> = BTreeMap::new();
    for c in counts {
        let hists = by_minute.entry(c.minute).or_default();
        *hists[c.metric as usize].entry(c.bucket).or_default() += c.count;
    }
    by_minute
        .into_iter()
        .map(|(minute, [wait, run, failed])| {
            let mut ran = run.clone();
            for (bucket, n) in &failed {
                *ran.entry(*bucket).or_default() += n;
            }
            MinuteStats {
                minute,
                completed: run.values().sum(),
                failed: failed.values().sum(),
                wait_p50_ms: percentile(&wait, 0.50),
                wait_p95_ms: percentile(&wait, 0.95),
                run_p50_ms: percentile(&ran, 0.50),
                run_p95_ms: percentile(&ran, 0.95),
            }
        })
        .collect()
}

/// The middle of the bucket that holds the `q` quantile; 0 with no counts.
fn percentile(hist: &BTreeMap<i32, i64>, q: f64) -> f64 {
    let total: i64 = hist.values().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = (q * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (bucket, n) in hist {
        seen += n;
        if seen >= rank {
            return bucket_ms(*bucket);
        }
    }
    unreachable!("the rank is at most the total")
}

/// What the dashboard and operators read, and what workers report.
#[async_trait]
pub trait MonitorStore: Send + Sync {
    /// Records a worker's heartbeat (inserted or replaced), and deletes the
    /// rows of processes silent for [`WORKER_FORGOTTEN_AFTER`].
    async fn worker_beat(&self, worker: &WorkerInfo) -> StoreResult<()>;
    /// Deletes a stopping worker's row.
    async fn worker_gone(&self, id: &str) -> StoreResult<()>;
    /// The workers that beat at or after `since`, by id.
    async fn worker_list(&self, since: Timestamp) -> StoreResult<Vec<WorkerInfo>>;
    /// Adds counts to the rollup.
    async fn rollup_add(&self, counts: Vec<RollupCount>) -> StoreResult<()>;
    /// The rollup's counts of the minutes from `since` on, summed over
    /// queues, by minute, metric and bucket.
    async fn rollup_since(&self, since: Timestamp) -> StoreResult<Vec<BucketCount>>;
    /// Deletes the rollup's minutes before `before`; returns how many rows.
    async fn rollup_prune(&self, before: Timestamp) -> StoreResult<u64>;
    /// Every queue with jobs that are live, failed or cancelled, or with
    /// settings, by name; due or not as of `now`.
    async fn queue_counts(&self, now: Timestamp) -> StoreResult<Vec<QueueCounts>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_a_quarter_of_a_power_of_two() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_micros(1)), 0);
        assert_eq!(bucket_of(Duration::from_micros(2)), 4);
        assert_eq!(bucket_of(Duration::from_millis(1)), 39); // 4 × log2(1000) = 39.86
        let ms = bucket_ms(bucket_of(Duration::from_millis(10)));
        assert!((9.0..11.0).contains(&ms), "{ms}");
    }

    #[test]
    fn minutes_sum_queues_and_read_percentiles() {
        let at = Timestamp::from_micros(3 * MINUTE_MICROS + 5);
        let mut rollup = Rollup::default();
        for i in 0..100u64 {
            let queue = if i % 2 == 0 { "a" } else { "b" };
            rollup.record(
                at,
                queue,
                i < 90,
                Duration::from_millis(i + 1),
                Duration::from_millis(10),
            );
        }
        rollup.record(
            minute_of(at).saturating_sub(Duration::from_secs(1)),
            "a",
            true,
            Duration::ZERO,
            Duration::ZERO,
        );
        let counts: Vec<BucketCount> = rollup
            .take()
            .into_iter()
            .map(|c| BucketCount {
                minute: c.minute,
                metric: c.metric,
                bucket: c.bucket,
                count: c.count,
            })
            .collect();
        assert!(rollup.is_empty());
        let stats = minutes(&counts);
        assert_eq!(stats.len(), 2);
        assert_eq!((stats[0].completed, stats[0].failed), (1, 0));
        let m = &stats[1];
        assert_eq!(m.minute, Timestamp::from_micros(3 * MINUTE_MICROS));
        assert_eq!((m.completed, m.failed), (90, 10));
        assert!((45.0..56.0).contains(&m.wait_p50_ms), "{}", m.wait_p50_ms);
        assert!((87.0..104.0).contains(&m.wait_p95_ms), "{}", m.wait_p95_ms);
        assert!((9.0..11.0).contains(&m.run_p95_ms), "{}", m.run_p95_ms);
    }

    #[test]
    fn restore_adds_back() {
        let mut rollup = Rollup::default();
        let at = Timestamp::from_micros(0);
        rollup.record(at, "q", true, Duration::ZERO, Duration::ZERO);
        let taken = rollup.take();
        rollup.record(at, "q", true, Duration::ZERO, Duration::ZERO);
        rollup.restore(taken);
        let counts = rollup.take();
        assert_eq!(counts.len(), 2);
        assert!(counts.iter().all(|c| c.count == 2));
    }
}
