//! How a worker runs: its name, slots, lease, timeouts and retry policy.

use std::sync::Arc;
use std::time::Duration;

use tasuki_core::RetryPolicy;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Names this worker in leases and logs; unique among running workers.
    pub id: Arc<str>,
    /// The machine it runs on, as its heartbeats report it.
    pub host: Arc<str>,
    /// How many jobs run at once when `queues` is empty (`WORKER_COUNT`).
    pub concurrency: usize,
    /// The queues served, each with how many of its jobs run at once in this
    /// worker (`QUEUES=default:3,email:10`); empty: every queue, sharing
    /// `concurrency` slots.
    pub queues: Vec<(String, usize)>,
    /// How long a claim lasts without a heartbeat (`LEASE_TIMEOUT`).
    pub lease: Duration,
    /// How long one attempt may run unless its handler says otherwise.
    pub job_timeout: Duration,
    /// How long in-flight jobs may take to finish at shutdown (`SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    pub retry: RetryPolicy,
    /// The longest an idle worker waits before it looks again, whatever it heard.
    pub idle_wait: Duration,
    /// How long completed and cancelled jobs are kept (`JOB_RETENTION`).
    pub retention: Duration,
}

impl WorkerConfig {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self {
            id: id.into(),
            host: "localhost".into(),
            concurrency: 3,
            queues: Vec::new(),
            lease: Duration::from_secs(30),
            job_timeout: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            idle_wait: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// The worker's pools of slots: each queue named with its slots, or every
    /// queue (`None`) with `concurrency`.
    pub(crate) fn pools(&self) -> Vec<(Option<String>, usize)> {
        if self.queues.is_empty() {
            vec![(None, self.concurrency.max(1))]
        } else {
            self.queues
                .iter()
                .map(|(queue, slots)| (Some(queue.clone()), (*slots).max(1)))
                .collect()
        }
    }

    /// How many jobs run at once in all.
    pub fn slots(&self) -> usize {
        self.pools().iter().map(|(_, slots)| slots).sum()
    }

    /// How often leases are renewed and the worker reports itself: three
    /// times per lease, at least every 15 s (the workers' list counts one
    /// silent for a minute as gone).
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        (self.lease / 3).min(Duration::from_secs(15))
    }
}
