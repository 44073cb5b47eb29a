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
//! Writes built with [`set_writes`] run together: the items of every job
//! of the batch whose writes belong to the same [`WriteSet`] go to one
//! call, which can write them all in one statement (64 onboardings in one
//! statement cost under a third of the CPU of 64 statements). Isolated,
//! each job's item goes alone.
//!
//! Enqueued jobs wait for the end of the batch's writes, under ids taken
//! from the sequence when the first is enqueued: one insert for the batch
//! instead of a round trip per job, and the new rows stay out of the ready
//! index, where every claim would step over them, until just before the
//! commit.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

/// One job's item of a [`WriteSet`], its type erased.
type AnyItem = dyn Any + Send + Sync;

type RunSet = for<'t, 'c> fn(&'t mut Tx<'c>, Vec<&'t AnyItem>) -> BoxFuture<'t, Result<(), Error>>;

/// The PostgreSQL form of a job's writes.
enum PgWrites {
    /// Its own closure.
    One(Run),
    /// Its item of a set, run with the other jobs' items of the same set.
    Set {
        set: TypeId,
        item: Box<AnyItem>,
        run: RunSet,
    },
}

/// A job's writes on PostgreSQL: `write` runs inside the transaction that
/// completes the job. It may run more than once when a whole batch is
/// retried, each time in a fresh transaction. It must return the errors of
/// its statements: PostgreSQL ends a transaction at the first that fails,
/// so a swallowed one fails the whole batch.
pub fn writes<F>(write: F) -> Writes
where
    F: for<'t, 'c> Fn(&'t mut Tx<'c>) -> BoxFuture<'t, Result<(), Error>> + Send + Sync + 'static,
{
    Writes::new(PgWrites::One(Box::new(write)))
}

/// Writes that the jobs of a batch run together (see the module's
/// documentation): one call for the items of every job whose writes are of
/// this set, in the transaction that completes them.
pub trait WriteSet: 'static {
    /// One job's part of the writes.
    type Item: Send + Sync + 'static;

    /// Writes the items of one or more jobs. The rules of [`writes`] hold,
    /// and a failure fails every job of the call: the batch then runs again
    /// with each job's item alone, so that the one that fails rolls back
    /// alone. Jobs that it enqueues are checked with the first job's check
    /// (the items of jobs whose writes are checked otherwise go to calls of
    /// their own).
    fn write<'t, 'c>(
        tx: &'t mut Tx<'c>,
        items: Vec<&'t Self::Item>,
    ) -> BoxFuture<'t, Result<(), Error>>;
}

/// A job's writes as its `item` of the set `S`.
pub fn set_writes<S: WriteSet>(item: S::Item) -> Writes {
    Writes::new(PgWrites::Set {
        set: TypeId::of::<S>(),
        item: Box::new(item),
        run: run_set::<S>,
    })
}

fn run_set<'t, 'c, S: WriteSet>(
    tx: &'t mut Tx<'c>,
    items: Vec<&'t AnyItem>,
) -> BoxFuture<'t, Result<(), Error>> {
    match items.into_iter().map(|item| item.downcast_ref()).collect() {
        Some(items) => S::write(tx, items),
        None => Box::pin(async {
            Err(StoreError::Database("a set's writes hold another set's item".into()).into())
        }),
    }
}

/// What a batch's writes came to.
pub(crate) enum Outcome {
    /// Completed, and whether the writes enqueued jobs.
    Done(Completed, bool),
    /// Run together, something failed: the caller rolls back and runs the
    /// batch again, isolated.
    Failed(StoreError),
}

/// Completes a batch in the transaction on `conn` (see the module's
/// documentation). With `isolate`, each job's writes, and the jobs they
/// enqueued, go in a savepoint of their own; without, straight in the
/// transaction (two round trips fewer per job), each set's items together.
pub(crate) async fn complete(
    conn: &mut PgConnection,
    now: Timestamp,
    completions: &[Completion],
    isolate: bool,
) -> Result<Outcome, Error> {
    let mut done = Vec::new();
    let mut with_writes = Vec::new();
    for completion in completions {
        match &completion.writes {
            Some(writes) => with_writes.push((completion, writes)),
            None => done.push(completion),
        }
    }
    let held = held(conn, now, &with_writes).await?;
    with_writes.retain(|(c, _)| held.binary_search(&c.id).is_ok());
    let mut later = Later::default();
    let mut failed_writes = Vec::new();
    if isolate {
        for (i, &(job, writes)) in with_writes.iter().enumerate() {
            conn.execute("SAVEPOINT job_writes").await?;
            let mark = later.jobs.len();
            let part = Part::of(writes);
            let mut wrote = run(conn, part, &mut later, with_writes.len() - i).await;
            if wrote.is_ok() {
                // Isolated, the jobs go in at once: one that the database
                // refuses fails these writes alone.
                wrote = later.insert(conn, mark).await;
            }
            match wrote {
                Ok(()) => {
                    conn.execute("RELEASE job_writes").await?;
                    done.push(job);
                }
                Err(error) => {
                    later.jobs.truncate(mark);
                    conn.execute("ROLLBACK TO job_writes").await?;
                    conn.execute("RELEASE job_writes").await?;
                    failed_writes.push((job.id, error.into()));
                }
            }
        }
    } else {
        let mut remaining = with_writes.len();
        for (jobs, part) in parts(&with_writes) {
            if let Err(error) = run(conn, part, &mut later, remaining).await {
                return Ok(Outcome::Failed(error.into()));
            }
            remaining -= jobs.len();
            done.extend(jobs);
        }
    }
    if let Err(error) = later.insert(conn, 0).await {
        return Ok(Outcome::Failed(error.into()));
    }
    let completed = Completed {
        ids: complete_many(conn, now, done).await?,
        failed_writes,
    };
    Ok(Outcome::Done(completed, later.inserted))
}

