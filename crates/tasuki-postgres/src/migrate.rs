//! Migrations, applied in order at every start: the queue's, and those of
//! each application that keeps its own tables beside it.
//!
//! Each set records its applied versions in a ledger table of its own; the
//! queue's is `_sqlx_migrations`, the ledger that earlier versions of tasuki
//! (with sqlx's migrator) kept, so their databases carry on. A set's pending
//! migrations apply in one transaction under an advisory lock, so processes
//! that start together migrate once, and a failed migration leaves nothing
//! behind.

use sqlx::{Executor, PgPool};
use tasuki_core::{Migrations, StoreError, StoreResult};

use crate::rows::db_error;

/// The queue's own tables.
pub(crate) const QUEUE: Migrations = Migrations {
    ledger: "_sqlx_migrations",
    list: &[
        (1, "init", include_str!("../migrations/0001_init.sql")),
        (2, "queues", include_str!("../migrations/0002_queues.sql")),
        (
            3,
            "schedules",
            include_str!("../migrations/0003_schedules.sql"),
        ),
        (4, "monitor", include_str!("../migrations/0004_monitor.sql")),
        (5, "plans", include_str!("../migrations/0005_plans.sql")),
        (
            6,
            "generic_plans",
            include_str!("../migrations/0006_generic_plans.sql"),
        ),
        (
            7,
            "batch_plans",
            include_str!("../migrations/0007_batch_plans.sql"),
        ),
    ],
};

pub(crate) async fn run(pool: &PgPool, migrations: &Migrations) -> StoreResult<()> {
    let ledger = migrations.ledger;
    let mut tx = pool.begin().await.map_err(db_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(ledger)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.execute(
        format!(
            "CREATE TABLE IF NOT EXISTS {ledger} (
                version bigint PRIMARY KEY,
                description text NOT NULL,
                installed_on timestamptz NOT NULL DEFAULT now(),
                success boolean NOT NULL,
                checksum bytea NOT NULL,
                execution_time bigint NOT NULL
            )"
        )
        .as_str(),
    )
    .await
    .map_err(db_error)?;
    let current: i64 = sqlx::query_scalar(&format!(
        "SELECT coalesce(max(version), 0) FROM {ledger} WHERE success"
    ))
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    let known = migrations.list.last().map_or(0, |(version, _, _)| *version);
    if current > known {
        return Err(StoreError::Database(
            format!(
                "{ledger}: the database is at schema version {current}, newer than this program knows ({known}); run a newer one"
            )
            .into(),
        ));
    }
    for (version, description, sql) in migrations.list.iter().filter(|(v, _, _)| *v > current) {
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(&format!(
            "INSERT INTO {ledger} (version, description, success, checksum, execution_time)
             VALUES ($1, $2, TRUE, '', 0)"
        ))
        .bind(version)
        .bind(description)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}
