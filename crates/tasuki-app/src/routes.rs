//! `/users`: a user and its `user_created` job are created in one
//! transaction. The API serves these operations of the contract with the
//! queue's own, behind the same validation.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};
use tasuki_api::{ApiError, ValidBody, ValidQuery, location, page};
use tasuki_core::{Clock, Page, StoreError};
use tasuki_worker::Handler;

use crate::{AppStore, JobFor, NewUser, User, UserCreated};

#[derive(Clone)]
struct Users {
    app: Arc<dyn AppStore>,
    clock: Arc<dyn Clock>,
}

/// The contract's `/users` operations, by `operationId`, for
/// `tasuki_api::router`.
pub fn routes<S: Clone + Send + Sync + 'static>(
    app: Arc<dyn AppStore>,
    clock: Arc<dyn Clock>,
) -> Vec<(&'static str, MethodRouter<S>)> {
    let users = Users { app, clock };
    vec![
        ("createUser", post(create).with_state(users.clone())),
        ("listUsers", get(list).with_state(users.clone())),
        ("getUser", get(get_one).with_state(users)),
    ]
}

async fn create(
    State(state): State<Users>,
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
    let job: JobFor = Box::new(move |user| UserCreated::job(user, fields, now));
    let (user, job) = state
        .app
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

async fn get_one(State(state): State<Users>, Path(id): Path<i64>) -> Result<Json<User>, ApiError> {
    state.app.user_get(id).await.map(Json).map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no user with id {id}")),
        other => other.into(),
    })
}

async fn list(
    State(state): State<Users>,
    Extension(ValidQuery(query)): Extension<ValidQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    let (after, limit) = page(&query);
    Ok(Json(state.app.user_list(after, limit).await?))
}
