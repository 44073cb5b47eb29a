//! From settings to a store.

use std::sync::Arc;

use anyhow::{Context, bail};
use tasuki_core::Store;
use tasuki_sqlite::{SqliteConfig, SqliteStore};

use crate::cli::GlobalArgs;

/// The SQLite settings that `DATABASE_URL` and `SQLITE_SYNCHRONOUS` name.
pub(crate) fn database(global: &GlobalArgs) -> anyhow::Result<SqliteConfig> {
    let url = global.database_url.trim();
    if url.is_empty() {
        bail!("DATABASE_URL is empty: give a file path or sqlite://PATH");
    }
    let Some(mut config) = SqliteConfig::from_url(url) else {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        bail!("DATABASE_URL: unsupported scheme `{scheme}` (give a file path or sqlite://PATH)");
    };
    if config.path.as_os_str().is_empty() || config.path.to_str() == Some(":memory:") {
        bail!("DATABASE_URL must name a file: workers in other processes share it");
    }
    config.durability = global.synchronous.parse().map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// Every job type this build knows, wired to its services.
pub(crate) fn registry() -> Arc<tasuki_worker::Registry> {
    Arc::new(tasuki_jobs::registry(Arc::new(tasuki_jobs::LogEmailSender)))
}

pub(crate) async fn open(config: &SqliteConfig) -> anyhow::Result<Arc<dyn Store>> {
    let store = SqliteStore::open(config)
        .await
        .with_context(|| format!("cannot open the database {}", config.path.display()))?;
    Ok(Arc::new(store))
}
