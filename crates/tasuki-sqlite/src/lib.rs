//! The SQLite store: the embedded default engine, one file and nothing to install.
//!
//! One process holds one writer connection (writes queue in process instead of
//! spinning on SQLite's busy handler) and a small pool of readers; WAL lets
//! them read while it writes. Other processes on the same file contend through
//! `busy_timeout`. Write transactions begin `IMMEDIATE`, so they wait for the
//! write lock up front instead of failing when they upgrade.

mod app;
mod jobs;
mod rows;
mod signup;
mod watch;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Sqlite, TransactionManager};
use tasuki_core::{
    Job, JobFor, JobId, NewJob, NewUser, Signup, SignupQueue, Store, StoreResult, StoreTx,
    Timestamp, User,
};
use tokio::sync::{Mutex, Notify, OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::rows::db_error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How hard a commit presses to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every acknowledged commit survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: commits survive a crash of the process; the
    /// last ones may be lost with the machine's power.
    Normal,
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(format!(
                "unknown durability `{other}` (expected full or normal)"
            )),
        }
    }
}

/// Who waits on a write's commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// A caller is told "done" after it: it must survive power loss.
    Acknowledged,
    /// The queue's own state, which a crash may roll back to an earlier,
    /// consistent point: the job then runs again.
    Bookkeeping,
}

/// The process's one writer connection, and how its commits sync. With
/// `Durability::Full`, acknowledged writes (enqueues, signups, retry,
/// cancel) commit with `synchronous=FULL`; the worker's bookkeeping (claims,
/// outcomes, leases, job effects) with `NORMAL`. Every acknowledged write
/// stays durable: WAL recovery can lose only the newest commits, and a FULL
/// commit syncs every commit before it.
///
/// A lock hands the connection out, not a pool: sqlx's pool gives a
/// connection back from a task of its own, after a ping, before the next
/// caller wakes; under load that left the writer idle a quarter of the time.
/// A caller that stops waiting midway leaves nothing behind: the connection
/// runs its commands in order, and a dropped transaction queues its rollback.
#[derive(Clone)]
pub(crate) struct Writer {
    state: Arc<Mutex<WriterState>>,
    durability: Durability,
}

pub(crate) struct WriterState {
    conn: SqliteConnection,
    /// The connection's `synchronous` level, so the pragma runs only when it
    /// changes; `None` until set, or when a change was interrupted.
    level: Option<Commit>,
}

/// The writer connection, held until dropped.
pub(crate) type WriterConn = OwnedMappedMutexGuard<WriterState, SqliteConnection>;

impl Writer {
    /// Connects and applies pending migrations.
    async fn open(options: &SqliteConnectOptions, durability: Durability) -> StoreResult<Self> {
        let mut conn = options
            .clone()
            .create_if_missing(true)
            .connect()
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| db_error(e.into()))?;
        Ok(Self {
            state: Arc::new(Mutex::new(WriterState { conn, level: None })),
            durability,
        })
    }

    /// The connection, set to commit as `commit` asks.
    pub(crate) async fn conn(&self, commit: Commit) -> StoreResult<WriterConn> {
        let mut state = self.state.clone().lock_owned().await;
        if self.durability == Durability::Full && state.level != Some(commit) {
            state.level = None;
            // Outside any transaction: SQLite ignores a change inside one.
            let pragma = match commit {
                Commit::Acknowledged => "PRAGMA synchronous = FULL",
                Commit::Bookkeeping => "PRAGMA synchronous = NORMAL",
            };
            sqlx::query(pragma)
                .execute(&mut state.conn)
                .await
                .map_err(db_error)?;
            state.level = Some(commit);
        }
        Ok(OwnedMutexGuard::map(state, |state| &mut state.conn))
    }
}

#[derive(Clone, Debug)]
pub struct SqliteConfig {
    pub path: PathBuf,
    pub durability: Durability,
    pub readers: u32,
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::Full,
            readers: 4,
            busy_timeout: Duration::from_secs(10),
        }
    }

    /// Reads `sqlite://path`, `sqlite:path` or a bare path; `None` for another scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        let path = match url.split_once(':') {
            Some(("sqlite", rest)) => rest.strip_prefix("//").unwrap_or(rest),
            // A one-letter "scheme" is a Windows drive.
            Some((scheme, _)) if scheme.len() > 1 && !scheme.contains(['/', '\\', '.']) => {
                return None;
            }
            _ => url,
        };
        Some(Self::new(path))
    }

    fn options(&self) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(&self.path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match self.durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(self.busy_timeout)
            .foreign_keys(true)
            .pragma("temp_store", "memory")
    }
}

pub struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    watch: watch::Watch,
    /// The group commit of `user_insert_with_job`.
    signups: SignupQueue,
    /// Wakes waiters in this process when jobs become due.
    jobs_added: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(config: &SqliteConfig) -> StoreResult<Self> {
        let options = config.options();
        let writer = Writer::open(&options, config.durability).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(config.readers.max(1))
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(db_error)?;
        let watch = watch::Watch::new(options.read_only(true));
        let signups = signup::spawn(writer.clone());
        Ok(Self {
            writer,
            reader,
            watch,
            signups,
            jobs_added: Arc::new(Notify::new()),
        })
    }

    pub(crate) async fn write(&self, commit: Commit) -> StoreResult<WriterConn> {
        self.writer.conn(commit).await
    }

    fn jobs_added(&self) {
        self.jobs_added.notify_one();
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn begin(&self) -> StoreResult<Box<dyn StoreTx>> {
        let mut conn = self.write(Commit::Acknowledged).await?;
        Manager::begin(&mut conn, Some("BEGIN IMMEDIATE".into()))
            .await
            .map_err(db_error)?;
        Ok(Box::new(SqliteTx {
            conn,
            open: true,
            added_jobs: false,
            jobs_added: self.jobs_added.clone(),
        }))
    }

    async fn user_insert_with_job(
        &self,
        user: NewUser,
        job: JobFor,
        now: Timestamp,
    ) -> StoreResult<(User, JobId)> {
        let result = self.signups.submit(Signup { user, job, now }).await;
        if result.is_ok() {
            self.jobs_added();
        }
        result
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

/// A transaction that owns the writer connection, as sqlx's `Transaction`
/// does a pooled one: dropped while open, it queues its rollback.
struct SqliteTx {
    conn: WriterConn,
    open: bool,
    added_jobs: bool,
    jobs_added: Arc<Notify>,
}

type Manager = <Sqlite as sqlx::Database>::TransactionManager;

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open {
            Manager::start_rollback(&mut self.conn);
        }
    }
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn user_insert(&mut self, user: NewUser, now: Timestamp) -> StoreResult<User> {
        signup::insert_user(&mut *self.conn, user, now).await
    }

    async fn job_insert(&mut self, job: NewJob) -> StoreResult<Job> {
        let job = jobs::insert(&mut *self.conn, job).await?;
        self.added_jobs = true;
        Ok(job)
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        Manager::commit(&mut self.conn).await.map_err(db_error)?;
        self.open = false;
        if self.added_jobs {
            self.jobs_added.notify_one();
        }
        Ok(())
    }
}
