//! `/jobs`: enqueue with the payload's schema, inspect, retry, cancel, admin token.

use serde_json::json;
use tasuki_api::ValidationMode;
use tasuki_core::{ClaimParams, Failure, Timestamp};

use crate::helpers::{spawn_app, spawn_with_token};
use tasuki_conformance::Engine;

async fn enqueue_checks_the_payload_against_its_types_schema(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let reply = app.post_json("/jobs", "/jobs", &json!({"job_type": "probe", "payload": {"sleep_ms": 5}, "priority": 7, "max_retries": 1, "delay": "1h"})).await;
    assert_eq!(reply.status, 201);
    let id = reply.body["id"].as_i64().unwrap();
    assert_eq!(reply.headers["location"], format!("/jobs/{id}").as_str());
    assert_eq!(
        (
            reply.body["priority"].as_i64(),
            reply.body["max_retries"].as_i64()
        ),
        (Some(7), Some(1))
    );
    assert_eq!(reply.body["status"], "pending");
    let scheduled = Timestamp::parse_rfc3339(reply.body["scheduled_at"].as_str().unwrap()).unwrap();
    assert!(scheduled > Timestamp::now().saturating_add(std::time::Duration::from_secs(3500)));

    let reply = app
        .post_json(
            "/jobs",
            "/jobs",
            &json!({"job_type": "probe", "payload": {"sleep_ms": -1, "nap": 1}}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/payload/nap", "/payload/sleep_ms"]);
    let reply = app
        .post_json(
            "/jobs",
            "/jobs",
            &json!({"job_type": "mine_bitcoin", "payload": {}}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/job_type"]);
    let reply = app.post_json("/jobs", "/jobs", &json!({"job_type": "probe", "payload": {}, "delay": "1s", "run_at": "2030-01-01T00:00:00Z"})).await;
    assert_eq!(reply.status, 400);
    let reply = app
        .post_json("/jobs", "/jobs", &json!({"job_type": "send_email"}))
        .await;
    assert_eq!(reply.pointers(), ["/payload"]);
    let reply = app.post_json("/jobs", "/jobs", &json!({"job_type": "data_analysis", "payload": {"values": [1, 2.5]}, "run_at": "2030-01-01T00:00:00Z"})).await;
    assert_eq!(
        (reply.status, reply.body["scheduled_at"].as_str()),
        (201, Some("2030-01-01T00:00:00Z"))
    );
    assert_eq!(app.count("jobs").await, 2);

    // Whole numbers written as floats are stored as integers, which is what the handlers read.
    let reply = app
        .post_json(
            "/jobs",
            "/jobs",
            &json!({"job_type": "probe", "payload": {"sleep_ms": 5.0}}),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert!(reply.body["payload"]["sleep_ms"].is_i64(), "{}", reply.body);
    // The delay is bounded: six digits, and never past the year 9999.
    let reply = app
        .post_json(
            "/jobs",
            "/jobs",
            &json!({"job_type": "probe", "payload": {}, "delay": "999999d"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    let reply = app
        .post_json(
            "/jobs",
            "/jobs",
            &json!({"job_type": "probe", "payload": {}, "delay": "9999999d"}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/delay"]);
}

async fn get_list_stats_retry_and_cancel(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let reply = app
            .post_json(
                "/jobs",
                "/jobs",
                &json!({"job_type": "probe", "payload": {"sleep_ms": n}}),
            )
            .await;
        ids.push(reply.body["id"].as_i64().unwrap());
    }
    // The first job fails for good, as a worker would record it.
    let now = Timestamp::now();
    let claimed = app
        .store
        .job_claim(ClaimParams {
            owner: "t",
            queue: None,
            limit: 1,
            now,
            lease_expires_at: now.saturating_add(std::time::Duration::from_secs(30)),
        })
        .await
        .unwrap();
    let failure = Failure {
        id: claimed[0].id,
        attempt: claimed[0].attempt,
        error: "boom".into(),
        retry_at: None,
    };
    app.store.job_fail_many(now, vec![failure]).await.unwrap();

    let job = app.get("/jobs/{id}", &format!("/jobs/{}", ids[0])).await;
    assert_eq!(
        (job.status, job.body["status"].as_str()),
        (200, Some("failed"))
    );
    assert_eq!(job.body["errors"][0]["error"], "boom");

    let retried = app.act("retry", ids[0]).await;
    assert_eq!(
        (retried.status, retried.body["status"].as_str()),
        (200, Some("pending"))
    );
    let again = app.act("retry", ids[0]).await;
    assert_eq!(again.status, 409);
    let cancelled = app.act("cancel", ids[1]).await;
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (200, Some("cancelled"))
    );
    let again = app.act("cancel", ids[1]).await;
    assert_eq!(again.status, 409);
    assert_eq!(app.act("cancel", 424242).await.status, 404);
    assert_eq!(app.get("/jobs/{id}", "/jobs/424242").await.status, 404);

    let list = app.get("/jobs", "/jobs?status=cancelled").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let list = app.get("/jobs", "/jobs?job_type=probe&limit=2").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let reply = app.get("/jobs", "/jobs?status=done").await;
    assert_eq!(reply.pointers(), ["/query/status"]);

    let stats = app.get("/jobs/stats", "/jobs/stats").await;
    assert_eq!(stats.body["by_status"]["pending"], 2);
    assert_eq!(stats.body["by_status"]["cancelled"], 1);
    assert_eq!(stats.body["by_type"]["probe"]["pending"], 2);
}

async fn admin_token_guards_job_management_only(engine: Engine) {
    let app = spawn_with_token(engine, "s3cret").await;
    let body = json!({"job_type": "probe", "payload": {}});
    let reply = app.post_json("/jobs", "/jobs", &body).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    let json = Some(("application/json", body.to_string().into_bytes()));
    let wrong = app
        .call(
            reqwest::Method::POST,
            "/jobs",
            "/jobs",
            json.clone(),
            &[("authorization", "Bearer nope")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let ok = app
        .call(
            reqwest::Method::POST,
            "/jobs",
            "/jobs",
            json,
            &[("authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(ok.status, 201);
    let id = ok.body["id"].as_i64().unwrap();
    let path = format!("/jobs/{id}/cancel");
    assert_eq!(
        app.call(reqwest::Method::POST, "/jobs/{id}/cancel", &path, None, &[])
            .await
            .status,
        401
    );
    assert_eq!(
        app.call(
            reqwest::Method::POST,
            "/jobs/{id}/cancel",
            &path,
            None,
            &[("authorization", "Bearer s3cret")]
        )
        .await
        .status,
        200
    );
    // Reads and signups stay open.
    assert_eq!(app.get("/jobs", "/jobs").await.status, 200);
    assert_eq!(
        app.post_json(
            "/users",
            "/users",
            &json!({"email": "o@example.com", "age": 1})
        )
        .await
        .status,
        201
    );
}

tasuki_conformance::engine_tests!(
    enqueue_checks_the_payload_against_its_types_schema,
    get_list_stats_retry_and_cancel,
    admin_token_guards_job_management_only,
);
