//! A job's own writes on PostgreSQL, and the completions that commit them.
//!
//! A job's writes are an async closure over a [`Tx`]. A batch of completions
//! is one transaction: it locks the rows of the attempts that still hold
//! their leases, runs each job's writes, inserts the jobs that they enqueued
//! in one statement, then completes the jobs in one more. Writes run
//! straight in the transaction first; when something fails, the batch rolls
//! back and runs again with each job's writes, and the jobs they enqueued,
//! in a savepoint of their own, so that those that fail roll back alone.
//! Failures are rare, and a savepoint costs two round trips per job.
//!
//! Enqueued jobs wait for the end of the batch's writes, under ids taken
//! from the sequence when the first is enqueued: one insert for the batch
//! instead of a round trip per job, and the new rows stay out of the ready
//! index, where every claim would step over them, until just before the
//! commit.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::{Executor, PgConnection};
use tasuki_core::{
    Completed, Completion, JobCheck, JobId, NewJob, StoreError, Timestamp, Writes, check_enqueue,
};

use crate::jobs::{ids, insert_many, insert_with_ids, take_ids};
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
    later: &'c mut Later,
}

/// The jobs that a batch's writes enqueued with no unique key, inserted
/// together after the writes and before the completions.
#[derive(Default)]
struct Later {
    jobs: Vec<(i64, NewJob)>,
    /// Ids taken from the sequence and not given yet, the last first.
    ids: Vec<i64>,
    /// How many ids to take when none is left: one per job whose writes
    /// have not run yet, this one's included.
    want: usize,
    /// Whether some writes inserted a job.
    inserted: bool,
}

impl Later {
    /// Inserts the jobs from `from` on, in one statement.
    async fn insert(&mut self, conn: &mut PgConnection, from: usize) -> Result<(), Error> {
        if self.jobs.len() > from {
            insert_with_ids(conn, &self.jobs[from..]).await?;
            self.jobs.truncate(from);
            self.inserted = true;
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// The connection, inside the transaction: run the job's own statements
    /// on it. Ending the transaction fails the batch.
    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// Enqueues a job in the same transaction, checked by the worker's
    /// registry against its type's schema, like every other enqueue. A
    /// unique job is inserted at once, and one whose key is held answers
    /// with the holder's id. Any other may wait for the end of the writes,
    /// under an id taken now: until then no row has that id, so a foreign
    /// key to it must be deferred.
    pub async fn enqueue(&mut self, mut job: NewJob) -> Result<JobId, Error> {
        check_enqueue(self.check, &mut job)?;
        // At once, too, when no id is left and no other job's writes are to
        // run: an id taken now would cost the same round trip.
        if job.unique.is_some() || (self.later.ids.is_empty() && self.later.want <= 1) {
            // The set-based insert answers with ids only, not whole rows.
            let id = insert_many(self.conn, vec![job])
                .await?
                .first()
                .map(|inserted| inserted.id)
                .ok_or_else(|| StoreError::Database("the insert returned no id".into()))?;
            self.later.inserted = true;
            return Ok(id);
        }
        if self.later.ids.is_empty() {
            let mut taken = take_ids(self.conn, self.later.want.max(1)).await?;
            taken.reverse();
            self.later.ids = taken;
        }
        let id = self
            .later
            .ids
            .pop()
            .ok_or_else(|| StoreError::Database("the sequence gave no id".into()))?;
        self.later.jobs.push((id, job));
        Ok(JobId(id))
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
/// `isolate`, each job's writes, and the jobs they enqueued, go in a
/// savepoint of their own; without, straight in the transaction (two round
/// trips fewer per job), and `None` says that something failed: the caller
/// rolls back and runs the batch again, isolated.
pub(crate) async fn complete(
    conn: &mut PgConnection,
    now: Timestamp,
    completions: &[Completion],
    isolate: bool,
) -> Result<Option<(Completed, bool)>, Error> {
    let (with_writes, mut done): (Vec<&Completion>, Vec<&Completion>) =
        completions.iter().partition(|c| c.writes.is_some());
    let held = held(conn, now, &with_writes).await?;
    let mut later = Later::default();
    let mut failed_writes = Vec::new();
    for (i, completion) in with_writes.iter().enumerate() {
        if held.binary_search(&completion.id).is_err() {
            continue;
        }
        if isolate {
            conn.execute("SAVEPOINT job_writes").await?;
        }
        let mark = later.jobs.len();
        let mut wrote = run(conn, completion, &mut later, with_writes.len() - i).await;
        if isolate && wrote.is_ok() {
            // Isolated, the jobs go in at once: one that the database
            // refuses fails these writes alone.
            wrote = later.insert(conn, mark).await;
        }
        match wrote {
            Ok(()) => {
                if isolate {
                    conn.execute("RELEASE job_writes").await?;
                }
                done.push(completion);
            }
            Err(_) if !isolate => return Ok(None),
            Err(error) => {
                later.jobs.truncate(mark);
                conn.execute("ROLLBACK TO job_writes").await?;
                conn.execute("RELEASE job_writes").await?;
                failed_writes.push((completion.id, error.into()));
            }
        }
    }
    if later.insert(conn, 0).await.is_err() {
        return Ok(None);
    }
    let completed = Completed {
        ids: complete_many(conn, now, done).await?,
        failed_writes,
    };
    Ok(Some((completed, later.inserted)))
}

/// Of the jobs whose writes are to run, those whose attempts still hold
/// their leases, locked until the transaction ends; in id order.
async fn held(
    conn: &mut PgConnection,
    now: Timestamp,
    with_writes: &[&Completion],
) -> Result<Vec<JobId>, Error> {
    if with_writes.is_empty() {
        return Ok(Vec::new());
    }
    let (job_ids, attempts): (Vec<i64>, Vec<i32>) =
        with_writes.iter().map(|c| (c.id.0, c.attempt)).unzip();
    Ok(ids(sqlx::query_file_scalar!(
        "queries/job/held.sql",
        now.to_datetime(),
        &job_ids,
        &attempts
    )
    .fetch_all(conn)
    .await?))
}

/// Completes the jobs whose attempts still hold their leases; their ids, in
/// order.
async fn complete_many(
    conn: &mut PgConnection,
    now: Timestamp,
    done: Vec<&Completion>,
) -> Result<Vec<JobId>, Error> {
    let (mut job_ids, mut attempts, mut results) = (Vec::new(), Vec::new(), Vec::new());
    for c in done {
        job_ids.push(c.id.0);
        attempts.push(c.attempt);
        results.push(c.result.clone());
    }
    Ok(ids(sqlx::query_file_scalar!(
        "queries/job/complete_many.sql",
        now.to_datetime(),
        &job_ids,
        &attempts,
        &results as &[Option<serde_json::Value>]
    )
    .fetch_all(conn)
    .await?))
}

/// Runs one job's writes, `remaining` of the batch's writes left with
/// these; a panic is their failure alone.
async fn run(
    conn: &mut PgConnection,
    completion: &Completion,
    later: &mut Later,
    remaining: usize,
) -> Result<(), Error> {
    let Some(writes) = &completion.writes else {
        return Ok(());
    };
    let PgWrites(write) = writes.engine::<PgWrites>()?;
    later.want = remaining;
    let mut tx = Tx {
        conn,
        check: writes.check(),
        later,
    };
    AssertUnwindSafe(write(&mut tx))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(StoreError::Database("the job's writes panicked".into()).into()))
}
