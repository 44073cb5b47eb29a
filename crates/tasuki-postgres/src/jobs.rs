//! The job queue on PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tasuki_core::{
    ClaimParams, Completion, Failure, Job, JobFilter, JobId, JobStats, JobStatus, JobStore,
    LeaderParams, NewJob, Page, Release, StoreError, StoreResult, Timestamp,
};

use crate::PgStore;
use crate::rows::{JobRow, db_error, jobs};

pub(crate) async fn insert(conn: &mut sqlx::PgConnection, job: NewJob) -> StoreResult<Job> {
    sqlx::query_file_as!(
        JobRow,
        "queries/job/insert.sql",
        job.job_type,
        job.payload,
        job.priority,
        job.max_retries,
        job.scheduled_at.to_datetime(),
        job.created_at.to_datetime()
    )
    .fetch_one(conn)
    .await
    .map_err(db_error)?
    .try_into()
}

fn ids(ids: Vec<i64>) -> Vec<JobId> {
    let mut ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
    ids.sort_unstable();
    ids
}

#[async_trait]
impl JobStore for PgStore {
    async fn job_insert(&self, job: NewJob) -> StoreResult<Job> {
        let job = insert(&mut *self.pool.acquire().await.map_err(db_error)?, job).await?;
        self.jobs_added();
        Ok(job)
    }

