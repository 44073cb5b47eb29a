//! `/jobs`: enqueue, inspect and manage jobs.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use tasuki_core::Violation;
use tasuki_core::{
    Enqueued, Job, JobFilter, JobId, JobStats, JobStatus, NewJob, Page, ScheduleError, StoreError,
    UniqueStates, due_at,
};
use tasuki_worker::EnqueueError;

use crate::validate::{ValidBody, ValidQuery};
use crate::{ApiError, AppState};

/// `POST /jobs`: `201` with the new job, or `200` with the job that holds
/// its unique key, `"duplicate": true`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(ValidBody(body)): Extension<ValidBody>,
) -> Result<(StatusCode, HeaderMap, Json<Enqueued>), ApiError> {
    let job_type = body["job_type"].as_str().unwrap_or_default();
    let now = state.clock.now();
    let delay = body["delay"]
        .as_str()
        .map(humantime::parse_duration)
        .transpose()
        .map_err(|_| invalid("/delay", "is not a duration"))?;
    let run_at = body["run_at"].as_str();
    let scheduled_at = due_at(now, run_at, delay).map_err(|e| {
        let field = match e {
            ScheduleError::RunAt => "/run_at",
            ScheduleError::TooLate if run_at.is_some() => "/run_at",
            ScheduleError::TooLate => "/delay",
        };
        invalid(field, &e.to_string())
    })?;
    let mut job = NewJob::new(job_type, body["payload"].clone(), now).scheduled_at(scheduled_at);
    if let Some(priority) = body["priority"].as_i64() {
        job = job.priority(
            i32::try_from(priority).map_err(|_| invalid("/priority", "is out of range"))?,
        );
    }
    if let Some(max_retries) = body["max_retries"].as_i64() {
        job = job.max_retries(
            i32::try_from(max_retries).map_err(|_| invalid("/max_retries", "is out of range"))?,
        );
    }
    if let Some(queue) = body["queue"].as_str() {
        job = job.queue(queue);
    }
    if let Some(key) = body["unique_key"].as_str() {
        let states = body["unique_states"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str()?.parse::<JobStatus>().ok());
        job = job.unique(key, UniqueStates::with(states));
    }
    state.registry.check(&mut job).map_err(|e| match e {
        EnqueueError::InvalidPayload { violations, .. } => ApiError::Validation(
            violations
                .into_iter()
                .map(|v| Violation {
                    pointer: format!("/payload{}", v.pointer),
                    message: v.message,
                })
                .collect(),
        ),
        unknown @ EnqueueError::UnknownJobType { .. } => invalid("/job_type", &unknown.to_string()),
    })?;
    let enqueued = state.store.job_insert(job).await?;
    let status = if enqueued.duplicate {
        StatusCode::OK
    } else {
        metrics::counter!("jobs_enqueued_total", "job_type" => enqueued.job.job_type.clone())
            .increment(1);
        StatusCode::CREATED
    };
    let at = location(&format!("/jobs/{}", enqueued.job.id));
    Ok((status, at, Json(enqueued)))
}

fn invalid(pointer: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![Violation {
        pointer: pointer.into(),
        message: message.into(),
    }])
}

fn not_found(id: i64) -> impl FnOnce(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no job with id {id}")),
        other => other.into(),
    }
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Job>, ApiError> {
    state
        .store
        .job_get(JobId(id))
        .await
        .map(Json)
        .map_err(not_found(id))
}

pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Job>, ApiError> {
    state
        .store
        .job_retry(JobId(id), state.clock.now())
        .await
        .map(Json)
        .map_err(not_found(id))
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Job>, ApiError> {
    state
        .store
        .job_cancel(JobId(id), state.clock.now())
        .await
        .map(Json)
        .map_err(not_found(id))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(ValidQuery(query)): Extension<ValidQuery>,
) -> Result<Json<Page<Job>>, ApiError> {
    let (after, limit) = page(&query);
    let newest_first = query.get("order").and_then(Value::as_str) == Some("newest");
    // Bounds a newest-first walk only; an oldest-first list reads on.
    let scan = query
        .get("scan")
        .and_then(Value::as_u64)
        .and_then(|s| u32::try_from(s).ok())
        .filter(|_| newest_first);
    let filter = JobFilter {
        after: (after > 0 || !newest_first).then_some(JobId(after)),
        newest_first,
        scan,
        limit,
        ..job_filter(|name| query.get(name), "/query")?
    };
    Ok(Json(state.store.job_list(filter).await?))
}

pub(crate) async fn stats(State(state): State<AppState>) -> Result<Json<JobStats>, ApiError> {
    Ok(Json(state.store.job_stats(state.clock.now()).await?))
}

/// The `after` and `limit` of a validated query, with the contract's default.
/// The jobs that `status`, `job_type` and `queue` select, as the contract
/// has checked them (in the query, or a body: `at` is where, for errors).
pub(crate) fn job_filter<'a>(
    get: impl Fn(&str) -> Option<&'a Value>,
    at: &str,
) -> Result<JobFilter, ApiError> {
    let text = |name: &str| get(name).and_then(Value::as_str).map(str::to_owned);
    let status = match text("status") {
        Some(s) => Some(
            s.parse()
                .map_err(|_| invalid(&format!("{at}/status"), "is not a job status"))?,
        ),
        None => None,
    };
    Ok(JobFilter {
        status,
        job_type: text("job_type"),
        queue: text("queue"),
        ..JobFilter::default()
    })
}

pub fn page(query: &std::collections::BTreeMap<String, Value>) -> (i64, u32) {
    let after = query.get("after").and_then(Value::as_i64).unwrap_or(0);
    let limit = query.get("limit").and_then(Value::as_u64).unwrap_or(50);
    (after, u32::try_from(limit).unwrap_or(50))
}

pub fn location(path: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(path) {
        headers.insert(header::LOCATION, value);
    }
    headers
}
