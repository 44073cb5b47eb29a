//! Named queues on PostgreSQL: claims that honour each queue's pause and
//! limits, and the queues' settings.
//!
//! A claim from queues that are neither paused nor limited is today's one
//! statement, which skips the others by a look at the small `queues` table.
//! A limited queue is claimed in a transaction of its own that locks its
//! settings row: its claimers, on any host, take turns, and each counts the
//! queue's processing jobs and its starts in the rate window after the one
//! before it committed (READ COMMITTED takes a fresh snapshot per statement).
//! Which queues are limited is cached for a second: a stale cache only
//! delays a queue's jobs, since every statement checks the table itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tasuki_core::{
    ClaimParams, Job, QueueChange, QueueInfo, QueueSettings, QueueStore, StoreError, StoreResult,
    Timestamp,
};

use crate::PgStore;
use crate::rows::{JobRow, db_error, jobs};

/// How long the names of the limited queues are trusted.
const HELD_BACK_TTL: Duration = Duration::from_secs(1);

/// The names of the limited queues that are not paused, as last read.
#[derive(Default)]
pub(crate) struct HeldBack {
    read: Mutex<Option<(Instant, Arc<[String]>)>>,
}

impl HeldBack {
    pub(crate) fn forget(&self) {
        *self.read.lock().expect("never poisoned") = None;
    }
}

async fn limited_queues(store: &PgStore) -> StoreResult<Arc<[String]>> {
    if let Some((at, names)) = &*store.held_back.read.lock().expect("never poisoned")
        && at.elapsed() < HELD_BACK_TTL
    {
        return Ok(names.clone());
    }
    let names: Arc<[String]> = sqlx::query_file_scalar!("queries/queue/held_back.sql")
        .fetch_all(&store.bookkeeping)
        .await
        .map_err(db_error)?
        .into();
    *store.held_back.read.lock().expect("never poisoned") = Some((Instant::now(), names.clone()));
    Ok(names)
}

pub(crate) async fn claim(store: &PgStore, params: &ClaimParams<'_>) -> StoreResult<Vec<Job>> {
    let held = limited_queues(store).await?;
    let limited: Vec<&str> = held
        .iter()
        .map(String::as_str)
        .filter(|name| params.queue.is_none_or(|queue| queue == *name))
        .collect();
    let (owner, lease, now) = (
        params.owner,
        params.lease_expires_at.to_datetime(),
        params.now.to_datetime(),
    );
    let mut claimed = match params.queue {
        None => jobs(
            sqlx::query_file_as!(
                JobRow,
                "queries/job/claim.sql",
                owner,
                lease,
                now,
                i64::from(params.limit)
            )
            .fetch_all(&store.bookkeeping)
            .await
            .map_err(db_error)?,
        )?,
        Some(queue) if limited.is_empty() => jobs(
            sqlx::query_file_as!(
                JobRow,
                "queries/job/claim_queue.sql",
                owner,
                lease,
                now,
                i64::from(params.limit),
                queue,
                false
            )
            .fetch_all(&store.bookkeeping)
            .await
            .map_err(db_error)?,
        )?,
        Some(_) => Vec::new(),
    };
    for queue in limited {
        let wanted = params.limit.saturating_sub(len(&claimed));
        if wanted == 0 {
            break;
        }
        claimed.extend(within_limits(store, params, queue, wanted).await?);
    }
    Ok(claimed)
}

/// Claims from a limited queue what its limits leave of `wanted`, holding
/// its settings row; logs the starts that its rate limit counts.
async fn within_limits(
    store: &PgStore,
    params: &ClaimParams<'_>,
    queue: &str,
    wanted: u32,
) -> StoreResult<Vec<Job>> {
    let now = params.now.to_datetime();
    let mut tx = store.bookkeeping.begin().await.map_err(db_error)?;
    let Some(row) = sqlx::query_file!("queries/queue/lock.sql", queue)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
    else {
        // No settings any more: the next claim takes it freely.
        return Ok(Vec::new());
    };
    let settings = settings(row.paused, row.concurrency, row.rate_limit, row.rate_period);
    if settings.paused {
        return Ok(Vec::new());
    }
    let running = match settings.concurrency {
        Some(_) => sqlx::query_file_scalar!("queries/queue/running.sql", queue)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?,
        None => 0,
    };
    let window_start: Option<DateTime<Utc>> = settings
        .rate_limit
        .map(|rate| params.now.saturating_sub(rate.period).to_datetime());
    let started = match window_start {
        Some(start) => {
            sqlx::query_file!("queries/queue/forget_starts.sql", queue, start)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            sqlx::query_file_scalar!("queries/queue/started.sql", queue, start)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?
        }
        None => 0,
    };
    let allowed = settings.allowance(wanted, running, started);
    if allowed == 0 {
        return Ok(Vec::new());
    }
    let claimed = jobs(
        sqlx::query_file_as!(
            JobRow,
            "queries/job/claim_queue.sql",
            params.owner,
            params.lease_expires_at.to_datetime(),
            now,
            i64::from(allowed),
            queue,
            true
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?,
    )?;
    if window_start.is_some() && !claimed.is_empty() {
        let count = i32::try_from(claimed.len()).unwrap_or(i32::MAX);
        sqlx::query_file!("queries/queue/start.sql", queue, now, count)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(claimed)
}

fn len(jobs: &[Job]) -> u32 {
    u32::try_from(jobs.len()).unwrap_or(u32::MAX)
}

fn settings(
    paused: bool,
    concurrency: Option<i32>,
    rate_limit: Option<i32>,
    rate_period: Option<i64>,
) -> QueueSettings {
    QueueSettings::from_stored(
        paused,
        concurrency.map(i64::from),
        rate_limit.map(i64::from),
        rate_period,
    )
}

async fn list(store: &PgStore, name: Option<&str>) -> StoreResult<Vec<QueueInfo>> {
    let rows = sqlx::query_file!("queries/queue/list.sql", name)
        .fetch_all(&store.pool)
        .await
        .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .map(|row| QueueInfo {
            name: row.name,
            settings: settings(row.paused, row.concurrency, row.rate_limit, row.rate_period),
            waiting: row.waiting,
            running: row.running,
        })
        .collect())
}

#[async_trait]
impl QueueStore for PgStore {
    async fn queue_list(&self) -> StoreResult<Vec<QueueInfo>> {
        list(self, None).await
    }

    async fn queue_update(
        &self,
        name: &str,
        change: QueueChange,
        now: Timestamp,
    ) -> StoreResult<QueueInfo> {
        let rate = change.rate_limit.map(|r| {
            r.map(|r| {
                (
                    i32::try_from(r.limit).unwrap_or(i32::MAX),
                    r.period_micros(),
                )
            })
        });
        let concurrency = change
            .concurrency
            .flatten()
            .map(|c| i32::try_from(c).unwrap_or(i32::MAX));
        sqlx::query_file!(
            "queries/queue/update.sql",
            name,
            change.paused,
            change.concurrency.is_some(),
            concurrency,
            rate.is_some(),
            rate.flatten().map(|r| r.0),
            rate.flatten().map(|r| r.1),
            now.to_datetime()
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        self.held_back.forget();
        // A resumed queue, or a limit raised, may have jobs to run now, here
        // and on every other host.
        self.notify_all().await?;
        list(self, Some(name))
            .await?
            .pop()
            .ok_or(StoreError::NotFound)
    }
}
