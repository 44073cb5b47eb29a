//! The job types a process knows: their handlers and compiled payload schemas.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tasuki_core::{Violation, canonical_integers, violations};

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
    fn check(&self, job: &mut tasuki_core::NewJob) -> Result<(), String> {
        let payload = std::mem::take(&mut job.payload);
        job.payload = self
            .prepare(&job.job_type, payload)
            .map_err(|e| e.to_string())?;
        Ok(())
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

    #[test]
    fn unknown_types_are_named_with_the_known_ones() {
        let registry = Registry::new().register(Greet);
        let err = registry.validate("gret", &json!({})).unwrap_err();
        assert_eq!(err.to_string(), "unknown job type `gret` (known: greet)");
    }
}
