//! Rows as SQLite returns them, and their conversion into the core's types.

use tasuki_core::{AttemptError, Job, JobId, StoreError, StoreResult, Timestamp, User};

/// A `job_queue` row; every query that returns jobs selects these columns.
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) job_type: String,
    pub(crate) payload: String,
    pub(crate) status: String,
    pub(crate) priority: i64,
    pub(crate) max_retries: i64,
    pub(crate) retry_count: i64,
    pub(crate) attempt: i64,
    pub(crate) error_message: Option<String>,
    pub(crate) errors: String,
    pub(crate) result: Option<String>,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_at: Option<i64>,
    pub(crate) scheduled_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) completed_at: Option<i64>,
    pub(crate) created_at: i64,
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("corrupt {what}: {detail}").into())
}

fn small(value: i64, what: &str) -> StoreResult<i32> {
    i32::try_from(value).map_err(|_| corrupt(what, value))
}

fn ts(micros: Option<i64>) -> Option<Timestamp> {
    micros.map(Timestamp::from_micros)
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
            priority: small(row.priority, "priority")?,
            max_retries: small(row.max_retries, "max_retries")?,
            retry_count: small(row.retry_count, "retry_count")?,
            attempt: small(row.attempt, "attempt")?,
            error_message: row.error_message,
            errors,
            result,
            lease_owner: row.lease_owner,
            lease_expires_at: ts(row.lease_expires_at),
            scheduled_at: Timestamp::from_micros(row.scheduled_at),
            started_at: ts(row.started_at),
            completed_at: ts(row.completed_at),
            created_at: Timestamp::from_micros(row.created_at),
        })
    }
}

pub(crate) fn jobs(rows: Vec<JobRow>) -> StoreResult<Vec<Job>> {
    rows.into_iter().map(Job::try_from).collect()
}

pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) email: String,
    pub(crate) age: i64,
    pub(crate) name: Option<String>,
    pub(crate) bio: Option<String>,
    pub(crate) is_active: i64,
    pub(crate) additional_data: Option<String>,
    pub(crate) created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<User> {
        let additional_data = row
            .additional_data
            .map(|text| serde_json::from_str(&text).map_err(|e| corrupt("additional_data", e)))
            .transpose()?;
        Ok(User {
            id: row.id,
            email: row.email,
            age: row.age,
            name: row.name,
            bio: row.bio,
            is_active: row.is_active != 0,
            additional_data,
            created_at: Timestamp::from_micros(row.created_at),
        })
    }
}

/// Maps a driver error: missing rows and unique violations have their own
/// variants; the rest is an opaque database error whose detail goes to logs.
pub(crate) fn db_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Duplicate(db.message().to_owned())
        }
        _ => StoreError::Database(Box::new(error)),
    }
}
