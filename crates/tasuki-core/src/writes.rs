//! A job's own writes, committed with its completion.
//!
//! A handler builds its writes for the engine that runs it
//! (`tasuki_sqlite::writes`, `tasuki_postgres::writes`); the worker hands
//! them to the store with the job's completion. The store runs them in the
//! transaction that completes the job, fenced on the attempt's lease: when
//! the lease was lost, or the writes fail, nothing of them commits.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::{NewJob, StoreError};

/// Checks a job that a job's writes enqueue, as every enqueue is checked:
/// its type must be known and its payload must match the type's schema,
/// which may also put the payload in its stored form.
pub trait JobCheck: Send + Sync {
    fn check(&self, job: &mut NewJob) -> Result<(), String>;
}

/// A job's writes, as its engine's store runs them. Cloning shares them: a
/// store may run them again when a batch of completions is retried whole.
#[derive(Clone)]
pub struct Writes {
    run: Arc<dyn Any + Send + Sync>,
    check: Option<Arc<dyn JobCheck>>,
}

impl Writes {
    /// For stores: wraps the engine's own form of a job's writes.
    pub fn new<W: Any + Send + Sync>(run: W) -> Self {
        Self {
            run: Arc::new(run),
            check: None,
        }
    }

    /// Checks every job that these writes enqueue with `check` (the worker
    /// sets its registry).
    #[must_use]
    pub fn checked_by(mut self, check: Arc<dyn JobCheck>) -> Self {
        self.check = Some(check);
        self
    }

    /// For stores: the engine's form, or an error when the writes were built
    /// for another engine.
    pub fn engine<W: Any>(&self) -> Result<&W, StoreError> {
        self.run.downcast_ref().ok_or_else(|| {
            StoreError::Rejected(format!(
                "a job's writes were built for another engine than {}",
                std::any::type_name::<W>()
            ))
        })
    }

    /// The check for the jobs these writes enqueue, when one was set.
    pub fn check(&self) -> Option<&dyn JobCheck> {
        self.check.as_deref()
    }
}

impl fmt::Debug for Writes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writes")
            .field("checked", &self.check.is_some())
            .finish_non_exhaustive()
    }
}

/// Checks `job` with the writes' check, if any, for an enqueue inside them.
pub fn check_enqueue(check: Option<&dyn JobCheck>, job: &mut NewJob) -> Result<(), StoreError> {
    match check {
        Some(check) => check.check(job).map_err(StoreError::Rejected),
        None => Ok(()),
    }
}
