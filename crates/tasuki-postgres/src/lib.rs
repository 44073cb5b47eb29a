//! The PostgreSQL store: for deployments that outgrow one machine, with many
//! API servers and workers on many hosts sharing one database.
//!
//! Claims take rows with `FOR UPDATE SKIP LOCKED`, so claimers never wait on
//! each other. New jobs wake idle workers everywhere through `LISTEN/NOTIFY`
//! (a trigger notifies once per inserting statement); the worker's idle wait
//! is the slow poll behind it, for when a notification is lost.
//!
//! Durability matches SQLite's: acknowledged writes (enqueues, signups,
//! retry, cancel, caller transactions) commit with `synchronous_commit=on`;
//! the queue's bookkeeping (claims, outcomes, leases, job effects) commits
//! on connections with it `off`, so workers do not wait for WAL flushes.
//! That is safe: WAL is flushed in order, so every acknowledged commit makes
//! the bookkeeping before it durable, and a crash loses at most the newest
//! bookkeeping, whose jobs then run again.

mod jobs;
mod listen;
mod migrate;
mod monitor;
mod queues;
mod rows;
mod schedules;
mod tx;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tasuki_core::{Migrations, Store, StoreResult};
use tokio::sync::Notify;

pub use crate::jobs::insert_many as insert_jobs;
pub use crate::tx::{Error, Tx, WriteSet, set_writes, writes};

pub use crate::rows::{corrupt, db_error};

#[derive(Clone, Debug)]
pub struct PgConfig {
    /// `postgres://user@host:port/database`; `?options=-csearch_path%3Dname`
    /// puts tasuki's tables in a schema of their own.
    pub url: String,
    /// The most connections this process holds (the listener's one aside);
    /// a quarter of them (at least 2) are for the queue's bookkeeping.
    pub max_connections: u32,
    /// How long a caller waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl PgConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }

    /// True for a `postgres://` or `postgresql://` URL.
    pub fn is_postgres_url(url: &str) -> bool {
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

pub struct PgStore {
    /// Acknowledged writes and reads.
    pool: PgPool,
    /// Claims, outcomes, leases and job effects: `synchronous_commit=off`.
    bookkeeping: PgPool,
    /// Wakes waiters in this process: on its own inserts at once, on other
    /// processes' through the listener.
    jobs_added: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
    /// Which queues are limited, as last read.
    held_back: queues::HeldBack,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects and applies pending migrations (under an advisory lock, so
    /// processes that start together migrate once).
    pub async fn open(config: &PgConfig) -> StoreResult<Self> {
        let options: PgConnectOptions = config.url.parse().map_err(db_error)?;
        let total = config.max_connections.max(3);
        let bookkeeping_size = (total / 4).max(2);
        let pool = PgPoolOptions::new()
            .max_connections(total - bookkeeping_size)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        // No round trip to test a connection before each use: every claim
        // and batch would pay it, and their callers try again after an
        // error, on a fresh connection.
        let bookkeeping = PgPoolOptions::new()
            .max_connections(bookkeeping_size)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(options.clone().options([("synchronous_commit", "off")]));
        migrate::run(&pool, &migrate::QUEUE).await?;
        let jobs_added = Arc::new(Notify::new());
        let listener = listen::spawn(&pool, options, jobs_added.clone()).await?;
        Ok(Self {
            pool,
            bookkeeping,
            jobs_added,
            listener,
            held_back: queues::HeldBack::default(),
        })
    }

    fn jobs_added(&self) {
        self.jobs_added.notify_one();
    }

    /// Applies an application's own migrations, kept in a ledger of their
    /// own beside the queue's.
    pub async fn migrate(&self, migrations: &'static Migrations) -> StoreResult<()> {
        migrate::run(&self.pool, migrations).await
    }

    /// The pool for an application's acknowledged writes and its reads
    /// (`synchronous_commit` on).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool for writes that a crash may lose without harm, because what
    /// they record happens again (`synchronous_commit` off), and for the
    /// reads of jobs, which run again after an error: a connection is not
    /// tested with a round trip before each use.
    pub fn bookkeeping(&self) -> &PgPool {
        &self.bookkeeping
    }

    /// Wakes this process's idle workers at once after an application's own
    /// transaction enqueued jobs (other processes hear of them through
    /// `LISTEN/NOTIFY`).
    pub fn jobs_enqueued(&self) {
        self.jobs_added();
    }

    /// For jobs that an update (not an insert) made due: wakes this process
    /// and, through the channel, every other.
    async fn notify_all(&self) -> StoreResult<()> {
        self.jobs_added();
        sqlx::query_file!("queries/job/wake.sql")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
