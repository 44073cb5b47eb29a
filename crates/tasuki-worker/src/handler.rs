//! What a job type implements, and what it gets to work with.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use tasuki_core::{
    Clock, DEFAULT_MAX_RETRIES, DEFAULT_QUEUE, FailureKind, JobId, RetryPolicy, Store, StoreError,
    Timestamp, UniqueBy, Writes,
};

/// A failed attempt, and what should happen next.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Retry after the worker's backoff while retries are left.
    #[error("{0}")]
    Retry(String),
    /// Retry after this delay while retries are left.
    #[error("{message}")]
    RetryAfter { message: String, delay: Duration },
    /// Fail now: no attempt can succeed.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    pub fn retry(message: impl std::fmt::Display) -> Self {
        JobError::Retry(message.to_string())
    }

    pub fn permanent(message: impl std::fmt::Display) -> Self {
        JobError::Permanent(message.to_string())
    }

    pub fn retry_after(message: impl std::fmt::Display, delay: Duration) -> Self {
        JobError::RetryAfter {
            message: message.to_string(),
            delay,
        }
    }

    pub(crate) fn kind(&self) -> FailureKind {
        match self {
            JobError::Retry(_) => FailureKind::Retry,
            JobError::RetryAfter { delay, .. } => FailureKind::RetryAfter(*delay),
            JobError::Permanent(_) => FailureKind::Permanent,
        }
    }
}

/// A store error inside a handler is worth another attempt, except a missing
/// row, which will still be missing next time, and a rejected write.
impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => {
                JobError::Permanent("a row the job needs does not exist".into())
            }
            StoreError::Rejected(why) => JobError::Permanent(why),
            other => JobError::Retry(format!("store: {}", error_chain(&other))),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The attempt being run, and the services a handler may use.
#[derive(Clone)]
pub struct JobContext {
    pub job_id: JobId,
    pub job_type: String,
    /// 1 for the first claim, 2 for the second, and so on.
    pub attempt: i32,
    pub retry_count: i32,
    pub worker_id: Arc<str>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

impl JobContext {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// A successful attempt: the result to store with the job, and the job's
/// own writes, which commit with its completion or not at all.
#[derive(Debug, Default)]
pub struct Done {
    pub result: Option<serde_json::Value>,
    pub writes: Option<Writes>,
}

impl Done {
    /// Done, with a result to store.
    pub fn result(result: serde_json::Value) -> Self {
        Self {
            result: Some(result),
            writes: None,
        }
    }

    /// Done, once `writes` commit with the completion. Build them with the
    /// engine's `writes` (`tasuki_sqlite::writes`, `tasuki_postgres::writes`);
    /// the jobs they enqueue are checked against their types' schemas.
    #[must_use]
    pub fn with_writes(mut self, writes: Writes) -> Self {
        self.writes = Some(writes);
        self
    }
}

/// One job type. Register it with [`crate::Registry::register`].
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The `job_type` this handler runs.
    const JOB_TYPE: &'static str;
    type Payload: DeserializeOwned + Send;

    /// The queue its jobs go to unless their enqueuer names another.
    const QUEUE: &'static str = DEFAULT_QUEUE;
    /// The retries its jobs get unless their enqueuer says otherwise.
    const MAX_RETRIES: i32 = DEFAULT_MAX_RETRIES;
    /// How a job enqueued without a unique key gets one: `None`, it does not.
    const UNIQUE: Option<UniqueBy> = None;

    /// The JSON Schema that every enqueued payload must match.
    fn schema() -> serde_json::Value;

    /// How long one attempt may take; `None` takes the worker's default.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// The backoff between its retries; `None` takes the worker's.
    fn backoff(&self) -> Option<RetryPolicy> {
        None
    }

    /// Runs one attempt; `Ok` may carry a result to store with the job and
    /// writes to commit with its completion.
    async fn handle(&self, ctx: &JobContext, payload: Self::Payload) -> Result<Done, JobError>;
}

/// A handler with its payload type erased, as the registry keeps it.
#[async_trait]
pub(crate) trait DynHandler: Send + Sync {
    fn timeout(&self) -> Option<Duration>;
    fn backoff(&self) -> Option<RetryPolicy>;
    async fn call(&self, ctx: &JobContext, payload: &str) -> Result<Done, JobError>;
}

#[async_trait]
impl<H: Handler> DynHandler for H {
    fn timeout(&self) -> Option<Duration> {
        Handler::timeout(self)
    }

    fn backoff(&self) -> Option<RetryPolicy> {
        Handler::backoff(self)
    }

    async fn call(&self, ctx: &JobContext, payload: &str) -> Result<Done, JobError> {
        let payload = serde_json::from_str(payload)
            .map_err(|e| JobError::permanent(format!("payload does not parse: {e}")))?;
        self.handle(ctx, payload).await
    }
}
