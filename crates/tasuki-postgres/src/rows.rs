//! Rows as PostgreSQL returns them, and their conversion into the core's types.

use chrono::{DateTime, Utc};
use tasuki_core::{AttemptError, Job, JobId, StoreError, StoreResult, Timestamp};

/// A `job_queue` row; every query that returns jobs selects these columns,
/// with the JSON columns as text (the payload stays text up to its handler).
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) job_type: String,
    pub(crate) payload: String,
    pub(crate) status: String,
    pub(crate) priority: i32,
    pub(crate) max_retries: i32,
    pub(crate) retry_count: i32,
    pub(crate) attempt: i32,
    pub(crate) error_message: Option<String>,
    pub(crate) errors: String,
    pub(crate) result: Option<String>,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_at: Option<DateTime<Utc>>,
    pub(crate) scheduled_at: DateTime<Utc>,
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) completed_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) queue: String,
    pub(crate) unique_key: Option<String>,
}

pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("corrupt {what}: {detail}").into())
}

pub(crate) fn ts(t: Option<DateTime<Utc>>) -> Option<Timestamp> {
    t.map(Timestamp::from)
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> StoreResult<Job> {
        let errors =
            AttemptError::decode_stored(&row.errors).map_err(|e| corrupt("job errors", e))?;
        let result = row
            .result
            .map(|text| serde_json::from_str(&text).map_err(|e| corrupt("job result", e)))
            .transpose()?;
        Ok(Job {
            id: JobId(row.id),
            job_type: row.job_type,
            payload: row.payload,
            status: row.status.parse().map_err(|e| corrupt("job status", e))?,
            priority: row.priority,
            max_retries: row.max_retries,
            retry_count: row.retry_count,
            attempt: row.attempt,
            error_message: row.error_message,
            errors,
            result,
            lease_owner: row.lease_owner,
            lease_expires_at: ts(row.lease_expires_at),
            scheduled_at: row.scheduled_at.into(),
            started_at: ts(row.started_at),
            completed_at: ts(row.completed_at),
            created_at: row.created_at.into(),
            queue: row.queue,
            unique_key: row.unique_key,
        })
    }
}

pub(crate) fn jobs(rows: Vec<JobRow>) -> StoreResult<Vec<Job>> {
    rows.into_iter().map(Job::try_from).collect()
}

/// Maps a driver error: missing rows and unique violations have their own
/// variants; the rest is an opaque database error whose detail goes to logs.
pub fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Duplicate(db.message().to_owned())
        }
        _ => StoreError::Database(Box::new(error)),
    }
}
