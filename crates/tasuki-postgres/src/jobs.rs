//! The job queue on PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use tasuki_core::{
    ClaimParams, Completed, Completion, Enqueued, Failure, Inserted, Job, JobFilter, JobId,
    JobStats, JobStatus, JobStore, LeaderParams, NewJob, Page, Release, StoreError, StoreResult,
    Timestamp, changed_or_conflict, unique_clash,
};

use crate::PgStore;
use crate::rows::{JobRow, db_error, jobs};
use crate::tx::Outcome;

/// Adds a job; a unique job whose key is held answers with its holder.
pub(crate) async fn insert(conn: &mut sqlx::PgConnection, job: NewJob) -> StoreResult<Enqueued> {
    let (key, states) = match &job.unique {
        Some(unique) => (
            Some(unique.key.clone()),
            Some(i16::from(unique.states.bits())),
        ),
        None => (None, None),
    };
    loop {
        let inserted = sqlx::query_file_as!(
            JobRow,
            "queries/job/insert.sql",
            job.job_type,
            job.payload,
            job.queue_name(),
            job.priority,
            job.retries(),
            key,
            states,
            job.scheduled_at.to_datetime(),
            job.created_at.to_datetime()
        )
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        if let Some(row) = inserted {
            return Ok(Enqueued {
                job: row.try_into()?,
                duplicate: false,
            });
        }
        // ON CONFLICT waited for the holder to commit; it may have finished
        // since, freeing the key, and then the insert goes again.
        let holder =
            sqlx::query_file_as!(JobRow, "queries/job/unique_holder.sql", job.job_type, key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?;
        if let Some(row) = holder {
            return Ok(Enqueued {
                job: row.try_into()?,
                duplicate: true,
            });
        }
    }
}

pub(crate) fn ids(ids: Vec<i64>) -> Vec<JobId> {
    let mut ids: Vec<JobId> = ids.into_iter().map(JobId).collect();
    ids.sort_unstable();
    ids
}

/// Adds jobs, answering per job in order: the ones with no unique key in
/// one statement, the unique ones each with its holder. For an
/// application's own transaction, as `tasuki_postgres::insert_jobs`: the
/// jobs commit with its writes; outside one, pass a transaction when the
/// jobs must commit together.
pub async fn insert_many(
    conn: &mut sqlx::PgConnection,
    new_jobs: Vec<NewJob>,
) -> StoreResult<Vec<Inserted>> {
    if new_jobs.iter().any(|j| j.unique.is_some()) {
        return insert_unique(conn, new_jobs).await;
    }
    Ok(insert_plain(conn, new_jobs)
        .await?
        .into_iter()
        .map(|id| Inserted {
            id,
            duplicate: false,
        })
        .collect())
}

/// Inserts jobs of which some are unique in one statement, then reads the
/// holders of the keys it found held in one more; answers per job, in order.
async fn insert_unique(
    conn: &mut sqlx::PgConnection,
    new_jobs: Vec<NewJob>,
) -> StoreResult<Vec<Inserted>> {
    let n = new_jobs.len();
    let mut columns = Columns::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    for job in &new_jobs {
        keys.push(job.unique.as_ref().map(|u| u.key.clone()));
        states.push(job.unique.as_ref().map(|u| i16::from(u.states.bits())));
        columns.push(job);
    }
    let mut rows = sqlx::query_file!(
        "queries/job/insert_unique_many.sql",
        &columns.types,
        &columns.payloads,
        &columns.queues,
        &columns.priorities,
        &columns.retries,
        &keys as &[Option<String>],
        &states as &[Option<i16>],
        &columns.due,
        &columns.created
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    // The sequence numbers the rows in the order they were given.
    rows.sort_unstable_by_key(|row| row.id);
    let mut rows = rows.into_iter().peekable();
    let mut answers: Vec<Option<Inserted>> = Vec::with_capacity(n);
    let mut added: HashMap<(&str, &str), JobId> = HashMap::new();
    for (job, key) in new_jobs.iter().zip(&keys) {
        let row = rows.next_if(|row| row.unique_key == *key && row.job_type == job.job_type);
        answers.push(match (row, key) {
            (Some(row), None) => Some(Inserted {
                id: JobId(row.id),
                duplicate: false,
            }),
            (Some(row), Some(key)) => {
                added.insert((&job.job_type, key), JobId(row.id));
                Some(Inserted {
                    id: JobId(row.id),
                    duplicate: false,
                })
            }
            (None, Some(key)) => added
                .get(&(job.job_type.as_str(), key.as_str()))
                .map(|&id| Inserted {
                    id,
                    duplicate: true,
                }),
            (None, None) => {
                return Err(StoreError::Database(
                    "a job with no unique key was not inserted".into(),
                ));
            }
        });
    }
    let (held_types, held_keys): (Vec<String>, Vec<String>) = new_jobs
        .iter()
        .zip(&keys)
        .zip(&answers)
        .filter(|(_, answer)| answer.is_none())
        .filter_map(|((job, key), _)| Some((job.job_type.clone(), key.clone()?)))
        .unzip();
    let holders: HashMap<(String, String), JobId> = if held_keys.is_empty() {
        HashMap::new()
    } else {
        sqlx::query_file!("queries/job/unique_holders.sql", &held_types, &held_keys)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|row| ((row.job_type, row.unique_key), JobId(row.id)))
            .collect()
    };
    let mut inserted = Vec::with_capacity(n);
    for ((job, key), answer) in new_jobs.into_iter().zip(keys).zip(answers) {
        inserted.push(match answer {
            Some(answer) => answer,
            None => match holders.get(&(job.job_type.clone(), key.unwrap_or_default())) {
                Some(&id) => Inserted {
                    id,
                    duplicate: true,
                },
                // The holder finished since: the key is free again.
                None => {
                    let enqueued = insert(conn, job).await?;
                    Inserted {
                        id: enqueued.job.id,
                        duplicate: enqueued.duplicate,
                    }
                }
            },
        });
    }
    Ok(inserted)
}

/// The columns every insert of many jobs binds, one array each.
struct Columns {
    types: Vec<String>,
    payloads: Vec<serde_json::Value>,
    queues: Vec<String>,
    priorities: Vec<i32>,
    retries: Vec<i32>,
    due: Vec<chrono::DateTime<chrono::Utc>>,
    created: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            types: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            queues: Vec::with_capacity(n),
            priorities: Vec::with_capacity(n),
            retries: Vec::with_capacity(n),
            due: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, job: &NewJob) {
        self.types.push(job.job_type.clone());
        self.payloads.push(job.payload.clone());
        self.queues.push(job.queue_name().to_owned());
        self.priorities.push(job.priority);
        self.retries.push(job.retries());
        self.due.push(job.scheduled_at.to_datetime());
        self.created.push(job.created_at.to_datetime());
    }
}

