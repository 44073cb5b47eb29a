//! The dashboard: one hand-written page (HTML, CSS, a JS module) compiled
//! into the binary, its sign-in session and its server-sent events. Its
//! routes are not operations of the contract: the page reads and acts
//! through the contract's own operations, as any client would.
//!
//! The session cookie is the HMAC of `ADMIN_TOKEN` over a fixed context, so
//! it holds no state and dies with the token. It opens admin operations
//! only beside the `X-Tasuki-Csrf` header (which a cross-site form cannot
//! send, and which no CORS preflight of ours allows) and an `Origin`, when
//! sent, naming the request's own host ([`Session::allows`]).

use std::convert::Infallible;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tasuki_core::{BucketCount, Clock, QueueCounts, Store, minute_of};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::problem::ApiError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "tasuki_session";
/// The header that a request authorised by the cookie must carry.
pub(crate) const CSRF_HEADER: &str = "x-tasuki-csrf";
/// What the cookie's HMAC signs, so that it is good for nothing else.
const CONTEXT: &[u8] = b"tasuki dashboard session v1";
/// A comment keeps each stream alive at least this often.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the watcher reads the counts while some page listens.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");

/// The page, its assets' URLs stamped with a hash of their contents, so that
/// the assets can be cached for good and a new binary's are fetched anew.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    hash.update(APP_JS);
    hash.update(APP_CSS);
    let version = &hex::encode(hash.finalize())[..12];
    INDEX_HTML.replace("{{version}}", version)
});

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Who may act: the admin token, if any, and the cookie it signs in with.
#[derive(Debug)]
pub(crate) struct Session {
    token: Option<String>,
    cookie: Option<String>,
}

impl Session {
    pub(crate) fn new(token: Option<String>) -> Self {
        let token = token.filter(|t| !t.is_empty());
        let cookie = token.as_deref().map(cookie_value);
        Self { token, cookie }
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The cookie's value while a token is set.
    #[cfg(test)]
    pub(crate) fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// True when the request carries the signed-in cookie.
    fn signed_in(&self, headers: &HeaderMap) -> bool {
        match (&self.cookie, cookie(headers, COOKIE)) {
            (Some(expected), Some(given)) => {
                crate::middleware::constant_time_eq(given.as_bytes(), expected.as_bytes())
            }
            _ => false,
        }
    }

    /// True when the cookie authorises this request: signed in, with the
    /// CSRF header, and from the request's own origin if it names one.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        self.signed_in(headers) && headers.contains_key(CSRF_HEADER) && same_origin(headers)
    }
}

/// The hex HMAC-SHA256, keyed by the token, of the session's context.
fn cookie_value(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes any key");
    mac.update(CONTEXT);
    hex::encode(mac.finalize().into_bytes())
}

/// The value of the named cookie, if the request sends it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// No `Origin`, or one whose host and port are the request's `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// What the dashboard's handlers share.
#[derive(Clone)]
struct Dashboard {
    session: Arc<Session>,
    changes: Arc<Changes>,
    shutdown: CancellationToken,
}

/// The dashboard's routes, to merge beside the contract's operations.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(
    state: &AppState,
    session: Arc<Session>,
) -> Router<S> {
    let shutdown = state.shutdown.clone();
    let changes = Changes::new(
        Arc::clone(&state.store),
        Arc::clone(&state.clock),
        shutdown.clone(),
    );
    let dashboard = Dashboard {
        session,
        changes: Arc::new(changes),
        shutdown,
    };
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/assets/{file}", get(asset))
        .route(
            "/dashboard/session",
            get(session_get).post(sign_in).delete(sign_out),
        )
        .route("/dashboard/events", get(events))
        .with_state(dashboard)
}

async fn page() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE.as_str(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::NotFound(format!("no dashboard asset {file}"))),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            // Their URLs carry a hash of their contents (see `PAGE`).
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response())
}

#[derive(Serialize)]
struct SessionState {
    signed_in: bool,
    actions_open: bool,
}

async fn session_get(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    let state = SessionState {
        signed_in: d.session.signed_in(&headers),
        actions_open: d.session.token().is_none(),
    };
    no_store(axum::Json(state).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// Signs in with the admin token: sets the session cookie. Needs the CSRF
/// header too, so that no other site can sign a browser in.
async fn sign_in(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !headers.contains_key(CSRF_HEADER) || !same_origin(&headers) {
        return Err(ApiError::Unauthorized);
    }
    let SignIn { token } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::MalformedJson(format!("expected {{\"token\": \"…\"}}: {e}")))?;
    let Some(expected) = d.session.token() else {
        // Actions are open: nothing to sign in to.
        let state = SessionState {
            signed_in: false,
            actions_open: true,
        };
        return Ok(no_store(axum::Json(state).into_response()));
    };
    if !crate::middleware::constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    let state = SessionState {
        signed_in: true,
        actions_open: false,
    };
    let mut response = no_store(axum::Json(state).into_response());
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        cookie_value(expected)
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex is a valid header value"),
    );
    Ok(response)
}

