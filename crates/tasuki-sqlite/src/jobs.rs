//! The job queue on SQLite.

use std::fmt::Write;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sqlx::{Executor, Sqlite};
use tasuki_core::{
    ClaimParams, Completion, Failure, Job, JobFilter, JobId, JobStats, JobStatus, JobStore,
    LeaderParams, NewJob, Page, Release, StoreError, StoreResult, Timestamp, changed_or_conflict,
};

use crate::rows::{JobRow, db_error, jobs};
use crate::{Commit, SqliteStore};

pub(crate) async fn insert<'e, E>(executor: E, job: NewJob) -> StoreResult<Job>
where
    E: Executor<'e, Database = Sqlite>,
{
    let payload = job.payload.to_string();
    let (scheduled_at, created_at) = (job.scheduled_at.as_micros(), job.created_at.as_micros());
    sqlx::query_file_as!(
        JobRow,
        "queries/job/insert.sql",
        job.job_type,
        payload,
        job.priority,
        job.max_retries,
        scheduled_at,
        created_at
    )
    .fetch_one(executor)
    .await
    .map_err(db_error)?
    .try_into()
}

/// Inserts jobs in one statement; returns their ids in order.
pub(crate) async fn insert_many<'e, E>(executor: E, new_jobs: &[NewJob]) -> StoreResult<Vec<JobId>>
where
    E: Executor<'e, Database = Sqlite>,
{
    #[derive(serde::Serialize)]
    struct Row<'a> {
        t: &'a str,
        p: &'a serde_json::Value,
        pr: i32,
        m: i32,
        s: i64,
        c: i64,
    }
    if new_jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row<'_>> = new_jobs
        .iter()
        .map(|j| Row {
            t: &j.job_type,
            p: &j.payload,
            pr: j.priority,
            m: j.max_retries,
            s: j.scheduled_at.as_micros(),
            c: j.created_at.as_micros(),
        })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Database(Box::new(e)))?;
    let done = sqlx::query_file!("queries/job/insert_many.sql", rows)
        .execute(executor)
        .await
        .map_err(db_error)?;
    // One statement under the write lock: AUTOINCREMENT hands out
    // consecutive ids, the last of which SQLite reports.
    let (last, count) = (done.last_insert_rowid(), done.rows_affected() as i64);
    Ok((last - count + 1..=last).map(JobId).collect())
}

fn ids(ids: Vec<i64>) -> Vec<JobId> {
    let mut ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
    ids.sort_unstable();
    ids
}

/// Rows of a set-based write travel as one JSON array parameter.
fn json_array(items: impl Iterator<Item = serde_json::Value>) -> String {
    serde_json::Value::Array(items.collect()).to_string()
}

