//! The application's tables on SQLite: users, profiles, signup statistics,
//! the email outbox and probe runs.

use async_trait::async_trait;
use tasuki_core::{
    AgeFilter, AppStore, EmailMessage, JobId, NewJob, OnboardOutcome, Onboarding, Page,
    StoreResult, Timestamp, User, UserProfile,
};

use crate::rows::{UserRow, db_error};
use crate::{Commit, SqliteStore};

#[async_trait]
impl AppStore for SqliteStore {
    async fn user_get(&self, id: i64) -> StoreResult<User> {
        sqlx::query_file_as!(UserRow, "queries/user/get.sql", id)
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?
            .try_into()
    }

    async fn user_list(&self, after: i64, limit: u32) -> StoreResult<Page<User>> {
        let limit = limit.max(1);
        let rows = sqlx::query_file_as!(UserRow, "queries/user/list.sql", after, limit)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?;
        let items = rows
            .into_iter()
            .map(User::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::of(items, limit, |u| u.id))
    }

    async fn user_profile_get(&self, user_id: i64) -> StoreResult<UserProfile> {
        let row = sqlx::query_file!("queries/user/profile_get.sql", user_id)
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(UserProfile {
            recommendation_tags: serde_json::from_str(&row.recommendation_tags)
                .map_err(|e| tasuki_core::StoreError::Database(Box::new(e)))?,
            region: row.region,
            rank: row.rank,
        })
    }

    async fn user_onboard(&self, o: Onboarding) -> StoreResult<OnboardOutcome> {
        let (now, day) = (o.now.as_micros(), o.now.utc_day());
        let tags = serde_json::to_string(&o.profile.recommendation_tags)
            .map_err(|e| tasuki_core::StoreError::Database(Box::new(e)))?;
        // The delivery job's defaults; its payload is made in SQL.
        let delivery = NewJob::new(o.delivery_job_type, serde_json::Value::Null, o.now);
        let (user, kind) = (o.user_id, o.email_kind);
        let mut conn = self.write(Commit::Bookkeeping).await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        // Every statement of the script takes its own parameters, in order.
        let rows = sqlx::query_file!(
            "queries/user/onboard.sql",
            day,
            user,
            // the profile
            tags,
            o.profile.region,
            o.profile.rank,
            now,
            user,
            // the email
            kind,
            o.email_subject,
            o.email_body,
            now,
            user,
            // its delivery job
            delivery.job_type,
            delivery.priority,
            delivery.max_retries,
            now,
            now,
            // the outcome
            kind,
            user,
            // the user, onboarded
            now,
            user
        )
        // All rows: the script's last statement runs after its one result row.
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let outcome = rows.first().ok_or(tasuki_core::StoreError::NotFound)?;
        let (outbox_id, first_time, enqueued) = (
            outcome.outbox_id,
            outcome.first_time,
            outcome.delivery_enqueued,
        );
        tx.commit().await.map_err(db_error)?;
        if enqueued {
            self.jobs_added();
        }
        Ok(OnboardOutcome {
            outbox_id,
            first_time,
        })
    }

    async fn user_ages(&self, filter: AgeFilter) -> StoreResult<Vec<i64>> {
        sqlx::query_file_scalar!("queries/user/ages.sql", filter.min_age, filter.max_age)
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)
    }

    async fn signup_stats(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query_file!("queries/signup/stats.sql")
            .fetch_all(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(|r| (r.day, r.signups)).collect())
    }

    async fn email_get(&self, id: i64) -> StoreResult<EmailMessage> {
        let row = sqlx::query_file!("queries/email/get.sql", id)
            .fetch_one(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(EmailMessage {
            id: row.id,
            user_id: row.user_id,
            kind: row.kind,
            recipient: row.recipient,
            subject: row.subject,
            body: row.body,
            sent_at: row.sent_at.map(Timestamp::from_micros),
        })
    }

    async fn email_mark_sent(&self, id: i64, now: Timestamp) -> StoreResult<bool> {
        let at = now.as_micros();
        let done = sqlx::query_file!("queries/email/mark_sent.sql", id, at)
            .execute(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn probe_run_start(
        &self,
        job_id: JobId,
        attempt: i32,
        worker: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let at = at.as_micros();
        sqlx::query_file!("queries/probe/start.sql", job_id.0, attempt, worker, at)
            .execute(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn probe_run_end(&self, job_id: JobId, attempt: i32, at: Timestamp) -> StoreResult<()> {
        let at = at.as_micros();
        sqlx::query_file!("queries/probe/end.sql", job_id.0, attempt, at)
            .execute(&mut *self.write(Commit::Bookkeeping).await?)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
