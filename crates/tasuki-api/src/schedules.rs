//! `/schedules`: the periodic jobs, with their last slot, next run and newest
//! jobs; pause and resume.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use tasuki_core::{ScheduleQuery, ScheduleView, StoreError};

use crate::{ApiError, AppState};

/// How many of each schedule's newest jobs are listed.
const RECENT_JOBS: u32 = 10;

#[derive(Serialize)]
pub(crate) struct ScheduleList {
    items: Vec<ScheduleView>,
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(ScheduleList {
        items: views(&state, None).await?,
    }))
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let paused = state.store.schedule_pause(&name).await;
    changed(&state, name, paused).await
}

pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let resumed = state.store.schedule_resume(&name, state.clock.now()).await;
    changed(&state, name, resumed).await
}

/// The schedule after a change, or 404 when there is none by that name.
async fn changed(
    state: &AppState,
    name: String,
    change: Result<(), StoreError>,
) -> Result<Json<ScheduleView>, ApiError> {
    let not_found = |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no schedule named `{name}`")),
        other => other.into(),
    };
    change.map_err(not_found)?;
    let mut views = views(state, Some(name.clone())).await.map_err(not_found)?;
    Ok(Json(views.remove(0)))
}

async fn views(state: &AppState, name: Option<String>) -> Result<Vec<ScheduleView>, StoreError> {
    let query = ScheduleQuery {
        name,
        recent_jobs: RECENT_JOBS,
    };
    let now = state.clock.now();
    let schedules = state.store.schedule_list(query).await?;
    Ok(schedules.iter().map(|s| s.view(now)).collect())
}
