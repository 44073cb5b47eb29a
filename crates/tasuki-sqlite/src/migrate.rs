//! Migrations, applied in order at every start: the queue's, and those of
//! each application that keeps its own tables beside it.
//!
//! Each set records its applied versions in a ledger table of its own; the
//! queue's is `_sqlx_migrations`, the ledger that earlier versions of tasuki
//! (on sqlx) kept, so their databases carry on. A set's pending migrations
//! apply in one `IMMEDIATE` transaction: processes that start together on
//! one file take turns, and a failed migration leaves nothing behind.

use rusqlite::Connection;
use tasuki_core::{Migrations, StoreError};

use crate::rows::Error;

/// The queue's own tables.
pub(crate) const QUEUE: Migrations = Migrations {
    ledger: "_sqlx_migrations",
    list: &[
        (1, "init", include_str!("../migrations/0001_init.sql")),
        (
            2,
            "retention",
            include_str!("../migrations/0002_retention.sql"),
        ),
        (3, "queues", include_str!("../migrations/0003_queues.sql")),
        (
            4,
            "schedules",
            include_str!("../migrations/0004_schedules.sql"),
        ),
        (5, "monitor", include_str!("../migrations/0005_monitor.sql")),
        (
            6,
            "ready_by_queue",
            include_str!("../migrations/0006_ready_by_queue.sql"),
        ),
    ],
};

pub(crate) fn run(conn: &Connection, migrations: &Migrations) -> Result<(), Error> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let applied = apply(conn, migrations);
    let end = if applied.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    conn.execute_batch(end)?;
    applied
}

/// Applies the pending migrations of a set inside the caller's transaction.
pub(crate) fn apply(conn: &Connection, migrations: &Migrations) -> Result<(), Error> {
    let ledger = migrations.ledger;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {ledger} (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    ))?;
    let current: i64 = conn.query_row(
        &format!("SELECT coalesce(max(version), 0) FROM {ledger} WHERE success"),
        [],
        |row| row.get(0),
    )?;
    let known = migrations.list.last().map_or(0, |(version, _, _)| *version);
    if current > known {
        return Err(StoreError::Database(
            format!(
                "{ledger}: the database is at schema version {current}, newer than this program knows ({known}); run a newer one"
            )
            .into(),
        )
        .into());
    }
    for (version, description, sql) in migrations.list.iter().filter(|(v, _, _)| *v > current) {
        conn.execute_batch(sql)?;
        conn.execute(
            &format!(
                "INSERT INTO {ledger} (version, description, success, checksum, execution_time)
                 VALUES (?1, ?2, TRUE, x'', 0)"
            ),
            (version, description),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = super::QUEUE
            .list
            .iter()
            .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
            .collect();
        assert_eq!(files, listed);
    }

    #[test]
    fn migrating_twice_changes_nothing_and_a_newer_schema_is_refused() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        super::run(&conn, &super::QUEUE).unwrap();
        super::run(&conn, &super::QUEUE).unwrap();
        let versions: i64 = conn
            .query_row("SELECT count(*) FROM _sqlx_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(versions, super::QUEUE.list.len() as i64);
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (999, 'future', TRUE, x'', 0)",
            [],
        )
        .unwrap();
        let error = format!("{:?}", super::run(&conn, &super::QUEUE).unwrap_err());
        assert!(error.contains("newer than this program knows"), "{error}");
    }
}
