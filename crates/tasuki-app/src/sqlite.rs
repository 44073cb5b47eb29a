//! The application's tables on SQLite: users, profiles, signup statistics,
//! the email outbox and probe runs, in the queue's database file. Every
//! write goes through the store's writer, so that it commits in the
//! writer's turns with the queue's own writes.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, named_params};
use tasuki_core::{JobId, Migrations, Page, StoreError, StoreResult, Timestamp, Writes};
use tasuki_sqlite::{Commit, Error, SqliteStore, Tx, corrupt, writes};

use crate::model::{
    AgeFilter, AppStore, EmailMessage, JobFor, NewUser, Onboarding, User, UserProfile,
};

/// The application's tables, in a ledger of their own.
pub(crate) const MIGRATIONS: Migrations = Migrations {
    ledger: "_tasuki_app_migrations",
    list: &[
        (
            1,
            "init",
            include_str!("../sqlite/migrations/0001_init.sql"),
        ),
        (
            2,
            "stats",
            include_str!("../sqlite/migrations/0002_stats.sql"),
        ),
    ],
};

/// Every statement, in `sqlite/queries/`, checked by this crate's tests.
pub(crate) mod queries {
    use super::USER;

    tasuki_sqlite::queries! {
        dir = "sqlite/queries";
        USER_INSERT = "user/insert.sql" => USER;
        USER_GET = "user/get.sql" => USER;
        USER_LIST = "user/list.sql" => USER;
        USER_AGES = "user/ages.sql" => &["age"];
        USER_PROFILE_GET = "user/profile_get.sql" => &["recommendation_tags", "region", "rank"];
        ONBOARD_PROFILE = "user/onboard/profile.sql" => &[];
        ONBOARD_MARK = "user/onboard/mark.sql" => &[];
        ONBOARD_EMAIL = "user/onboard/email.sql" => &["id"];
        SIGNUP_STATS = "signup/stats.sql" => &["day", "signups"];
        EMAIL_GET = "email/get.sql" => &["id", "user_id", "kind", "recipient", "subject", "body", "sent_at"];
        EMAIL_MARK_SENT = "email/mark_sent.sql" => &[];
        PROBE_START = "probe/start.sql" => &[];
        PROBE_END = "probe/end.sql" => &[];
    }
}

/// The application's store on SQLite.
pub struct SqliteApp {
    store: Arc<SqliteStore>,
}

impl SqliteApp {
    /// Applies the application's migrations.
    pub async fn open(store: Arc<SqliteStore>) -> StoreResult<Self> {
        store.migrate(&MIGRATIONS).await?;
        Ok(Self { store })
    }
}

/// The columns of a `users` row, in the order [`user_row`] reads them.
const USER: &[&str] = &[
    "id",
    "email",
    "age",
    "name",
    "bio",
    "is_active",
    "additional_data",
    "created_at",
];

/// Reads a row of [`USER`]'s columns.
fn user_row(row: &Row<'_>) -> Result<User, Error> {
    let additional: Option<String> = row.get(6)?;
    let additional_data = additional
        .map(|text| serde_json::from_str(&text).map_err(|e| corrupt("additional_data", e)))
        .transpose()?;
    let is_active: i64 = row.get(5)?;
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        age: row.get(2)?,
        name: row.get(3)?,
        bio: row.get(4)?,
        is_active: is_active != 0,
        additional_data,
        created_at: Timestamp::from_micros(row.get(7)?),
    })
}

fn insert_user(conn: &Connection, user: NewUser, now: Timestamp) -> Result<User, Error> {
    let additional = user
        .additional_data
        .map(|map| serde_json::Value::Object(map).to_string());
    let mut statement = conn.prepare_cached(queries::USER_INSERT.sql)?;
    let rows = statement.query((
        user.email,
        user.age,
        user.name,
        user.bio,
        user.is_active,
        additional,
        now.as_micros(),
    ))?;
    tasuki_sqlite::one(rows, user_row)
}

/// A `user_created` job's writes, the statements of `queries/user/onboard/`.
fn onboard(tx: &Tx<'_>, o: &Onboarding, tags: &str) -> Result<(), Error> {
    let (conn, user, now) = (tx.conn(), o.user_id, o.now.as_micros());
    let profiled = conn
        .prepare_cached(queries::ONBOARD_PROFILE.sql)?
        .execute(named_params! {
            ":tags": tags, ":region": o.profile.region, ":rank": o.profile.rank,
            ":now": now, ":user_id": user,
        })?;
    if profiled == 0 {
        return Err(StoreError::NotFound.into());
    }
    conn.prepare_cached(queries::ONBOARD_MARK.sql)?
        .execute(named_params! {":now": now, ":user_id": user})?;
    let email: Option<i64> = conn
        .prepare_cached(queries::ONBOARD_EMAIL.sql)?
        .query_row(
            named_params! {
                ":kind": o.email_kind, ":subject": o.email_subject, ":body": o.email_body,
                ":now": now, ":user_id": user,
            },
            |row| row.get(0),
        )
        .optional()?;
    if let Some(outbox_id) = email {
        let mut delivery = o.delivery.clone();
        delivery.payload = serde_json::json!({ "outbox_id": outbox_id });
        tx.enqueue(delivery)?;
    }
    Ok(())
}

