//! A job's own writes on PostgreSQL, and the completions that commit them.
//!
//! A job's writes are an async closure over a [`Tx`]. A batch of completions
//! is one transaction: it locks the rows of the attempts that still hold
//! their leases, runs each job's writes, then completes every job whose
//! writes succeeded in one statement. Writes run straight in the transaction
//! first; when some fail, the batch rolls back and runs again with each
//! job's writes in a savepoint of its own, so that those that fail roll back
//! alone. Failures are rare, and a savepoint costs two round trips per job.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::{Executor, PgConnection};
use tasuki_core::{
    Completed, Completion, JobCheck, JobId, NewJob, StoreError, Timestamp, Writes, check_enqueue,
};

use crate::jobs::{ids, insert_many};
use crate::rows::db_error;

/// What a job's writes fail with: PostgreSQL's errors and the core's, so
/// that `?` takes both.
#[derive(Debug)]
pub enum Error {
    Sqlx(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Sqlx(error)
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::Store(error)
    }
}

impl From<Error> for StoreError {
    fn from(error: Error) -> Self {
        match error {
            Error::Sqlx(error) => db_error(error),
            Error::Store(error) => error,
        }
    }
}

/// The transaction that a job's writes run in.
pub struct Tx<'c> {
    conn: &'c mut PgConnection,
    check: Option<&'c dyn JobCheck>,
    enqueued: bool,
}

impl Tx<'_> {
    /// The connection, inside the transaction: run the job's own statements
    /// on it. Ending the transaction fails the batch.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// Enqueues a job in the same transaction, checked by the worker's
    /// registry against its type's schema, like every other enqueue. A
    /// unique job whose key is held answers with the holder's id.
    pub async fn enqueue(&mut self, mut job: NewJob) -> Result<JobId, Error> {
        check_enqueue(self.check, &mut job)?;
        // The set-based insert answers with ids only, not whole rows.
        let id = insert_many(self.conn, vec![job])
            .await?
            .first()
            .map(|inserted| inserted.id)
            .ok_or_else(|| StoreError::Database("the insert returned no id".into()))?;
        self.enqueued = true;
        Ok(id)
    }
}

type Run =
    Box<dyn for<'t, 'c> Fn(&'t mut Tx<'c>) -> BoxFuture<'t, Result<(), Error>> + Send + Sync>;

/// The PostgreSQL form of a job's writes.
struct PgWrites(Run);

/// A job's writes on PostgreSQL: `write` runs inside the transaction that
/// completes the job. It may run more than once when a whole batch is
/// retried, each time in a fresh transaction. It must return the errors of
/// its statements: PostgreSQL ends a transaction at the first that fails,
/// so a swallowed one fails the whole batch.
pub fn writes<F>(write: F) -> Writes
where
    F: for<'t, 'c> Fn(&'t mut Tx<'c>) -> BoxFuture<'t, Result<(), Error>> + Send + Sync + 'static,
{
    Writes::new(PgWrites(Box::new(write)))
}

/// Completes a batch in the transaction on `conn` (see the module's
/// documentation); also says whether the writes enqueued jobs. With
/// `isolate`, each job's writes run in a savepoint of their own; without,
/// they run straight in the transaction (two round trips fewer per job), and
/// `None` says that some failed: the caller rolls back and runs the batch
/// again, isolated.
pub(crate) async fn complete(
    conn: &mut PgConnection,
    now: Timestamp,
    completions: &[Completion],
    isolate: bool,
) -> Result<Option<(Completed, bool)>, Error> {
    let (with_writes, mut done): (Vec<&Completion>, Vec<&Completion>) =
        completions.iter().partition(|c| c.writes.is_some());
    let mut failed_writes = Vec::new();
    let mut enqueued = false;
    if !with_writes.is_empty() {
        let (job_ids, attempts): (Vec<i64>, Vec<i32>) =
            with_writes.iter().map(|c| (c.id.0, c.attempt)).unzip();
        let held = ids(sqlx::query_file_scalar!(
            "queries/job/held.sql",
            now.to_datetime(),
            &job_ids,
            &attempts
        )
        .fetch_all(&mut *conn)
        .await?);
        for completion in with_writes {
            let Some(writes) = &completion.writes else {
                continue;
            };
            if held.binary_search(&completion.id).is_err() {
                continue;
            }
            if isolate {
                conn.execute("SAVEPOINT job_writes").await?;
            }
            let mut tx = Tx {
                conn: &mut *conn,
                check: writes.check(),
                enqueued: false,
            };
            match run(writes, &mut tx).await {
                Ok(()) => {
                    enqueued |= tx.enqueued;
                    if isolate {
                        conn.execute("RELEASE job_writes").await?;
                    }
                    done.push(completion);
                }
                Err(_) if !isolate => return Ok(None),
                Err(error) => {
                    conn.execute("ROLLBACK TO job_writes").await?;
                    conn.execute("RELEASE job_writes").await?;
                    failed_writes.push((completion.id, error.into()));
                }
            }
        }
    }
    let (mut job_ids, mut attempts, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for c in done {
        job_ids.push(c.id.0);
        attempts.push(c.attempt);
        results.push(c.result.clone());
    }
    let completed = sqlx::query_file_scalar!(
        "queries/job/complete_many.sql",
        now.to_datetime(),
        &job_ids,
        &attempts,
        &results as &[Option<serde_json::Value>]
    )
    .fetch_all(&mut *conn)
    .await?;
    let completed = Completed {
        ids: ids(completed),
        failed_writes,
    };
    Ok(Some((completed, enqueued)))
}

/// Runs one job's writes; a panic is their failure alone.
async fn run(writes: &Writes, tx: &mut Tx<'_>) -> Result<(), Error> {
    let PgWrites(write) = writes.engine::<PgWrites>()?;
    AssertUnwindSafe(write(tx))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(StoreError::Database("the job's writes panicked".into()).into()))
}
