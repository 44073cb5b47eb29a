//! The application's tables on PostgreSQL: users, profiles, signup
//! statistics, the email outbox and probe runs, beside the queue's tables
//! in the same database. Signups commit in groups: one statement inserts a
//! batch's users (a taken email inserts nothing, so one caller's duplicate
//! does not undo the others), one inserts their jobs, and one commit with
//! one WAL flush serves them all. `send_email` jobs read their messages in
//! groups too: one statement and one round trip for every job that asks
//! while another group is read. The writes of a batch's jobs are set
//! writes: one statement onboards every user of the batch, one marks every
//! email sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::json;
use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Transaction};
use tasuki_core::{JobId, Migrations, Page, StoreError, StoreResult, Timestamp, Writes};
use tasuki_postgres::{PgStore, Tx, WriteSet, corrupt, db_error, insert_jobs, set_writes};

use crate::group::Group;
use crate::model::{
    AgeFilter, AppStore, EmailMessage, JobFor, NewUser, Onboarding, User, UserProfile,
};
use crate::signup::{Signup, SignupResult, answers, assign_users};

/// The application's tables, in a ledger of their own.
pub(crate) const MIGRATIONS: Migrations = Migrations {
    ledger: "_tasuki_app_migrations",
    list: &[
        (
            1,
            "init",
            include_str!("../postgres/migrations/0001_init.sql"),
        ),
        (
            2,
            "stats",
            include_str!("../postgres/migrations/0002_stats.sql"),
        ),
        (
            3,
            "email_reads",
            include_str!("../postgres/migrations/0003_email_reads.sql"),
        ),
        (
            4,
            "write_sets",
            include_str!("../postgres/migrations/0004_write_sets.sql"),
        ),
    ],
};

/// The application's store on PostgreSQL.
pub struct PgApp {
    store: Arc<PgStore>,
    signups: Group<Signup, (User, JobId)>,
    emails: Group<i64, EmailMessage>,
}

impl PgApp {
    /// Applies the application's migrations, and starts the signups' group
    /// commit and the emails' group reads.
    pub async fn open(store: Arc<PgStore>) -> StoreResult<Self> {
        store.migrate(&MIGRATIONS).await?;
        let pool = store.pool().clone();
        let begin = move || {
            let pool = pool.clone();
            async move { pool.begin().await.map_err(db_error) }
        };
        let (signups, task) = Group::new("signup", begin, insert_signups);
        tokio::spawn(task);
        // Read by `send_email` jobs alone, which run again after an error:
        // the bookkeeping pool does not test a connection before each use.
        let pool = store.bookkeeping().clone();
        let acquire = move || {
            let pool = pool.clone();
            async move { pool.acquire().await.map_err(db_error) }
        };
        let (emails, task) = Group::new("email read", acquire, read_emails);
        tokio::spawn(task);
        Ok(Self {
            store,
            signups,
            emails,
        })
    }
}

#[async_trait]
impl AppStore for PgApp {
    /// PostgreSQL flushes the WAL of concurrent commits together, but a
    /// batch saves the round trips of one transaction per signup.
    async fn user_insert_with_job(
        &self,
        user: NewUser,
        job: JobFor,
        now: Timestamp,
    ) -> StoreResult<(User, JobId)> {
        let result = self.signups.submit(Signup { user, job, now }).await;
        if result.is_ok() {
            self.store.jobs_enqueued();
        }
        result
    }

    async fn user_get(&self, id: i64) -> StoreResult<User> {
        sqlx::query_file_as!(UserRow, "postgres/queries/user/get.sql", id)
            .fetch_one(self.store.pool())
            .await
            .map_err(db_error)?
            .try_into()
    }

    async fn user_list(&self, after: i64, limit: u32) -> StoreResult<Page<User>> {
        let limit = limit.max(1);
        let rows = sqlx::query_file_as!(
            UserRow,
            "postgres/queries/user/list.sql",
            after,
            i64::from(limit)
        )
        .fetch_all(self.store.pool())
        .await
        .map_err(db_error)?;
        let items = rows
            .into_iter()
            .map(User::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::of(items, limit, |u| u.id))
    }

    async fn user_profile_get(&self, user_id: i64) -> StoreResult<UserProfile> {
        let row = sqlx::query_file!("postgres/queries/user/profile_get.sql", user_id)
            .fetch_one(self.store.pool())
            .await
            .map_err(db_error)?;
        Ok(UserProfile {
            recommendation_tags: serde_json::from_value(row.recommendation_tags)
                .map_err(|e| StoreError::Database(Box::new(e)))?,
            region: row.region,
            rank: row.rank,
        })
    }

    fn user_onboarding(&self, o: Onboarding) -> Writes {
        set_writes::<Onboard>(o)
    }

