//! `/users`: a user and its `user_created` job are created in one transaction.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};
use tasuki_core::{NewUser, StoreError};
use tasuki_jobs::UserCreated;
use tasuki_worker::Handler;

use crate::validate::{ValidBody, ValidQuery};
use crate::{ApiError, AppState};

pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(ValidBody(body)): Extension<ValidBody>,
) -> Result<(StatusCode, HeaderMap, Json<Value>), ApiError> {
    let mut fields: Map<String, Value> = match body {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut take = |key: &str| fields.remove(key).unwrap_or(Value::Null);
    let user = NewUser {
        email: take("email").as_str().unwrap_or_default().to_owned(),
        age: take("age").as_i64().unwrap_or_default(),
        name: take("name").as_str().map(str::to_owned),
        bio: take("bio").as_str().map(str::to_owned),
        is_active: take("is_active").as_bool().unwrap_or(true),
        // Whatever is left was accepted by flexible mode.
        additional_data: (!fields.is_empty()).then(|| fields.clone()),
    };
    let now = state.clock.now();
    let job: tasuki_core::JobFor = Box::new(move |user| UserCreated::job(user, fields, now));
    let (user, job) = state
        .store
        .user_insert_with_job(user, job, now)
        .await
        .map_err(|e| match e {
            StoreError::Duplicate(_) => ApiError::Conflict("a user with this email exists".into()),
            other => other.into(),
        })?;
    metrics::counter!("jobs_enqueued_total", "job_type" => UserCreated::JOB_TYPE).increment(1);

    let mut body = serde_json::to_value(&user).map_err(|e| ApiError::Internal(Box::new(e)))?;
    body["job_id"] = json!(job);
    Ok((
        StatusCode::CREATED,
        location(&format!("/users/{}", user.id)),
        Json(body),
    ))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<tasuki_core::User>, ApiError> {
    state
        .store
        .user_get(id)
        .await
        .map(Json)
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(format!("no user with id {id}")),
            other => other.into(),
        })
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(ValidQuery(query)): Extension<ValidQuery>,
) -> Result<Json<tasuki_core::Page<tasuki_core::User>>, ApiError> {
    let (after, limit) = page(&query);
    Ok(Json(state.store.user_list(after, limit).await?))
}

/// The `after` and `limit` of a validated query, with the contract's default.
pub(crate) fn page(query: &std::collections::BTreeMap<String, Value>) -> (i64, u32) {
    let after = query.get("after").and_then(Value::as_i64).unwrap_or(0);
    let limit = query.get("limit").and_then(Value::as_u64).unwrap_or(50);
    (after, u32::try_from(limit).unwrap_or(50))
}

pub(crate) fn location(path: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(path) {
        headers.insert(header::LOCATION, value);
    }
    headers
}
