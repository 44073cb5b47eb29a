//! The heart of tasuki with no I/O: the job model, the store traits that every
//! backend implements, a job's writes, the retry policy, the clock, and what
//! a JSON Schema says of a payload or a request.
//!
//! Nothing here knows of sqlx, axum or tokio; backends and runtimes depend on
//! this crate, never the other way round.

mod clock;
mod job;
mod retry;
mod schema;
mod store;
mod writes;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use job::{
    AttemptError, DEFAULT_MAX_RETRIES, Job, JobId, JobStats, JobStatus, NewJob, ParseStatusError,
    ScheduleError, due_at,
};
pub use retry::{FailureKind, RetryDecision, RetryPolicy};
pub use schema::{Violation, canonical_integers, child_pointer, violations};
pub use store::{
    ClaimParams, Completed, Completion, Failure, JobFilter, JobStore, LeaderParams, Migrations,
    Page, Release, Store, StoreError, StoreResult, changed_or_conflict,
};
pub use writes::{JobCheck, Writes, check_enqueue};
