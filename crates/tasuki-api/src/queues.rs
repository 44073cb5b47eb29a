//! `/queues`: the named queues, their pause and their limits.

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde_json::Value;
use tasuki_core::{QueueChange, QueueInfo, RateLimit, Violation, is_queue_name};

use crate::validate::ValidBody;
use crate::{ApiError, AppState};

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<QueueInfo>>, ApiError> {
    Ok(Json(state.store.queue_list().await?))
}

pub(crate) async fn pause(
    state: State<AppState>,
    name: Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    change_queue(state, name, paused(true)).await
}

pub(crate) async fn resume(
    state: State<AppState>,
    name: Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    change_queue(state, name, paused(false)).await
}

fn paused(paused: bool) -> QueueChange {
    QueueChange {
        paused: Some(paused),
        ..QueueChange::default()
    }
}

/// `PATCH /queues/{name}`: the limits the body names; `null` lifts one.
pub(crate) async fn update(
    state: State<AppState>,
    name: Path<String>,
    Extension(ValidBody(body)): Extension<ValidBody>,
) -> Result<Json<QueueInfo>, ApiError> {
    let mut change = QueueChange::default();
    if let Some(paused) = body.get("paused") {
        change.paused = paused.as_bool();
    }
    if let Some(concurrency) = body.get("concurrency") {
        change.concurrency = Some(concurrency.as_u64().and_then(|c| u32::try_from(c).ok()));
    }
    if let Some(rate) = body.get("rate_limit") {
        change.rate_limit = Some(rate_limit(rate));
    }
    change_queue(state, name, change).await
}

/// `{"limit": n, "period_ms": ms}` as the contract has checked it, or `null`.
fn rate_limit(rate: &Value) -> Option<RateLimit> {
    Some(RateLimit {
        limit: u32::try_from(rate.get("limit")?.as_u64()?).ok()?,
        period: Duration::from_millis(rate.get("period_ms")?.as_u64()?),
    })
}

async fn change_queue(
    State(state): State<AppState>,
    Path(name): Path<String>,
    change: QueueChange,
) -> Result<Json<QueueInfo>, ApiError> {
    if !is_queue_name(&name) {
        return Err(ApiError::Validation(vec![Violation {
            pointer: "/path/name".into(),
            message: "is not a queue name (1 to 100 letters, digits, `_`, `-` or `.`)".into(),
        }]));
    }
    let now = state.clock.now();
    Ok(Json(state.store.queue_update(&name, change, now).await?))
}
