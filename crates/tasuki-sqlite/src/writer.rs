//! The process's one writer: a thread that owns the writer connection and
//! commits whatever is waiting as one transaction (group commit).
//!
//! Every write of the store is a closure sent to this thread. The thread takes
//! all the closures queued (a *turn*), begins one `IMMEDIATE` transaction, runs
//! each inside a savepoint of its own, and commits once. A closure that fails
//! (or panics) rolls back its savepoint and fails only its own caller. Callers
//! are answered after the commit that holds their writes; if that commit fails,
//! every caller whose write it held is told so.
//!
//! A turn syncs `FULL` when it holds an acknowledged write (under
//! `Durability::Full`) and `NORMAL` otherwise: WAL recovery loses only a
//! suffix of commits, and a FULL commit syncs every commit before it, so
//! acknowledged writes survive power loss while bookkeeping costs no fsync.
//!
//! No statement crosses a thread on its own: a closure runs all of its
//! statements on the writer, with prepared statements cached on the
//! connection, and only its answer goes back.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::Connection;
use tasuki_core::{StoreError, StoreResult};
use tokio::sync::oneshot;

use crate::Durability;
use crate::rows::Error;

/// Who waits on a write's commit, which sets how hard it syncs under the
/// default durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// A caller is told "done" after it: it must survive power loss.
    Acknowledged,
    /// The queue's own state, which a crash may roll back to an earlier,
    /// consistent point: the job then runs again.
    Bookkeeping,
}

/// The most writes one turn takes, so that one turn's answers are not held
/// back behind an unbounded queue.
const MAX_TURN: usize = 1_024;

/// A write waiting in the queue: its caller's statements, and its answer.
trait Pending: Send {
    /// Runs the statements on the writer; true when they succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the turn's commit is known: `None` when it
    /// committed, or why the write did not.
    fn answer(self: Box<Self>, failed: Option<&str>);
}

struct Call<T, F> {
    write: Option<F>,
    result: Option<StoreResult<T>>,
    answer: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Pending for Call<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, Error> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let write = self.write.take().expect("a write runs once");
        let result = guarded(|| write(conn));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, failed: Option<&str>) {
        let result = match (self.result, failed) {
            // Its own error says more than the turn's.
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(_)) | None, Some(why)) => Err(rolled_back(why)),
            (Some(Ok(value)), None) => Ok(value),
            (None, None) => Err(rolled_back("the write never ran")),
        };
        let _ = self.answer.send(result);
    }
}

enum Request {
    Write {
        commit: Commit,
        write: Box<dyn Pending>,
    },
    /// Ends the thread as a panic outside any write would (tests only).
    #[cfg(test)]
    Crash,
}

/// Opens the writer connection; a writer that died is replaced with a new one.
pub(crate) type Open = Arc<dyn Fn() -> rusqlite::Result<Connection> + Send + Sync>;

/// The handle every caller holds. Clones share one thread.
#[derive(Clone)]
pub(crate) struct Writer {
    inner: Arc<Inner>,
}

struct Inner {
    open: Open,
    durability: Durability,
    thread: Mutex<Thread>,
}

struct Thread {
    requests: mpsc::Sender<Request>,
    alive: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection, open: Open, durability: Durability) -> Self {
        let thread = spawn(conn, durability);
        Self {
            inner: Arc::new(Inner {
                open,
                durability,
                thread: Mutex::new(thread),
            }),
        }
    }

    /// Runs `write` on the writer in the next turn; answers once that turn's
    /// commit is known.
    pub(crate) async fn write<T, F>(&self, commit: Commit, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let write = Box::new(Call {
            write: Some(write),
            result: None,
            answer,
        });
        self.send(Request::Write { commit, write })?;
        answered.await.map_err(|_| stopped())?
    }

    /// Whether the writer thread is running (it is replaced at the next write
    /// if not).
    pub(crate) fn is_alive(&self) -> bool {
        let thread = self
            .inner
            .thread
            .lock()
            .expect("the writer lock is never poisoned");
        thread.alive.load(Ordering::Acquire)
    }

    fn send(&self, request: Request) -> StoreResult<()> {
        let mut thread = self
            .inner
            .thread
            .lock()
            .expect("the writer lock is never poisoned");
        if !thread.alive.load(Ordering::Acquire) {
            tracing::error!("the SQLite writer stopped; starting a new one");
            let conn = (self.inner.open)().map_err(|e| StoreError::Database(Box::new(e)))?;
            *thread = spawn(conn, self.inner.durability);
        }
        thread.requests.send(request).map_err(|_| stopped())
    }

    #[cfg(test)]
    fn crash(&self) {
        let thread = self.inner.thread.lock().unwrap();
        thread.requests.send(Request::Crash).unwrap();
    }
}

