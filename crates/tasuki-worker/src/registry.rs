//! The job types a process knows: their handlers and compiled payload schemas.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tasuki_core::{NewJob, UniqueBy, Violation, canonical_integers, violations};

use crate::handler::{DynHandler, Handler};

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("unknown job type `{job_type}` (known: {})", known.join(", "))]
    UnknownJobType {
        job_type: String,
        known: Vec<String>,
    },
    #[error("the payload of a `{job_type}` job does not match its schema: {}", violations.iter().map(|v| format!("{} {}", if v.pointer.is_empty() { "/" } else { &v.pointer }, v.message)).collect::<Vec<_>>().join("; "))]
    InvalidPayload {
        job_type: String,
        violations: Vec<Violation>,
    },
}

struct Entry {
    handler: Arc<dyn DynHandler>,
    schema: Value,
    validator: jsonschema::Validator,
    queue: &'static str,
    max_retries: i32,
    unique: Option<UniqueBy>,
}

#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<&'static str, Entry>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a job type.
    ///
    /// # Panics
    /// When the type is registered twice or its schema is not a valid JSON
    /// Schema: both are mistakes in the program, found at start-up.
    pub fn register<H: Handler>(mut self, handler: H) -> Self {
        let schema = H::schema();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("the payload schema of `{}` is invalid: {e}", H::JOB_TYPE));
        let entry = Entry {
            handler: Arc::new(handler),
            schema,
            validator,
            queue: H::QUEUE,
            max_retries: H::MAX_RETRIES,
            unique: H::UNIQUE,
        };
        assert!(
            self.entries.insert(H::JOB_TYPE, entry).is_none(),
            "job type `{}` is registered twice",
            H::JOB_TYPE
        );
        self
    }

    pub fn job_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    pub fn schema(&self, job_type: &str) -> Option<&Value> {
        self.entries.get(job_type).map(|e| &e.schema)
    }

    pub(crate) fn handler(&self, job_type: &str) -> Option<&Arc<dyn DynHandler>> {
        self.entries.get(job_type).map(|e| &e.handler)
    }

    /// Checks a job to enqueue as its type wants it: the payload validated
    /// and with whole numbers as integers, and what its enqueuer left unsaid
    /// (queue, retries, unique key) taken from its type. Every enqueue goes
    /// through here: the API, the CLI, and a job's writes.
    pub fn check(&self, job: &mut NewJob) -> Result<(), EnqueueError> {
        let payload = std::mem::take(&mut job.payload);
        job.payload = self.prepare(&job.job_type, payload)?;
        let entry = &self.entries[job.job_type.as_str()];
        job.queue.get_or_insert_with(|| entry.queue.to_owned());
        job.max_retries.get_or_insert(entry.max_retries);
        if job.unique.is_none() {
            job.unique = entry.unique.map(|by| by.key(&job.payload, job.created_at));
        }
        Ok(())
    }

    /// The queue a type's jobs go to by default.
    pub fn queue(&self, job_type: &str) -> Option<&'static str> {
        self.entries.get(job_type).map(|e| e.queue)
    }

    /// Validates a payload, then returns it with whole numbers as integers:
    /// what an enqueuer stores.
    pub fn prepare(&self, job_type: &str, mut payload: Value) -> Result<Value, EnqueueError> {
        self.validate(job_type, &payload)?;
        canonical_integers(&mut payload);
        Ok(payload)
    }

    /// Checks that the job type is known and the payload matches its schema,
    /// naming every violation.
    pub fn validate(&self, job_type: &str, payload: &Value) -> Result<(), EnqueueError> {
        let entry = self
            .entries
            .get(job_type)
            .ok_or_else(|| EnqueueError::UnknownJobType {
                job_type: job_type.to_owned(),
                known: self.job_types().map(str::to_owned).collect(),
            })?;
        let violations: Vec<Violation> = entry
            .validator
            .iter_errors(payload)
            .flat_map(|e| violations(&e))
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(EnqueueError::InvalidPayload {
                job_type: job_type.to_owned(),
                violations,
            })
        }
    }
}

