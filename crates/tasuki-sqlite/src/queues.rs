//! Named queues on SQLite: claims that honour each queue's pause and limits,
//! counted in the same write, and the queues' settings.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use async_trait::async_trait;
use rusqlite::{Connection, Row};
use tasuki_core::{
    Job, QueueChange, QueueInfo, QueueSettings, QueueStore, StoreError, StoreResult, Timestamp,
};

use crate::SqliteStore;
use crate::queries;
use crate::rows::{self, Error};
use crate::writer::Commit;

/// A claim, run in one writer turn: the free queues' best jobs, then each
/// limited queue's, as many as its limits leave. The writer runs one turn at
/// a time, and other processes wait for the file's write lock, so the counts
/// cannot change between the count and the claim.
pub(crate) struct Claim {
    pub(crate) owner: String,
    pub(crate) queue: Option<String>,
    pub(crate) limit: u32,
    pub(crate) now: i64,
    pub(crate) lease: i64,
}

impl Claim {
    pub(crate) fn run(&self, conn: &Connection) -> Result<Vec<Job>, Error> {
        let held_back = conn
            .prepare_cached(queries::QUEUE_HELD_BACK.sql)?
            .query_map([&self.queue], named_settings)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut claimed = match &self.queue {
            None => {
                let free = conn
                    .prepare_cached(queries::JOB_READY_QUEUES.sql)?
                    .query_map([], |row| row.get::<_, String>(0))?
                    .filter(|queue| {
                        queue.as_ref().map_or(true, |queue| {
                            held_back.iter().all(|(held, _)| held != queue)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let free: Vec<&str> = free.iter().map(String::as_str).collect();
                self.jobs(conn, &free, self.limit)?
            }
            Some(queue) if held_back.is_empty() => self.jobs(conn, &[queue], self.limit)?,
            Some(_) => Vec::new(),
        };
        for (queue, settings) in held_back {
            let wanted = self.limit.saturating_sub(len(&claimed));
            if wanted == 0 || settings.paused {
                continue;
            }
            let jobs = self.within_limits(conn, &queue, &settings, wanted)?;
            claimed.extend(jobs);
        }
        Ok(claimed)
    }

    /// Claims from a limited queue what its limits leave of `wanted`, and
    /// logs the starts that its rate limit counts.
    fn within_limits(
        &self,
        conn: &Connection,
        queue: &str,
        settings: &QueueSettings,
        wanted: u32,
    ) -> Result<Vec<Job>, Error> {
        let running: i64 = match settings.concurrency {
            Some(_) => conn
                .prepare_cached(queries::QUEUE_RUNNING.sql)?
                .query_row([queue], |row| row.get(0))?,
            None => 0,
        };
        let window_start = settings
            .rate_limit
            .map(|rate| self.now.saturating_sub(rate.period_micros()));
        let started: i64 = match window_start {
            Some(start) => {
                conn.prepare_cached(queries::QUEUE_FORGET_STARTS.sql)?
                    .execute((queue, start))?;
                conn.prepare_cached(queries::QUEUE_STARTED.sql)?
                    .query_row((queue, start), |row| row.get(0))?
            }
            None => 0,
        };
        let allowed = settings.allowance(wanted, running, started);
        if allowed == 0 {
            return Ok(Vec::new());
        }
        let jobs = self.jobs(conn, &[queue], allowed)?;
        if window_start.is_some() && !jobs.is_empty() {
            conn.prepare_cached(queries::QUEUE_START.sql)?.execute((
                queue,
                self.now,
                len(&jobs),
            ))?;
        }
        Ok(jobs)
    }

    /// Claims up to `limit` due jobs of `queues`, best first. Each queue is
    /// read by priority band (`job/bands.sql`), each band as a range that
    /// ends at its first job not yet due. One band alone (the common case)
    /// is claimed in one statement.
    fn jobs(&self, conn: &Connection, queues: &[&str], limit: u32) -> Result<Vec<Job>, Error> {
        let mut bands = Vec::new();
        let mut statement = conn.prepare_cached(queries::JOB_BANDS.sql)?;
        for queue in queues {
            for priority in statement.query_map([queue], |row| row.get::<_, i64>(0))? {
                bands.push((priority?, *queue));
            }
        }
        match bands.as_slice() {
            [] => Ok(Vec::new()),
            [(priority, queue)] => {
                let mut statement = conn.prepare_cached(queries::JOB_CLAIM_BAND.sql)?;
                let rows =
                    statement.query((&self.owner, self.lease, self.now, limit, queue, priority))?;
                rows::all(rows, rows::job)
            }
            _ => self.best_of(conn, bands, limit),
        }
    }

    /// Claims the best `limit` due jobs of several bands. Bands are read
    /// highest priority first, each in claim order from the ready index
    /// alone, and only while they beat the worst of the best found so far.
    fn best_of(
        &self,
        conn: &Connection,
        mut bands: Vec<(i64, &str)>,
        limit: u32,
    ) -> Result<Vec<Job>, Error> {
        bands.sort_by_key(|&(priority, _)| Reverse(priority));
        let full = limit as usize;
        // Claim order: higher priority, then due earlier, then older; the
        // heap's top is the worst of the best.
        let mut best: BinaryHeap<(Reverse<i64>, i64, i64)> = BinaryHeap::new();
        let mut candidates = conn.prepare_cached(queries::JOB_CANDIDATES.sql)?;
        for (priority, queue) in bands {
            if best.len() == full && best.peek().is_some_and(|worst| worst.0 < Reverse(priority)) {
                break;
            }
            let mut rows = candidates.query((queue, priority, self.now, limit))?;
            while let Some(row) = rows.next()? {
                let key = (Reverse(priority), row.get(0)?, row.get(1)?);
                if best.len() < full {
                    best.push(key);
                } else if best.peek().is_some_and(|worst| key < *worst) {
                    best.pop();
                    best.push(key);
                } else {
                    break;
                }
            }
        }
        if best.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = best.into_iter().map(|(_, _, id)| id).collect();
        let mut statement = conn.prepare_cached(queries::JOB_CLAIM_IDS.sql)?;
        let rows = statement.query((
            &self.owner,
            self.lease,
            self.now,
            serde_json::Value::from(ids).to_string(),
        ))?;
        rows::all(rows, rows::job)
    }
}

fn len(jobs: &[Job]) -> u32 {
    u32::try_from(jobs.len()).unwrap_or(u32::MAX)
}

/// `name, paused, concurrency, rate_limit, rate_period` as stored.
fn named_settings(row: &Row<'_>) -> rusqlite::Result<(String, QueueSettings)> {
    Ok((row.get(0)?, settings(row, 1)?))
}

/// The settings in the columns from `at`: paused, concurrency, rate_limit, rate_period.
fn settings(row: &Row<'_>, at: usize) -> rusqlite::Result<QueueSettings> {
    Ok(QueueSettings::from_stored(
        row.get(at)?,
        row.get(at + 1)?,
        row.get(at + 2)?,
        row.get(at + 3)?,
    ))
}

fn queue_info(row: &Row<'_>) -> rusqlite::Result<QueueInfo> {
    Ok(QueueInfo {
        name: row.get(0)?,
        settings: settings(row, 1)?,
        waiting: row.get(5)?,
        running: row.get(6)?,
    })
}

fn list(conn: &Connection, name: Option<&str>) -> Result<Vec<QueueInfo>, Error> {
    Ok(conn
        .prepare_cached(queries::QUEUE_LIST.sql)?
        .query_map([name], queue_info)?
        .collect::<Result<Vec<_>, _>>()?)
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn queue_list(&self) -> StoreResult<Vec<QueueInfo>> {
        self.readers.read(|conn| list(conn, None)).await
    }

    async fn queue_update(
        &self,
        name: &str,
        change: QueueChange,
        now: Timestamp,
    ) -> StoreResult<QueueInfo> {
        let name = name.to_owned();
        let rate = change
            .rate_limit
            .map(|r| r.map(|r| (r.limit, r.period_micros())));
        let info = self
            .writer
            .write(Commit::Acknowledged, move |conn| {
                conn.prepare_cached(queries::QUEUE_UPDATE.sql)?.execute((
                    &name,
                    change.paused,
                    change.concurrency.is_some(),
                    change.concurrency.flatten(),
                    rate.is_some(),
                    rate.flatten().map(|r| r.0),
                    rate.flatten().map(|r| r.1),
                    now.as_micros(),
                ))?;
                list(conn, Some(&name))?
                    .pop()
                    .ok_or_else(|| Error::from(StoreError::NotFound))
            })
            .await?;
        // A resumed queue, or a limit raised, may have jobs to run now.
        self.jobs_added();
        Ok(info)
    }
}
