//! `/overview`, `/workers` and `/jobs/bulk`: what operators watch and do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tasuki_app::{LogEmailSender, registry};
use tasuki_conformance::Engine;
use tasuki_core::{NewJob, SystemClock, Timestamp};
use tasuki_worker::{Worker, WorkerConfig};

use crate::helpers::{TestApp, spawn_app, spawn_with_token};

fn worker(app: &TestApp) -> Worker {
    let registry = Arc::new(registry(app.app.clone(), Arc::new(LogEmailSender)));
    let mut config = WorkerConfig::new("monitor-test-worker");
    config.host = "test-host".into();
    Worker::new(config, app.store.clone(), registry, Arc::new(SystemClock))
}

async fn the_overview_counts_states_and_minutes(engine: Engine) {
    let app = spawn_app(engine, tasuki_api::ValidationMode::Default).await;
    let empty = app.get("/overview", "/overview").await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["minutes"], json!([]));
    assert_eq!(empty.body["completed"], 0);

    for body in [
        json!({"job_type": "probe", "payload": {}}),
        json!({"job_type": "probe", "payload": {}}),
        json!({"job_type": "probe", "payload": {"fail_attempts": 1}, "max_retries": 0}),
        json!({"job_type": "probe", "payload": {}, "queue": "later", "delay": "1h"}),
    ] {
        assert_eq!(app.post_json("/jobs", "/jobs", &body).await.status, 201);
    }
    let before = app.get("/overview", "/overview").await;
    let default = queue(&before.body, "default");
    assert_eq!(
        (&default["waiting"], &default["running"]),
        (&json!(3), &json!(0))
    );
    assert_eq!(queue(&before.body, "later")["scheduled"], 1);

    let worker = worker(&app);
    assert_eq!(worker.run_once().await.unwrap(), 3);
    worker.report_once().await.unwrap();

    let after = app.get("/overview", "/overview?minutes=5").await;
    let default = queue(&after.body, "default");
    assert_eq!(
        (&default["waiting"], &default["failed"]),
        (&json!(0), &json!(1))
    );
    assert_eq!(
        (&after.body["completed"], &after.body["failed"]),
        (&json!(2), &json!(1))
    );
    let minute = &after.body["minutes"][0];
    assert_eq!(
        (&minute["completed"], &minute["failed"]),
        (&json!(2), &json!(1))
    );
    assert!(minute["run_p95_ms"].as_f64().unwrap() > 0.0, "{minute}");

    let failed = app.get("/jobs", "/jobs?status=failed").await;
    let errors = &failed.body["items"][0]["errors"];
    assert_eq!(errors[0]["worker"], "monitor-test-worker", "{errors}");

    let workers = app.get("/workers", "/workers").await;
    let listed = &workers.body["items"][0];
    assert_eq!(
        (&listed["id"], &listed["host"], &listed["slots"]),
        (
            &json!("monitor-test-worker"),
            &json!("test-host"),
            &json!(3)
        )
    );
    assert_eq!(listed["queues"], json!([{"name": "*", "slots": 3}]));
    let bad = app.get("/overview", "/overview?minutes=0").await;
    assert_eq!(bad.pointers(), ["/query/minutes"]);
    // A bounded scan: newest first only; a short page says where to go on.
    let oldest = app.get("/jobs", "/jobs?scan=1&job_type=none").await;
    assert_eq!(
        oldest.body["next_after"],
        Value::Null,
        "oldest first reads on"
    );
    let window = app
        .get("/jobs", "/jobs?order=newest&scan=2&job_type=none")
        .await;
    assert_eq!(window.body["items"], json!([]));
    assert_eq!(
        window.body["next_after"], 3,
        "ids 3 and 4 were looked at; next, below 3"
    );
}

fn queue<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {overview}"))
}

/// Starts a bulk action and reads its progress until it finishes.
async fn bulk(app: &TestApp, body: Value, token: Option<&str>) -> Value {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    let bytes = Some(("application/json", body.to_string().into_bytes()));
    let started = app
        .call(Method::POST, "/jobs/bulk", "/jobs/bulk", bytes, &headers)
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let path = started.headers["location"].to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let progress = app.get("/jobs/bulk/{id}", &path).await;
        if progress.body["finished"] == true {
            return progress.body;
        }
        assert!(
            Instant::now() < deadline,
            "still running: {}",
            progress.body
        );
        tokio::task::yield_now().await;
    }
}

async fn bulk_actions_act_on_every_match_in_chunks(engine: Engine) {
    let app = spawn_with_token(engine, "s3cret").await;
    let now = Timestamp::now();
    let jobs = (0..1_200)
        .map(|i| NewJob::new("probe", json!({}), now).queue(if i % 4 == 0 { "b" } else { "a" }))
        .collect();
    app.store.job_insert_many(jobs).await.unwrap();

    let refused = app
        .post_json("/jobs/bulk", "/jobs/bulk", &json!({"action": "cancel"}))
        .await;
    assert_eq!(refused.status, 401);

    let cancelled = bulk(
        &app,
        json!({"action": "cancel", "queue": "a"}),
        Some("s3cret"),
    )
    .await;
    assert_eq!(
        (&cancelled["done"], &cancelled["changed"]),
        (&json!(900), &json!(900))
    );
    assert_eq!(cancelled["error"], Value::Null);
    let retried = bulk(
        &app,
        json!({"action": "retry", "status": "cancelled", "job_type": "probe"}),
        Some("s3cret"),
    )
    .await;
    assert_eq!(retried["changed"], 900);
    // Retry applies to no pending job: every match is looked at, none changed.
    let nothing = bulk(
        &app,
        json!({"action": "retry", "queue": "b"}),
        Some("s3cret"),
    )
    .await;
    assert_eq!(
        (&nothing["done"], &nothing["changed"]),
        (&json!(300), &json!(0))
    );
    let deleted = bulk(&app, json!({"action": "delete"}), Some("s3cret")).await;
    assert_eq!(deleted["changed"], 1_200);
    assert_eq!(app.count("jobs").await, 0);

    let missing = app.get("/jobs/bulk/{id}", "/jobs/bulk/999").await;
    assert_eq!(missing.status, 404);
    let bad = app
        .call(
            Method::POST,
            "/jobs/bulk",
            "/jobs/bulk",
            Some(("application/json", br#"{"action": "explode"}"#.to_vec())),
            &[("authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(bad.pointers(), ["/action"]);
}

tasuki_conformance::engine_tests!(
    the_overview_counts_states_and_minutes,
    bulk_actions_act_on_every_match_in_chunks,
);
