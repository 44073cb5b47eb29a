//! Schedules on SQLite: each write is one closure on the writer, so a
//! fire's conditional move of the cursor and its jobs commit together, and
//! processes on one file take turns at its write lock.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row};
use tasuki_core::{
    Fire, JobId, NewJob, Schedule, ScheduleQuery, ScheduleStore, StoreError, StoreResult,
    StoredSchedule, Timestamp,
};

use crate::SqliteStore;
use crate::jobs::insert_many;
use crate::queries::{self, Query};
use crate::rows::{self, Error, corrupt};
use crate::writer::Commit;

/// The columns of `schedule/list.sql`, in the order [`schedule`] reads them.
pub(crate) const SCHEDULE: &[&str] = &[
    "name",
    "definition",
    "revision",
    "cursor",
    "last_slot",
    "paused",
];

/// Reads a row of [`SCHEDULE`]'s columns (its recent jobs come apart).
fn schedule(row: &Row<'_>) -> Result<StoredSchedule, Error> {
    let name: String = row.get(0)?;
    let definition: String = row.get(1)?;
    let schedule = Schedule::from_definition(name, &definition)
        .map_err(|e| corrupt("schedule definition", e))?;
    Ok(StoredSchedule {
        schedule,
        revision: row.get(2)?,
        cursor: Timestamp::from_micros(row.get(3)?),
        last_slot: row.get::<_, Option<i64>>(4)?.map(Timestamp::from_micros),
        paused: row.get(5)?,
        recent_jobs: Vec::new(),
    })
}

/// `definitions`: a JSON array of `[name, definition]`.
fn sync(conn: &Connection, definitions: &str, now: i64) -> Result<(), Error> {
    conn.prepare_cached(queries::SCHEDULE_UPSERT.sql)?
        .execute((definitions, now))?;
    conn.prepare_cached(queries::SCHEDULE_DELETE_OTHERS.sql)?
        .execute([definitions])?;
    Ok(())
}

fn fire(conn: &Connection, fire: &Fire) -> Result<Option<Vec<JobId>>, Error> {
    let newest = fire.jobs.last().map(|(slot, _)| slot.as_micros());
    let moved: Option<String> = conn
        .prepare_cached(queries::SCHEDULE_ADVANCE.sql)?
        .query_row(
            (
                &fire.name,
                fire.revision,
                fire.cursor.as_micros(),
                fire.through.as_micros(),
                newest,
            ),
            |row| row.get(0),
        )
        .optional()?;
    if moved.is_none() {
        return Ok(None);
    }
    let jobs: Vec<NewJob> = fire.jobs.iter().map(|(_, job)| job.clone()).collect();
    // A schedule's jobs carry no unique key: none is a duplicate.
    let ids: Vec<JobId> = insert_many(conn, &jobs)?.iter().map(|i| i.id).collect();
    let links: Vec<(i64, i64)> = fire
        .jobs
        .iter()
        .zip(&ids)
        .map(|((slot, _), id)| (slot.as_micros(), id.0))
        .collect();
    let links = json(&links)?;
    conn.prepare_cached(queries::SCHEDULE_LINK.sql)?
        .execute((&fire.name, links))?;
    Ok(Some(ids))
}

/// Rows of a set-based write, as one JSON parameter.
fn json(rows: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Database(Box::new(e)))
}

/// Runs a statement that names the schedule it changed; `NotFound` when none.
fn changed(conn: &Connection, query: &Query, params: impl rusqlite::Params) -> Result<(), Error> {
    let mut statement = conn.prepare_cached(query.sql)?;
    rows::one(statement.query(params)?, |_| Ok(()))
}

fn list(conn: &Connection, query: &ScheduleQuery) -> Result<Vec<StoredSchedule>, Error> {
    let name = query.name.as_deref();
    let mut statement = conn.prepare_cached(queries::SCHEDULE_LIST.sql)?;
    let mut schedules = rows::all(statement.query([name])?, schedule)?;
    if name.is_some() && schedules.is_empty() {
        return Err(StoreError::NotFound.into());
    }
    if query.recent_jobs > 0 {
        let mut recent: BTreeMap<String, Vec<JobId>> = BTreeMap::new();
        let mut statement = conn.prepare_cached(queries::SCHEDULE_RECENT_JOBS.sql)?;
        let mut rows = statement.query((name, query.recent_jobs))?;
        while let Some(row) = rows.next()? {
            recent
                .entry(row.get(0)?)
                .or_default()
                .push(JobId(row.get(1)?));
        }
        for stored in &mut schedules {
            stored.recent_jobs = recent.remove(&stored.schedule.name).unwrap_or_default();
        }
    }
    Ok(schedules)
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn schedule_sync(&self, schedules: &[Schedule], now: Timestamp) -> StoreResult<()> {
        let definitions: Vec<(&str, String)> = schedules
            .iter()
            .map(|s| (s.name.as_str(), s.definition()))
            .collect();
        let definitions = json(&definitions)?;
        self.writer
            .write(Commit::Acknowledged, move |conn| {
                sync(conn, &definitions, now.as_micros())
            })
            .await
    }

    async fn schedule_list(&self, query: ScheduleQuery) -> StoreResult<Vec<StoredSchedule>> {
        self.readers.read(move |conn| list(conn, &query)).await
    }

    async fn schedule_fire(&self, to_fire: Fire) -> StoreResult<Option<Vec<JobId>>> {
        let ids = self
            .writer
            .write(Commit::Acknowledged, move |conn| fire(conn, &to_fire))
            .await?;
        if ids.as_ref().is_some_and(|ids| !ids.is_empty()) {
            self.jobs_added();
        }
        Ok(ids)
    }

    async fn schedule_pause(&self, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.writer
            .write(Commit::Acknowledged, move |conn| {
                changed(conn, &queries::SCHEDULE_PAUSE, [name])
            })
            .await
    }

    async fn schedule_resume(&self, name: &str, now: Timestamp) -> StoreResult<()> {
        let name = name.to_owned();
        self.writer
            .write(Commit::Acknowledged, move |conn| {
                changed(conn, &queries::SCHEDULE_RESUME, (name, now.as_micros()))
            })
            .await
    }
}
