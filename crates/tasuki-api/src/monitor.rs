//! `/overview` and `/workers`: what operators and the dashboard watch.

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use serde_json::Value;
use tasuki_core::{MinuteStats, QueueCounts, WorkerInfo, minute_of, minutes};

use crate::validate::ValidQuery;
use crate::{ApiError, AppState};

#[derive(Serialize)]
pub(crate) struct Overview {
    queues: Vec<QueueCounts>,
    minutes: Vec<MinuteStats>,
    completed: i64,
    failed: i64,
    /// How long the longest-waiting due job of any queue has waited.
    oldest_due_ms: Option<u64>,
}

/// `GET /overview?minutes=60`: the queues' counts and the last minutes,
/// this one included.
pub(crate) async fn overview(
    State(state): State<AppState>,
    Extension(ValidQuery(query)): Extension<ValidQuery>,
) -> Result<Json<Overview>, ApiError> {
    let span = query.get("minutes").and_then(Value::as_u64).unwrap_or(60);
    let now = state.clock.now();
    let since = minute_of(now).saturating_sub(Duration::from_secs(60 * (span - 1)));
    let (queues, counts) = tokio::try_join!(
        state.store.queue_counts(now),
        state.store.rollup_since(since)
    )?;
    let minutes = minutes(&counts);
    let oldest_due_ms = queues
        .iter()
        .filter_map(|q| q.oldest_due)
        .min()
        .map(|at| u64::try_from(now.since(at).as_millis()).unwrap_or(u64::MAX));
    Ok(Json(Overview {
        oldest_due_ms,
        completed: minutes.iter().map(|m| m.completed).sum(),
        failed: minutes.iter().map(|m| m.failed).sum(),
        queues,
        minutes,
    }))
}

/// Workers report at least this often (three times per lease, at most
/// every 15 s): one not heard from for a minute is gone.
const ALIVE_WITHIN: Duration = Duration::from_secs(60);

#[derive(Serialize)]
pub(crate) struct WorkerList {
    items: Vec<WorkerInfo>,
}

pub(crate) async fn workers(State(state): State<AppState>) -> Result<Json<WorkerList>, ApiError> {
    let since = state.clock.now().saturating_sub(ALIVE_WITHIN);
    Ok(Json(WorkerList {
        items: state.store.worker_list(since).await?,
    }))
}
