//! The example runs: a note posted, its job run by the embedded worker, its
//! word count written with the job's completion, and tasuki's job routes
//! serving the job.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_is_counted_by_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let path = dir.path().join("notes.db");
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { tasuki_example_embed::serve(&path, listener, shutdown).await }
    });
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/notes"))
        .json(&json!({"text": "one two three"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, job) = (
        created["id"].as_i64().unwrap(),
        created["job_id"].as_i64().unwrap(),
    );

    // Waits on the job's own route, with a deadline: the worker runs it.
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let job = get(&client, &format!("{base}/jobs/{job}")).await;
            if job["status"] == "completed" {
                return job;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the job completes within the deadline");
    assert_eq!(done["result"], json!({"words": 3}));
    let note = get(&client, &format!("{base}/notes/{id}")).await;
    assert_eq!(note["words"], 3, "the count committed with the completion");
    // The queue's router brings the dashboard and what it reads.
    let page = client
        .get(format!("{base}/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<title>tasuki dashboard</title>")
    );
    // Its worker reports itself as it starts.
    tokio::time::timeout(Duration::from_secs(10), async {
        while get(&client, &format!("{base}/workers")).await["items"] == json!([]) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the worker reports itself within the deadline");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}
