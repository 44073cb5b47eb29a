//! Schedules on PostgreSQL: a fire is one transaction whose conditional
//! `UPDATE … RETURNING` of the schedule's row makes concurrent firers on
//! every host take turns on its lock; the one that finds the cursor still
//! where it read it moves it and inserts the slots' jobs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tasuki_core::{
    Fire, JobId, Schedule, ScheduleQuery, ScheduleStore, StoreError, StoreResult, StoredSchedule,
    Timestamp,
};

use crate::PgStore;
use crate::jobs::insert_many;
use crate::rows::{corrupt, db_error, ts};

/// A `schedules` row, as `schedule/list.sql` returns it.
struct ScheduleRow {
    name: String,
    definition: String,
    revision: i64,
    cursor: DateTime<Utc>,
    last_slot: Option<DateTime<Utc>>,
    paused: bool,
}

impl TryFrom<ScheduleRow> for StoredSchedule {
    type Error = StoreError;

    fn try_from(row: ScheduleRow) -> StoreResult<StoredSchedule> {
        Ok(StoredSchedule {
            schedule: Schedule::from_definition(row.name, &row.definition)
                .map_err(|e| corrupt("schedule definition", e))?,
            revision: row.revision,
            cursor: row.cursor.into(),
            last_slot: ts(row.last_slot),
            paused: row.paused,
            recent_jobs: Vec::new(),
        })
    }
}

/// `NotFound` unless a statement named the schedule it changed.
fn changed(name: Option<String>) -> StoreResult<()> {
    name.map(drop).ok_or(StoreError::NotFound)
}

#[async_trait]
impl ScheduleStore for PgStore {
    async fn schedule_sync(&self, schedules: &[Schedule], now: Timestamp) -> StoreResult<()> {
        let names: Vec<String> = schedules.iter().map(|s| s.name.clone()).collect();
        let definitions: Vec<String> = schedules.iter().map(Schedule::definition).collect();
        let now = now.to_datetime();
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query_file!("queries/schedule/upsert.sql", &names, &definitions, now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query_file!("queries/schedule/delete_others.sql", &names)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn schedule_list(&self, query: ScheduleQuery) -> StoreResult<Vec<StoredSchedule>> {
        let name = query.name.as_deref();
        let rows = sqlx::query_file_as!(ScheduleRow, "queries/schedule/list.sql", name)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        if name.is_some() && rows.is_empty() {
            return Err(StoreError::NotFound);
        }
        let mut schedules = rows
            .into_iter()
            .map(StoredSchedule::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        if query.recent_jobs > 0 {
            let mut recent: BTreeMap<String, Vec<JobId>> = BTreeMap::new();
            let rows = sqlx::query_file!(
                "queries/schedule/recent_jobs.sql",
                name,
                i64::from(query.recent_jobs)
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
            for row in rows {
                recent
                    .entry(row.schedule)
                    .or_default()
                    .push(JobId(row.job_id));
            }
            for stored in &mut schedules {
                stored.recent_jobs = recent.remove(&stored.schedule.name).unwrap_or_default();
            }
        }
        Ok(schedules)
    }

    async fn schedule_fire(&self, fire: Fire) -> StoreResult<Option<Vec<JobId>>> {
        let newest = fire.jobs.last().map(|(slot, _)| slot.to_datetime());
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let moved = sqlx::query_file_scalar!(
            "queries/schedule/advance.sql",
            fire.name,
            fire.revision,
            fire.cursor.to_datetime(),
            fire.through.to_datetime(),
            newest
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if moved.is_none() {
            return Ok(None);
        }
        let (slots, jobs): (Vec<DateTime<Utc>>, Vec<_>) = fire
            .jobs
            .into_iter()
            .map(|(slot, job)| (slot.to_datetime(), job))
            .unzip();
        // A schedule's jobs carry no unique key: none is a duplicate.
        let ids: Vec<JobId> = insert_many(&mut tx, jobs)
            .await?
            .iter()
            .map(|i| i.id)
            .collect();
        let raw: Vec<i64> = ids.iter().map(|id| id.0).collect();
        sqlx::query_file!("queries/schedule/link.sql", fire.name, &slots, &raw)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        if !ids.is_empty() {
            self.jobs_added();
        }
        Ok(Some(ids))
    }

    async fn schedule_pause(&self, name: &str) -> StoreResult<()> {
        let paused = sqlx::query_file_scalar!("queries/schedule/pause.sql", name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        changed(paused)
    }

    async fn schedule_resume(&self, name: &str, now: Timestamp) -> StoreResult<()> {
        let resumed =
            sqlx::query_file_scalar!("queries/schedule/resume.sql", name, now.to_datetime())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        changed(resumed)
    }
}