fn stopped() -> StoreError {
    StoreError::Database("the SQLite writer stopped".into())
}

fn rolled_back(why: &str) -> StoreError {
    StoreError::Database(format!("the write was rolled back: {why}").into())
}

/// Runs a caller's statements; a panic becomes that caller's error.
fn guarded<T>(run: impl FnOnce() -> Result<T, Error>) -> StoreResult<T> {
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(result) => result.map_err(StoreError::from),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "a write panicked; it was rolled back");
            Err(StoreError::Database(
                format!("the write panicked: {what}").into(),
            ))
        }
    }
}

fn spawn(conn: Connection, durability: Durability) -> Thread {
    let (requests, receiver) = mpsc::channel();
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    std::thread::Builder::new()
        .name("tasuki-sqlite-writer".into())
        .spawn(move || {
            // Cleared however the thread ends, a panic included.
            struct Alive(Arc<AtomicBool>);
            impl Drop for Alive {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Release);
                    if std::thread::panicking() {
                        tracing::error!("the SQLite writer panicked");
                    }
                }
            }
            let _alive = Alive(flag);
            Turns::new(conn, durability).run(&receiver);
        })
        .expect("spawning the SQLite writer thread");
    Thread { requests, alive }
}

struct Turns {
    conn: Connection,
    durability: Durability,
    /// The connection's `synchronous` level, so the pragma runs only when it
    /// changes; `None` until set, or after a change failed.
    level: Option<Commit>,
}

impl Turns {
    fn new(conn: Connection, durability: Durability) -> Self {
        Self {
            conn,
            durability,
            level: None,
        }
    }

