//! `/schedules`: list with the last slot, next run and newest jobs; pause
//! and resume behind the admin token; 404 for an unknown name.

use reqwest::Method;
use serde_json::json;
use tasuki_conformance::{Engine, schedule};
use tasuki_core::{Clock, Missed, SystemClock, fire_due};

use crate::helpers::spawn_with_token;

async fn list_pause_and_resume_schedules(engine: Engine) {
    let app = spawn_with_token(engine, "s3cret").await;
    let start = SystemClock.now();
    let hourly = schedule("hourly", "0 * * * *", Missed::CatchUp, Some(3));
    app.store.schedule_sync(&[hourly], start).await.unwrap();
    let in_two_hours = start.saturating_add(std::time::Duration::from_secs(7200));
    let fired = fire_due(&*app.store, in_two_hours, None).await.unwrap();
    let ids: Vec<i64> = fired.jobs[0].1.iter().rev().map(|id| id.0).collect();

    let list = app.get("/schedules", "/schedules").await;
    assert_eq!(list.status, 200);
    let hourly = &list.body["items"][0];
    assert_eq!(hourly["name"], "hourly");
    assert_eq!(hourly["missed"], "catch_up");
    assert_eq!(hourly["max_catch_up"], 3);
    assert_eq!(hourly["paused"], false);
    assert_eq!(hourly["recent_jobs"], json!(ids), "newest first");
    assert!(hourly["last_slot"].is_string() && hourly["next_run"].is_string());

    let admin = [("authorization", "Bearer s3cret")];
    let route = "/schedules/{name}/pause";
    let open = app
        .call(Method::POST, route, "/schedules/hourly/pause", None, &[])
        .await;
    assert_eq!(open.status, 401);
    let paused = app
        .call(Method::POST, route, "/schedules/hourly/pause", None, &admin)
        .await;
    assert_eq!(paused.status, 200);
    assert_eq!(paused.body["paused"], true);
    assert_eq!(paused.body["next_run"], json!(null));
    let resumed = app
        .call(
            Method::POST,
            "/schedules/{name}/resume",
            "/schedules/hourly/resume",
            None,
            &admin,
        )
        .await;
    assert_eq!(
        (resumed.status, &resumed.body["paused"]),
        (200, &json!(false))
    );

    let unknown = app
        .call(Method::POST, route, "/schedules/nope/pause", None, &admin)
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.body["detail"], "no schedule named `nope`");
    let bad_name = app
        .call(
            Method::POST,
            route,
            "/schedules/no%20pe/pause",
            None,
            &admin,
        )
        .await;
    assert_eq!(bad_name.status, 400);
}

tasuki_conformance::engine_tests!(list_pause_and_resume_schedules);
