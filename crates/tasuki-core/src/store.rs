//! The store traits every backend implements, and the parameters they take.
//!
//! Methods are named resource first, then verb, and take "now" as a parameter:
//! no backend reads the clock inside SQL. [`JobStore`] is the queue;
//! [`Store`] adds the schedules ([`ScheduleStore`]) and a health check, and is held as `Arc<dyn Store>`. An
//! application's own tables are its own: it reaches them through the
//! engine's store (`tasuki_sqlite`, `tasuki_postgres`), and commits a job's
//! writes with its completion through [`crate::Writes`].

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::{
    Job, JobId, JobStats, JobStatus, MonitorStore, NewJob, QueueStore, ScheduleStore, Timestamp,
    Writes,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The row exists but its state does not allow the change.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A unique constraint refused the write (for example a user's email).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// A write that no retry can make acceptable, such as a job whose
    /// payload its type's schema refuses.
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("database error")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Claim up to `limit` due jobs for `owner`, leased until `lease_expires_at`.
#[derive(Clone, Debug)]
pub struct ClaimParams<'a> {
    pub owner: &'a str,
    /// The queue to claim from; `None`: every queue.
    pub queue: Option<&'a str>,
    pub limit: u32,
    pub now: Timestamp,
    pub lease_expires_at: Timestamp,
}

/// A finished attempt; accepted only while `attempt` still holds the lease.
#[derive(Clone, Debug)]
pub struct Completion {
    pub id: JobId,
    pub attempt: i32,
    pub result: Option<serde_json::Value>,
    /// The job's own writes, committed with its completion or not at all.
    pub writes: Option<Writes>,
}

/// What a batch of completions did.
#[derive(Debug, Default)]
pub struct Completed {
    /// The jobs completed, each with its writes; sorted.
    pub ids: Vec<JobId>,
    /// Jobs whose lease was still held but whose writes failed: nothing of
    /// them committed, and the attempt is still to be recorded as failed.
    pub failed_writes: Vec<(JobId, StoreError)>,
}

/// A failed attempt; `retry_at` is `None` when the job fails for good.
#[derive(Clone, Debug)]
pub struct Failure {
    pub id: JobId,
    pub attempt: i32,
    pub error: String,
    pub retry_at: Option<Timestamp>,
}

/// An attempt handed back unrun (at shutdown): the job becomes due again and
/// no retry is spent.
#[derive(Clone, Copy, Debug)]
pub struct Release {
    pub id: JobId,
    pub attempt: i32,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub job_type: Option<String>,
    pub queue: Option<String>,
    /// Only jobs past this id in the list's order (id-cursor pagination).
    pub after: Option<JobId>,
    /// Newest first (ids descending) instead of oldest first.
    pub newest_first: bool,
    /// Newest first only: look at no more than this many ids below the
    /// cursor, so that a filter that matches few jobs costs a bounded read;
    /// a short page then goes on below the ids it looked at.
    pub scan: Option<u32>,
    pub limit: u32,
}

impl JobFilter {
    /// The ids a newest-first list looks at, `lower..upper`: below the
    /// cursor (or every id, up to `max_id` when the store read it), and with
    /// `scan` no more than that many.
    pub fn newest_window(&self, max_id: Option<i64>) -> (i64, i64) {
        let mut upper = self.after.map_or(i64::MAX, |id| id.0);
        if let Some(max) = max_id {
            upper = upper.min(max.saturating_add(1));
        }
        let lower = self
            .scan
            .map_or(0, |scan| upper.saturating_sub(i64::from(scan)).max(0));
        (lower, upper)
    }
}

/// A named lease held by one process at a time (for maintenance work).
#[derive(Clone, Debug)]
pub struct LeaderParams<'a> {
    pub name: &'a str,
    pub owner: &'a str,
    pub now: Timestamp,
    pub ttl: Duration,
}

/// One page of a list, with the cursor of the next page.
#[derive(Clone, Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<i64>,
}

impl<T> Page<T> {
    /// A page of at most `limit` items in id order: a full page has a next
    /// one, after the last item's id.
    pub fn of(items: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Self {
        let next_after = (items.len() == limit as usize)
            .then(|| items.last().map(id))
            .flatten();
        Page { items, next_after }
    }

    /// A newest-first page of the ids from `lower` up: a full page goes on
    /// below its last item, a short one below `lower`, until the first id.
    pub fn of_window(items: Vec<T>, limit: u32, lower: i64, id: impl Fn(&T) -> i64) -> Self {
        let mut page = Page::of(items, limit, id);
        if page.next_after.is_none() && lower > 1 {
            page.next_after = Some(lower);
        }
        page
    }
}

/// After a conditional update of one job: the changed job, or why there was
/// none (`NotFound`, or `Conflict` naming the job's status).
pub async fn changed_or_conflict(
    store: &(impl JobStore + ?Sized),
    id: JobId,
    changed: Option<StoreResult<Job>>,
    conflict: &str,
) -> StoreResult<Job> {
    match changed {
        Some(job) => job,
        None => {
            let job = store.job_get(id).await?;
            Err(StoreError::Conflict(format!(
                "{conflict}; job {id} is {}",
                job.status
            )))
        }
    }
}

/// An enqueued job, or the job that held its unique key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Enqueued {
    #[serde(flatten)]
    pub job: Job,
    /// True when the job was not added because `job` holds its unique key.
    pub duplicate: bool,
}