    async fn user_ages(&self, filter: AgeFilter) -> StoreResult<Vec<i64>> {
        sqlx::query_file_scalar!(
            "postgres/queries/user/ages.sql",
            filter.min_age,
            filter.max_age
        )
        .fetch_all(self.store.pool())
        .await
        .map_err(db_error)
    }

    async fn signup_stats(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query_file!("postgres/queries/signup/stats.sql")
            .fetch_all(self.store.pool())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(|r| (r.day, r.signups)).collect())
    }

    async fn email_get(&self, id: i64) -> StoreResult<EmailMessage> {
        self.emails.submit(id).await
    }

    fn email_sent(&self, id: i64, now: Timestamp) -> Writes {
        set_writes::<MarkSent>((id, now))
    }

    async fn probe_run_start(
        &self,
        job_id: JobId,
        attempt: i32,
        worker: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query_file!(
            "postgres/queries/probe/start.sql",
            job_id.0,
            attempt,
            worker,
            at.to_datetime()
        )
        .execute(self.store.bookkeeping())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn probe_run_end(&self, job_id: JobId, attempt: i32, at: Timestamp) -> StoreResult<()> {
        sqlx::query_file!(
            "postgres/queries/probe/end.sql",
            job_id.0,
            attempt,
            at.to_datetime()
        )
        .execute(self.store.bookkeeping())
        .await
        .map_err(db_error)?;
        Ok(())
    }
}

/// The onboardings of a batch's `user_created` jobs: one statement for
/// them all (a user that two jobs onboard, once more after the others),
/// then their emails' delivery jobs, which the batch inserts together.
struct Onboard;

impl WriteSet for Onboard {
    type Item = Onboarding;

    fn write<'t, 'c>(
        tx: &'t mut Tx<'c>,
        items: Vec<&'t Onboarding>,
    ) -> BoxFuture<'t, Result<(), tasuki_postgres::Error>> {
        Box::pin(async move {
            let mut rest = items;
            while !rest.is_empty() {
                let mut users = HashSet::new();
                let (once, again): (Vec<&Onboarding>, Vec<&Onboarding>) =
                    rest.into_iter().partition(|o| users.insert(o.user_id));
                for (o, outbox_id) in once.iter().zip(onboard(tx, &once).await?) {
                    if let Some(outbox_id) = outbox_id {
                        let mut delivery = o.delivery.clone();
                        delivery.payload = json!({ "outbox_id": outbox_id });
                        tx.enqueue(delivery).await?;
                    }
                }
                rest = again;
            }
            Ok(())
        })
    }
}

/// Onboards users that differ, each with its welcome email's id (`None`
/// when the user had it already); `NotFound` when one is gone. One alone
/// takes the statement by key, the others the function of migration 0004.
async fn onboard(
    tx: &mut Tx<'_>,
    items: &[&Onboarding],
) -> Result<Vec<Option<i64>>, tasuki_postgres::Error> {
    if let [o] = items {
        let onboarded = sqlx::query_file_scalar!(
            "postgres/queries/user/onboard.sql",
            o.user_id,
            o.now.to_datetime(),
            json!(o.profile.recommendation_tags),
            o.profile.region,
            o.profile.rank,
            o.email_kind,
            o.email_subject,
            o.email_body
        )
        .fetch_optional(tx.conn())
        .await?
        .ok_or(StoreError::NotFound)?;
        return Ok(vec![onboarded]);
    }
    let users: Vec<i64> = items.iter().map(|o| o.user_id).collect();
    let at: Vec<DateTime<Utc>> = items.iter().map(|o| o.now.to_datetime()).collect();
    let tags: Vec<serde_json::Value> = items
        .iter()
        .map(|o| json!(o.profile.recommendation_tags))
        .collect();
    let regions: Vec<Option<String>> = items.iter().map(|o| o.profile.region.clone()).collect();
    let ranks: Vec<Option<String>> = items.iter().map(|o| o.profile.rank.clone()).collect();
    let kinds: Vec<String> = items.iter().map(|o| o.email_kind.clone()).collect();
    let subjects: Vec<String> = items.iter().map(|o| o.email_subject.clone()).collect();
    let bodies: Vec<String> = items.iter().map(|o| o.email_body.clone()).collect();
    let onboarded: HashMap<i64, Option<i64>> = sqlx::query_file!(
        "postgres/queries/user/onboard_many.sql",
        &users,
        &at,
        &tags,
        &regions as &[Option<String>],
        &ranks as &[Option<String>],
        &kinds,
        &subjects,
        &bodies
    )
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|row| (row.user_id, row.outbox_id))
    .collect();
    Ok(users
        .iter()
        .map(|user| onboarded.get(user).copied().ok_or(StoreError::NotFound))
        .collect::<StoreResult<_>>()?)
}

/// The mark-sents of a batch's `send_email` jobs, in one statement.
struct MarkSent;

impl WriteSet for MarkSent {
    /// The email, and when it was sent.
    type Item = (i64, Timestamp);

