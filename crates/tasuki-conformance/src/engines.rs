//! A fresh, empty database per test, on either engine.
//!
//! SQLite gets a file in a temporary folder. PostgreSQL gets a schema of its
//! own in the `test` database of the server that `TASUKI_TEST_POSTGRES`
//! names (default `postgres://postgres@127.0.0.1:5432`), dropped when the
//! test ends. When that server is unreachable, PostgreSQL tests are skipped
//! with a message, except under `CI=true`, where they fail.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tasuki_core::Store;
use tasuki_postgres::{PgConfig, PgStore};
use tasuki_sqlite::{Durability, SqliteConfig, SqliteStore};
use tokio::sync::OnceCell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// SQLite at its default durability, `FULL`: acknowledged writes sync,
    /// bookkeeping does not, so each turn of the writer picks its sync level.
    Sqlite,
    /// SQLite with `synchronous=NORMAL` throughout.
    SqliteNormal,
    Postgres,
}

/// The store of a test database, as its engine's own type: for what only
/// that engine has (a job's writes, an application's tables).
#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

/// A test's own database: the store, the URL that other processes open it
/// by, and what removes it when dropped.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<Schema>,
}

impl TestDb {
    /// Another store on the same database, as another process would open
    /// it: its own writer or pool, contending through the database.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match &self.backend {
            Backend::Sqlite(_) => {
                let path = self.url.trim_start_matches("sqlite://");
                Arc::new(
                    SqliteStore::open(&SqliteConfig::new(path))
                        .await
                        .expect("reopen SQLite"),
                )
            }
            Backend::Postgres(_) => {
                let mut config = PgConfig::new(&self.url);
                config.max_connections = 4;
                Arc::new(PgStore::open(&config).await.expect("reopen PostgreSQL"))
            }
        }
    }
}

/// A PostgreSQL test schema, dropped with everything in it.
struct Schema(String);

impl Drop for Schema {
    fn drop(&mut self) {
        {
            let schema = &self.0;
            let statement = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            // Drop runs outside async code: a thread of its own waits for it.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let mut conn = connect_admin().await?;
                    sqlx::query(&statement).execute(&mut conn).await?;
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("warning: could not drop the test schema {schema}");
            }
        }
    }
}

fn postgres_server() -> String {
    std::env::var("TASUKI_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn test_database() -> String {
    format!("{}/test", postgres_server())
}

async fn connect_admin() -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&test_database()).await
}

/// Whether PostgreSQL tests run: checked once per test binary.
pub async fn postgres_available() -> bool {
    static AVAILABLE: OnceCell<bool> = OnceCell::const_new();
    *AVAILABLE
        .get_or_init(|| async {
            match connect_admin().await {
                Ok(_) => true,
                Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
                    panic!("CI=true and PostgreSQL at {} is unreachable: {error}", test_database())
                }
                Err(error) => {
                    // Straight to stderr: the test harness hides `eprintln!`
                    // of passing tests, and this must be seen.
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED: the PostgreSQL tests of this binary, because {} is unreachable ({error}); \
                         start it (see README) or set TASUKI_TEST_POSTGRES",
                        test_database()
                    );
                    false
                }
            }
        })
        .await
}

/// A new, migrated, empty database on `engine`; `None` when the engine is
/// PostgreSQL and it is unreachable outside CI (the test then passes, having
/// said why it was skipped).
pub async fn fresh(engine: Engine) -> Option<TestDb> {
    match engine {
        Engine::Sqlite | Engine::SqliteNormal => {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let path = dir.path().join("test.db");
            let mut config = SqliteConfig::new(&path);
            if engine == Engine::SqliteNormal {
                config.durability = Durability::Normal;
            }
            let store = Arc::new(SqliteStore::open(&config).await.expect("open SQLite"));
            Some(TestDb {
                store: store.clone(),
                backend: Backend::Sqlite(store),
                url: format!("sqlite://{}", path.display()),
                _dir: Some(dir),
                _schema: None,
            })
        }
        Engine::Postgres => {
            if !postgres_available().await {
                return None;
            }
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let schema = format!(
                "t_{}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                nanos()
            );
            let mut admin = connect_admin().await.expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut admin)
                .await
                .expect("create a test schema");
            let url = format!("{}?options=-csearch_path%3D{schema}", test_database());
            let mut config = PgConfig::new(&url);
            config.max_connections = 4;
            let schema = Schema(schema);
            let store = Arc::new(PgStore::open(&config).await.expect("open PostgreSQL"));
            Some(TestDb {
                store: store.clone(),
                backend: Backend::Postgres(store),
                url,
                _dir: None,
                _schema: Some(schema),
            })
        }
    }
}

/// Distinguishes schemas of test runs that reuse a process id.
fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}

/// Expands each named `async fn(Engine)` into one test per engine, in the
/// modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! engine_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if $crate::postgres_available().await {
                        super::$test($crate::Engine::Postgres).await;
                    }
                }
            )*
        }
    };
}
