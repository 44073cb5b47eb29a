//! The worker runtime: job handlers and their registry, payload schemas, and
//! the [`Worker`] that claims jobs in batches, runs them under leases, retries
//! failures with backoff, fires schedules and shuts down gracefully.

mod config;
mod handler;
mod maintenance;
mod registry;
mod run;
mod scheduler;
mod shared;
mod worker;

pub use config::WorkerConfig;
pub use handler::{Done, Handler, JobContext, JobError};
pub use registry::{EnqueueError, Registry};
pub use worker::{Worker, WorkerError};
