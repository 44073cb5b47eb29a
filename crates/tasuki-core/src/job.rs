//! The job as stored: its identity, status, schedule, lease and history.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// How many retries a job gets unless its enqueuer or its type says otherwise.
pub const DEFAULT_MAX_RETRIES: i32 = 3;

/// The queue of a job whose enqueuer and type name none.
pub const DEFAULT_QUEUE: &str = "default";

/// The longest queue name: names travel in URLs and logs.
const MAX_QUEUE_NAME: usize = 100;

/// Whether `name` can name a queue: 1 to 100 ASCII letters, digits, `_`,
/// `-` or `.`, so that it reads the same in a URL, a log line and an
/// environment variable.
pub fn is_queue_name(name: &str) -> bool {
    (1..=MAX_QUEUE_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life.
///
/// `pending` and `retry_pending` are the ready set (due once `scheduled_at`
/// has passed); `processing` is leased to a worker; the last three are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Processing,
    RetryPending,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Processing,
        JobStatus::RetryPending,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Processing => "processing",
            JobStatus::RetryPending => "retry_pending",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub const fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown job status `{0}` (expected one of pending, processing, retry_pending, completed, failed, cancelled)"
)]
pub struct ParseStatusError(pub String);

impl FromStr for JobStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseStatusError(s.to_owned()))
    }
}

/// The statuses in which a unique key holds: a job with the key in one of
/// them keeps another with the same type and key from being enqueued. The
/// live statuses (pending, processing, retry_pending) always count, so that
/// no move of a live job can meet a second live job with its key; an
/// enqueuer may add final ones ("once ever", "until it succeeds").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UniqueStates(u8);

impl UniqueStates {
    /// Pending, processing and retry_pending: the default.
    pub const LIVE: UniqueStates = UniqueStates(0b000_111);

    /// The bit of `status`, as the stores' unique index reads it.
    pub const fn bit(status: JobStatus) -> u8 {
        match status {
            JobStatus::Pending => 1,
            JobStatus::Processing => 2,
            JobStatus::RetryPending => 4,
            JobStatus::Completed => 8,
            JobStatus::Failed => 16,
            JobStatus::Cancelled => 32,
        }
    }

    /// The live statuses and `statuses`.
    pub fn with(statuses: impl IntoIterator<Item = JobStatus>) -> Self {
        statuses
            .into_iter()
            .fold(Self::LIVE, |set, s| UniqueStates(set.0 | Self::bit(s)))
    }

    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl Default for UniqueStates {
    fn default() -> Self {
        Self::LIVE
    }
}

/// A unique job: at most one job of its type with this key in `states`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unique {
    pub key: String,
    pub states: UniqueStates,
}

/// How a job type derives the unique key of the jobs enqueued without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniqueBy {
    /// The payload's top-level fields that make the key; empty: the whole payload.
    pub fields: &'static [&'static str],
    /// One job per period (by the job's creation time), or `None`: one at a time.
    pub period: Option<std::time::Duration>,
    pub states: UniqueStates,
}

impl UniqueBy {
    /// The key of a job of this type created at `now` with `payload`: the
    /// chosen fields as canonical JSON, then the period's number.
    pub fn key(&self, payload: &serde_json::Value, now: Timestamp) -> Unique {
        let chosen = if self.fields.is_empty() {
            payload.clone()
        } else {
            serde_json::Value::Object(
                self.fields
                    .iter()
                    .map(|f| ((*f).to_owned(), payload.get(f).cloned().unwrap_or_default()))
                    .collect(),
            )
        };
        // serde_json's maps are sorted by key, so equal payloads print alike.
        let mut key = chosen.to_string();
        if let Some(period) = self.period {
            let micros = i64::try_from(period.as_micros()).unwrap_or(i64::MAX).max(1);
            key.push_str(&format!("@{}", now.as_micros().div_euclid(micros)));
        }
        Unique {
            key,
            states: self.states,
        }
    }
}

/// A job to enqueue. The payload has been checked against its type's schema
/// by the caller; stores take it as it is.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub job_type: String,
    pub payload: serde_json::Value,
    /// `None`: the type's queue, filled in by the registry that checks the
    /// job, or [`DEFAULT_QUEUE`].
    pub queue: Option<String>,
    pub priority: i32,
    /// `None`: the type's default, filled in by the registry, or
    /// [`DEFAULT_MAX_RETRIES`].
    pub max_retries: Option<i32>,
    /// `None`: not unique, unless the type derives a key (the registry does).
    pub unique: Option<Unique>,
    pub scheduled_at: Timestamp,
    pub created_at: Timestamp,
}

impl NewJob {
    /// A job due at `now`, priority 0, in its type's queue with its type's
    /// number of retries.
    pub fn new(job_type: impl Into<String>, payload: serde_json::Value, now: Timestamp) -> Self {
        Self {
            job_type: job_type.into(),
            payload,
            queue: None,
            priority: 0,
            max_retries: None,
            unique: None,
            scheduled_at: now,
            created_at: now,
        }
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub fn max_retries(mut self, max_retries: i32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// At most one job of this type with `key` in `states`.
    pub fn unique(mut self, key: impl Into<String>, states: UniqueStates) -> Self {
        self.unique = Some(Unique {
            key: key.into(),
            states,
        });
        self
    }

    /// The queue the job goes to.
    pub fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }

    /// The retries the job gets.
    pub fn retries(&self) -> i32 {
        self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES)
    }

