//! The three validation modes.

use serde_json::json;
use tasuki_api::ValidationMode;

use crate::helpers::spawn_app;
use tasuki_conformance::Engine;

async fn flexible_keeps_unknown_fields_with_the_user_and_its_job(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Flexible).await;
    let reply = app
        .post_json(
            "/users",
            "/users",
            &json!({"email": "flex@example.com", "age": 30, "hobby": "chess", "location": "Tokyo"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.body["additional_data"],
        json!({"hobby": "chess", "location": "Tokyo"})
    );
    let job = app
        .store
        .job_get(tasuki_core::JobId(reply.body["job_id"].as_i64().unwrap()))
        .await
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
    assert_eq!(
        payload["additional_props"],
        json!({"hobby": "chess", "location": "Tokyo"})
    );
    // Known fields are still checked.
    let reply = app
        .post_json(
            "/users",
            "/users",
            &json!({"email": "flex2@example.com", "age": -3, "hobby": 1}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/age"]);
}

async fn default_refuses_unknown_fields_but_takes_loose_forms(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let reply = app
        .post_json(
            "/users",
            "/users",
            &json!({"email": "d@example.com", "age": 30, "hobby": "chess"}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/hobby"]);
    // Not strict: 30.0 is an integer, a duplicate key keeps the last value,
    // an unknown query parameter is ignored, a +json type is JSON.
    let reply = app
        .post_raw(
            "/users",
            "application/json",
            r#"{"email": "d@example.com", "age": 30.0, "age": 31}"#,
        )
        .await;
    assert_eq!((reply.status, reply.body["age"].as_i64()), (201, Some(31)));
    let reply = app
        .post_raw(
            "/users",
            "application/vnd.api+json",
            r#"{"email": "e@example.com", "age": 1.0}"#,
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(
        app.get("/users", "/users?limit=5&colour=red").await.status,
        200
    );
}

async fn strict_refuses_duplicates_loose_integers_unknown_parameters_and_other_types(
    engine: Engine,
) {
    let app = spawn_app(engine, ValidationMode::Strict).await;
    let reply = app
        .post_raw(
            "/users",
            "application/json",
            r#"{"email": "s@example.com", "age": 30, "age": 31}"#,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("duplicate key `age`"),
        "{}",
        reply.body
    );
    let reply = app
        .post_raw(
            "/users",
            "application/json",
            r#"{"email": "s@example.com", "age": 30.0}"#,
        )
        .await;
    assert_eq!(reply.pointers(), ["/age"]);
    let reply = app
        .post_raw(
            "/jobs",
            "application/json",
            r#"{"job_type": "probe", "payload": {"sleep_ms": 1e1}}"#,
        )
        .await;
    assert_eq!(reply.pointers(), ["/payload/sleep_ms"]);
    let reply = app
        .post_raw(
            "/users",
            "application/vnd.api+json",
            r#"{"email": "s@example.com", "age": 1}"#,
        )
        .await;
    assert_eq!(reply.status, 415);
    let reply = app.get("/users", "/users?limit=5&colour=red").await;
    assert_eq!(reply.pointers(), ["/query/colour"]);
    let reply = app
        .post_json(
            "/users",
            "/users",
            &json!({"email": "s@example.com", "age": 30, "x": 1}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/x"]);
    assert_eq!(app.count("users").await, 0);
    let reply = app
        .post_raw(
            "/users",
            "application/json; charset=utf-8",
            r#"{"email": "s@example.com", "age": 30}"#,
        )
        .await;
    assert_eq!(reply.status, 201);
}

tasuki_conformance::engine_tests!(
    flexible_keeps_unknown_fields_with_the_user_and_its_job,
    default_refuses_unknown_fields_but_takes_loose_forms,
    strict_refuses_duplicates_loose_integers_unknown_parameters_and_other_types,
);
