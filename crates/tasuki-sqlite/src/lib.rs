//! The SQLite store: the embedded default engine, one file and nothing to install.
//!
//! One writer thread per process owns the writer connection and commits
//! whatever writes are waiting as one transaction (`writer.rs`); read-only
//! connections read beside it (WAL). Other processes on the same file contend
//! through `busy_timeout`. Write transactions begin `IMMEDIATE`, so they wait
//! for the write lock up front instead of failing when they upgrade.

mod jobs;
mod migrate;
mod monitor;
mod queries;
mod queues;
mod read;
mod rows;
mod schedules;
mod tx;
mod watch;
mod writer;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tasuki_core::{Migrations, Store, StoreError, StoreResult};
use tokio::sync::Notify;

pub use crate::queries::{Query, check_queries};
pub use crate::rows::{Error, all, corrupt, one};
pub use crate::tx::{Tx, writes};
pub use crate::writer::Commit;

use crate::read::Readers;
use crate::writer::Writer;

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

    fn connect(&self, read_only: bool) -> rusqlite::Result<Connection> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        };
        // Each connection is used by one thread at a time.
        let conn =
            Connection::open_with_flags(&self.path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.set_prepared_statement_cache_capacity(64);
        let synchronous = match self.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        if !read_only {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;"
        ))?;
        Ok(conn)
    }
}

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    watch: watch::Watch,
    /// Wakes waiters in this process when jobs become due.
    jobs_added: Arc<Notify>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub async fn open(config: &SqliteConfig) -> StoreResult<Self> {
        let config = Arc::new(config.clone());
        let opened = config.clone();
        let conn = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            let conn = opened.connect(false).map_err(rows::Error::from)?;
            migrate::run(&conn, &migrate::QUEUE)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Database(Box::new(e)))??;
        let open = config.clone();
        let writer = Writer::start(
            conn,
            Arc::new(move || open.connect(false)),
            config.durability,
        );
        let open = config.clone();
        let readers = Readers::new(move || open.connect(true), config.readers as usize);
        let open = config.clone();
        let watch = watch::Watch::new(&config.path, move || open.connect(true));
        Ok(Self {
            writer,
            readers,
            watch,
            jobs_added: Arc::new(Notify::new()),
        })
    }

    fn jobs_added(&self) {
        self.jobs_added.notify_one();
    }

    /// Applies an application's own migrations, kept in a ledger of their
    /// own beside the queue's, in the writer's next turn.
    pub async fn migrate(&self, migrations: &'static Migrations) -> StoreResult<()> {
        self.writer
            .write(Commit::Acknowledged, move |conn| {
                migrate::apply(conn, migrations)
            })
            .await
    }

    /// Runs `write` on the writer, in its next turn: concurrent writes
    /// commit together (group commit), each in a savepoint of its own, so
    /// that one that fails rolls back alone. An application's own writes go
    /// here, with the jobs they enqueue (`Tx::enqueue`): both commit, or
    /// neither. Answers once the turn's commit is known.
    pub async fn write<T, F>(&self, commit: Commit, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, Error> + Send + 'static,
    {
        let (value, enqueued) = self
            .writer
            .write(commit, move |conn| {
                let tx = Tx::new(conn, None);
                let value = write(&tx)?;
                Ok((value, tx.enqueued()))
            })
            .await?;
        if enqueued {
            self.jobs_added();
        }
        Ok(value)
    }

    /// Runs `read` on one of the read-only connections.
    pub async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        self.readers.read(read).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    /// The writer thread must be running and a reader must answer; a writer
    /// busy with a long transaction still counts as up.
    async fn ping(&self) -> StoreResult<()> {
        if !self.writer.is_alive() {
            return Err(StoreError::Database("the SQLite writer stopped".into()));
        }
        self.readers
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}
