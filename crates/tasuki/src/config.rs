//! From settings to a store.

use std::sync::Arc;

use anyhow::{Context, bail};
use tasuki_app::{AppStore, PgApp, SqliteApp};
use tasuki_core::Store;
use tasuki_postgres::{PgConfig, PgStore};
use tasuki_sqlite::{SqliteConfig, SqliteStore};
use tasuki_worker::Registry;

use crate::cli::GlobalArgs;

/// The database that `DATABASE_URL` names, with its engine's settings.
#[derive(Debug)]
pub(crate) enum Database {
    Sqlite(SqliteConfig),
    Postgres(PgConfig),
}

/// The connections a process needs by default: an API server's share, and
/// one per concurrent job beside a few for claims, outcomes and heartbeats.
pub(crate) fn default_pool_size(api: bool, worker_slots: Option<usize>) -> u32 {
    let api = if api { 16 } else { 0 };
    let workers = worker_slots.map_or(0, |n| 4 + u32::try_from(n).unwrap_or(u32::MAX));
    (api + workers).min(128)
}

/// Reads `DATABASE_URL` (and `SQLITE_SYNCHRONOUS` or `DATABASE_POOL_SIZE`,
/// whichever applies); `pool_size` is the command's default.
pub(crate) fn database(global: &GlobalArgs, pool_size: u32) -> anyhow::Result<Database> {
    let url = global.database_url.trim();
    if url.is_empty() {
        bail!("DATABASE_URL is empty: give a file path, sqlite://PATH or postgres://…");
    }
    if PgConfig::is_postgres_url(url) {
        let mut config = PgConfig::new(url);
        config.max_connections = global.database_pool_size.unwrap_or(pool_size);
        return Ok(Database::Postgres(config));
    }
    let Some(mut config) = SqliteConfig::from_url(url) else {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        bail!(
            "DATABASE_URL: unsupported scheme `{scheme}` (give a file path, sqlite://PATH or postgres://…)"
        );
    };
    if config.path.as_os_str().is_empty() || config.path.to_str() == Some(":memory:") {
        bail!("DATABASE_URL must name a file: workers in other processes share it");
    }
    config.durability = global.synchronous.parse().map_err(anyhow::Error::msg)?;
    Ok(Database::Sqlite(config))
}

impl Database {
    /// For messages: the SQLite file, or the PostgreSQL host and database
    /// (never the password).
    pub(crate) fn describe(&self) -> String {
        match self {
            Database::Sqlite(config) => config.path.display().to_string(),
            Database::Postgres(config) => {
                let rest = config.url.split_once("://").map_or("", |(_, rest)| rest);
                let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                let host = host.split_once('?').map_or(host, |(host, _)| host);
                format!("postgres://{host}")
            }
        }
    }
}

/// The queue's store and the application's, on one database.
pub(crate) struct Stores {
    pub(crate) queue: Arc<dyn Store>,
    pub(crate) app: Arc<dyn AppStore>,
}

impl Stores {
    /// Every job type this build knows, wired to its services.
    pub(crate) fn registry(&self) -> Arc<Registry> {
        Arc::new(tasuki_app::registry(
            self.app.clone(),
            Arc::new(tasuki_app::LogEmailSender),
        ))
    }
}

/// Opens the database, applying the queue's migrations and the
/// application's.
pub(crate) async fn open(database: &Database) -> anyhow::Result<Stores> {
    let context = || format!("cannot open the database {}", database.describe());
    let stores = match database {
        Database::Sqlite(config) => {
            let store = Arc::new(SqliteStore::open(config).await.with_context(context)?);
            let app = SqliteApp::open(store.clone()).await.with_context(context)?;
            Stores {
                queue: store,
                app: Arc::new(app),
            }
        }
        Database::Postgres(config) => {
            let store = Arc::new(PgStore::open(config).await.with_context(context)?);
            let app = PgApp::open(store.clone()).await.with_context(context)?;
            Stores {
                queue: store,
                app: Arc::new(app),
            }
        }
    };
    Ok(stores)
}
