//! `/health`, `/metrics`, `/openapi.yaml`, request ids and unknown routes.

use serde_json::json;
use tasuki_api::ValidationMode;

use crate::helpers::spawn_app;
use tasuki_conformance::Engine;

async fn health_reports_counts_and_shutdown(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    app.post_json(
        "/users",
        "/users",
        &json!({"email": "h@example.com", "age": 1}),
    )
    .await;
    let reply = app.get("/health", "/health").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "healthy");
    assert_eq!(reply.body["database"], "connected");
    assert_eq!(reply.body["jobs"]["pending"], 1);
    app.shutting_down.cancel();
    let reply = app.get("/health", "/health").await;
    assert_eq!(
        (reply.status, reply.body["error"].as_str()),
        (503, Some("shutting down"))
    );
}

async fn metrics_are_prometheus_text(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    app.post_json(
        "/users",
        "/users",
        &json!({"email": "m@example.com", "age": 1}),
    )
    .await;
    let reply = app.get("/metrics", "/metrics").await;
    assert_eq!(reply.status, 200);
    let text = reply.body.as_str().unwrap();
    for line in [
        r#"http_requests_total{method="POST",route="/users",status="201"}"#,
        r#"jobs_enqueued_total{job_type="user_created"}"#,
        r#"jobs_queue_depth{queue="default",state="waiting"}"#,
        r#"http_request_duration_seconds_bucket{method="POST",route="/users",le="0.005"}"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

async fn the_contract_is_served_and_requests_carry_ids(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let reply = app.get("/openapi.yaml", "/openapi.yaml").await;
    assert_eq!(reply.body.as_str().unwrap(), tasuki_api::OPENAPI_YAML);
    assert!(!reply.headers["x-request-id"].is_empty());
    let echoed = app
        .call(
            reqwest::Method::GET,
            "/health",
            "/health",
            None,
            &[("x-request-id", "trace-me-42")],
        )
        .await;
    assert_eq!(echoed.headers["x-request-id"], "trace-me-42");
    // HEAD is answered by the GET handler, so it is validated as GET.
    let head = app
        .client
        .head(format!("{}/users?limit=5", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let head = app
        .client
        .head(format!("{}/jobs/abc", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 400);
    assert_eq!(head.headers()["content-type"], "application/problem+json");
    let unknown = app
        .client
        .get(format!("{}/nowhere", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        404,
        "routes outside the contract fall through to the router"
    );
}

/// A request that outlives REQUEST_TIMEOUT is answered with a problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_request_is_a_problem() {
    let config = tasuki_api::ApiConfig {
        request_timeout: std::time::Duration::from_millis(100),
        ..crate::helpers::test_config()
    };
    // On SQLite a write that holds the writer makes the enqueue below wait
    // past the timeout (the middleware is the same on both engines).
    let app = crate::helpers::spawn_with(Engine::Sqlite, config).await;
    let tasuki_conformance::Backend::Sqlite(sqlite) = &app.backend else {
        unreachable!("a SQLite app")
    };
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let (entered, holding) = tokio::sync::oneshot::channel();
    let held = tokio::spawn({
        let sqlite = sqlite.clone();
        async move {
            sqlite
                .write(tasuki_sqlite::Commit::Bookkeeping, move |_| {
                    let _ = entered.send(());
                    let _ = hold.recv();
                    Ok(())
                })
                .await
        }
    });
    holding.await.unwrap();
    let reply = app
        .client
        .post(format!("{}/jobs", app.base))
        .json(&json!({"job_type": "probe", "payload": {}}))
        .send()
        .await
        .unwrap();
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
    assert_eq!(reply.status(), 503);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    assert!(reply.headers().contains_key("x-request-id"));
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["type"], "urn:tasuki:problem:timeout");
}

tasuki_conformance::engine_tests!(
    health_reports_counts_and_shutdown,
    metrics_are_prometheus_text,
    the_contract_is_served_and_requests_carry_ids,
);