    fn write<'t, 'c>(
        tx: &'t mut Tx<'c>,
        items: Vec<&'t (i64, Timestamp)>,
    ) -> BoxFuture<'t, Result<(), tasuki_postgres::Error>> {
        Box::pin(async move {
            if let [(id, at)] = items[..] {
                sqlx::query_file!("postgres/queries/email/mark_sent.sql", id, at.to_datetime())
                    .execute(tx.conn())
                    .await?;
                return Ok(());
            }
            let (ids, at): (Vec<i64>, Vec<DateTime<Utc>>) =
                items.iter().map(|(id, at)| (*id, at.to_datetime())).unzip();
            // It answers how many were pending, as the plain statement's
            // row count would: a sent one's job has nothing to do.
            sqlx::query_file_scalar!("postgres/queries/email/mark_sent_many.sql", &ids, &at)
                .fetch_one(tx.conn())
                .await?;
            Ok(())
        })
    }
}

/// How long a group's read may take. Past it, its jobs fail (and run again)
/// and the connection is closed: one that hangs must not hold up every
/// email read of the process, which go one group at a time.
const EMAIL_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A group's messages in one statement, each caller's by its id. A group
/// of one (the usual case with few workers) skips the function call of the
/// statement for many: its plan is the key's whatever the outbox holds.
async fn read_emails(
    mut conn: PoolConnection<Postgres>,
    ids: Vec<i64>,
) -> StoreResult<Vec<StoreResult<EmailMessage>>> {
    let read = async {
        match ids[..] {
            [id] => {
                sqlx::query_file_as!(EmailRow, "postgres/queries/email/get.sql", id)
                    .fetch_all(&mut *conn)
                    .await
            }
            _ => {
                sqlx::query_file_as!(EmailRow, "postgres/queries/email/get_many.sql", &ids)
                    .fetch_all(&mut *conn)
                    .await
            }
        }
    };
    let Ok(rows) = tokio::time::timeout(EMAIL_READ_TIMEOUT, read).await else {
        // Not given back to the pool, which opens another in its place.
        drop(conn.detach());
        return Err(StoreError::Database("the email read timed out".into()));
    };
    let rows = rows.map_err(db_error)?;
    let by_id: HashMap<i64, EmailMessage> = rows
        .into_iter()
        .map(|row| {
            let email = EmailMessage {
                id: row.id,
                user_id: row.user_id,
                kind: row.kind,
                recipient: row.recipient,
                subject: row.subject,
                body: row.body,
                sent_at: row.sent_at.map(Timestamp::from),
            };
            (email.id, email)
        })
        .collect();
    Ok(ids
        .iter()
        .map(|id| by_id.get(id).cloned().ok_or(StoreError::NotFound))
        .collect())
}

/// The batch's users in one `unnest` insert, then the jobs of those whose
/// email was free in another, in one transaction.
async fn insert_signups(
    mut tx: Transaction<'static, Postgres>,
    batch: Vec<Signup>,
) -> StoreResult<Vec<SignupResult>> {
    let n = batch.len();
    let (mut emails, mut ages, mut names, mut bios) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut active, mut additional, mut created) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for s in &batch {
        emails.push(s.user.email.clone());
        ages.push(s.user.age);
        names.push(s.user.name.clone());
        bios.push(s.user.bio.clone());
        active.push(s.user.is_active);
        additional.push(
            s.user
                .additional_data
                .clone()
                .map(serde_json::Value::Object),
        );
        created.push(s.now.to_datetime());
    }
    let inserted = sqlx::query_file_as!(
        UserRow,
        "postgres/queries/user/insert_many.sql",
        &emails,
        &ages,
        &names as &[Option<String>],
        &bios as &[Option<String>],
        &active,
        &additional as &[Option<serde_json::Value>],
        &created
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    let (users, new_jobs) = assign_users(batch, inserted.into_iter().map(User::try_from))?;
    let ids = insert_jobs(&mut tx, new_jobs)
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    tx.commit().await.map_err(db_error)?;
    Ok(answers(users, ids))
}

struct EmailRow {
    id: i64,
    user_id: i64,
    kind: String,
    recipient: String,
    subject: String,
    body: String,
    sent_at: Option<DateTime<Utc>>,
}

struct UserRow {
    id: i64,
    email: String,
    age: i64,
    name: Option<String>,
    bio: Option<String>,
    is_active: bool,
    additional_data: Option<serde_json::Value>,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<User> {
        let additional_data = match row.additional_data {
            None => None,
            Some(serde_json::Value::Object(map)) => Some(map),
            Some(other) => return Err(corrupt("additional_data", other)),
        };
        Ok(User {
            id: row.id,
            email: row.email,
            age: row.age,
            name: row.name,
            bio: row.bio,
            is_active: row.is_active,
            additional_data,
            created_at: row.created_at.into(),
        })
    }
}