async fn sign_out(headers: HeaderMap) -> Result<Response, ApiError> {
    if !headers.contains_key(CSRF_HEADER) || !same_origin(&headers) {
        return Err(ApiError::Unauthorized);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tasuki_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A `change` event at once, then each time the watcher sees the counts
/// move (at most once a second), and a comment at least every
/// `KEEP_ALIVE`; the stream ends
/// when the process shuts down, so that it does not hold the shutdown up.
async fn events(State(d): State<Dashboard>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = d.changes.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, d.shutdown, true),
        |(mut receiver, shutdown, first)| async move {
            if !first {
                tokio::select! {
                    changed = receiver.changed() => changed.ok()?,
                    () = shutdown.cancelled() => return None,
                }
            }
            // An event with no data is never dispatched: send the counter.
            let seen = *receiver.borrow_and_update();
            let event = Event::default().event("change").data(seen.to_string());
            Some((Ok(event), (receiver, shutdown, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// One watcher of the store for every page open, however many: a task that
/// runs while some page listens and bumps a counter that each page's stream
/// watches, when the queues' counts or this minute's finished attempts moved
/// since it last looked, once a second. Both are cheap reads (the partial
/// indexes, the rollup) and see every process's work on either engine. It
/// does not wait on the store's change signal, which wakes one waiter: the
/// workers of this process wait on it.
struct Changes {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    sender: watch::Sender<u64>,
    running: Mutex<bool>,
}

impl Changes {
    fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, shutdown: CancellationToken) -> Self {
        Self {
            store,
            clock,
            shutdown,
            sender: watch::Sender::new(0),
            running: Mutex::new(false),
        }
    }

    fn subscribe(self: &Arc<Self>) -> watch::Receiver<u64> {
        let receiver = self.sender.subscribe();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if !*running {
            *running = true;
            tokio::spawn(Arc::clone(self).run());
        }
        receiver
    }

    /// The queues' counts and this minute's rollup, or nothing when they
    /// cannot be read.
    async fn counts(&self) -> Option<(Vec<QueueCounts>, Vec<BucketCount>)> {
        let now = self.clock.now();
        tokio::try_join!(
            self.store.queue_counts(now),
            self.store.rollup_since(minute_of(now))
        )
        .ok()
    }

    async fn run(self: Arc<Self>) {
        let mut counts = self.counts().await;
        loop {
            {
                // Stop while nobody listens; the next page starts it again.
                let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                if self.sender.receiver_count() == 0 || self.shutdown.is_cancelled() {
                    *running = false;
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(LOOK_AGAIN) => {}
                () = self.shutdown.cancelled() => continue,
            }
            let now_counts = self.counts().await;
            let moved = now_counts != counts;
            counts = now_counts;
            if moved {
                self.sender.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn signed(token: &str) -> String {
        format!("other=1; {COOKIE}={}", cookie_value(token))
    }

    #[test]
    fn the_cookie_with_the_csrf_header_is_allowed() {
        let session = Session::new(Some("secret".into()));
        let cookie = signed("secret");
        assert!(session.allows(&headers(&[
            ("cookie", &cookie),
            ("x-tasuki-csrf", "1"),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ])));
        // No Origin (a same-origin GET-like fetch): allowed too.
        assert!(session.allows(&headers(&[("cookie", &cookie), ("x-tasuki-csrf", "1")])));
    }

    #[test]
    fn the_cookie_without_the_csrf_header_is_refused() {
        let session = Session::new(Some("secret".into()));
        let cookie = signed("secret");
        assert!(!session.allows(&headers(&[("cookie", &cookie), ("host", "a:1")])));
    }

    #[test]
    fn a_wrong_cookie_is_refused() {
        let session = Session::new(Some("secret".into()));
        let wrong = signed("guess");
        assert!(!session.allows(&headers(&[("cookie", &wrong), ("x-tasuki-csrf", "1")])));
        assert!(!session.allows(&headers(&[
            ("cookie", "tasuki_session=00"),
            ("x-tasuki-csrf", "1")
        ])));
        assert!(!session.allows(&headers(&[("x-tasuki-csrf", "1")])));
    }

    #[test]
    fn a_foreign_origin_is_refused() {
        let session = Session::new(Some("secret".into()));
        let cookie = signed("secret");
        for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
            assert!(!session.allows(&headers(&[
                ("cookie", &cookie),
                ("x-tasuki-csrf", "1"),
                ("host", "127.0.0.1:8080"),
                ("origin", origin),
            ])));
        }
    }

    #[test]
    fn without_a_token_no_cookie_is_good() {
        let session = Session::new(None);
        assert!(!session.allows(&headers(&[
            ("cookie", "tasuki_session="),
            ("x-tasuki-csrf", "1")
        ])));
        assert!(Session::new(Some(String::new())).token().is_none());
    }

    #[test]
    fn the_page_names_its_assets_by_version() {
        assert!(!PAGE.contains("{{version}}"));
        assert!(PAGE.contains("/dashboard/assets/app.js?v="));
    }
}