    pub fn scheduled_at(mut self, at: Timestamp) -> Self {
        self.scheduled_at = at;
        self
    }
}

/// Why an enqueue's schedule was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("is not an RFC 3339 date-time")]
    RunAt,
    #[error("schedules the job after the year 9999")]
    TooLate,
}

/// When an enqueue asks its job to be due: at `run_at` (RFC 3339), `delay`
/// after `now`, or now. The API and the CLI read their options through it.
pub fn due_at(
    now: Timestamp,
    run_at: Option<&str>,
    delay: Option<std::time::Duration>,
) -> Result<Timestamp, ScheduleError> {
    let at = match (run_at, delay) {
        (Some(at), _) => Timestamp::parse_rfc3339(at).ok_or(ScheduleError::RunAt)?,
        (None, Some(delay)) => now.saturating_add(delay),
        (None, None) => now,
    };
    if at > Timestamp::LATEST {
        return Err(ScheduleError::TooLate);
    }
    Ok(at)
}

/// One failed attempt, kept in the job's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    pub attempt: i32,
    pub at: Timestamp,
    pub error: String,
    /// The worker that held the attempt's lease (absent from attempts
    /// recorded before workers were noted).
    pub worker: Option<String>,
}

impl AttemptError {
    /// Reads a job's history as every engine stores it: a JSON array of
    /// `{"attempt", "at" (microseconds since the epoch), "error", "worker"}`.
    pub fn decode_stored(text: &str) -> Result<Vec<AttemptError>, serde_json::Error> {
        #[derive(Deserialize)]
        struct Stored {
            attempt: i32,
            at: i64,
            error: String,
            #[serde(default)]
            worker: Option<String>,
        }
        let stored: Vec<Stored> = serde_json::from_str(text)?;
        Ok(stored
            .into_iter()
            .map(|e| AttemptError {
                attempt: e.attempt,
                at: Timestamp::from_micros(e.at),
                error: e.error,
                worker: e.worker,
            })
            .collect())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub job_type: String,
    pub queue: String,
    /// The payload as stored: JSON text, parsed by the handler that runs it
    /// (serialized as the JSON it holds).
    #[serde(serialize_with = "as_json")]
    pub payload: String,
    pub status: JobStatus,
    pub priority: i32,
    pub max_retries: i32,
    pub retry_count: i32,
    /// How many times the job was claimed; the fencing token of the current lease.
    pub attempt: i32,
    pub error_message: Option<String>,
    pub errors: Vec<AttemptError>,
    pub result: Option<serde_json::Value>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub scheduled_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    pub created_at: Timestamp,
    /// Its unique key, while the job is unique.
    pub unique_key: Option<String>,
}

fn as_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}

/// Counts of jobs by status and type, and how long the oldest due job has waited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobStats {
    pub by_status: BTreeMap<JobStatus, i64>,
    pub by_type: BTreeMap<String, BTreeMap<JobStatus, i64>>,
    /// Age in milliseconds of the longest-waiting job that is due now.
    pub oldest_ready_age_ms: Option<i64>,
}

impl JobStats {
    /// The stats of `(job_type, status, count)` groups, every status present.
    pub fn from_counts(
        counts: impl IntoIterator<Item = (String, String, i64)>,
        oldest_ready_age_ms: Option<i64>,
    ) -> Result<Self, ParseStatusError> {
        let mut stats = JobStats {
            by_status: JobStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
            oldest_ready_age_ms,
            ..JobStats::default()
        };
        for (job_type, status, count) in counts {
            let status: JobStatus = status.parse()?;
            *stats.by_status.entry(status).or_default() += count;
            *stats
                .by_type
                .entry(job_type)
                .or_default()
                .entry(status)
                .or_default() += count;
        }
        Ok(stats)
    }

    pub fn count(&self, status: JobStatus) -> i64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::String(status.as_str().to_owned())
            );
        }
        assert!("done".parse::<JobStatus>().is_err());
    }

    #[test]
    fn an_enqueue_is_due_at_its_time_after_its_delay_or_now() {
        use std::time::Duration;
        let now = Timestamp::from_micros(1_767_225_600_000_000);
        assert_eq!(due_at(now, None, None), Ok(now));
        assert_eq!(
            due_at(now, None, Some(Duration::from_secs(10))),
            Ok(now.saturating_add(Duration::from_secs(10)))
        );
        let at = Timestamp::parse_rfc3339("2026-06-01T09:00:00Z").unwrap();
        let later = Some(Duration::from_secs(10));
        assert_eq!(due_at(now, Some("2026-06-01T09:00:00Z"), later), Ok(at));
        assert_eq!(
            due_at(now, Some("tomorrow"), None),
            Err(ScheduleError::RunAt)
        );
        let forever = Some(Duration::from_secs(u64::MAX / 4));
        assert_eq!(due_at(now, None, forever), Err(ScheduleError::TooLate));
    }
}