/// One job of a bulk enqueue: its id, or the id of the job that held its
/// unique key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Inserted {
    pub id: JobId,
    pub duplicate: bool,
}

/// For a job made live again (retried) whose unique key another live job
/// holds: the store refuses rather than run two.
pub fn unique_clash(id: JobId, error: StoreError) -> StoreError {
    match error {
        StoreError::Duplicate(_) => StoreError::Conflict(format!(
            "job {id} cannot run again while another job holds its unique key"
        )),
        other => other,
    }
}

/// The job queue.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Adds a job; a unique job whose key is held answers with the holder.
    async fn job_insert(&self, job: NewJob) -> StoreResult<Enqueued>;
    /// Adds all the jobs in one transaction, the ones with no unique key in
    /// one set-based statement; answers per job, in order.
    async fn job_insert_many(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Inserted>>;
    /// Atomically leases due jobs, best first: `priority DESC, scheduled_at,
    /// id`, from queues that are not paused, within each queue's limits.
    async fn job_claim(&self, params: ClaimParams<'_>) -> StoreResult<Vec<Job>>;
    /// Marks jobs completed, each in one transaction with its writes (the
    /// completions of a batch commit together); a job whose lease was lost
    /// is neither completed nor written.
    async fn job_complete_many(
        &self,
        now: Timestamp,
        completions: Vec<Completion>,
    ) -> StoreResult<Completed>;
    /// Records failed attempts; returns the ids whose lease was still held.
    async fn job_fail_many(
        &self,
        now: Timestamp,
        failures: Vec<Failure>,
    ) -> StoreResult<Vec<JobId>>;
    /// Hands attempts back unrun; returns the ids whose lease was still held.
    async fn job_release_many(
        &self,
        now: Timestamp,
        releases: Vec<Release>,
    ) -> StoreResult<Vec<JobId>>;
    /// Extends the unexpired leases that `owner` holds on these jobs (the
    /// ones it is still running or recording); returns how many.
    async fn job_heartbeat(
        &self,
        owner: &str,
        ids: &[JobId],
        now: Timestamp,
        lease_expires_at: Timestamp,
    ) -> StoreResult<u64>;
    /// Takes back expired leases: the attempt counts as a failed one and the
    /// job is due again at `now`, or fails when it has no retries left.
    async fn job_rescue_expired(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<JobId>>;
    /// Deletes up to `limit` completed or cancelled jobs that finished before
    /// `before`, oldest first; returns how many. Failed jobs stay, for retry.
    async fn job_prune(&self, before: Timestamp, limit: u32) -> StoreResult<u64>;
    /// Makes a failed or cancelled job due again with a fresh retry budget.
    async fn job_retry(&self, id: JobId, now: Timestamp) -> StoreResult<Job>;
    /// Cancels a job that has not started (pending, scheduled or waiting to retry).
    async fn job_cancel(&self, id: JobId, now: Timestamp) -> StoreResult<Job>;
    /// Deletes the jobs of `ids` that are not running; returns those deleted,
    /// sorted.
    async fn job_delete_many(&self, ids: &[JobId]) -> StoreResult<Vec<JobId>>;
    async fn job_get(&self, id: JobId) -> StoreResult<Job>;
    async fn job_list(&self, filter: JobFilter) -> StoreResult<Page<Job>>;
    async fn job_stats(&self, now: Timestamp) -> StoreResult<JobStats>;
    /// The earliest `scheduled_at` in the ready set of `queue` (or of every
    /// queue), paused queues aside.
    async fn job_next_scheduled_at(&self, queue: Option<&str>) -> StoreResult<Option<Timestamp>>;
    /// Waits until jobs may have been added or changed, or `max_wait` passes.
    /// It may return early; callers claim to find out.
    async fn job_wait_for_change(&self, max_wait: Duration);
    /// Takes or renews the named lease; true while `owner` holds it.
    async fn leader_acquire(&self, params: LeaderParams<'_>) -> StoreResult<bool>;
    /// Gives the named lease up if `owner` holds it.
    async fn leader_release(&self, name: &str, owner: &str) -> StoreResult<()>;
}

/// A set of migrations and the ledger table that records which applied: the
/// queue's own, or an application's, beside it in the same database. Each
/// engine's store applies them (`migrate`).
#[derive(Debug)]
pub struct Migrations {
    pub ledger: &'static str,
    /// `(version, description, SQL)`, oldest first.
    pub list: &'static [(i64, &'static str, &'static str)],
}

/// A whole backend: the queue, its queues' settings, its schedules, what
/// operators watch, and a way to check that it answers.
#[async_trait]
pub trait Store: JobStore + QueueStore + ScheduleStore + MonitorStore {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
}
