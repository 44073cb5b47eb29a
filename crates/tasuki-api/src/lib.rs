//! The HTTP API: axum routes (jobs, schedules, operations) whose requests are
//! validated at run time against `openapi.yaml`, errors as RFC 9457 problems, health and
//! Prometheus metrics.
//!
//! Both routers also serve the dashboard at `/dashboard` (`dashboard.rs`).
//!
//! `router(state)` builds the app for in-process use; [`Application`] binds
//! it (port 0 in tests), reports its address, and serves until shutdown.

mod bulk;
mod contract;
mod dashboard;
mod jobs;
mod middleware;
mod monitor;
mod ops;
mod problem;
mod queues;
mod schedules;
mod strict_json;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use tasuki_core::{Clock, Store};
use tasuki_worker::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use contract::{Contract, ContractError, OPENAPI_YAML, Operation};
pub use jobs::{location, page};
pub use ops::metrics_handle;
pub use problem::ApiError;
pub use validate::{RequestValidator, ValidBody, ValidQuery, ValidationMode};

/// An application's handlers of contract operations, by `operationId`,
/// served beside the queue's own behind the same validation.
pub type Routes = Vec<(&'static str, MethodRouter<AppState>)>;

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    pub mode: ValidationMode,
    /// The largest request body (`MAX_BODY_SIZE`).
    pub max_body: usize,
    /// The longest a request may take (`REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// When set, job-management operations need `Authorization: Bearer <token>`
    /// (or the dashboard's session signed in with it).
    pub admin_token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            mode: ValidationMode::Default,
            max_body: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            admin_token: None,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub clock: Arc<dyn Clock>,
    /// Cancelled when the process begins to shut down; `/health` then says 503.
    pub shutdown: CancellationToken,
}

/// Every operation of the contract, behind the validation layer: the
/// queue's own, and the application's `routes`. An operation that neither
/// serves is an error.
pub fn router(
    state: AppState,
    config: &ApiConfig,
    routes: Routes,
) -> Result<Router, ContractError> {
    build(state, config, routes, true)
}

/// Only the queue's operations of the contract (jobs, health, metrics, the
/// contract itself), behind the validation layer: for a service that embeds
/// tasuki beside routes of its own.
pub fn queue_router(state: AppState, config: &ApiConfig) -> Result<Router, ContractError> {
    build(state, config, Vec::new(), false)
}

fn build(
    state: AppState,
    config: &ApiConfig,
    routes: Routes,
    every_operation: bool,
) -> Result<Router, ContractError> {
    metrics_handle(); // install the recorder before the first request counts
    let contract = Contract::load()?;
    let validator = Arc::new(RequestValidator::new(
        &contract,
        config.mode,
        config.max_body,
    )?);
    let session = Arc::new(dashboard::Session::new(config.admin_token.clone()));
    let admin = Arc::new(middleware::Admin::new(&contract, Arc::clone(&session)));
    let mut routes: std::collections::HashMap<&str, MethodRouter<AppState>> =
        routes.into_iter().collect();
    let mut api = Router::new();
    for op in contract.operations() {
        let id = op.operation_id.as_str();
        match handler(id).or_else(|| routes.remove(id)) {
            Some(handler) => api = api.route(&op.path, handler),
            None if every_operation => {
                return Err(ContractError(format!("operation {id} has no handler")));
            }
            None => {}
        }
    }
    if let Some(id) = routes.keys().next() {
        return Err(ContractError(format!(
            "a route is given for {id}, which the contract does not have"
        )));
    }
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(
            validator,
            validate::layer,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            admin,
            middleware::admin,
        ))
        .layer(axum::Extension(Arc::new(bulk::Bulks::default())))
        // Not operations of the contract, so outside its validation; the
        // page acts through the contract's operations.
        .merge(dashboard::routes(&state, session))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state);
    Ok(middleware::around(api, config))
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no operation at {}", uri.path()))
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}

/// Only `/health` and `/metrics`: what a worker process serves on `METRICS_PORT`.
pub fn ops_router(state: AppState) -> Router {
    metrics_handle();
    Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

/// The queue's handler of a contract operation. The router is built from
/// the contract, so its routes and the contract's operations are one set.
fn handler(operation_id: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation_id {
        "createJob" => post(jobs::create),
        "listJobs" => get(jobs::list),
        "jobStats" => get(jobs::stats),
        "getJob" => get(jobs::get),
        "bulkJobs" => post(bulk::start),
        "getBulkJobs" => get(bulk::get),
        "overview" => get(monitor::overview),
        "listWorkers" => get(monitor::workers),
        "retryJob" => post(jobs::retry),
        "cancelJob" => post(jobs::cancel),
        "listQueues" => get(queues::list),
        "pauseQueue" => post(queues::pause),
        "resumeQueue" => post(queues::resume),
        "updateQueue" => axum::routing::patch(queues::update),
        "listSchedules" => get(schedules::list),
        "pauseSchedule" => post(schedules::pause),
        "resumeSchedule" => post(schedules::resume),
        "health" => get(ops::health),
        "metrics" => get(ops::metrics),
        "openapi" => get(ops::openapi),
        _ => return None,
    })
}

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds the address (port 0 picks a free one) for [`router`].
    pub async fn build(
        config: &ApiConfig,
        state: AppState,
        routes: Routes,
    ) -> std::io::Result<Self> {
        let router = router(state, config, routes).map_err(std::io::Error::other)?;
        Self::bind(config.addr, router).await
    }

    /// Binds any router, such as [`ops_router`].
    pub async fn bind(addr: SocketAddr, router: Router) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(addr = %self.listener.local_addr()?, "listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The queue's operations, by `operationId`; the application serves
    /// the others (`tasuki_app::routes`).
    const QUEUE: &[&str] = &[
        "createJob",
        "listJobs",
        "jobStats",
        "getJob",
        "bulkJobs",
        "getBulkJobs",
        "retryJob",
        "cancelJob",
        "listQueues",
        "pauseQueue",
        "resumeQueue",
        "updateQueue",
        "listSchedules",
        "pauseSchedule",
        "resumeSchedule",
        "overview",
        "listWorkers",
        "health",
        "metrics",
        "openapi",
    ];

    #[test]
    fn the_queue_serves_its_operations_of_the_contract() {
        let contract = Contract::load().unwrap();
        let in_contract: BTreeSet<&str> = contract
            .operations()
            .iter()
            .map(|op| op.operation_id.as_str())
            .collect();
        assert!(QUEUE.iter().all(|id| in_contract.contains(id)));
        assert!(QUEUE.iter().all(|id| handler(id).is_some()));
        assert!(handler("createUser").is_none());
    }
}