/// Of the jobs whose writes are to run, those whose attempts still hold
/// their leases, locked until the transaction ends; in id order.
async fn held(
    conn: &mut PgConnection,
    now: Timestamp,
    with_writes: &[(&Completion, &Writes)],
) -> Result<Vec<JobId>, Error> {
    if with_writes.is_empty() {
        return Ok(Vec::new());
    }
    let (job_ids, attempts): (Vec<i64>, Vec<i32>) =
        with_writes.iter().map(|(c, _)| (c.id.0, c.attempt)).unzip();
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

/// The writes of some of a batch's jobs, run in one call.
struct Part<'a> {
    /// The check of the jobs that they enqueue.
    check: Option<&'a dyn JobCheck>,
    run: PartRun<'a>,
}

enum PartRun<'a> {
    /// A job's own writes.
    One(&'a Run),
    /// The items of jobs whose writes are of one set, in the jobs' order.
    Set {
        set: TypeId,
        run: RunSet,
        items: Vec<&'a AnyItem>,
    },
    /// Writes built for another engine: they fail.
    Foreign(StoreError),
}

impl<'a> Part<'a> {
    /// One job's writes alone; a set's item is a set of one.
    fn of(writes: &'a Writes) -> Self {
        let run = match writes.engine::<PgWrites>() {
            Ok(PgWrites::One(write)) => PartRun::One(write),
            Ok(PgWrites::Set { set, item, run }) => PartRun::Set {
                set: *set,
                run: *run,
                items: vec![&**item],
            },
            Err(error) => PartRun::Foreign(error),
        };
        Part {
            check: writes.check(),
            run,
        }
    }
}

/// The jobs' writes as they run together, a call each, with the jobs
/// whose writes they are: each job's own, and the items of each set
/// together, in the order of their first job. A set's items go together
/// only when their writes are checked alike.
fn parts<'a>(with_writes: &[(&'a Completion, &'a Writes)]) -> Vec<(Vec<&'a Completion>, Part<'a>)> {
    let mut parts: Vec<(Vec<&'a Completion>, Part<'a>)> = Vec::new();
    let mut sets: HashMap<(TypeId, Option<*const ()>), usize> = HashMap::new();
    for &(job, writes) in with_writes {
        let part = Part::of(writes);
        let PartRun::Set { set, .. } = &part.run else {
            parts.push((vec![job], part));
            continue;
        };
        let check = part
            .check
            .map(|check| std::ptr::from_ref(check).cast::<()>());
        match sets.entry((*set, check)) {
            Entry::Vacant(entry) => {
                entry.insert(parts.len());
                parts.push((vec![job], part));
            }
            Entry::Occupied(entry) => {
                let (jobs, joined) = &mut parts[*entry.get()];
                jobs.push(job);
                // `sets` indexes parts of sets alone.
                if let (PartRun::Set { items, .. }, PartRun::Set { items: more, .. }) =
                    (&mut joined.run, part.run)
                {
                    items.extend(more);
                }
            }
        }
    }
    parts
}

/// Runs the writes of a part, `remaining` of the batch's writes left with
/// these; a panic is their failure alone.
async fn run(
    conn: &mut PgConnection,
    part: Part<'_>,
    later: &mut Later,
    remaining: usize,
) -> Result<(), Error> {
    later.want = remaining;
    let mut tx = Tx {
        conn,
        check: part.check,
        later,
    };
    let write = async {
        match part.run {
            PartRun::One(write) => write(&mut tx).await,
            PartRun::Set { run, items, .. } => run(&mut tx, items).await,
            PartRun::Foreign(error) => Err(error.into()),
        }
    };
    AssertUnwindSafe(write)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(StoreError::Database("the job's writes panicked".into()).into()))
}
