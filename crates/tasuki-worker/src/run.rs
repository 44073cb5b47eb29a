//! Running one attempt and recording finished attempts in batches.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tasuki_core::{Completed, Completion, Failure, Job, JobId, RetryDecision, Timestamp};

use crate::JobContext;
use crate::handler::{Done, JobError};
use crate::shared::Shared;

/// A finished attempt, waiting to be written.
pub(crate) struct Outcome {
    pub(crate) id: JobId,
    pub(crate) job_type: String,
    pub(crate) queue: String,
    /// From due to claimed.
    pub(crate) waited: Duration,
    pub(crate) attempt: i32,
    pub(crate) retry_count: i32,
    pub(crate) max_retries: i32,
    pub(crate) duration: Duration,
    pub(crate) result: Result<Done, JobError>,
}

impl Shared {
    /// Runs one claimed attempt to its end: a handler's error, a panic, a
    /// timeout, an unknown type and a bad payload all become a failed outcome.
    pub(crate) async fn execute(self: &Arc<Self>, job: Job) -> Outcome {
        let started = Instant::now();
        tracing::debug!(
            worker_id = %self.config.id, job_id = job.id.0, job_type = %job.job_type,
            attempt = job.attempt, "job started"
        );
        let result = match self.registry.handler(&job.job_type) {
            None => Err(JobError::permanent(format!(
                "no handler for job type `{}`",
                job.job_type
            ))),
            Some(handler) => {
                let ctx = JobContext {
                    job_id: job.id,
                    job_type: job.job_type.clone(),
                    attempt: job.attempt,
                    retry_count: job.retry_count,
                    worker_id: self.config.id.clone(),
                    store: self.store.clone(),
                    clock: self.clock.clone(),
                };
                let timeout = handler.timeout().unwrap_or(self.config.job_timeout);
                let run = AssertUnwindSafe(handler.call(&ctx, &job.payload)).catch_unwind();
                match tokio::time::timeout(timeout, run).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(panic)) => Err(JobError::retry(format!(
                        "handler panicked: {}",
                        panic_message(panic.as_ref())
                    ))),
                    Err(_) => Err(JobError::retry(format!(
                        "timed out after {}",
                        humanize(timeout)
                    ))),
                }
            }
        };
        let waited = job
            .started_at
            .map_or(Duration::ZERO, |started| started.since(job.scheduled_at));
        Outcome {
            id: job.id,
            job_type: job.job_type,
            queue: job.queue,
            waited,
            attempt: job.attempt,
            retry_count: job.retry_count,
            max_retries: job.max_retries,
            duration: started.elapsed(),
            result,
        }
    }

    /// Writes finished attempts: the completions (each with its writes) in
    /// transactions of [`WRITES_PER_TRANSACTION`] jobs with writes at most,
    /// side by side, the failures in one statement beside them. An attempt
    /// whose writes failed is then recorded as failed.
    pub(crate) async fn record(&self, mut outcomes: Vec<Outcome>) {
        let now = self.clock.now();
        let mut completions = Vec::new();
        let mut failures = Vec::new();
        for outcome in &mut outcomes {
            if let Ok(done) = &mut outcome.result {
                completions.push(Completion {
                    id: outcome.id,
                    attempt: outcome.attempt,
                    result: done.result.take(),
                    writes: done
                        .writes
                        .take()
                        .map(|w| w.checked_by(self.registry.clone())),
                });
            } else {
                failures.extend(self.failure(outcome, now));
            }
        }
        let completing =
            futures_util::future::join_all(transactions(completions).into_iter().map(|part| {
                self.write("complete", part, |c| self.store.job_complete_many(now, c))
            }));
        let (parts, mut failed) = tokio::join!(
            completing,
            self.write("fail", failures.clone(), |f| self
                .store
                .job_fail_many(now, f)),
        );
        let mut completed = Completed::default();
        for part in parts {
            completed.ids.extend(part.ids);
            completed.failed_writes.extend(part.failed_writes);
        }
        completed.ids.sort_unstable();
        if !completed.failed_writes.is_empty() {
            let mut failed_writes = Vec::new();
            for (id, error) in completed.failed_writes {
                if let Some(outcome) = outcomes.iter_mut().find(|o| o.id == id) {
                    outcome.result = Err(JobError::from(error));
                    failed_writes.extend(self.failure(outcome, now));
                }
            }
            failed.extend(
                self.write("fail", failed_writes.clone(), |f| {
                    self.store.job_fail_many(now, f)
                })
                .await,
            );
            failed.sort_unstable();
            failures.extend(failed_writes);
        }
        let retry_at: HashMap<JobId, _> = failures.iter().map(|f| (f.id, f.retry_at)).collect();
        self.let_go(outcomes.iter().map(|o| o.id));
        let accepted: Vec<bool> = outcomes
            .iter()
            .map(|outcome| match outcome.result {
                Ok(_) => completed.ids.binary_search(&outcome.id).is_ok(),
                Err(_) => failed.binary_search(&outcome.id).is_ok(),
            })
            .collect();
        self.add_to_rollup(|rollup| {
            for (outcome, _) in outcomes.iter().zip(&accepted).filter(|(_, a)| **a) {
                let ok = outcome.result.is_ok();
                rollup.record(now, &outcome.queue, ok, outcome.waited, outcome.duration);
            }
        });
        for (outcome, accepted) in outcomes.into_iter().zip(accepted) {
            self.log(
                &outcome,
                accepted,
                retry_at.get(&outcome.id).copied().flatten(),
            );
        }
    }

    /// A failed attempt as the store records it, with when to retry.
    fn failure(&self, outcome: &Outcome, now: Timestamp) -> Option<Failure> {
        let error = outcome.result.as_ref().err()?;
        let policy = self
            .registry
            .handler(&outcome.job_type)
            .and_then(|h| h.backoff())
            .unwrap_or(self.config.retry);
        let decision = policy.decide(
            outcome.retry_count,
            outcome.max_retries,
            error.kind(),
            now,
            fastrand::f64(),
        );
        Some(Failure {
            id: outcome.id,
            attempt: outcome.attempt,
            error: error.to_string(),
            retry_at: match decision {
                RetryDecision::RetryAt(at) => Some(at),
                RetryDecision::Fail => None,
            },
        })
    }

    /// One batched write, retried while the database refuses it, so that a
    /// finished attempt is not lost to a passing error.
    async fn write<T: Clone, R: Default, F, Fut>(&self, what: &str, items: Vec<T>, write: F) -> R
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: std::future::Future<Output = tasuki_core::StoreResult<R>>,
    {
        if items.is_empty() {
            return R::default();
        }
        let mut delay = Duration::from_millis(10);
        loop {
            match write(items.clone()).await {
                Ok(written) => return written,
                Err(error) if delay < self.config.lease => {
                    tracing::warn!(worker_id = %self.config.id, error = ?error, "cannot {what} jobs; trying again");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => {
                    // The caller lets these jobs go: no heartbeat renews them,
                    // their leases expire and they are rescued.
                    tracing::error!(worker_id = %self.config.id, error = ?error, "cannot {what} jobs; their leases will expire and they will run again");
                    return R::default();
                }
            }
        }
    }

    fn log(&self, o: &Outcome, accepted: bool, retry_at: Option<Timestamp>) {
        let status = match (&o.result, accepted, retry_at) {
            (_, false, _) => "lease_lost",
            (Ok(_), true, _) => "completed",
            (Err(_), true, Some(_)) => "retry",
            (Err(_), true, None) => "failed",
        };
        metrics::counter!("jobs_processed_total", "job_type" => o.job_type.clone(), "status" => status).increment(1);
        metrics::histogram!("job_duration_seconds", "job_type" => o.job_type.clone())
            .record(o.duration.as_secs_f64());
        let duration_ms = o.duration.as_secs_f64() * 1e3;
        let (worker_id, job_id, job_type, attempt) =
            (&*self.config.id, o.id.0, &o.job_type, o.attempt);
        match (&o.result, accepted) {
            (_, false) => tracing::warn!(
                worker_id,
                job_id,
                job_type,
                attempt,
                duration_ms,
                "job finished after its lease was lost; the result is discarded"
            ),
            (Ok(_), true) => tracing::info!(
                worker_id,
                job_id,
                job_type,
                attempt,
                duration_ms,
                "job completed"
            ),
            (Err(error), true) => match retry_at {
                Some(at) => tracing::warn!(
                    worker_id, job_id, job_type, attempt, duration_ms, error = %error,
                    retry_at = %at, "job failed; retry scheduled"
                ),
                None => tracing::error!(
                    worker_id, job_id, job_type, attempt, duration_ms, error = %error, "job failed"
                ),
            },
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload")
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The most completions with writes in one transaction. Their writes run
/// one after another, and on PostgreSQL a transaction holds back the
/// horizon before which old row versions count as dead for as long as it
/// runs: every claim meanwhile steps over the ready index's entries of each
/// job claimed since it began. A batch of hundreds made claims cost 2.5
/// times as much per job as with no writes; in parts of 64, which commit
/// side by side, jobs that write drained 1.13–1.16 times as fast
/// (BENCHMARKS.md).
const WRITES_PER_TRANSACTION: usize = 64;

/// Splits completions into transactions: those with writes
/// [`WRITES_PER_TRANSACTION`] at most to one, the others with the first.
fn transactions(completions: Vec<Completion>) -> Vec<Vec<Completion>> {
    let (with_writes, mut first): (Vec<_>, Vec<_>) =
        completions.into_iter().partition(|c| c.writes.is_some());
    let mut parts = Vec::new();
    let mut with_writes = with_writes.into_iter().peekable();
    while with_writes.peek().is_some() {
        let mut part: Vec<Completion> = with_writes.by_ref().take(WRITES_PER_TRANSACTION).collect();
        if parts.is_empty() {
            part.append(&mut first);
        }
        parts.push(part);
    }
    if !first.is_empty() {
        parts.push(first);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use tasuki_core::Writes;

    fn completion(id: i64, writes: bool) -> Completion {
        Completion {
            id: JobId(id),
            attempt: 1,
            result: None,
            writes: writes.then(|| Writes::new(())),
        }
    }

    #[test]
    fn completions_with_writes_go_64_to_a_transaction_and_the_others_with_the_first() {
        let completions = (0..135).map(|i| completion(i, i % 27 != 0)).collect();
        let parts = transactions(completions);
        let sizes: Vec<(usize, usize)> = parts
            .iter()
            .map(|p| {
                let with = p.iter().filter(|c| c.writes.is_some()).count();
                (with, p.len() - with)
            })
            .collect();
        assert_eq!(sizes, [(64, 5), (64, 0), (2, 0)]);
        let mut ids: Vec<i64> = parts.iter().flatten().map(|c| c.id.0).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..135).collect::<Vec<_>>());
    }

    #[test]
    fn completions_without_writes_are_one_transaction() {
        let parts = transactions((0..3).map(|i| completion(i, false)).collect());
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].len(), 3);
        assert!(transactions(Vec::new()).is_empty());
    }
}