    fn run(&mut self, requests: &mpsc::Receiver<Request>) {
        let mut next = None;
        loop {
            let first = match next.take() {
                Some(request) => request,
                None => match requests.recv() {
                    Ok(request) => request,
                    // Every handle is gone: the store was dropped.
                    Err(_) => return,
                },
            };
            let mut turn = Vec::new();
            match first {
                Request::Write { commit, write } => turn.push((commit, write)),
                #[cfg(test)]
                Request::Crash => panic!("crash requested"),
            }
            while turn.len() < MAX_TURN {
                match requests.try_recv() {
                    Ok(Request::Write { commit, write }) => turn.push((commit, write)),
                    // A crash waits for this turn's commit.
                    #[cfg(test)]
                    Ok(other) => {
                        next = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.turn(turn);
        }
    }

    /// One transaction for every write of `turn`.
    fn turn(&mut self, mut turn: Vec<(Commit, Box<dyn Pending>)>) {
        while !turn.is_empty() {
            let acknowledged = turn.iter().any(|(c, _)| *c == Commit::Acknowledged);
            let level = if acknowledged {
                Commit::Acknowledged
            } else {
                Commit::Bookkeeping
            };
            if let Err(error) = self.begin(level) {
                let why = error.to_string();
                tracing::error!(error = %why, writes = turn.len(), "cannot begin a SQLite write turn");
                for (_, write) in turn {
                    write.answer(Some(&why));
                }
                return;
            }
            // One write alone needs no savepoint: the transaction is its own.
            let alone = turn.len() == 1;
            let mut done: Vec<Box<dyn Pending>> = Vec::with_capacity(turn.len());
            let mut any_ok = false;
            let mut aborted = false;
            let mut writes = std::mem::take(&mut turn).into_iter();
            for (_, mut write) in writes.by_ref() {
                if !alone && let Err(error) = self.exec("SAVEPOINT w") {
                    done.push(write);
                    self.abort(&mut done, &error.to_string());
                    aborted = true;
                    break;
                }
                let ok = write.run(&self.conn);
                done.push(write);
                if self.conn.is_autocommit() {
                    // The statement's error rolled the whole transaction
                    // back (SQLite does so on I/O errors, a full disk, an
                    // interrupted statement): every write so far is gone.
                    self.abort(&mut done, "the transaction was rolled back by an error");
                    aborted = true;
                    break;
                }
                if !alone {
                    let end = if ok {
                        self.exec("RELEASE w")
                    } else {
                        self.exec("ROLLBACK TO w")
                            .and_then(|()| self.exec("RELEASE w"))
                    };
                    if let Err(error) = end {
                        self.abort(&mut done, &error.to_string());
                        aborted = true;
                        break;
                    }
                }
                any_ok |= ok;
            }
            // Writes that an abort left unrun go in a turn of their own:
            // every pass answers at least one write, so this ends.
            turn.extend(writes);
            if aborted {
                continue;
            }
            // Nothing to keep: a rollback needs no sync.
            let end = if any_ok { "COMMIT" } else { "ROLLBACK" };
            match self.exec(end) {
                Ok(()) => done.into_iter().for_each(|write| write.answer(None)),
                Err(error) => self.abort(&mut done, &error.to_string()),
            }
        }
    }

    /// Rolls the open transaction back and tells every caller in it why.
    fn abort(&mut self, done: &mut Vec<Box<dyn Pending>>, why: &str) {
        if !self.conn.is_autocommit() {
            let _ = self.exec("ROLLBACK");
        }
        tracing::error!(
            error = why,
            writes = done.len(),
            "a SQLite write turn was rolled back"
        );
        for write in done.drain(..) {
            write.answer(Some(why));
        }
    }

    /// Sets the sync level this transaction's commit needs, then begins it.
    fn begin(&mut self, level: Commit) -> Result<(), Error> {
        if self.durability == Durability::Full && self.level != Some(level) {
            self.level = None;
            // Outside any transaction: SQLite ignores a change inside one.
            self.exec(match level {
                Commit::Acknowledged => "PRAGMA synchronous = FULL",
                Commit::Bookkeeping => "PRAGMA synchronous = NORMAL",
            })?;
            self.level = Some(level);
        }
        self.exec("BEGIN IMMEDIATE")
    }

    fn exec(&self, sql: &str) -> Result<(), Error> {
        exec(&self.conn, sql)
    }
}

/// Runs a statement without parameters, parsed once per connection: the
/// transaction and savepoint statements of every turn.
pub(crate) fn exec(conn: &Connection, sql: &str) -> Result<(), Error> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Waker};

    use rusqlite::Connection;
    use tasuki_core::StoreResult;

    use super::{Commit, Writer};
    use crate::Durability;
    use crate::rows::Error;

    /// A writer on a fresh file with a table `t (id INTEGER PRIMARY KEY)`.
    fn writer(dir: &tempfile::TempDir, durability: Durability) -> Writer {
        let path = dir.path().join("writer.db");
        let open = move || {
            let conn = Connection::open(&path)?;
            // As the store opens it under `Durability::Normal`; under `Full`
            // the writer sets the level per turn.
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )?;
            Ok(conn)
        };
        let conn = open().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY);
             CREATE TABLE child (parent INTEGER REFERENCES t (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        Writer::start(conn, Arc::new(open), durability)
    }

    /// Sends the write now (its first poll queues it), to be awaited later.
    fn queued<F: Future>(write: F) -> Pin<Box<F>> {
        let mut write = Box::pin(write);
        let polled = write.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(
            polled.is_pending(),
            "the writer is held: nothing answers yet"
        );
        write
    }

    fn insert(id: i64) -> impl FnOnce(&Connection) -> Result<(), Error> + Send {
        move |conn| {
            conn.execute("INSERT INTO t (id) VALUES (?1)", [id])?;
            Ok(())
        }
    }

    async fn ids(writer: &Writer) -> Vec<i64> {
        writer
            .write(Commit::Bookkeeping, |conn| {
                let mut statement = conn.prepare("SELECT id FROM t ORDER BY id")?;
                let ids = statement
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
            .await
            .unwrap()
    }

    /// Holds the writer inside a write while `queue` sends writes, then lets
    /// it go: everything queued meanwhile runs as the next turn.
    async fn one_turn<T>(writer: &Writer, queue: impl FnOnce() -> T) -> T {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (entered, holding) = tokio::sync::oneshot::channel();
        let mut held = queued(writer.write(Commit::Bookkeeping, move |_| {
            let _ = entered.send(());
            let _ = hold.recv();
            Ok(())
        }));
        holding.await.unwrap();
        let queued = queue();
        release.send(()).unwrap();
        held.as_mut().await.unwrap();
        queued
    }

    #[tokio::test]
    async fn a_failing_or_panicking_write_fails_alone_in_its_turn() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir, Durability::Full);
        let (a, duplicate, panics, b) = one_turn(&writer, || {
            (
                queued(writer.write(Commit::Acknowledged, insert(1))),
                queued(writer.write(Commit::Acknowledged, |conn| {
                    // Its first statement succeeds, its second fails: both go.
                    insert(2)(conn)?;
                    insert(1)(conn)
                })),
                queued(
                    writer.write(Commit::Bookkeeping, |conn| -> Result<(), Error> {
                        insert(3)(conn)?;
                        panic!("a handler bug")
                    }),
                ),
                queued(writer.write(Commit::Bookkeeping, insert(4))),
            )
        })
        .await;
        assert!(a.await.is_ok());
        assert!(matches!(
            duplicate.await,
            Err(tasuki_core::StoreError::Duplicate(_))
        ));
        let panicked = format!("{:?}", panics.await.unwrap_err());
        assert!(
            panicked.contains("the write panicked: a handler bug"),
            "{panicked}"
        );
        assert!(b.await.is_ok());
        assert_eq!(ids(&writer).await, [1, 4]);
    }

    async fn sync_level(writer: &Writer, commit: Commit) -> StoreResult<i64> {
        writer
            .write(commit, |conn| {
                Ok(conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
            })
            .await
    }

    #[tokio::test]
    async fn a_turn_syncs_full_when_it_holds_an_acknowledged_write() {
        const NORMAL: i64 = 1;
        const FULL: i64 = 2;
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir, Durability::Full);
        assert_eq!(
            sync_level(&writer, Commit::Bookkeeping).await.unwrap(),
            NORMAL
        );
        assert_eq!(
            sync_level(&writer, Commit::Acknowledged).await.unwrap(),
            FULL
        );
        let (bookkeeping, acknowledged) = one_turn(&writer, || {
            (
                queued(sync_level(&writer, Commit::Bookkeeping)),
                queued(writer.write(Commit::Acknowledged, insert(1))),
            )
        })
        .await;
        assert_eq!(
            bookkeeping.await.unwrap(),
            FULL,
            "it shares the acknowledged write's commit"
        );
        acknowledged.await.unwrap();
        assert_eq!(
            sync_level(&writer, Commit::Bookkeeping).await.unwrap(),
            NORMAL
        );

        let normal = tempfile::tempdir().unwrap();
        let writer = self::writer(&normal, Durability::Normal);
        assert_eq!(
            sync_level(&writer, Commit::Acknowledged).await.unwrap(),
            NORMAL
        );
    }

    #[tokio::test]
    async fn callers_whose_writes_were_rolled_back_are_told_so() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir, Durability::Full);
        // A commit that fails: a deferred foreign key is checked only then.
        let (a, orphan) = one_turn(&writer, || {
            (
                queued(writer.write(Commit::Acknowledged, insert(1))),
                queued(writer.write(Commit::Acknowledged, |conn| {
                    conn.execute("INSERT INTO child (parent) VALUES (99)", [])?;
                    Ok(())
                })),
            )
        })
        .await;
        let told = format!("{:?}", a.await.unwrap_err());
        assert!(
            told.contains("rolled back: FOREIGN KEY constraint failed"),
            "{told}"
        );
        assert!(orphan.await.is_err());
        assert!(
            ids(&writer).await.is_empty(),
            "nothing of that turn was kept"
        );

