//! The one HTTP error boundary: every error becomes an RFC 9457 problem
//! (`application/problem+json`). What the client reads is kept apart from
//! what the log gets: internal errors say nothing of SQL or internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tasuki_core::StoreError;
use tasuki_core::Violation;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request breaks the contract")]
    Validation(Vec<Violation>),
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct Problem<'a> {
    r#type: &'a str,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [Violation]>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Validation(_) => (
                StatusCode::BAD_REQUEST,
                "validation",
                "Request validation failed",
            ),
            ApiError::MalformedJson(_) => {
                (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON")
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

/// A problem response, for errors raised outside handlers (panics, timeouts).
pub(crate) fn problem(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: Option<String>,
) -> Response {
    let body = Problem {
        r#type: &format!("urn:tasuki:problem:{kind}"),
        title,
        status: status.as_u16(),
        detail,
        errors: None,
    };
    respond(status, &body)
}

fn respond(status: StatusCode, body: &Problem<'_>) -> Response {
    let json = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, json).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let detail = match &self {
            ApiError::Internal(source) => {
                // The client learns nothing of internals; the log gets the
                // chain, inside the request's span (with its request id).
                tracing::error!(error = ?source, "request failed");
                None
            }
            ApiError::Validation(v) => Some(format!("{} violation(s) of the contract", v.len())),
            other => Some(other.to_string()),
        };
        let errors = match &self {
            ApiError::Validation(violations) => Some(violations.as_slice()),
            _ => None,
        };
        let body = Problem {
            r#type: &format!("urn:tasuki:problem:{kind}"),
            title,
            status: status.as_u16(),
            detail,
            errors,
        };
        respond(status, &body)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound("no such resource".into()),
            StoreError::Conflict(why) => ApiError::Conflict(why),
            StoreError::Duplicate(_) => ApiError::Conflict("it exists already".into()),
            // Rejected comes from a job's writes, never from a request.
            StoreError::Database(_) | StoreError::Rejected(_) => {
                ApiError::Internal(Box::new(error))
            }
        }
    }
}
