//! `probe`: a canary for operators and tests. It records each attempt's start
//! and end in `probe_runs`, sleeps `sleep_ms` (at most a minute) and fails
//! its first `fail_attempts` attempts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use tasuki_worker::{Done, Handler, JobContext, JobError};

use crate::AppStore;

pub struct Probe {
    app: Arc<dyn AppStore>,
}

impl Probe {
    pub fn new(app: Arc<dyn AppStore>) -> Self {
        Self { app }
    }
}

const MAX_SLEEP_MS: u64 = 60_000;

#[derive(Deserialize)]
pub struct Payload {
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    fail_attempts: i32,
}

#[async_trait]
impl Handler for Probe {
    const JOB_TYPE: &'static str = "probe";
    type Payload = Payload;

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "sleep_ms": {"type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS},
                "fail_attempts": {"type": "integer", "minimum": 0, "maximum": 100}
            }
        })
    }

    async fn handle(&self, ctx: &JobContext, payload: Payload) -> Result<Done, JobError> {
        self.app
            .probe_run_start(ctx.job_id, ctx.attempt, &ctx.worker_id, ctx.now())
            .await?;
        let sleep = Duration::from_millis(payload.sleep_ms.min(MAX_SLEEP_MS));
        if !sleep.is_zero() {
            tokio::time::sleep(sleep).await;
        }
        self.app
            .probe_run_end(ctx.job_id, ctx.attempt, ctx.now())
            .await?;
        if ctx.attempt <= payload.fail_attempts {
            return Err(JobError::retry(format!(
                "probe failure {} of {}",
                ctx.attempt, payload.fail_attempts
            )));
        }
        Ok(Done::result(
            json!({"attempt": ctx.attempt, "slept_ms": sleep.as_millis() as u64}),
        ))
    }
}