#[async_trait]
impl AppStore for SqliteApp {
    /// A signup is one write in the writer's next turn: concurrent signups
    /// commit together, with one fsync (group commit), and a taken email
    /// rolls back only its own savepoint.
    async fn user_insert_with_job(
        &self,
        user: NewUser,
        job: JobFor,
        now: Timestamp,
    ) -> StoreResult<(User, JobId)> {
        self.store
            .write(Commit::Acknowledged, move |tx| {
                let user = insert_user(tx.conn(), user, now)?;
                let job = tx.enqueue(job(&user))?;
                Ok((user, job))
            })
            .await
    }

    async fn user_get(&self, id: i64) -> StoreResult<User> {
        self.store
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::USER_GET.sql)?;
                tasuki_sqlite::one(statement.query([id])?, user_row)
            })
            .await
    }

    async fn user_list(&self, after: i64, limit: u32) -> StoreResult<Page<User>> {
        let limit = limit.max(1);
        let users = self
            .store
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::USER_LIST.sql)?;
                tasuki_sqlite::all(statement.query((after, limit))?, user_row)
            })
            .await?;
        Ok(Page::of(users, limit, |u| u.id))
    }

    async fn user_profile_get(&self, user_id: i64) -> StoreResult<UserProfile> {
        self.store
            .read(move |conn| {
                let (tags, region, rank): (String, Option<String>, Option<String>) = conn
                    .prepare_cached(queries::USER_PROFILE_GET.sql)?
                    .query_row([user_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                Ok(UserProfile {
                    recommendation_tags: serde_json::from_str(&tags)
                        .map_err(|e| corrupt("recommendation_tags", e))?,
                    region,
                    rank,
                })
            })
            .await
    }

    fn user_onboarding(&self, o: Onboarding) -> Writes {
        let tags = serde_json::Value::from(o.profile.recommendation_tags.clone()).to_string();
        writes(move |tx| onboard(tx, &o, &tags))
    }

    async fn user_ages(&self, filter: AgeFilter) -> StoreResult<Vec<i64>> {
        self.store
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::USER_AGES.sql)?;
                let ages = statement
                    .query_map((filter.min_age, filter.max_age), |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ages)
            })
            .await
    }

    async fn signup_stats(&self) -> StoreResult<Vec<(String, i64)>> {
        self.store
            .read(|conn| {
                let mut statement = conn.prepare_cached(queries::SIGNUP_STATS.sql)?;
                let days = statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(days)
            })
            .await
    }

    async fn email_get(&self, id: i64) -> StoreResult<EmailMessage> {
        self.store
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::EMAIL_GET.sql)?;
                tasuki_sqlite::one(statement.query([id])?, |row| {
                    let sent_at: Option<i64> = row.get(6)?;
                    Ok(EmailMessage {
                        id: row.get(0)?,
                        user_id: row.get(1)?,
                        kind: row.get(2)?,
                        recipient: row.get(3)?,
                        subject: row.get(4)?,
                        body: row.get(5)?,
                        sent_at: sent_at.map(Timestamp::from_micros),
                    })
                })
            })
            .await
    }

    fn email_sent(&self, id: i64, now: Timestamp) -> Writes {
        let at = now.as_micros();
        writes(move |tx| {
            tx.conn()
                .prepare_cached(queries::EMAIL_MARK_SENT.sql)?
                .execute((id, at))?;
            Ok(())
        })
    }

    async fn probe_run_start(
        &self,
        job_id: JobId,
        attempt: i32,
        worker: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (worker, at) = (worker.to_owned(), at.as_micros());
        self.store
            .write(Commit::Bookkeeping, move |tx| {
                let conn = tx.conn();
                conn.prepare_cached(queries::PROBE_START.sql)?
                    .execute((job_id.0, attempt, worker, at))?;
                Ok(())
            })
            .await
    }

    async fn probe_run_end(&self, job_id: JobId, attempt: i32, at: Timestamp) -> StoreResult<()> {
        let at = at.as_micros();
        self.store
            .write(Commit::Bookkeeping, move |tx| {
                let conn = tx.conn();
                conn.prepare_cached(queries::PROBE_END.sql)?
                    .execute((job_id.0, attempt, at))?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use tasuki_sqlite::{SqliteConfig, SqliteStore, check_queries};

    #[tokio::test]
    async fn every_statement_prepares_against_the_schema_and_every_file_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.db");
        let store = SqliteStore::open(&SqliteConfig::new(&path)).await.unwrap();
        super::SqliteApp::open(Arc::new(store)).await.unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("sqlite/queries");
        check_queries(&conn, super::queries::ALL, &queries).unwrap();
    }
}
