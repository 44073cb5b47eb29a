//! A job's own writes on SQLite, and the completions that commit them.
//!
//! A job's writes are a closure over a [`Tx`]. The writer runs it in the turn
//! that completes the job, in a savepoint of its own after the attempt's
//! lease was found held: writes that fail or panic roll back alone, and the
//! completions of a batch commit together with all their writes.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;

use rusqlite::Connection;
use tasuki_core::{
    Completed, Completion, JobCheck, JobId, NewJob, StoreError, Timestamp, Writes, check_enqueue,
};

use crate::jobs::{by_id, returned_ids};
use crate::queries;
use crate::rows::Error;
use crate::writer::exec;

/// The transaction that a job's writes run in, on the writer's connection.
pub struct Tx<'c> {
    conn: &'c Connection,
    check: Option<&'c dyn JobCheck>,
    enqueued: Cell<bool>,
}

impl<'c> Tx<'c> {
    pub(crate) fn new(conn: &'c Connection, check: Option<&'c dyn JobCheck>) -> Self {
        Self {
            conn,
            check,
            enqueued: Cell::new(false),
        }
    }

    /// Whether a job was enqueued in this transaction.
    pub(crate) fn enqueued(&self) -> bool {
        self.enqueued.get()
    }

    /// The connection, inside the transaction: run the job's own statements
    /// on it. Ending the transaction (`COMMIT`, `ROLLBACK`) fails the batch.
    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// Enqueues a job in the same transaction. In a job's writes, the
    /// worker's registry checks it against its type's schema, like every
    /// other enqueue; in [`SqliteStore::write`](crate::SqliteStore::write),
    /// the caller vouches for it. A unique job whose key is held answers
    /// with the holder's id.
    pub fn enqueue(&self, mut job: NewJob) -> Result<JobId, Error> {
        check_enqueue(self.check, &mut job)?;
        let enqueued = crate::jobs::insert(self.conn, &job)?;
        self.enqueued.set(true);
        Ok(enqueued.job.id)
    }
}

type Run = Box<dyn Fn(&Tx<'_>) -> Result<(), Error> + Send + Sync>;

/// The SQLite form of a job's writes.
struct SqliteWrites(Run);

/// A job's writes on SQLite, for [`Done::with_writes`](tasuki_core::Writes):
/// `write` runs on the writer thread, inside the transaction that completes
/// the job. It may run more than once when a whole batch is retried, each
/// time in a fresh transaction.
pub fn writes(write: impl Fn(&Tx<'_>) -> Result<(), Error> + Send + Sync + 'static) -> Writes {
    Writes::new(SqliteWrites(Box::new(write)))
}

/// Completes a batch: each job with writes in a savepoint of its own, once
/// its lease is found held; then every completion whose writes succeeded in
/// one statement. Also says whether the writes enqueued jobs.
pub(crate) fn complete(
    conn: &Connection,
    now: Timestamp,
    completions: &[Completion],
) -> Result<(Completed, bool), Error> {
    let now = now.as_micros();
    let (with_writes, mut done): (Vec<&Completion>, Vec<&Completion>) =
        completions.iter().partition(|c| c.writes.is_some());
    let mut failed_writes = Vec::new();
    let mut enqueued = false;
    if !with_writes.is_empty() {
        let attempts = by_id(with_writes.iter().map(|c| (c.id, c.attempt)));
        let held = returned_ids(conn, &queries::JOB_HELD, (now, attempts))?;
        for completion in with_writes {
            if held.binary_search(&completion.id).is_err() {
                continue;
            }
            let Some(writes) = &completion.writes else {
                continue;
            };
            let tx = Tx::new(conn, writes.check());
            exec(conn, "SAVEPOINT job_writes")?;
            match run(writes, &tx) {
                Ok(()) => {
                    exec(conn, "RELEASE job_writes")?;
                    enqueued |= tx.enqueued();
                    done.push(completion);
                }
                Err(error) => {
                    exec(conn, "ROLLBACK TO job_writes")?;
                    exec(conn, "RELEASE job_writes")?;
                    failed_writes.push((completion.id, error.into()));
                }
            }
        }
    }
    let attempts = by_id(done.iter().map(|c| (c.id, c.attempt)));
    let results = by_id(done.iter().filter_map(|c| Some((c.id, c.result.as_ref()?))));
    let ids = returned_ids(conn, &queries::JOB_COMPLETE_MANY, (now, attempts, results))?;
    Ok((Completed { ids, failed_writes }, enqueued))
}

/// Runs one job's writes; a panic is their failure alone.
fn run(writes: &Writes, tx: &Tx<'_>) -> Result<(), Error> {
    let SqliteWrites(write) = writes.engine::<SqliteWrites>()?;
    std::panic::catch_unwind(AssertUnwindSafe(|| write(tx)))
        .unwrap_or_else(|_| Err(StoreError::Database("the job's writes panicked".into()).into()))
}
