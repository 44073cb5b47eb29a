//! The job queue on SQLite.

use std::fmt::Write;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use serde_json::json;
use tasuki_core::{
    ClaimParams, Completed, Completion, Enqueued, Failure, Inserted, Job, JobFilter, JobId,
    JobStats, JobStatus, JobStore, LeaderParams, NewJob, Page, Release, StoreError, StoreResult,
    Timestamp, changed_or_conflict, unique_clash,
};

use crate::SqliteStore;
use crate::queries::{self, Query};
use crate::queues::Claim;
use crate::rows::{self, Error};
use crate::writer::Commit;

/// Adds a job; a unique job whose key is held answers with its holder,
/// found in the same write.
pub(crate) fn insert(conn: &Connection, job: &NewJob) -> Result<Enqueued, Error> {
    match returned_job(conn, &queries::JOB_INSERT, insert_params(job))? {
        Some(job) => Ok(Enqueued {
            job,
            duplicate: false,
        }),
        None => Ok(Enqueued {
            job: unique_holder(conn, job)?,
            duplicate: true,
        }),
    }
}

/// The job that holds a unique job's key: it kept the job from being added.
fn unique_holder(conn: &Connection, job: &NewJob) -> Result<Job, Error> {
    let key = job.unique.as_ref().map(|u| u.key.as_str());
    let holder = returned_job(conn, &queries::JOB_UNIQUE_HOLDER, (&job.job_type, key))?;
    holder.ok_or_else(|| {
        StoreError::Database(
            format!("no holder of the unique key of a `{}` job", job.job_type).into(),
        )
        .into()
    })
}

/// The parameters of `job/insert.sql`.
fn insert_params(job: &NewJob) -> impl rusqlite::Params + '_ {
    (
        &job.job_type,
        job.payload.to_string(),
        job.queue_name(),
        job.priority,
        job.retries(),
        job.unique.as_ref().map(|u| u.key.as_str()),
        job.unique.as_ref().map(|u| u.states.bits()),
        job.scheduled_at.as_micros(),
        job.created_at.as_micros(),
    )
}

/// Adds jobs in one write, answering per job in order: the ones with no
/// unique key in one statement, the unique ones each with its holder.
pub(crate) fn insert_many(conn: &Connection, new_jobs: &[NewJob]) -> Result<Vec<Inserted>, Error> {
    if new_jobs.iter().any(|j| j.unique.is_some()) {
        return new_jobs
            .iter()
            .map(|job| {
                insert(conn, job).map(|e| Inserted {
                    id: e.job.id,
                    duplicate: e.duplicate,
                })
            })
            .collect();
    }
    Ok(insert_plain(conn, new_jobs)?
        .into_iter()
        .map(|id| Inserted {
            id,
            duplicate: false,
        })
        .collect())
}

/// Inserts jobs with no unique key in one statement; returns their ids in order.
fn insert_plain(conn: &Connection, new_jobs: &[NewJob]) -> Result<Vec<JobId>, Error> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        t: &'a str,
        p: &'a serde_json::Value,
        q: &'a str,
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
            q: j.queue_name(),
            pr: j.priority,
            m: j.retries(),
            s: j.scheduled_at.as_micros(),
            c: j.created_at.as_micros(),
        })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Database(Box::new(e)))?;
    let count = conn
        .prepare_cached(queries::JOB_INSERT_MANY.sql)?
        .execute([rows])? as i64;
    // One statement under the write lock: AUTOINCREMENT hands out
    // consecutive ids, the last of which SQLite reports.
    let last = conn.last_insert_rowid();
    Ok((last - count + 1..=last).map(JobId).collect())
}