/// The jobs that a job's writes enqueue are checked like every other enqueue.
impl tasuki_core::JobCheck for Registry {
    fn check(&self, job: &mut NewJob) -> Result<(), String> {
        Registry::check(self, job).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::{Done, JobContext, JobError};

    struct Greet;

    #[async_trait]
    impl Handler for Greet {
        const JOB_TYPE: &'static str = "greet";
        type Payload = Value;

        fn schema() -> Value {
            json!({
                "type": "object",
                "required": ["email", "times"],
                "additionalProperties": false,
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "times": {"type": "integer", "minimum": 1}
                }
            })
        }

        async fn handle(&self, _: &JobContext, _: Value) -> Result<Done, JobError> {
            Ok(Done::default())
        }
    }

    #[test]
    fn names_every_violation_by_pointer() {
        let registry = Registry::new().register(Greet);
        assert!(
            registry
                .validate("greet", &json!({"email": "a@example.com", "times": 2}))
                .is_ok()
        );
        let err = registry
            .validate(
                "greet",
                &json!({"email": "not-an-email", "extra": 1, "x/y": 2}),
            )
            .unwrap_err();
        let EnqueueError::InvalidPayload { violations, .. } = err else {
            panic!("{err}")
        };
        let mut pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(pointers, ["/email", "/extra", "/times", "/x~1y"]);
    }

    #[test]
    fn prepared_payloads_hold_integers_where_whole_numbers_were_floats() {
        let registry = Registry::new().register(Greet);
        let payload = registry
            .prepare("greet", json!({"email": "a@example.com", "times": 2.0}))
            .unwrap();
        assert_eq!(payload, json!({"email": "a@example.com", "times": 2}));
        assert!(payload["times"].is_i64());
    }

    struct Report;

    #[async_trait]
    impl Handler for Report {
        const JOB_TYPE: &'static str = "report";
        const QUEUE: &'static str = "reports";
        const MAX_RETRIES: i32 = 7;
        const UNIQUE: Option<tasuki_core::UniqueBy> = Some(tasuki_core::UniqueBy {
            fields: &["account"],
            period: Some(std::time::Duration::from_secs(3600)),
            states: tasuki_core::UniqueStates::LIVE,
        });
        type Payload = Value;

        fn schema() -> Value {
            json!({"type": "object"})
        }

        async fn handle(&self, _: &JobContext, _: Value) -> Result<Done, JobError> {
            Ok(Done::default())
        }
    }

    #[test]
    fn a_types_defaults_fill_what_the_enqueuer_left_unsaid() {
        let registry = Registry::new().register(Report).register(Greet);
        let at = tasuki_core::Timestamp::from_micros(7_200_000_000 + 5);
        let mut job = NewJob::new("report", json!({"account": 4, "extra": 1.0}), at);
        registry.check(&mut job).unwrap();
        assert_eq!(job.queue.as_deref(), Some("reports"));
        assert_eq!(job.max_retries, Some(7));
        let unique = job.unique.unwrap();
        assert_eq!(
            unique.key, r#"{"account":4}@2"#,
            "the chosen field, in its hour"
        );
        assert_eq!(job.payload, json!({"account": 4, "extra": 1}));

        let mut told = NewJob::new("report", json!({"account": 4}), at)
            .queue("urgent")
            .max_retries(0)
            .unique("mine", tasuki_core::UniqueStates::LIVE);
        registry.check(&mut told).unwrap();
        assert_eq!(told.queue.as_deref(), Some("urgent"));
        assert_eq!(told.max_retries, Some(0));
        assert_eq!(told.unique.unwrap().key, "mine");

        let mut plain = NewJob::new("greet", json!({"email": "a@example.com", "times": 1}), at);
        registry.check(&mut plain).unwrap();
        assert_eq!(plain.queue.as_deref(), Some(tasuki_core::DEFAULT_QUEUE));
        assert_eq!(plain.max_retries, Some(tasuki_core::DEFAULT_MAX_RETRIES));
        assert!(plain.unique.is_none());
    }

    #[test]
    fn unknown_types_are_named_with_the_known_ones() {
        let registry = Registry::new().register(Greet);
        let err = registry.validate("gret", &json!({})).unwrap_err();
        assert_eq!(err.to_string(), "unknown job type `gret` (known: greet)");
    }
}
