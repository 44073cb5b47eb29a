//! The HTTP API: axum routes whose requests are validated at run time
//! against `openapi.yaml`, errors as RFC 9457 problems, health and
//! Prometheus metrics.
//!
//! `router(state)` builds the app for in-process use; [`Application`] binds
//! it (port 0 in tests), reports its address, and serves until shutdown.

mod contract;
mod jobs;
mod middleware;
mod ops;
mod problem;
mod strict_json;
mod users;
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
pub use ops::metrics_handle;
pub use problem::ApiError;
pub use validate::{RequestValidator, ValidationMode};

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    pub mode: ValidationMode,
    /// The largest request body (`MAX_BODY_SIZE`).
    pub max_body: usize,
    /// The longest a request may take (`REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// When set, job-management operations need `Authorization: Bearer <token>`.
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

/// The application: every route of the contract, behind the validation layer.
pub fn router(state: AppState, config: &ApiConfig) -> Result<Router, ContractError> {
    metrics_handle(); // install the recorder before the first request counts
    let contract = Contract::load()?;
    let validator = Arc::new(RequestValidator::new(
        &contract,
        config.mode,
        config.max_body,
    )?);
    let admin = Arc::new(middleware::Admin::new(
        &contract,
        config.admin_token.clone(),
    ));
    let mut api = Router::new();
    for op in contract.operations() {
        let handler = handler(&op.operation_id).ok_or_else(|| {
            ContractError(format!("operation {} has no handler", op.operation_id))
        })?;
        api = api.route(&op.path, handler);
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
        .with_state(state);
    Ok(middleware::around(api, config))
}

/// Only `/health` and `/metrics`: what a worker process serves on `METRICS_PORT`.
pub fn ops_router(state: AppState) -> Router {
    metrics_handle();
    Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

/// The handler of a contract operation. The router is built from the
/// contract, so its routes and the contract's operations are one set.
fn handler(operation_id: &str) -> Option<MethodRouter<AppState>> {
    Some(match operation_id {
        "createUser" => post(users::create),
        "listUsers" => get(users::list),
        "getUser" => get(users::get),
        "createJob" => post(jobs::create),
        "listJobs" => get(jobs::list),
        "jobStats" => get(jobs::stats),
        "getJob" => get(jobs::get),
        "retryJob" => post(jobs::retry),
        "cancelJob" => post(jobs::cancel),
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
    /// Binds the address (port 0 picks a free one).
    pub async fn build(config: &ApiConfig, state: AppState) -> std::io::Result<Self> {
        let router = router(state, config).map_err(std::io::Error::other)?;
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

    /// The operations with a handler, by `operationId`; `handler` must
    /// know exactly the contract's.
    const HANDLED: &[&str] = &[
        "createUser",
        "listUsers",
        "getUser",
        "createJob",
        "listJobs",
        "jobStats",
        "getJob",
        "retryJob",
        "cancelJob",
        "health",
        "metrics",
        "openapi",
    ];

    #[test]
    fn the_router_serves_exactly_the_contracts_operations() {
        let contract = Contract::load().unwrap();
        let in_contract: BTreeSet<&str> = contract
            .operations()
            .iter()
            .map(|op| op.operation_id.as_str())
            .collect();
        let handled: BTreeSet<&str> = HANDLED.iter().copied().collect();
        assert_eq!(in_contract, handled);
        assert!(HANDLED.iter().all(|id| handler(id).is_some()));
        assert!(handler("deleteEverything").is_none());
    }

    #[test]
    fn the_contract_states_each_job_types_payload_schema() {
        let contract = Contract::load().unwrap();
        let registry = tasuki_jobs::registry(Arc::new(tasuki_jobs::LogEmailSender));
        for job_type in registry.job_types() {
            let name: String = job_type
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .chain(["Payload".to_owned()])
                .collect();
            let stated = contract
                .schema(&name)
                .unwrap_or_else(|| panic!("no {name} in the contract"));
            assert_eq!(
                stated,
                registry.schema(job_type).unwrap(),
                "{name} differs from the code"
            );
        }
        let enum_types = &contract.schema("JobRequest").unwrap()["properties"]["job_type"]["enum"];
        let mut types: Vec<&str> = registry.job_types().collect();
        types.sort_unstable();
        let mut stated: Vec<&str> = enum_types
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        stated.sort_unstable();
        assert_eq!(stated, types);
    }
}
