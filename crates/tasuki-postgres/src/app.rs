//! The application's tables on PostgreSQL: users, profiles, signup
//! statistics, the email outbox and probe runs.

use async_trait::async_trait;
use serde_json::json;
use tasuki_core::{
    AgeFilter, AppStore, EmailMessage, JobId, Onboarding, Page, StoreError, StoreResult, Timestamp,
    User, UserProfile, Writes,
};

use crate::rows::{UserRow, db_error, ts};
use crate::{PgStore, writes};

#[async_trait]
impl AppStore for PgStore {
    async fn user_get(&self, id: i64) -> StoreResult<User> {
        sqlx::query_file_as!(UserRow, "queries/user/get.sql", id)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?
            .try_into()
    }

    async fn user_list(&self, after: i64, limit: u32) -> StoreResult<Page<User>> {
        let limit = limit.max(1);
        let rows = sqlx::query_file_as!(UserRow, "queries/user/list.sql", after, i64::from(limit))
            .fetch_all(&self.pool)
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
            .fetch_one(&self.pool)
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
        let tags = json!(o.profile.recommendation_tags);
        writes(move |tx| {
            let (o, tags) = (o.clone(), tags.clone());
            Box::pin(async move {
                let onboarded = sqlx::query_file_scalar!(
                    "queries/user/onboard.sql",
                    o.user_id,
                    o.now.to_datetime(),
                    o.now.utc_day(),
                    tags,
                    o.profile.region,
                    o.profile.rank,
                    o.email_kind,
                    o.email_subject,
                    o.email_body
                )
                .fetch_optional(tx.conn())
                .await?
                .ok_or(StoreError::NotFound)?;
                if let Some(outbox_id) = onboarded {
                    let mut delivery = o.delivery;
                    delivery.payload = json!({ "outbox_id": outbox_id });
                    tx.enqueue(delivery).await?;
                }
                Ok(())
            })
        })
    }

    async fn user_ages(&self, filter: AgeFilter) -> StoreResult<Vec<i64>> {
        sqlx::query_file_scalar!("queries/user/ages.sql", filter.min_age, filter.max_age)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn signup_stats(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query_file!("queries/signup/stats.sql")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(|r| (r.day, r.signups)).collect())
    }

    async fn email_get(&self, id: i64) -> StoreResult<EmailMessage> {
        let row = sqlx::query_file!("queries/email/get.sql", id)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(EmailMessage {
            id: row.id,
            user_id: row.user_id,
            kind: row.kind,
            recipient: row.recipient,
            subject: row.subject,
            body: row.body,
            sent_at: ts(row.sent_at),
        })
    }

    fn email_sent(&self, id: i64, now: Timestamp) -> Writes {
        writes(move |tx| {
            Box::pin(async move {
                sqlx::query_file!("queries/email/mark_sent.sql", id, now.to_datetime())
                    .execute(tx.conn())
                    .await?;
                Ok(())
            })
        })
    }

    async fn probe_run_start(
        &self,
        job_id: JobId,
        attempt: i32,
        worker: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query_file!(
            "queries/probe/start.sql",
            job_id.0,
            attempt,
            worker,
            at.to_datetime()
        )
        .execute(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn probe_run_end(&self, job_id: JobId, attempt: i32, at: Timestamp) -> StoreResult<()> {
        sqlx::query_file!("queries/probe/end.sql", job_id.0, attempt, at.to_datetime())
            .execute(&self.bookkeeping)
            .await
            .map_err(db_error)?;
        Ok(())
    }
}
