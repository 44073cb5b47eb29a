//! Rows as SQLite returns them, read into the core's types, and the errors
//! of the store's statements.

use rusqlite::{ErrorCode, Row};
use tasuki_core::{AttemptError, Job, JobId, StoreError, StoreResult, Timestamp};

/// What a store's statements fail with: SQLite's errors and the core's
/// (a corrupt row, a missing one), so that `?` takes both. A job's writes
/// return it too.
#[derive(Debug)]
pub enum Error {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Error::Sqlite(error)
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::Store(error)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sqlite(error) => error.fmt(f),
            Error::Store(error) => error.fmt(f),
        }
    }
}

/// Missing rows and unique violations have their own variants; the rest is
/// an opaque database error whose detail goes to logs.
impl From<Error> for StoreError {
    fn from(error: Error) -> Self {
        match error {
            Error::Store(error) => error,
            Error::Sqlite(rusqlite::Error::QueryReturnedNoRows) => StoreError::NotFound,
            Error::Sqlite(rusqlite::Error::SqliteFailure(failure, message))
                if failure.code == ErrorCode::ConstraintViolation
                    && matches!(
                        failure.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                            | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    ) =>
            {
                StoreError::Duplicate(message.unwrap_or_else(|| failure.to_string()))
            }
            Error::Sqlite(error) => StoreError::Database(Box::new(error)),
        }
    }
}

pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("corrupt {what}: {detail}").into())
}

fn small(value: i64, what: &str) -> StoreResult<i32> {
    i32::try_from(value).map_err(|_| corrupt(what, value))
}

fn ts(micros: Option<i64>) -> Option<Timestamp> {
    micros.map(Timestamp::from_micros)
}

/// The columns of a `job_queue` row, in the order [`job`] reads them; every
/// statement that returns jobs selects these.
pub(crate) const JOB: &[&str] = &[
    "id",
    "job_type",
    "payload",
    "status",
    "priority",
    "max_retries",
    "retry_count",
    "attempt",
    "error_message",
    "errors",
    "result",
    "lease_owner",
    "lease_expires_at",
    "scheduled_at",
    "started_at",
    "completed_at",
    "created_at",
    "queue",
    "unique_key",
];

/// Reads a row of [`JOB`]'s columns.
pub(crate) fn job(row: &Row<'_>) -> Result<Job, Error> {
    let errors: String = row.get(9)?;
    let errors = AttemptError::decode_stored(&errors).map_err(|e| corrupt("job errors", e))?;
    let result: Option<String> = row.get(10)?;
    let result = result
        .map(|text| serde_json::from_str(&text).map_err(|e| corrupt("job result", e)))
        .transpose()?;
    let status: String = row.get(3)?;
    Ok(Job {
        id: JobId(row.get(0)?),
        job_type: row.get(1)?,
        payload: row.get(2)?,
        status: status.parse().map_err(|e| corrupt("job status", e))?,
        priority: small(row.get(4)?, "priority")?,
        max_retries: small(row.get(5)?, "max_retries")?,
        retry_count: small(row.get(6)?, "retry_count")?,
        attempt: small(row.get(7)?, "attempt")?,
        error_message: row.get(8)?,
        errors,
        result,
        lease_owner: row.get(11)?,
        lease_expires_at: ts(row.get(12)?),
        scheduled_at: Timestamp::from_micros(row.get(13)?),
        started_at: ts(row.get(14)?),
        completed_at: ts(row.get(15)?),
        created_at: Timestamp::from_micros(row.get(16)?),
        queue: row.get(17)?,
        unique_key: row.get(18)?,
    })
}

/// The first row a statement returns, read by `read`; `NotFound` when none.
pub fn one<T>(
    mut rows: rusqlite::Rows<'_>,
    read: impl Fn(&Row<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    read(rows.next()?.ok_or(StoreError::NotFound)?)
}

/// Every row a statement returns, each read by `read`.
pub fn all<T>(
    mut rows: rusqlite::Rows<'_>,
    read: impl Fn(&Row<'_>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(row)?);
    }
    Ok(out)
}
