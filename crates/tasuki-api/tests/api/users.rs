//! `/users`: creation with its job, conflicts, validation, reads.

use serde_json::json;
use tasuki_api::ValidationMode;
use tasuki_core::{JobFilter, JobStatus};

use crate::helpers::spawn_app;
use tasuki_conformance::Engine;

async fn create_user_commits_the_user_and_its_job_together(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let reply = app
        .post_json(
            "/users",
            "/users",
            &json!({"email": "ada@example.com", "age": 36, "name": "Ada", "bio": "maths"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    let id = reply.body["id"].as_i64().unwrap();
    assert_eq!(reply.headers["location"], format!("/users/{id}").as_str());
    assert_eq!(reply.body["is_active"], true);
    assert_eq!(reply.body["additional_data"], json!(null));

    let job = app
        .store
        .job_get(tasuki_core::JobId(reply.body["job_id"].as_i64().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        (job.job_type.as_str(), job.priority, job.status),
        ("user_created", 1, JobStatus::Pending)
    );
    let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
    assert_eq!(payload["user_id"], id);
    assert_eq!(payload["user_data"]["email"], "ada@example.com");
    assert_eq!(payload["additional_props"], json!({}));

    let got = app.get("/users/{id}", &format!("/users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["name"], "Ada");
}

async fn the_same_email_twice_is_a_conflict_and_writes_nothing(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let user = json!({"email": "twice@example.com", "age": 20});
    assert_eq!(app.post_json("/users", "/users", &user).await.status, 201);
    let reply = app.post_json("/users", "/users", &user).await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.body["detail"], "a user with this email exists");
    assert_eq!((app.count("users").await, app.count("jobs").await), (1, 1));
}

async fn every_violation_is_named_by_its_pointer(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let reply = app
        .post_json("/users", "/users", &json!({"name": 5, "extra": true}))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.pointers(), ["/age", "/email", "/extra", "/name"]);
    assert_eq!(reply.body["title"], "Request validation failed");

    let reply = app
        .post_json(
            "/users",
            "/users",
            &json!({"email": "not an email", "age": -1}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/age", "/email"]);
    let reply = app
        .post_json(
            "/users",
            "/users",
            &json!({"email": "a@example.com", "age": "ten"}),
        )
        .await;
    assert_eq!(reply.pointers(), ["/age"]);
    assert_eq!((app.count("users").await, app.count("jobs").await), (0, 0));
}

async fn malformed_wrong_type_and_oversized_bodies_are_refused(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    let reply = app
        .post_raw("/users", "application/json", "{\"email\": ")
        .await;
    assert_eq!(
        (reply.status, reply.body["type"].as_str()),
        (400, Some("urn:tasuki:problem:malformed-json"))
    );
    let reply = app.post_raw("/users", "application/json", "").await;
    assert_eq!(reply.status, 400);
    let reply = app.post_raw("/users", "text/plain", "{}").await;
    assert_eq!(reply.status, 415);
    let reply = app
        .call(reqwest::Method::POST, "/users", "/users", None, &[])
        .await;
    assert_eq!(reply.status, 415, "no content type at all");
    let big = format!(
        r#"{{"email": "big@example.com", "age": 1, "bio": "{}"}}"#,
        "x".repeat(1_100_000)
    );
    let reply = app.post_raw("/users", "application/json", big).await;
    assert_eq!(reply.status, 413);
    assert_eq!((app.count("users").await, app.count("jobs").await), (0, 0));
}

async fn get_and_list_users(engine: Engine) {
    let app = spawn_app(engine, ValidationMode::Default).await;
    for n in 0..5 {
        app.post_json(
            "/users",
            "/users",
            &json!({"email": format!("u{n}@example.com"), "age": n}),
        )
        .await;
    }
    let page = app.get("/users", "/users?limit=2").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    let next = page.body["next_after"].as_i64().unwrap();
    let rest = app
        .get("/users", &format!("/users?after={next}&limit=10"))
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(rest.body["next_after"], json!(null));

    assert_eq!(app.get("/users/{id}", "/users/999").await.status, 404);
    let reply = app.get("/users/{id}", "/users/abc").await;
    assert_eq!(
        (reply.status, reply.pointers()),
        (400, vec!["/path/id".to_owned()])
    );
    let reply = app.get("/users", "/users?limit=0").await;
    assert_eq!(reply.pointers(), ["/query/limit"]);
    let reply = app.get("/users", "/users?limit=1&limit=2").await;
    assert_eq!(reply.pointers(), ["/query/limit"]);
}

/// 200 concurrent creations: 200 users, each with exactly one job.
async fn two_hundred_concurrent_signups(engine: Engine) {
    let app = std::sync::Arc::new(spawn_app(engine, ValidationMode::Default).await);
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post_json(
                    "/users",
                    "/users",
                    &json!({"email": format!("c{n}@example.com"), "age": 30}),
                )
                .await
                .status
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    assert_eq!(app.count("users").await, 200);
    let jobs = app
        .store
        .job_list(JobFilter {
            job_type: Some("user_created".into()),
            limit: 1_000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut owners: Vec<i64> = jobs
        .items
        .iter()
        .map(|j| {
            serde_json::from_str::<serde_json::Value>(&j.payload).unwrap()["user_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    owners.sort_unstable();
    owners.dedup();
    assert_eq!((jobs.items.len(), owners.len()), (200, 200));
}

tasuki_conformance::engine_tests!(
    create_user_commits_the_user_and_its_job_together,
    the_same_email_twice_is_a_conflict_and_writes_nothing,
    every_violation_is_named_by_its_pointer,
    malformed_wrong_type_and_oversized_bodies_are_refused,
    get_and_list_users,
    two_hundred_concurrent_signups,
);
