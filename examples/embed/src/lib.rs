//! A service of its own that embeds tasuki: a `notes` table, a job type
//! that counts a note's words and writes the count with its completion, the
//! queue and a worker in the same process, and tasuki's job routes
//! (`/jobs`, `/health`, `/metrics`) beside its own `/notes`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tasuki_api::{ApiConfig, AppState};
use tasuki_core::{Clock, Migrations, NewJob, StoreError, SystemClock};
use tasuki_sqlite::{Commit, SqliteConfig, SqliteStore, writes};
use tasuki_worker::{Done, Handler, JobContext, JobError, Registry, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

/// The service's own table, in a ledger of its own beside the queue's.
const MIGRATIONS: Migrations = Migrations {
    ledger: "_notes_migrations",
    list: &[(
        1,
        "notes",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL, words INTEGER)",
    )],
};

/// The job type: counts a note's words; the count commits with the job's
/// completion, or not at all.
struct CountWords;

#[derive(Deserialize)]
struct CountWordsPayload {
    note_id: i64,
    text: String,
}

#[async_trait]
impl Handler for CountWords {
    const JOB_TYPE: &'static str = "count_words";
    type Payload = CountWordsPayload;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["note_id", "text"],
            "properties": {"note_id": {"type": "integer"}, "text": {"type": "string"}}
        })
    }

    async fn handle(&self, _: &JobContext, note: CountWordsPayload) -> Result<Done, JobError> {
        let words = note.text.split_whitespace().count() as i64;
        let count = writes(move |tx| {
            let sql = "UPDATE notes SET words = ?1 WHERE id = ?2";
            tx.conn().execute(sql, (words, note.note_id))?;
            Ok(())
        });
        Ok(Done::result(json!({ "words": words })).with_writes(count))
    }
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

/// `POST /notes`: the note and its job commit together.
async fn create(
    State(store): State<Arc<SqliteStore>>,
    Json(note): Json<NewNote>,
) -> Result<(StatusCode, Json<Value>), StatusCode> {
    let (id, job) = store
        .write(Commit::Acknowledged, move |tx| {
            let sql = "INSERT INTO notes (text) VALUES (?1) RETURNING id";
            let id: i64 = tx.conn().query_row(sql, [&note.text], |row| row.get(0))?;
            let payload = json!({"note_id": id, "text": note.text});
            let job = tx.enqueue(NewJob::new(
                CountWords::JOB_TYPE,
                payload,
                SystemClock.now(),
            ))?;
            Ok((id, job))
        })
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id, "job_id": job}))))
}

/// `GET /notes/{id}`: the note, with its word count once its job completed.
async fn read(
    State(store): State<Arc<SqliteStore>>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, StatusCode> {
    store
        .read(move |conn| {
            let sql = "SELECT text, words FROM notes WHERE id = ?1";
            let row = conn.query_row(sql, [id], |row| {
                Ok(json!({"id": id, "text": row.get::<_, String>(0)?, "words": row.get::<_, Option<i64>>(1)?}))
            })?;
            Ok(row)
        })
        .await
        .map(Json)
        .map_err(|e| match e {
            StoreError::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        })
}

/// Opens the database at `path`, starts a worker, and serves on `listener`
/// until `shutdown` is cancelled.
pub async fn serve(
    path: &std::path::Path,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open(&SqliteConfig::new(path)).await?);
    store.migrate(&MIGRATIONS).await?;
    let registry = Arc::new(Registry::new().register(CountWords));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let worker = Worker::new(
        WorkerConfig::new("notes-worker"),
        store.clone(),
        registry.clone(),
        clock.clone(),
    );
    let working = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });

    let state = AppState {
        store: store.clone(),
        registry,
        clock,
        shutdown: shutdown.clone(),
    };
    let notes = Router::new()
        .route("/notes", post(create))
        .route("/notes/{id}", get(read))
        .with_state(store);
    let app = tasuki_api::queue_router(state, &ApiConfig::default())?.merge(notes);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    // The worker stops with the server, whichever way it ended.
    shutdown.cancel();
    working.await??;
    Ok(served?)
}
