//! `spawn_app`, and requests whose responses are checked against the contract.

use std::sync::{Arc, LazyLock};

use reqwest::Method;
use serde_json::Value;
use tasuki_api::{ApiConfig, AppState, Application, Contract, ValidationMode};
use tasuki_app::{AppStore, LogEmailSender, PgApp, SqliteApp, registry};
use tasuki_conformance::{Backend, Engine, TestDb};
use tasuki_core::{Store, SystemClock};
use tokio_util::sync::CancellationToken;

static CONTRACT: LazyLock<Contract> = LazyLock::new(|| Contract::load().unwrap());

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) app: Arc<dyn AppStore>,
    pub(crate) backend: Backend,
    pub(crate) client: reqwest::Client,
    /// The state's token: cancelling it makes /health report shutting down.
    pub(crate) shutting_down: CancellationToken,
    server: CancellationToken,
    _db: TestDb,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.cancel();
    }
}

pub(crate) async fn spawn_app(engine: Engine, mode: ValidationMode) -> TestApp {
    spawn_with(
        engine,
        ApiConfig {
            mode,
            ..test_config()
        },
    )
    .await
}

/// The app with `ADMIN_TOKEN` set to `token`.
pub(crate) async fn spawn_with_token(engine: Engine, token: &str) -> TestApp {
    let config = ApiConfig {
        admin_token: Some(token.into()),
        ..test_config()
    };
    spawn_with(engine, config).await
}

pub(crate) fn test_config() -> ApiConfig {
    ApiConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ApiConfig::default()
    }
}

/// The app on a fresh database; `engine_tests!` has checked that the engine is up.
pub(crate) async fn spawn_with(engine: Engine, config: ApiConfig) -> TestApp {
    let db = tasuki_conformance::fresh(engine)
        .await
        .expect("engine_tests! runs a test only where its engine is up");
    let store: Arc<dyn Store> = db.store.clone();
    let app_store: Arc<dyn AppStore> = match &db.backend {
        Backend::Sqlite(store) => Arc::new(SqliteApp::open(store.clone()).await.unwrap()),
        Backend::Postgres(store) => Arc::new(PgApp::open(store.clone()).await.unwrap()),
    };
    let shutting_down = CancellationToken::new();
    let clock = Arc::new(SystemClock);
    let state = AppState {
        store: store.clone(),
        registry: Arc::new(registry(app_store.clone(), Arc::new(LogEmailSender))),
        clock: clock.clone(),
        shutdown: shutting_down.clone(),
    };
    let routes = tasuki_app::routes(app_store.clone(), clock);
    let app = Application::build(&config, state, routes).await.unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let server = CancellationToken::new();
    tokio::spawn(app.run(server.clone()));
    TestApp {
        base,
        store,
        app: app_store,
        backend: db.backend.clone(),
        client: reqwest::Client::new(),
        shutting_down,
        server,
        _db: db,
    }
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// The JSON pointers a problem's `errors` name, sorted.
    pub(crate) fn pointers(&self) -> Vec<String> {
        let mut pointers: Vec<String> = self.body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors in {}", self.body))
            .iter()
            .map(|e| e["pointer"].as_str().unwrap().to_owned())
            .collect();
        pointers.sort();
        pointers
    }
}

impl TestApp {
    /// Sends a request to `path` (an instance of the contract's `route`) and
    /// checks the response against the contract before returning it.
    pub(crate) async fn call(
        &self,
        method: Method,
        route: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await.unwrap();
        let body = if content_type.contains("json") {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e} in {text}"))
        } else {
            Value::String(text)
        };
        let method = axum::http::Method::from_bytes(method.as_str().as_bytes()).unwrap();
        if let Err(broken) = CONTRACT.check_response(&method, route, status, &content_type, &body) {
            panic!("{broken}");
        }
        // Every error is a problem, but for /health's 503, whose body SPEC.md fixes.
        if content_type.contains("json") && status >= 400 && route != "/health" {
            assert_eq!(
                content_type, "application/problem+json",
                "{method} {path} {status}"
            );
            assert_eq!(body["status"], status);
            assert!(
                body["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("urn:tasuki:problem:")
            );
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn post_json(&self, route: &str, path: &str, body: &Value) -> Reply {
        self.call(
            Method::POST,
            route,
            path,
            Some(("application/json", body.to_string().into_bytes())),
            &[],
        )
        .await
    }

    /// A POST of raw bytes to a route without parameters.
    pub(crate) async fn post_raw(
        &self,
        route: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> Reply {
        self.call(
            Method::POST,
            route,
            route,
            Some((content_type, body.into())),
            &[],
        )
        .await
    }

    /// `POST /jobs/{id}/<action>` with no body and no token.
    pub(crate) async fn act(&self, action: &str, id: i64) -> Reply {
        let (route, path) = (
            format!("/jobs/{{id}}/{action}"),
            format!("/jobs/{id}/{action}"),
        );
        self.call(Method::POST, &route, &path, None, &[]).await
    }

    pub(crate) async fn get(&self, route: &str, path: &str) -> Reply {
        self.call(Method::GET, route, path, None, &[]).await
    }

    pub(crate) async fn count(&self, table: &str) -> i64 {
        match table {
            "users" => self.app.user_list(0, 10_000).await.unwrap().items.len() as i64,
            _ => self
                .store
                .job_stats(tasuki_core::Timestamp::now())
                .await
                .unwrap()
                .by_status
                .values()
                .sum(),
        }
    }
}