    async fn job_insert_many(&self, new_jobs: Vec<NewJob>) -> StoreResult<Vec<JobId>> {
        if new_jobs.is_empty() {
            return Ok(Vec::new());
        }
        let n = new_jobs.len();
        let (mut types, mut payloads, mut priorities, mut retries, mut due, mut created) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for job in new_jobs {
            types.push(job.job_type);
            payloads.push(job.payload);
            priorities.push(job.priority);
            retries.push(job.max_retries);
            due.push(job.scheduled_at.to_datetime());
            created.push(job.created_at.to_datetime());
        }
        let inserted = sqlx::query_file_scalar!(
            "queries/job/insert_many.sql",
            &types,
            &payloads,
            &priorities,
            &retries,
            &due,
            &created
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        self.jobs_added();
        // The sequence numbers the rows in the order they were given.
        Ok(ids(inserted))
    }

    async fn job_claim(&self, params: ClaimParams<'_>) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query_file_as!(
            JobRow,
            "queries/job/claim.sql",
            params.owner,
            params.lease_expires_at.to_datetime(),
            params.now.to_datetime(),
            i64::from(params.limit)
        )
        .fetch_all(&self.bookkeeping)
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
        let (mut job_ids, mut attempts, mut results) = (Vec::new(), Vec::new(), Vec::new());
        for c in completions {
            job_ids.push(c.id.0);
            attempts.push(c.attempt);
            results.push(c.result);
        }
        let done = sqlx::query_file_scalar!(
            "queries/job/complete_many.sql",
            now.to_datetime(),
            &job_ids,
            &attempts,
            &results as &[Option<serde_json::Value>]
        )
        .fetch_all(&self.bookkeeping)
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
        let (mut job_ids, mut attempts, mut errors, mut retry_at) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for f in failures {
            job_ids.push(f.id.0);
            attempts.push(f.attempt);
            errors.push(f.error);
            retry_at.push(f.retry_at.map(Timestamp::to_datetime));
        }
        let failed = sqlx::query_file_scalar!(
            "queries/job/fail_many.sql",
            now.to_datetime(),
            now.as_micros(),
            &job_ids,
            &attempts,
            &errors,
            &retry_at as &[Option<chrono::DateTime<chrono::Utc>>]
        )
        .fetch_all(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        if !failed.is_empty() {
            // Retries due now must not wait for the next poll.
            self.jobs_added();
        }
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
        let (job_ids, attempts): (Vec<i64>, Vec<i32>) =
            releases.iter().map(|r| (r.id.0, r.attempt)).unzip();
        let released = sqlx::query_file_scalar!(
            "queries/job/release_many.sql",
            now.to_datetime(),
            &job_ids,
            &attempts
        )
        .fetch_all(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        self.notify_all().await?;
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
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let done = sqlx::query_file!(
            "queries/job/heartbeat.sql",
            owner,
            now.to_datetime(),
            lease_expires_at.to_datetime(),
            &ids
        )
        .execute(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn job_rescue_expired(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<JobId>> {
        let rescued = sqlx::query_file_scalar!(
            "queries/job/rescue_expired.sql",
            now.to_datetime(),
            now.as_micros(),
            i64::from(limit)
        )
        .fetch_all(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        if !rescued.is_empty() {
            self.notify_all().await?;
        }
        Ok(ids(rescued))
    }

    async fn job_prune(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let done = sqlx::query_file!(
            "queries/job/prune.sql",
            before.to_datetime(),
            i64::from(limit)
        )
        .execute(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn job_retry(&self, id: JobId, now: Timestamp) -> StoreResult<Job> {
        let row = sqlx::query_file_as!(JobRow, "queries/job/retry.sql", id.0, now.to_datetime())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        let job = self
            .changed_or_conflict(id, row, "only a failed or cancelled job can be retried")
            .await?;
        self.notify_all().await?;
        Ok(job)
    }

    async fn job_cancel(&self, id: JobId, now: Timestamp) -> StoreResult<Job> {
        let row = sqlx::query_file_as!(JobRow, "queries/job/cancel.sql", id.0, now.to_datetime())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        self.changed_or_conflict(id, row, "only a job that has not started can be cancelled")
            .await
    }

    async fn job_get(&self, id: JobId) -> StoreResult<Job> {
        sqlx::query_file_as!(JobRow, "queries/job/get.sql", id.0)
            .fetch_one(&self.pool)
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
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let items = jobs(rows)?;
        let next_after = (items.len() == limit as usize)
            .then(|| items.last().map(|j| j.id.0))
            .flatten();
        Ok(Page { items, next_after })
    }

    async fn job_stats(&self, now: Timestamp) -> StoreResult<JobStats> {
        let rows = sqlx::query_file!("queries/job/stats.sql")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let mut stats = JobStats::default();
        for status in JobStatus::ALL {
            stats.by_status.insert(status, 0);
        }
        for row in rows {
            let status: JobStatus = row
                .status
                .parse()
                .map_err(|e| StoreError::Database(Box::new(e)))?;
            *stats.by_status.entry(status).or_default() += row.count;
            *stats
                .by_type
                .entry(row.job_type)
                .or_insert_with(BTreeMap::new)
                .entry(status)
                .or_default() += row.count;
        }
        let oldest = sqlx::query_file_scalar!("queries/job/oldest_ready.sql", now.to_datetime())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        stats.oldest_ready_age_ms =
            oldest.map(|t| (now.as_micros() - Timestamp::from(t).as_micros()) / 1_000);
        Ok(stats)
    }

    async fn job_next_scheduled_at(&self) -> StoreResult<Option<Timestamp>> {
        let next = sqlx::query_file_scalar!("queries/job/next_scheduled.sql")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(next.map(Timestamp::from))
    }

    async fn job_wait_for_change(&self, max_wait: Duration) {
        tokio::select! {
            () = self.jobs_added.notified() => {}
            () = tokio::time::sleep(max_wait) => {}
        }
    }

    async fn leader_acquire(&self, params: LeaderParams<'_>) -> StoreResult<bool> {
        let until = params.now.saturating_add(params.ttl);
        let held = sqlx::query_file_scalar!(
            "queries/leader/acquire.sql",
            params.name,
            params.owner,
            params.now.to_datetime(),
            until.to_datetime()
        )
        .fetch_optional(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        Ok(held.is_some())
    }

    async fn leader_release(&self, name: &str, owner: &str) -> StoreResult<()> {
        sqlx::query_file!("queries/leader/release.sql", name, owner)
            .execute(&self.bookkeeping)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

impl PgStore {
    /// After a conditional update: the changed job, or why there was none.
    async fn changed_or_conflict(
        &self,
        id: JobId,
        row: Option<JobRow>,
        conflict: &str,
    ) -> StoreResult<Job> {
        match row {
            Some(row) => row.try_into(),
            None => {
                let job = self.job_get(id).await?;
                Err(StoreError::Conflict(format!(
                    "{conflict}; job {id} is {}",
                    job.status
                )))
            }
        }
    }
}