/// Inserts jobs with no unique key in one statement; returns their ids in order.
async fn insert_plain(
    conn: &mut sqlx::PgConnection,
    new_jobs: Vec<NewJob>,
) -> StoreResult<Vec<JobId>> {
    if new_jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = Columns::with_capacity(new_jobs.len());
    for job in &new_jobs {
        columns.push(job);
    }
    let inserted = sqlx::query_file_scalar!(
        "queries/job/insert_many.sql",
        &columns.types,
        &columns.payloads,
        &columns.queues,
        &columns.priorities,
        &columns.retries,
        &columns.due,
        &columns.created
    )
    .fetch_all(conn)
    .await
    .map_err(db_error)?;
    // The sequence numbers the rows in the order they were given.
    Ok(ids(inserted))
}

/// Takes `n` ids from the sequence, for jobs that `insert_with_ids` adds
/// later in the transaction; in ascending order.
pub(crate) async fn take_ids(conn: &mut sqlx::PgConnection, n: usize) -> StoreResult<Vec<i64>> {
    let n = i32::try_from(n).map_err(|_| StoreError::Database("too many ids".into()))?;
    let mut taken = sqlx::query_file_scalar!("queries/job/take_ids.sql", n)
        .fetch_all(conn)
        .await
        .map_err(db_error)?;
    taken.sort_unstable();
    Ok(taken)
}