        // A write that ends the transaction under the others: the writes
        // before it are gone and told so; the ones after run in a new turn.
        let (a, ends, b) = one_turn(&writer, || {
            (
                queued(writer.write(Commit::Acknowledged, insert(1))),
                queued(writer.write(Commit::Bookkeeping, |conn| {
                    conn.execute_batch("ROLLBACK")?;
                    Ok(())
                })),
                queued(writer.write(Commit::Acknowledged, insert(2))),
            )
        })
        .await;
        assert!(a.await.is_err());
        assert!(ends.await.is_err());
        b.await.unwrap();
        assert_eq!(ids(&writer).await, [2]);
    }

    #[tokio::test]
    async fn a_writer_that_dies_fails_its_queued_callers_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir, Durability::Full);
        writer.write(Commit::Acknowledged, insert(1)).await.unwrap();
        let queued = one_turn(&writer, || {
            writer.crash();
            queued(writer.write(Commit::Acknowledged, insert(2)))
        })
        .await;
        let error = format!("{:?}", queued.await.unwrap_err());
        assert!(error.contains("the SQLite writer stopped"), "{error}");
        assert!(!writer.is_alive());
        writer.write(Commit::Acknowledged, insert(3)).await.unwrap();
        assert!(writer.is_alive());
        assert_eq!(ids(&writer).await, [1, 3]);
    }
}
