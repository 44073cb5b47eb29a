//! `POST /jobs/bulk`: retry, cancel or delete every job that matches a
//! filter, in the background, a chunk at a time, with progress that
//! `GET /jobs/bulk/{id}` reads. The actions live in the process that
//! started them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;
use tasuki_core::{JobFilter, JobId, JobStatus, StoreError, StoreResult};

use crate::jobs::{job_filter, location};
use crate::validate::ValidBody;
use crate::{ApiError, AppState};

/// Jobs looked at per chunk: one page read, then one write per job (a
/// writer turn's worth on SQLite) or one statement (delete).
const CHUNK: u32 = 500;

/// Finished actions kept for their progress to be read.
const KEPT: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Retry,
    Cancel,
    Delete,
}

/// The actions of this process, by id.
#[derive(Default)]
pub(crate) struct Bulks {
    next: AtomicU64,
    actions: Mutex<BTreeMap<u64, Arc<Progress>>>,
}

struct Progress {
    id: u64,
    action: Action,
    filter: JobFilter,
    done: AtomicU64,
    changed: AtomicU64,
    finished: AtomicBool,
    error: Mutex<Option<String>>,
}

#[derive(Serialize)]
pub(crate) struct ProgressView {
    id: u64,
    action: Action,
    status: Option<JobStatus>,
    job_type: Option<String>,
    queue: Option<String>,
    done: u64,
    changed: u64,
    finished: bool,
    error: Option<String>,
}

impl Progress {
    fn view(&self) -> ProgressView {
        ProgressView {
            id: self.id,
            action: self.action,
            status: self.filter.status,
            job_type: self.filter.job_type.clone(),
            queue: self.filter.queue.clone(),
            done: self.done.load(Ordering::Relaxed),
            changed: self.changed.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Acquire),
            error: self.error.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }
}

pub(crate) async fn start(
    State(state): State<AppState>,
    Extension(bulks): Extension<Arc<Bulks>>,
    Extension(ValidBody(body)): Extension<ValidBody>,
) -> Result<(StatusCode, HeaderMap, Json<ProgressView>), ApiError> {
    let action = match body.get("action").and_then(Value::as_str) {
        Some("retry") => Action::Retry,
        Some("cancel") => Action::Cancel,
        _ => Action::Delete,
    };
    let filter = job_filter(|name| body.get(name), "/body")?;
    let id = bulks.next.fetch_add(1, Ordering::Relaxed) + 1;
    let progress = Arc::new(Progress {
        id,
        action,
        filter,
        done: AtomicU64::new(0),
        changed: AtomicU64::new(0),
        finished: AtomicBool::new(false),
        error: Mutex::new(None),
    });
    {
        let mut actions = bulks.actions.lock().map_err(|_| poisoned())?;
        actions.insert(id, progress.clone());
        while actions.len() > KEPT {
            let Some(oldest) = actions
                .iter()
                .find(|(_, p)| p.finished.load(Ordering::Acquire))
                .map(|(id, _)| *id)
            else {
                break;
            };
            actions.remove(&oldest);
        }
    }
    tracing::info!(bulk = id, action = ?action, filter = ?progress.filter, "bulk action started");
    let view = progress.view();
    tokio::spawn(async move {
        let result = run(&state, &progress).await;
        if let Err(error) = &result {
            tracing::error!(bulk = id, error = ?error, "bulk action stopped");
            if let Ok(mut slot) = progress.error.lock() {
                *slot = Some(error.to_string());
            }
        }
        progress.finished.store(true, Ordering::Release);
        tracing::info!(
            bulk = id,
            done = progress.done.load(Ordering::Relaxed),
            changed = progress.changed.load(Ordering::Relaxed),
            "bulk action finished"
        );
    });
    Ok((
        StatusCode::ACCEPTED,
        location(&format!("/jobs/bulk/{id}")),
        Json(view),
    ))
}

pub(crate) async fn get(
    Extension(bulks): Extension<Arc<Bulks>>,
    Path(id): Path<u64>,
) -> Result<Json<ProgressView>, ApiError> {
    let actions = bulks.actions.lock().map_err(|_| poisoned())?;
    actions
        .get(&id)
        .map(|p| Json(p.view()))
        .ok_or_else(|| ApiError::NotFound(format!("no bulk action with id {id} on this server")))
}

fn poisoned() -> ApiError {
    ApiError::Internal("a bulk action panicked holding the list".into())
}

/// Walks the matching jobs in id order, a chunk at a time, acting on each.
async fn run(state: &AppState, progress: &Progress) -> StoreResult<()> {
    let mut after = JobId(0);
    loop {
        let page = state
            .store
            .job_list(JobFilter {
                after: Some(after),
                limit: CHUNK,
                ..progress.filter.clone()
            })
            .await?;
        let ids: Vec<JobId> = page.items.iter().map(|j| j.id).collect();
        let changed = act(state, progress.action, &ids).await?;
        progress.done.fetch_add(ids.len() as u64, Ordering::Relaxed);
        progress.changed.fetch_add(changed, Ordering::Relaxed);
        match page.next_after {
            Some(next) => after = JobId(next),
            None => return Ok(()),
        }
    }
}

/// Acts on one chunk; returns how many jobs changed. A job the action does
/// not apply to (any more) is left.
async fn act(state: &AppState, action: Action, ids: &[JobId]) -> StoreResult<u64> {
    if action == Action::Delete {
        return Ok(state.store.job_delete_many(ids).await?.len() as u64);
    }
    let now = state.clock.now();
    // At once: on SQLite they share the writer's turns.
    let results = futures_util::future::join_all(ids.iter().map(|&id| async move {
        match action {
            Action::Retry => state.store.job_retry(id, now).await,
            _ => state.store.job_cancel(id, now).await,
        }
    }))
    .await;
    let mut changed = 0;
    for result in results {
        match result {
            Ok(_) => changed += 1,
            Err(StoreError::Conflict(_) | StoreError::NotFound) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(changed)
}