/// Adds jobs with no unique key under the ids taken for them, in one
/// statement.
pub(crate) async fn insert_with_ids(
    conn: &mut sqlx::PgConnection,
    new_jobs: &[(i64, NewJob)],
) -> StoreResult<()> {
    let mut columns = Columns::with_capacity(new_jobs.len());
    let mut job_ids = Vec::with_capacity(new_jobs.len());
    for (id, job) in new_jobs {
        job_ids.push(*id);
        columns.push(job);
    }
    sqlx::query_file!(
        "queries/job/insert_many_ids.sql",
        &job_ids,
        &columns.types,
        &columns.payloads,
        &columns.queues,
        &columns.priorities,
        &columns.retries,
        &columns.due,
        &columns.created
    )
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl JobStore for PgStore {
    async fn job_insert(&self, job: NewJob) -> StoreResult<Enqueued> {
        let job = insert(&mut *self.pool.acquire().await.map_err(db_error)?, job).await?;
        self.jobs_added();
        Ok(job)
    }

    async fn job_insert_many(&self, new_jobs: Vec<NewJob>) -> StoreResult<Vec<Inserted>> {
        // All or none: the unique jobs' inserts are statements of their own.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let inserted = insert_many(&mut tx, new_jobs).await?;
        tx.commit().await.map_err(db_error)?;
        self.jobs_added();
        Ok(inserted)
    }

    async fn job_claim(&self, params: ClaimParams<'_>) -> StoreResult<Vec<Job>> {
        let mut claimed = crate::queues::claim(self, &params).await?;
        claimed.sort_by(|a, b| {
            (b.priority, a.scheduled_at, a.id).cmp(&(a.priority, b.scheduled_at, b.id))
        });
        Ok(claimed)
    }

    async fn job_complete_many(
        &self,
        now: Timestamp,
        completions: Vec<Completion>,
    ) -> StoreResult<Completed> {
        if completions.is_empty() {
            return Ok(Completed::default());
        }
        let mut together = None;
        let (completed, enqueued) = loop {
            let mut tx = self.bookkeeping.begin().await.map_err(db_error)?;
            match crate::tx::complete(&mut tx, now, &completions, together.is_some()).await? {
                Outcome::Done(completed, enqueued) => {
                    tx.commit().await.map_err(db_error)?;
                    break (completed, enqueued);
                }
                // Some writes failed: again, each job's in a savepoint.
                Outcome::Failed(error) => {
                    tx.rollback().await.map_err(db_error)?;
                    together = Some(error);
                }
            }
        };
        if let Some(error) = together
            && completed.failed_writes.is_empty()
        {
            // Nothing failed alone: a set's statement, say, that fails for
            // every batch of more than one would go unseen, every batch
            // paying for its failure and a savepoint per job.
            tracing::warn!(
                %error,
                jobs = completions.len(),
                "a batch's writes failed together and not one by one"
            );
        }
        if enqueued {
            self.jobs_added();
        }
        Ok(completed)
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
            .map_err(|e| unique_clash(id, db_error(e)))?;
        let changed = row.map(Job::try_from);
        let job = changed_or_conflict(
            self,
            id,
            changed,
            "only a failed or cancelled job can be retried",
        )
        .await?;
        self.notify_all().await?;
        Ok(job)
    }

    async fn job_cancel(&self, id: JobId, now: Timestamp) -> StoreResult<Job> {
        let row = sqlx::query_file_as!(JobRow, "queries/job/cancel.sql", id.0, now.to_datetime())
            .fetch_optional(&self.pool)
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

    async fn job_delete_many(&self, ids: &[JobId]) -> StoreResult<Vec<JobId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let mut deleted = sqlx::query_file_scalar!("queries/job/delete_many.sql", &ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        deleted.sort_unstable();
        Ok(deleted.into_iter().map(JobId).collect())
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
        let limit = filter.limit.max(1);
        if filter.newest_first {
            let max_id = match filter.scan {
                Some(_) => Some(
                    sqlx::query_file_scalar!("queries/job/max_id.sql")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(db_error)?,
                ),
                None => None,
            };
            let (lower, upper) = filter.newest_window(max_id);
            let rows = sqlx::query_file_as!(
                JobRow,
                "queries/job/list_newest.sql",
                status,
                filter.job_type,
                upper,
                i64::from(limit),
                filter.queue,
                lower
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            return Ok(Page::of_window(jobs(rows)?, limit, lower, |j| j.id.0));
        }
        let rows = sqlx::query_file_as!(
            JobRow,
            "queries/job/list.sql",
            status,
            filter.job_type,
            filter.after.map_or(0, |id| id.0),
            i64::from(limit),
            filter.queue
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(Page::of(jobs(rows)?, limit, |j| j.id.0))
    }

    async fn job_stats(&self, now: Timestamp) -> StoreResult<JobStats> {
        let rows = sqlx::query_file!("queries/job/stats.sql")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let oldest = sqlx::query_file_scalar!("queries/job/oldest_ready.sql", now.to_datetime())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        let oldest_ms = oldest.map(|t| (now.as_micros() - Timestamp::from(t).as_micros()) / 1_000);
        let counts = rows.into_iter().map(|r| (r.job_type, r.status, r.count));
        JobStats::from_counts(counts, oldest_ms).map_err(|e| StoreError::Database(Box::new(e)))
    }

    async fn job_next_scheduled_at(&self, queue: Option<&str>) -> StoreResult<Option<Timestamp>> {
        let next = match queue {
            None => {
                sqlx::query_file_scalar!("queries/job/next_scheduled.sql")
                    .fetch_one(&self.pool)
                    .await
            }
            Some(queue) => {
                sqlx::query_file_scalar!("queries/job/next_scheduled_queue.sql", queue)
                    .fetch_one(&self.pool)
                    .await
            }
        }
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
