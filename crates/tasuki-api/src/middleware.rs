//! The layers around the routes: request ids, the access log, HTTP metrics,
//! panics and timeouts as problems, and the admin token.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::ApiConfig;
use crate::contract::Contract;
use crate::problem::{ApiError, problem};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps the routes, outermost first: request id, span, access log and
/// metrics, panic catcher, timeout, request id echo.
pub(crate) fn around(api: Router, config: &ApiConfig) -> Router {
    let limit = config.request_timeout;
    api.layer(axum::middleware::from_fn(move |request: Request, next: Next| timeout(limit, request, next)))
        .layer(CatchPanicLayer::custom(|_| {
            problem(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error", None)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn(access_log))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", request_id = %id, method = %request.method(), uri = %request.uri())
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// A request that takes longer than `REQUEST_TIMEOUT` is dropped and
/// answered with a problem.
async fn timeout(limit: std::time::Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "Request timed out",
            Some(format!(
                "the request took longer than {} ms",
                limit.as_millis()
            )),
        ),
    }
}

/// One log line and two metrics per request, labelled by the route template
/// (never the raw path, whose ids would explode the label space).
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    metrics::counter!("http_requests_total", "method" => method.to_string(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.to_string(), "route" => route.clone()).record(latency.as_secs_f64());
    tracing::info!(method = %method, route = %route, status, latency_ms = latency.as_secs_f64() * 1e3, "request");
    response
}

/// The operations the contract marks with the `adminToken` scheme.
pub(crate) struct Admin {
    token: Option<String>,
    protected: HashSet<(Method, String)>,
}

impl Admin {
    pub(crate) fn new(contract: &Contract, token: Option<String>) -> Self {
        let protected = contract
            .operations()
            .iter()
            .filter(|op| op.admin)
            .map(|op| (op.method.clone(), op.path.clone()))
            .collect();
        Self {
            token: token.filter(|t| !t.is_empty()),
            protected,
        }
    }
}

pub(crate) async fn admin(
    State(admin): State<Arc<Admin>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &admin.token else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let protected = route.is_some_and(|r| admin.protected.contains(&(request.method().clone(), r)));
    if !protected {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        let mut response = ApiError::Unauthorized.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

/// Compares without an early exit, so the time taken says nothing of where
/// the first difference is (only whether the lengths differ).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_compares() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret!"));
    }
}
