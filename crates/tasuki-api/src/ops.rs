//! Operations: health, Prometheus metrics, the contract itself.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tasuki_core::{DEFAULT_QUEUE, QueueCounts};

use crate::AppState;
use crate::contract::OPENAPI_YAML;

/// The process's Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let seconds = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            60.0,
        ];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (tests build many apps
        // in one process); this one still renders what it was given.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// The `# HELP` and `# TYPE` of every metric the process records, wherever
/// it records it (the API, the application, the worker).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route."
    );
    describe_counter!(
        "jobs_enqueued_total",
        "Jobs enqueued through the API, by job type."
    );
    describe_gauge!(
        "jobs_queue_depth",
        "Jobs by queue and state (waiting, scheduled, running, failed, cancelled), as of the last scrape."
    );
    describe_counter!(
        "jobs_processed_total",
        "Attempts finished by this process's worker, by job type and outcome."
    );
    describe_histogram!(
        "job_duration_seconds",
        Unit::Seconds,
        "Time an attempt ran, by job type."
    );
}

pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let unhealthy = |error: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "error": error})),
        )
            .into_response()
    };
    if state.shutdown.is_cancelled() {
        return unhealthy("shutting down");
    }
    if let Err(error) = state.store.ping().await {
        tracing::warn!(error = ?error, "health: database ping failed");
        return unhealthy("database connection failed");
    }
    // Counted from the partial indexes, not the whole table: a load
    // balancer may ask every second of a table of millions.
    match state.store.queue_counts(state.clock.now()).await {
        Ok(counts) => {
            let sum = |f: fn(&QueueCounts) -> i64| counts.iter().map(f).sum::<i64>();
            Json(json!({
                "status": "healthy",
                "database": "connected",
                "jobs": {
                    "pending": sum(|c| c.waiting + c.scheduled),
                    "processing": sum(|c| c.running),
                    "failed": sum(|c| c.failed),
                },
            }))
            .into_response()
        }
        Err(error) => {
            tracing::warn!(error = ?error, "health: job stats failed");
            unhealthy("job queue unavailable")
        }
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let handle = metrics_handle();
    // Queues seen before and gone from the counts (no live, failed or
    // cancelled job left) read zero rather than their last value.
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if let Ok(mut counts) = state.store.queue_counts(state.clock.now()).await {
        let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
        seen.insert(DEFAULT_QUEUE.to_owned());
        for queue in seen.iter() {
            if !counts.iter().any(|c| &c.queue == queue) {
                counts.push(QueueCounts {
                    queue: queue.clone(),
                    ..QueueCounts::default()
                });
            }
        }
        seen.extend(counts.iter().map(|c| c.queue.clone()));
        for c in counts {
            for (state, n) in [
                ("waiting", c.waiting),
                ("scheduled", c.scheduled),
                ("running", c.running),
                ("failed", c.failed),
                ("cancelled", c.cancelled),
            ] {
                metrics::gauge!("jobs_queue_depth", "queue" => c.queue.clone(), "state" => state)
                    .set(n as f64);
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}
