//! The application's tables on SQLite: users, profiles, signup statistics,
//! the email outbox and probe runs.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, named_params};
use tasuki_core::{
    AgeFilter, AppStore, EmailMessage, JobId, NewUser, Onboarding, Page, StoreError, StoreResult,
    Timestamp, User, UserProfile, Writes,
};

use crate::SqliteStore;
use crate::queries;
use crate::rows::{self, Error, corrupt};
use crate::writer::Commit;
use crate::{Tx, writes};

pub(crate) fn insert_user(conn: &Connection, user: NewUser, now: Timestamp) -> Result<User, Error> {
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
    rows::one(rows, rows::user)
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
        conn.prepare_cached(queries::ONBOARD_COUNT.sql)?
            .execute(named_params! {":day": o.now.utc_day()})?;
        let mut delivery = o.delivery.clone();
        delivery.payload = serde_json::json!({ "outbox_id": outbox_id });
        tx.enqueue(delivery)?;
    }
    Ok(())
}

#[async_trait]
impl AppStore for SqliteStore {
    async fn user_get(&self, id: i64) -> StoreResult<User> {
        self.readers
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::USER_GET.sql)?;
                rows::one(statement.query([id])?, rows::user)
            })
            .await
    }

    async fn user_list(&self, after: i64, limit: u32) -> StoreResult<Page<User>> {
        let limit = limit.max(1);
        let users = self
            .readers
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::USER_LIST.sql)?;
                rows::all(statement.query((after, limit))?, rows::user)
            })
            .await?;
        Ok(Page::of(users, limit, |u| u.id))
    }

    async fn user_profile_get(&self, user_id: i64) -> StoreResult<UserProfile> {
        self.readers
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
        self.readers
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
        self.readers
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
        self.readers
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::EMAIL_GET.sql)?;
                rows::one(statement.query([id])?, |row| {
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
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                conn.prepare_cached(queries::PROBE_START.sql)?
                    .execute((job_id.0, attempt, worker, at))?;
                Ok(())
            })
            .await
    }

    async fn probe_run_end(&self, job_id: JobId, attempt: i32, at: Timestamp) -> StoreResult<()> {
        let at = at.as_micros();
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                conn.prepare_cached(queries::PROBE_END.sql)?
                    .execute((job_id.0, attempt, at))?;
                Ok(())
            })
            .await
    }
}
