//! The heart of tasuki with no I/O: the job model, the store traits that every
//! backend implements, the retry policy, the clock and the signups' group
//! commit (runtime-free channels; the store spawns its task).
//!
//! Nothing here knows of sqlx, axum or tokio; backends and runtimes depend on
//! this crate, never the other way round.

mod clock;
mod job;
mod retry;
mod signup;
mod store;
mod writes;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use job::{
    AttemptError, DEFAULT_MAX_RETRIES, Job, JobId, JobStats, JobStatus, NewJob, ParseStatusError,
    ScheduleError, due_at,
};
pub use retry::{FailureKind, RetryDecision, RetryPolicy};
pub use signup::{Signup, SignupQueue, SignupResult, answers, assign_users};
pub use store::{
    AgeFilter, AppStore, ClaimParams, Completed, Completion, EmailMessage, Failure, JobFilter,
    JobFor, JobStore, LeaderParams, NewUser, Onboarding, Page, Release, Store, StoreError,
    StoreResult, StoreTx, User, UserProfile, changed_or_conflict,
};
pub use writes::{JobCheck, Writes, check_enqueue};
