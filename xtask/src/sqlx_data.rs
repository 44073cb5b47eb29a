//! sqlx's offline data without sqlx-cli: the query macros write one JSON file
//! per query into `SQLX_OFFLINE_DIR` when they run against a live database.
//! The PostgreSQL store and the application's PostgreSQL side use sqlx's
//! macros; SQLite statements are checked by their crates' own tests
//! (`tasuki_sqlite::check_queries`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cargo;

/// The crates whose queries are checked at compile time, each with the
/// migration folders that build its schema, in order.
const STORES: &[(&str, &[&str])] = &[
    ("tasuki-postgres", &["crates/tasuki-postgres/migrations"]),
    (
        "tasuki-app",
        &[
            "crates/tasuki-postgres/migrations",
            "crates/tasuki-app/postgres/migrations",
        ],
    ),
];

/// The PostgreSQL server that holds the scratch database of `tasuki-postgres`.
fn postgres_server() -> String {
    std::env::var("TASUKI_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub(crate) fn prepare(root: &Path) -> Result<()> {
    for (store, data) in fresh_data(root)? {
        let committed = root.join("crates").join(store).join(".sqlx");
        if committed.exists() {
            fs::remove_dir_all(&committed)?;
        }
        fs::create_dir_all(&committed)?;
        for (name, text) in data {
            fs::write(committed.join(name), text)?;
        }
        println!("{store}: .sqlx/ written");
    }
    Ok(())
}

pub(crate) fn check(root: &Path) -> Result<()> {
    let mut stale = Vec::new();
    for (store, fresh) in fresh_data(root)? {
        let committed = read_dir(&root.join("crates").join(store).join(".sqlx"))?;
        if fresh != committed {
            stale.push(store);
        }
    }
    if !stale.is_empty() {
        bail!(
            "the .sqlx/ offline data of {} is not current: run `cargo xtask sqlx-prepare` and commit it",
            stale.join(", ")
        );
    }
    println!("sqlx offline data is current");
    Ok(())
}

/// Each crate's offline data, made fresh. A crate's check may re-expand the
/// macros of a crate it depends on too: a query file belongs to the first
/// crate that wrote it.
fn fresh_data(root: &Path) -> Result<Vec<(&'static str, BTreeMap<String, String>)>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut all = Vec::new();
    for (store, migrations) in STORES {
        let mut data = read_dir(&generate(root, store, migrations)?)?;
        data.retain(|name, _| !seen.contains(name));
        seen.extend(data.keys().cloned());
        all.push((*store, data));
    }
    Ok(all)
}

/// Builds a scratch database from the crate's migrations, then re-expands the
/// crate's query macros against it; returns the folder they wrote.
fn generate(root: &Path, store: &str, migrations: &[&str]) -> Result<PathBuf> {
    let crate_dir = root.join("crates").join(store);
    let scratch = root.join("target").join("xtask-sqlx").join(store);
    if scratch.exists() {
        fs::remove_dir_all(&scratch)?;
    }
    let out = scratch.join("queries");
    fs::create_dir_all(&out)?;
    let url = scratch_postgres(root, migrations)?;
    // Touching the crate root makes cargo expand its macros again.
    let lib = crate_dir.join("src").join("lib.rs");
    let text = fs::read(&lib)?;
    fs::write(&lib, text)?;
    cargo(
        root,
        &["check", "--quiet", "--package", store, "--all-targets"],
        &[
            ("SQLX_OFFLINE", "false"),
            ("DATABASE_URL", &url),
            ("SQLX_OFFLINE_DIR", out.to_str().context("non-UTF-8 path")?),
        ],
    )?;
    Ok(out)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Recreates the database `tasuki_sqlx` on the local server, with the SQL
/// files of each migration folder applied in order.
fn scratch_postgres(root: &Path, migrations: &[&str]) -> Result<String> {
    let server = postgres_server();
    let url = format!("{server}/tasuki_sqlx");
    let mut files = Vec::new();
    for dir in migrations {
        let mut sql: Vec<PathBuf> = fs::read_dir(root.join(dir))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        sql.sort();
        for path in sql {
            files.push(
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
            );
        }
    }
    runtime()?
        .block_on(async {
            let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await?;
            sqlx::query("DROP DATABASE IF EXISTS tasuki_sqlx WITH (FORCE)")
                .execute(&admin)
                .await?;
            sqlx::query("CREATE DATABASE tasuki_sqlx")
                .execute(&admin)
                .await?;
            admin.close().await;
            let pool = sqlx::PgPool::connect(&url).await?;
            for sql in &files {
                sqlx::raw_sql(sql).execute(&pool).await?;
            }
            pool.close().await;
            anyhow::Ok(())
        })
        .with_context(|| format!("preparing a scratch database on {server} (is PostgreSQL up?)"))?;
    Ok(url)
}

fn read_dir(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            files.insert(name, fs::read_to_string(entry.path())?);
        }
    }
    Ok(files)
}