/// `{"<id>": value, …}`: one JSON object parameter keyed by job id, whose
/// scalar values `json_each` reads without parsing a nested object per row.
fn by_id<V: std::fmt::Display>(entries: impl Iterator<Item = (JobId, V)>) -> String {
    let mut object = String::from("{");
    for (i, (id, value)) in entries.enumerate() {
        if i > 0 {
            object.push(',');
        }
        // Display writes an integer, or a `serde_json::Value` as compact JSON.
        write!(object, "\"{}\":{value}", id.0).expect("writing to a String cannot fail");
    }
    object.push('}');
    object
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn job_insert(&self, job: NewJob) -> StoreResult<Job> {
        let job = insert(&mut *self.write(Commit::Acknowledged).await?, job).await?;
        self.jobs_added();
        Ok(job)
    }

    async fn job_insert_many(&self, new_jobs: Vec<NewJob>) -> StoreResult<Vec<JobId>> {
        let ids = insert_many(&mut *self.write(Commit::Acknowledged).await?, &new_jobs).await?;
        self.jobs_added();
        Ok(ids)
    }

    async fn job_claim(&self, params: ClaimParams<'_>) -> StoreResult<Vec<Job>> {
        let (lease, now, limit) = (
            params.lease_expires_at.as_micros(),
            params.now.as_micros(),
            params.limit,
        );
        let rows = sqlx::query_file_as!(
            JobRow,
            "queries/job/claim.sql",
            params.owner,
            lease,
            now,
            limit
        )
        .fetch_all(&mut *self.write(Commit::Bookkeeping).await?)
        .await
        .map_err(db_error)?;
        let mut claimed = jobs(rows)?;
        claimed.sort_by(|a, b| {
            (b.priority, a.scheduled_at, a.id).cmp(&(a.priority, b.scheduled_at, b.id))
        });
        Ok(claimed)
    }

    async fn job_complete_many(
        &self,
        now: Timestamp,
        completions: Vec<Completion>,
    ) -> StoreResult<Vec<JobId>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let attempts = by_id(completions.iter().map(|c| (c.id, c.attempt)));
        let results = by_id(
            completions
                .iter()
                .filter_map(|c| Some((c.id, c.result.as_ref()?))),
        );
        let now = now.as_micros();
        let done =
            sqlx::query_file_scalar!("queries/job/complete_many.sql", now, attempts, results)
                .fetch_all(&mut *self.write(Commit::Bookkeeping).await?)
                .await
                .map_err(db_error)?;
        Ok(ids(done))
    }

    async fn job_fail_many(
        &self,
        now: Timestamp,
        failures: Vec<Failure>,
    ) -> StoreResult<Vec<JobId>> {
        if failures.is_empty() {
            return Ok(Vec::new());
        }
        let rows = json_array(failures.into_iter().map(|f| {
            json!({"id": f.id.0, "attempt": f.attempt, "error": f.error,
                   "retry_at": f.retry_at.map(Timestamp::as_micros)})
        }));
        let now = now.as_micros();
        let failed = sqlx::query_file_scalar!("queries/job/fail_many.sql", now, rows)
            .fetch_all(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        Ok(ids(failed))
    }

    async fn job_release_many(
        &self,
        now: Timestamp,
        releases: Vec<Release>,
    ) -> StoreResult<Vec<JobId>> {
        if releases.is_empty() {
            return Ok(Vec::new());
        }
        let attempts = by_id(releases.iter().map(|r| (r.id, r.attempt)));
        let now = now.as_micros();
        let released = sqlx::query_file_scalar!("queries/job/release_many.sql", now, attempts)
            .fetch_all(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        self.jobs_added();
        Ok(ids(released))
    }

    async fn job_heartbeat(
        &self,
        owner: &str,
        ids: &[JobId],
        now: Timestamp,
        lease_expires_at: Timestamp,
    ) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = json_array(ids.iter().map(|id| json!(id.0)));
        let (now, lease) = (now.as_micros(), lease_expires_at.as_micros());
        let done = sqlx::query_file!("queries/job/heartbeat.sql", owner, now, lease, ids)
            .execute(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn job_rescue_expired(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<JobId>> {
        let now = now.as_micros();
        let rescued = sqlx::query_file_scalar!("queries/job/rescue_expired.sql", now, limit)
            .fetch_all(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        if !rescued.is_empty() {
            self.jobs_added();
        }
        Ok(ids(rescued))
    }

    async fn job_prune(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let before = before.as_micros();
        let done = sqlx::query_file!("queries/job/prune.sql", before, limit)
            .execute(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn job_retry(&self, id: JobId, now: Timestamp) -> StoreResult<Job> {
        let at = now.as_micros();
        let row = sqlx::query_file_as!(JobRow, "queries/job/retry.sql", id.0, at)
            .fetch_optional(&mut *self.write(Commit::Acknowledged).await?)
            .await
            .map_err(db_error)?;
        let changed = row.map(Job::try_from);
        let job = changed_or_conflict(
            self,
            id,
            changed,
            "only a failed or cancelled job can be retried",
        )
        .await?;
        self.jobs_added();
        Ok(job)
    }

    async fn job_cancel(&self, id: JobId, now: Timestamp) -> StoreResult<Job> {
        let at = now.as_micros();
        let row = sqlx::query_file_as!(JobRow, "queries/job/cancel.sql", id.0, at)
            .fetch_optional(&mut *self.write(Commit::Acknowledged).await?)
            .await
            .map_err(db_error)?;
        let changed = row.map(Job::try_from);
        changed_or_conflict(
            self,
            id,
            changed,
            "only a job that has not started can be cancelled",
        )
        .await
    }

    async fn job_get(&self, id: JobId) -> StoreResult<Job> {
        sqlx::query_file_as!(JobRow, "queries/job/get.sql", id.0)
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?
            .try_into()
    }

    async fn job_list(&self, filter: JobFilter) -> StoreResult<Page<Job>> {
        let status = filter.status.map(JobStatus::as_str);
        let after = filter.after.map_or(0, |id| id.0);
        let limit = filter.limit.max(1);
        let rows = sqlx::query_file_as!(
            JobRow,
            "queries/job/list.sql",
            status,
            filter.job_type,
            after,
            limit
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error)?;
        Ok(Page::of(jobs(rows)?, limit, |j| j.id.0))
    }

    async fn job_stats(&self, now: Timestamp) -> StoreResult<JobStats> {
        let rows = sqlx::query_file!("queries/job/stats.sql")
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?;
        let at = now.as_micros();
        let oldest = sqlx::query_file_scalar!("queries/job/oldest_ready.sql", at)
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?;
        let counts = rows.into_iter().map(|r| (r.job_type, r.status, r.count));
        JobStats::from_counts(counts, oldest.map(|t| (at - t) / 1_000))
            .map_err(|e| StoreError::Database(Box::new(e)))
    }

    async fn job_next_scheduled_at(&self) -> StoreResult<Option<Timestamp>> {
        let next = sqlx::query_file_scalar!("queries/job/next_scheduled.sql")
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(next.map(Timestamp::from_micros))
    }

    async fn job_wait_for_change(&self, max_wait: Duration) {
        tokio::select! {
            () = self.jobs_added.notified() => {}
            () = self.watch.changed() => {}
            () = tokio::time::sleep(max_wait) => {}
        }
    }

    async fn leader_acquire(&self, params: LeaderParams<'_>) -> StoreResult<bool> {
        let now = params.now.as_micros();
        let until = params.now.saturating_add(params.ttl).as_micros();
        let held = sqlx::query_file_scalar!(
            "queries/leader/acquire.sql",
            params.name,
            params.owner,
            now,
            until
        )
        .fetch_optional(&mut *self.write(Commit::Bookkeeping).await?)
        .await
        .map_err(db_error)?;
        Ok(held.is_some())
    }

    async fn leader_release(&self, name: &str, owner: &str) -> StoreResult<()> {
        sqlx::query_file!("queries/leader/release.sql", name, owner)
            .execute(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
