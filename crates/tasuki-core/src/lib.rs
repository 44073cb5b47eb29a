//! The heart of tasuki with no I/O: the job model, the store traits that every
//! backend implements, a job's writes, the retry policy, the clock, periodic
//! schedules, and what a JSON Schema says of a payload or a request.
//!
//! Nothing here knows of sqlx, axum or tokio; backends and runtimes depend on
//! this crate, never the other way round.

mod clock;
mod job;
mod monitor;
mod queue;
mod retry;
mod schedule;
mod schedule_store;
mod schema;
mod store;
mod writes;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use job::{
    AttemptError, DEFAULT_MAX_RETRIES, DEFAULT_QUEUE, Job, JobId, JobStats, JobStatus, NewJob,
    ParseStatusError, ScheduleError, Unique, UniqueBy, UniqueStates, due_at, is_queue_name,
};
pub use monitor::{
    BucketCount, Metric, MinuteStats, MonitorStore, QueueCounts, Rollup, RollupCount,
    WORKER_FORGOTTEN_AFTER, WorkerInfo, WorkerQueue, minute_of, minutes,
};
pub use queue::{QueueChange, QueueInfo, QueueSettings, QueueStore, RateLimit};
pub use retry::{FailureKind, RetryDecision, RetryPolicy};
pub use schedule::{
    DEFAULT_MAX_CATCH_UP, DefinitionError, Fire, MAX_CATCH_UP, Missed, SKIP_GRACE, Schedule,
    ScheduleSpec, ScheduleView, StoredSchedule,
};
pub use schedule_store::{FiredSlots, ScheduleQuery, ScheduleStore, fire_due};
pub use schema::{Violation, canonical_integers, child_pointer, violations};
pub use store::{
    ClaimParams, Completed, Completion, Enqueued, Failure, Inserted, JobFilter, JobStore,
    LeaderParams, Migrations, Page, Release, Store, StoreError, StoreResult, changed_or_conflict,
    unique_clash,
};
pub use writes::{JobCheck, Writes, check_enqueue};
