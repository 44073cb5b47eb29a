//! Cross-process wake-ups: one connection per process listens on the
//! `tasuki_jobs` channel, which the `job_queue` insert trigger notifies with
//! its schema's name.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tasuki_core::StoreResult;
use tokio::sync::Notify;

use crate::rows::db_error;

const CHANNEL: &str = "tasuki_jobs";

pub(crate) async fn spawn(
    pool: &PgPool,
    options: PgConnectOptions,
    jobs_added: Arc<Notify>,
) -> StoreResult<tokio::task::JoinHandle<()>> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
    // A pool of its own: the listener keeps its connection for good, and
    // reconnects through this pool when it drops.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&own).await.map_err(db_error)?;
    listener.listen(CHANNEL).await.map_err(db_error)?;
    Ok(tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    failures = 0;
                    if notification.payload() == schema {
                        jobs_added.notify_one();
                    }
                }
                // The connection dropped; the next call reconnects and
                // listens again. What was sent meanwhile is lost: wake the
                // workers so they look for themselves.
                Ok(None) => {
                    tracing::warn!("the notification connection dropped; reconnecting");
                    jobs_added.notify_one();
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = ?error, "cannot listen for new jobs");
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }))
}
