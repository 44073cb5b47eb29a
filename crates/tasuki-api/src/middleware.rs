//! The layers around the routes: request ids, the access log, HTTP metrics,
//! panics and timeouts as problems, and the admin token.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::ApiConfig;
use crate::contract::Contract;
use crate::dashboard::Session;
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

/// The operations the contract marks with the `adminToken` scheme, and who
/// may call them: the bearer of the token, or the dashboard's session.
pub(crate) struct Admin {
    session: Arc<Session>,
    protected: HashSet<(Method, String)>,
}

impl Admin {
    pub(crate) fn new(contract: &Contract, session: Arc<Session>) -> Self {
        let protected = contract
            .operations()
            .iter()
            .filter(|op| op.admin)
            .map(|op| (op.method.clone(), op.path.clone()))
            .collect();
        Self { session, protected }
    }

    /// True when the request may call an admin operation: with
    /// `Authorization: Bearer <token>`, or the dashboard's session cookie
    /// beside its CSRF defence ([`Session::allows`]).
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = self.session.token() else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(given) => constant_time_eq(given.as_bytes(), token.as_bytes()),
            None => self.session.allows(headers),
        }
    }
}

pub(crate) async fn admin(
    State(admin): State<Arc<Admin>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let protected = route.is_some_and(|r| admin.protected.contains(&(request.method().clone(), r)));
    if !protected {
        return next.run(request).await;
    }
    if admin.allows(request.headers()) {
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
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(token: Option<&str>) -> Admin {
        Admin {
            session: Arc::new(Session::new(token.map(str::to_owned))),
            protected: HashSet::new(),
        }
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    /// The cookie that signing in with `token` sets, as the browser sends it.
    fn cookie(token: &str) -> String {
        let session = Session::new(Some(token.to_owned()));
        let value = session.cookie().unwrap();
        format!("tasuki_session={value}")
    }

    #[test]
    fn the_bearer_token_is_allowed_and_a_wrong_one_refused() {
        let admin = admin(Some("secret"));
        assert!(admin.allows(&headers(&[("authorization", "Bearer secret".into())])));
        assert!(!admin.allows(&headers(&[("authorization", "Bearer nope".into())])));
        assert!(!admin.allows(&HeaderMap::new()));
    }

    #[test]
    fn the_session_cookie_needs_the_csrf_header() {
        let admin = admin(Some("secret"));
        let cookie = cookie("secret");
        assert!(!admin.allows(&headers(&[("cookie", cookie.clone())])));
        assert!(admin.allows(&headers(&[
            ("cookie", cookie.clone()),
            ("x-tasuki-csrf", "1".into())
        ])));
        // A wrong cookie, with the header.
        assert!(!admin.allows(&headers(&[
            ("cookie", self::cookie("guess")),
            ("x-tasuki-csrf", "1".into())
        ])));
        // A foreign origin, with the right cookie and the header.
        assert!(!admin.allows(&headers(&[
            ("cookie", cookie),
            ("x-tasuki-csrf", "1".into()),
            ("host", "127.0.0.1:8080".into()),
            ("origin", "https://evil.example".into())
        ])));
    }

    #[test]
    fn without_a_token_everyone_is_allowed() {
        assert!(admin(None).allows(&HeaderMap::new()));
        assert!(admin(Some("")).allows(&HeaderMap::new()));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(super::constant_time_eq(b"secret", b"secret"));
        assert!(!super::constant_time_eq(b"secret", b"secreT"));
        assert!(!super::constant_time_eq(b"secret", b"secret!"));
    }
}
