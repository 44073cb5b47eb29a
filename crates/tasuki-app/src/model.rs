//! The application's model: users, their profiles, the email outbox, and
//! the store of its tables.

use async_trait::async_trait;
use serde::Serialize;
use tasuki_core::{JobId, NewJob, Page, StoreError, StoreResult, Timestamp, Writes};

#[derive(Clone, Debug, PartialEq)]
pub struct NewUser {
    pub email: String,
    pub age: i64,
    pub name: Option<String>,
    pub bio: Option<String>,
    pub is_active: bool,
    /// Fields outside the schema, kept in flexible validation mode.
    pub additional_data: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub age: i64,
    pub name: Option<String>,
    pub bio: Option<String>,
    pub is_active: bool,
    pub additional_data: Option<serde_json::Map<String, serde_json::Value>>,
    pub created_at: Timestamp,
}

/// What the `user_created` job derives from a user's additional properties.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UserProfile {
    pub recommendation_tags: Vec<String>,
    pub region: Option<String>,
    pub rank: Option<String>,
}

/// An email to put in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmailMessage {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub sent_at: Option<Timestamp>,
}

/// Everything the `user_created` job writes, committed with its completion.
#[derive(Clone, Debug)]
pub struct Onboarding {
    pub user_id: i64,
    pub profile: UserProfile,
    pub email_kind: String,
    pub email_subject: String,
    pub email_body: String,
    /// The job that delivers the email; its payload becomes `{"outbox_id"}`.
    pub delivery: NewJob,
    pub now: Timestamp,
}

/// A cohort of users by age, both ends inclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgeFilter {
    pub min_age: Option<i64>,
    pub max_age: Option<i64>,
}

/// Builds a user's job once the user's id is known.
pub type JobFor = Box<dyn FnOnce(&User) -> NewJob + Send>;

/// The application's own tables, on either engine ([`crate::SqliteApp`],
/// [`crate::PgApp`]).
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Inserts a user and its job atomically: both commit, or neither. The
    /// signups of concurrent callers commit together (group commit); each
    /// caller is answered after the commit that holds its rows.
    async fn user_insert_with_job(
        &self,
        user: NewUser,
        job: JobFor,
        now: Timestamp,
    ) -> StoreResult<(User, JobId)>;
    async fn user_get(&self, id: i64) -> StoreResult<User>;
    /// Users with an id greater than `after`, oldest first.
    async fn user_list(&self, after: i64, limit: u32) -> StoreResult<Page<User>>;
    async fn user_profile_get(&self, user_id: i64) -> StoreResult<UserProfile>;
    /// A user's onboarding, as the writes of its `user_created` job: the
    /// profile, the welcome email in the outbox and its delivery job, the
    /// user marked onboarded. They fail with `NotFound` when the user is gone.
    fn user_onboarding(&self, onboarding: Onboarding) -> Writes;
    async fn user_ages(&self, filter: AgeFilter) -> StoreResult<Vec<i64>>;
    /// Signups counted per UTC day, `YYYY-MM-DD`, oldest first.
    async fn signup_stats(&self) -> StoreResult<Vec<(String, i64)>>;
    async fn email_get(&self, id: i64) -> StoreResult<EmailMessage>;
    /// Marks an outbox row sent, as the writes of its delivery job.
    fn email_sent(&self, id: i64, now: Timestamp) -> Writes;
    /// Records that an attempt of a `probe` job started (see the probe job).
    async fn probe_run_start(
        &self,
        job_id: JobId,
        attempt: i32,
        worker: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
    async fn probe_run_end(&self, job_id: JobId, attempt: i32, at: Timestamp) -> StoreResult<()>;
}

/// A store with no database: every call fails (see [`crate::schemas`]).
pub(crate) struct Unopened;

fn unopened<T>() -> StoreResult<T> {
    Err(StoreError::Database("no database is open".into()))
}

#[async_trait]
impl AppStore for Unopened {
    async fn user_insert_with_job(
        &self,
        _: NewUser,
        _: JobFor,
        _: Timestamp,
    ) -> StoreResult<(User, JobId)> {
        unopened()
    }
    async fn user_get(&self, _: i64) -> StoreResult<User> {
        unopened()
    }
    async fn user_list(&self, _: i64, _: u32) -> StoreResult<Page<User>> {
        unopened()
    }
    async fn user_profile_get(&self, _: i64) -> StoreResult<UserProfile> {
        unopened()
    }
    fn user_onboarding(&self, _: Onboarding) -> Writes {
        Writes::new(())
    }
    async fn user_ages(&self, _: AgeFilter) -> StoreResult<Vec<i64>> {
        unopened()
    }
    async fn signup_stats(&self) -> StoreResult<Vec<(String, i64)>> {
        unopened()
    }
    async fn email_get(&self, _: i64) -> StoreResult<EmailMessage> {
        unopened()
    }
    fn email_sent(&self, _: i64, _: Timestamp) -> Writes {
        Writes::new(())
    }
    async fn probe_run_start(&self, _: JobId, _: i32, _: &str, _: Timestamp) -> StoreResult<()> {
        unopened()
    }
    async fn probe_run_end(&self, _: JobId, _: i32, _: Timestamp) -> StoreResult<()> {
        unopened()
    }
}
