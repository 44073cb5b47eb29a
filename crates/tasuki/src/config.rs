//! From settings to a store, a clock and the schedules to sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use tasuki_app::{AppStore, PgApp, SqliteApp};
use tasuki_core::{Clock, ManualClock, Schedule, ScheduleSpec, Store, SystemClock, Timestamp};
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

/// The process's clock: the wall clock, or, for tests, one that stands still
/// at `TASUKI_TEST_NOW`, so that processes agree on which slots are due.
pub(crate) fn clock(global: &GlobalArgs) -> anyhow::Result<Arc<dyn Clock>> {
    let Some(text) = &global.test_now else {
        return Ok(Arc::new(SystemClock));
    };
    let at = Timestamp::parse_rfc3339(text)
        .with_context(|| format!("TASUKI_TEST_NOW `{text}` is not an RFC 3339 time"))?;
    Ok(Arc::new(ManualClock::new(at)))
}

/// The schedules of `SCHEDULES_FILE`, each checked (name, cron expression,
/// time zone, job type, payload against its type's schema) before the
/// database is opened; `None` when it is unset.
pub(crate) fn schedules(global: &GlobalArgs) -> anyhow::Result<Option<Vec<Schedule>>> {
    let Some(path) = &global.schedules_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read SCHEDULES_FILE {}", path.display()))?;
    let schedules = parse_schedules(&text, &tasuki_app::schemas())
        .with_context(|| format!("SCHEDULES_FILE {}", path.display()))?;
    Ok(Some(schedules))
}

/// A schedules file: a `[schedules.NAME]` table per schedule.
fn parse_schedules(text: &str, registry: &Registry) -> anyhow::Result<Vec<Schedule>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        schedules: BTreeMap<String, ScheduleSpec>,
    }
    let file: File = toml::from_str(text)?;
    file.schedules
        .into_iter()
        .map(|(name, mut spec)| {
            let context = || format!("schedule `{name}`");
            spec.payload = registry
                .prepare(&spec.job_type, spec.payload)
                .with_context(context)?;
            // Its jobs go where their type's go unless it says otherwise.
            if spec.queue.is_none() {
                spec.queue = registry.queue(&spec.job_type).map(str::to_owned);
            }
            Schedule::new(name.clone(), spec).with_context(context)
        })
        .collect()
}

/// Makes the database's schedules those of `SCHEDULES_FILE`, when it is set.
pub(crate) async fn sync_schedules(
    store: &dyn Store,
    schedules: Option<Vec<Schedule>>,
    clock: &dyn Clock,
) -> anyhow::Result<()> {
    let Some(schedules) = schedules else {
        return Ok(());
    };
    store
        .schedule_sync(&schedules, clock.now())
        .await
        .context("cannot sync the schedules")?;
    let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    tracing::info!(schedules = ?names, "schedules synced");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_schedules;

    fn error(text: &str) -> String {
        format!(
            "{:#}",
            parse_schedules(text, &tasuki_app::schemas()).unwrap_err()
        )
    }

    #[test]
    fn a_schedules_file_is_read_and_checked_whole() {
        let text = r#"
            [schedules.nightly]
            cron = "0 3 * * *"
            timezone = "Europe/Paris"
            job_type = "probe"
            payload = { sleep_ms = 10.0 }
            missed = "catch_up"
            max_catch_up = 7
        "#;
        let schedules = parse_schedules(text, &tasuki_app::schemas()).unwrap();
        assert_eq!(schedules[0].name, "nightly");
        assert_eq!(
            schedules[0].spec.payload,
            serde_json::json!({"sleep_ms": 10})
        );
        assert!(
            parse_schedules("", &tasuki_app::schemas())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_what_is_wrong() {
        let one = |fields: &str| error(&format!("[schedules.s]\n{fields}"));
        assert!(one(r#"cron = "0 25 * * *""#).contains("missing field `job_type`"));
        let cases = [
            (
                r#"cron = "0 25 * * *"
job_type = "probe""#,
                "`0 25 * * *` is not a cron expression",
            ),
            (
                r#"cron = "@daily"
job_type = "probe"
timezone = "Europe/Pariss""#,
                "unknown time zone `Europe/Pariss`",
            ),
            (
                r#"cron = "@daily"
job_type = "nope""#,
                "unknown job type `nope`",
            ),
            (
                r#"cron = "@daily"
job_type = "probe"
payload = { sleep_ms = -1 }"#,
                "/sleep_ms",
            ),
            (
                r#"cron = "@daily"
job_type = "probe"
mised = "skip""#,
                "unknown field `mised`",
            ),
        ];
        for (fields, expected) in cases {
            let error = one(fields);
            assert!(error.contains(expected), "{error}");
            assert!(
                error.contains("schedule `s`") || error.contains("unknown field"),
                "{error}"
            );
        }
    }
}