/// Runs a statement that returns job ids; sorted.
pub(crate) fn returned_ids(
    conn: &Connection,
    query: &Query,
    params: impl rusqlite::Params,
) -> Result<Vec<JobId>, Error> {
    let mut statement = conn.prepare_cached(query.sql)?;
    let mut ids = statement
        .query_map(params, |row| row.get(0).map(JobId))?
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// Runs a statement that returns at most one job.
fn returned_job(
    conn: &Connection,
    query: &Query,
    params: impl rusqlite::Params,
) -> Result<Option<Job>, Error> {
    let mut statement = conn.prepare_cached(query.sql)?;
    let mut rows = statement.query(params)?;
    rows.next()?.map(rows::job).transpose()
}

/// Rows of a set-based write travel as one JSON array parameter.
fn json_array(items: impl Iterator<Item = serde_json::Value>) -> String {
    serde_json::Value::Array(items.collect()).to_string()
}

/// `{"<id>": value, …}`: one JSON object parameter keyed by job id, whose
/// scalar values `json_each` reads without parsing a nested object per row.
pub(crate) fn by_id<V: std::fmt::Display>(entries: impl Iterator<Item = (JobId, V)>) -> String {
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
    async fn job_insert(&self, job: NewJob) -> StoreResult<Enqueued> {
        let job = self
            .writer
            .write(Commit::Acknowledged, move |conn| insert(conn, &job))
            .await?;
        self.jobs_added();
        Ok(job)
    }

    async fn job_insert_many(&self, new_jobs: Vec<NewJob>) -> StoreResult<Vec<Inserted>> {
        let ids = self
            .writer
            .write(Commit::Acknowledged, move |conn| {
                insert_many(conn, &new_jobs)
            })
            .await?;
        self.jobs_added();
        Ok(ids)
    }

    async fn job_claim(&self, params: ClaimParams<'_>) -> StoreResult<Vec<Job>> {
        let claim = Claim {
            owner: params.owner.to_owned(),
            queue: params.queue.map(str::to_owned),
            limit: params.limit,
            now: params.now.as_micros(),
            lease: params.lease_expires_at.as_micros(),
        };
        let mut claimed = self
            .writer
            .write(Commit::Bookkeeping, move |conn| claim.run(conn))
            .await?;
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
        let (completed, enqueued) = self
            .writer
            .write(Commit::Bookkeeping, move |conn| {
                crate::tx::complete(conn, now, &completions)
            })
            .await?;
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
        let rows = json_array(failures.into_iter().map(|f| {
            json!({"id": f.id.0, "attempt": f.attempt, "error": f.error,
                   "retry_at": f.retry_at.map(Timestamp::as_micros)})
        }));
        let now = now.as_micros();
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                returned_ids(conn, &queries::JOB_FAIL_MANY, (now, rows))
            })
            .await
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
        let released = self
            .writer
            .write(Commit::Bookkeeping, move |conn| {
                returned_ids(conn, &queries::JOB_RELEASE_MANY, (now, attempts))
            })
            .await?;
        self.jobs_added();
        Ok(released)
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
        let (owner, now, lease) = (
            owner.to_owned(),
            now.as_micros(),
            lease_expires_at.as_micros(),
        );
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                let mut statement = conn.prepare_cached(queries::JOB_HEARTBEAT.sql)?;
                Ok(statement.execute((owner, now, lease, ids))? as u64)
            })
            .await
    }

    async fn job_rescue_expired(&self, now: Timestamp, limit: u32) -> StoreResult<Vec<JobId>> {
        let now = now.as_micros();
        let rescued = self
            .writer
            .write(Commit::Bookkeeping, move |conn| {
                returned_ids(conn, &queries::JOB_RESCUE_EXPIRED, (now, limit))
            })
            .await?;
        if !rescued.is_empty() {
            self.jobs_added();
        }
        Ok(rescued)
    }

    async fn job_prune(&self, before: Timestamp, limit: u32) -> StoreResult<u64> {
        let before = before.as_micros();
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                let mut statement = conn.prepare_cached(queries::JOB_PRUNE.sql)?;
                Ok(statement.execute((before, limit))? as u64)
            })
            .await
    }

    async fn job_retry(&self, id: JobId, now: Timestamp) -> StoreResult<Job> {
        let at = now.as_micros();
        let changed = self
            .writer
            .write(Commit::Acknowledged, move |conn| {
                returned_job(conn, &queries::JOB_RETRY, (id.0, at))
            })
            .await
            .map_err(|e| unique_clash(id, e))?;
        let job = changed_or_conflict(
            self,
            id,
            changed.map(Ok),
            "only a failed or cancelled job can be retried",
        )
        .await?;
        self.jobs_added();
        Ok(job)
    }

    async fn job_cancel(&self, id: JobId, now: Timestamp) -> StoreResult<Job> {
        let at = now.as_micros();
        let changed = self
            .writer
            .write(Commit::Acknowledged, move |conn| {
                returned_job(conn, &queries::JOB_CANCEL, (id.0, at))
            })
            .await?;
        changed_or_conflict(
            self,
            id,
            changed.map(Ok),
            "only a job that has not started can be cancelled",
        )
        .await
    }

    async fn job_delete_many(&self, ids: &[JobId]) -> StoreResult<Vec<JobId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = json_array(ids.iter().map(|id| json!(id.0)));
        self.writer
            .write(Commit::Acknowledged, move |conn| {
                returned_ids(conn, &queries::JOB_DELETE_MANY, [ids])
            })
            .await
    }

    async fn job_get(&self, id: JobId) -> StoreResult<Job> {
        self.readers
            .read(move |conn| {
                returned_job(conn, &queries::JOB_GET, [id.0])?.ok_or(StoreError::NotFound.into())
            })
            .await
    }

    async fn job_list(&self, filter: JobFilter) -> StoreResult<Page<Job>> {
        let limit = filter.limit.max(1);
        self.readers
            .read(move |conn| {
                let status = filter.status.map(JobStatus::as_str);
                let (job_type, queue) = (&filter.job_type, &filter.queue);
                if !filter.newest_first {
                    let after = filter.after.map_or(0, |id| id.0);
                    let mut statement = conn.prepare_cached(queries::JOB_LIST.sql)?;
                    let rows = statement.query((status, job_type, after, limit, queue))?;
                    return Ok(Page::of(rows::all(rows, rows::job)?, limit, |j| j.id.0));
                }
                let max_id = match filter.scan {
                    Some(_) => Some(
                        conn.prepare_cached(queries::JOB_MAX_ID.sql)?
                            .query_row([], |row| row.get(0))?,
                    ),
                    None => None,
                };
                let (lower, upper) = filter.newest_window(max_id);
                let mut statement = conn.prepare_cached(queries::JOB_LIST_NEWEST.sql)?;
                let rows = statement.query((status, job_type, upper, limit, queue, lower))?;
                let jobs = rows::all(rows, rows::job)?;
                Ok(Page::of_window(jobs, limit, lower, |j| j.id.0))
            })
            .await
    }

    async fn job_stats(&self, now: Timestamp) -> StoreResult<JobStats> {
        let at = now.as_micros();
        let (counts, oldest) = self
            .readers
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::JOB_STATS.sql)?;
                let counts = statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .collect::<Result<Vec<(String, String, i64)>, _>>()?;
                let oldest: Option<i64> = conn
                    .prepare_cached(queries::JOB_OLDEST_READY.sql)?
                    .query_row([at], |row| row.get(0))?;
                Ok((counts, oldest))
            })
            .await?;
        JobStats::from_counts(counts, oldest.map(|t| (at - t) / 1_000))
            .map_err(|e| StoreError::Database(Box::new(e)))
    }

    async fn job_next_scheduled_at(&self, queue: Option<&str>) -> StoreResult<Option<Timestamp>> {
        let queue = queue.map(str::to_owned);
        let next: Option<i64> = self
            .readers
            .read(move |conn| {
                Ok(match queue {
                    None => conn
                        .prepare_cached(queries::JOB_NEXT_SCHEDULED.sql)?
                        .query_row([], |row| row.get(0))?,
                    Some(queue) => conn
                        .prepare_cached(queries::JOB_NEXT_SCHEDULED_QUEUE.sql)?
                        .query_row([queue], |row| row.get(0))?,
                })
            })
            .await?;
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
        let (name, owner) = (params.name.to_owned(), params.owner.to_owned());
        let now = params.now.as_micros();
        let until = params.now.saturating_add(params.ttl).as_micros();
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                let held: Option<String> = conn
                    .prepare_cached(queries::LEADER_ACQUIRE.sql)?
                    .query_row((name, owner, now, until), |row| row.get(0))
                    .optional()?;
                Ok(held.is_some())
            })
            .await
    }

    async fn leader_release(&self, name: &str, owner: &str) -> StoreResult<()> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                conn.prepare_cached(queries::LEADER_RELEASE.sql)?
                    .execute((name, owner))?;
                Ok(())
            })
            .await
    }
}
