//! `/queues`, unique enqueues, and the problems of unknown routes and methods.

use reqwest::Method;
use serde_json::json;
use tasuki_api::{ApiConfig, ValidationMode};
use tasuki_conformance::Engine;

use crate::helpers::{spawn_app, spawn_with, test_config};

async fn a_unique_enqueue_answers_with_the_holder(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let body = json!({"job_type": "probe", "payload": {}, "unique_key": "report-2026-11"});
    let first = app.post_json("/jobs", "/jobs", &body).await;
    assert_eq!(
        (first.status, &first.body["duplicate"]),
        (201, &json!(false))
    );
    assert_eq!(first.body["unique_key"], "report-2026-11");
    let again = app.post_json("/jobs", "/jobs", &body).await;
    assert_eq!(
        (again.status, &again.body["duplicate"]),
        (200, &json!(true))
    );
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(
        again.headers["location"],
        format!("/jobs/{}", first.body["id"]).as_str()
    );
    let states = json!({"job_type": "probe", "payload": {}, "unique_states": ["completed"]});
    let reply = app.post_json("/jobs", "/jobs", &states).await;
    assert_eq!(reply.pointers(), ["/unique_key"]);
    let reply = app
        .post_json(
            "/jobs",
            "/jobs",
            &json!({"job_type": "probe", "payload": {}, "unique_key": "k", "unique_states": ["pending"]}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/unique_states/0"]);
    assert_eq!(app.count("jobs").await, 1);
}

async fn queues_are_listed_paused_resumed_and_limited(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let email = json!({"job_type": "send_email", "payload": {"outbox_id": 1}});
    let enqueued = app.post_json("/jobs", "/jobs", &email).await;
    assert_eq!(enqueued.body["queue"], "email", "the type's queue");
    let probe = json!({"job_type": "probe", "payload": {}, "queue": "slow.lane"});
    assert_eq!(
        app.post_json("/jobs", "/jobs", &probe).await.body["queue"],
        "slow.lane"
    );
    let listed = app.get("/queues", "/queues").await;
    let names: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["email", "slow.lane"]);
    let only = app.get("/jobs", "/jobs?queue=email").await;
    assert_eq!(only.body["items"].as_array().unwrap().len(), 1);

    let paused = app
        .call(
            Method::POST,
            "/queues/{name}/pause",
            "/queues/email/pause",
            None,
            &[],
        )
        .await;
    assert_eq!((paused.status, &paused.body["paused"]), (200, &json!(true)));
    let limits = json!({"concurrency": 5, "rate_limit": {"limit": 100, "period_ms": 1000}});
    let bytes = Some(("application/json", limits.to_string().into_bytes()));
    let limited = app
        .call(Method::PATCH, "/queues/{name}", "/queues/email", bytes, &[])
        .await;
    assert_eq!(limited.status, 200);
    assert_eq!(
        (&limited.body["paused"], &limited.body["concurrency"]),
        (&json!(true), &json!(5))
    );
    assert_eq!(
        limited.body["rate_limit"],
        json!({"limit": 100, "period_ms": 1000})
    );
    let lift = Some(("application/json", br#"{"concurrency": null}"#.to_vec()));
    let lifted = app
        .call(Method::PATCH, "/queues/{name}", "/queues/email", lift, &[])
        .await;
    assert_eq!(lifted.body["concurrency"], json!(null));
    assert_eq!(lifted.body["rate_limit"]["limit"], 100);
    let resumed = app
        .call(
            Method::POST,
            "/queues/{name}/resume",
            "/queues/email/resume",
            None,
            &[],
        )
        .await;
    assert_eq!(resumed.body["paused"], false);

    let bad = Some((
        "application/json",
        br#"{"concurrency": 0, "speed": 1}"#.to_vec(),
    ));
    let reply = app
        .call(Method::PATCH, "/queues/{name}", "/queues/email", bad, &[])
        .await;
    assert_eq!(reply.pointers(), ["/concurrency", "/speed"]);
    let reply = app
        .call(
            Method::POST,
            "/queues/{name}/pause",
            "/queues/no%20space/pause",
            None,
            &[],
        )
        .await;
    assert_eq!(reply.status, 400);
}

async fn queue_changes_need_the_admin_token(engine: Engine) {
    let app = spawn_with(
        engine,
        ApiConfig {
            admin_token: Some("s3cret".into()),
            ..test_config()
        },
    )
    .await;
    let path = "/queues/default/pause";
    let refused = app
        .call(Method::POST, "/queues/{name}/pause", path, None, &[])
        .await;
    assert_eq!(refused.status, 401);
    let bearer = [("authorization", "Bearer s3cret")];
    let done = app
        .call(Method::POST, "/queues/{name}/pause", path, None, &bearer)
        .await;
    assert_eq!(done.status, 200);
    assert_eq!(
        app.get("/queues", "/queues").await.status,
        200,
        "reads stay open"
    );
}

/// A payload that matches none of its schema's branches is told what its
/// closest branch wants, at the field.
async fn a_payload_error_points_inside_the_payload(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let body = json!({"job_type": "data_analysis", "payload": {"values": "many"}});
    let reply = app.post_json("/jobs", "/jobs", &body).await;
    assert_eq!(reply.pointers(), ["/payload/values"]);
    let message = reply.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("array"), "{message}");
}

/// Unknown routes and wrong methods answer with problems too.
async fn unknown_routes_and_methods_are_problems(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    for (method, path, status) in [
        (Method::GET, "/nowhere", 404),
        (Method::DELETE, "/jobs", 405),
        (Method::PUT, "/queues", 405),
    ] {
        let response = app
            .client
            .request(method.clone(), format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "application/problem+json", "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], status);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(path.trim_start_matches('/')),
            "{body}"
        );
    }
}

tasuki_conformance::engine_tests!(
    a_unique_enqueue_answers_with_the_holder,
    queues_are_listed_paused_resumed_and_limited,
    queue_changes_need_the_admin_token,
    a_payload_error_points_inside_the_payload,
    unknown_routes_and_methods_are_problems,
);
