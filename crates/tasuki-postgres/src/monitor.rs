//! What operators watch, on PostgreSQL: worker heartbeats, the per-minute
//! rollup and the queues' counts by state. Heartbeats and the rollup are
//! bookkeeping: a crash may lose the newest, which nothing depends on.

use async_trait::async_trait;
use tasuki_core::{
    BucketCount, Metric, MonitorStore, QueueCounts, RollupCount, StoreResult, Timestamp,
    WORKER_FORGOTTEN_AFTER, WorkerInfo,
};

use crate::PgStore;
use crate::rows::{corrupt, db_error};

#[async_trait]
impl MonitorStore for PgStore {
    async fn worker_beat(&self, worker: &WorkerInfo) -> StoreResult<()> {
        let queues = serde_json::to_string(&worker.queues).expect("queues serialize");
        let forget = worker.heartbeat_at.saturating_sub(WORKER_FORGOTTEN_AFTER);
        let mut tx = self.bookkeeping.begin().await.map_err(db_error)?;
        sqlx::query_file!(
            "queries/monitor/worker_beat.sql",
            worker.id,
            worker.host,
            i32::try_from(worker.pid).unwrap_or(i32::MAX),
            queues,
            i32::try_from(worker.slots).unwrap_or(i32::MAX),
            i32::try_from(worker.running).unwrap_or(i32::MAX),
            worker.started_at.to_datetime(),
            worker.heartbeat_at.to_datetime(),
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query_file!("queries/monitor/worker_forget.sql", forget.to_datetime())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }

    async fn worker_gone(&self, id: &str) -> StoreResult<()> {
        sqlx::query_file!("queries/monitor/worker_gone.sql", id)
            .execute(&self.bookkeeping)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn worker_list(&self, since: Timestamp) -> StoreResult<Vec<WorkerInfo>> {
        let rows = sqlx::query_file!("queries/monitor/worker_list.sql", since.to_datetime())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|row| {
                Ok(WorkerInfo {
                    queues: serde_json::from_str(&row.queues)
                        .map_err(|e| corrupt("worker queues", e))?,
                    id: row.id,
                    host: row.host,
                    pid: u32::try_from(row.pid).map_err(|e| corrupt("worker pid", e))?,
                    slots: u32::try_from(row.slots).map_err(|e| corrupt("worker slots", e))?,
                    running: u32::try_from(row.running)
                        .map_err(|e| corrupt("worker running", e))?,
                    started_at: row.started_at.into(),
                    heartbeat_at: row.heartbeat_at.into(),
                })
            })
            .collect()
    }

    async fn rollup_add(&self, counts: Vec<RollupCount>) -> StoreResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let minutes: Vec<_> = counts.iter().map(|c| c.minute.to_datetime()).collect();
        let queues: Vec<String> = counts.iter().map(|c| c.queue.clone()).collect();
        let metrics: Vec<String> = counts
            .iter()
            .map(|c| c.metric.as_str().to_owned())
            .collect();
        let buckets: Vec<i32> = counts.iter().map(|c| c.bucket).collect();
        let numbers: Vec<i64> = counts.iter().map(|c| c.count).collect();
        sqlx::query_file!(
            "queries/monitor/rollup_add.sql",
            &minutes,
            &queues,
            &metrics,
            &buckets,
            &numbers
        )
        .execute(&self.bookkeeping)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn rollup_since(&self, since: Timestamp) -> StoreResult<Vec<BucketCount>> {
        let rows = sqlx::query_file!("queries/monitor/rollup_since.sql", since.to_datetime())
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter()
            .map(|row| {
                Ok(BucketCount {
                    minute: row.minute.into(),
                    metric: Metric::parse(&row.metric)
                        .ok_or_else(|| corrupt("rollup metric", &row.metric))?,
                    bucket: row.bucket,
                    count: row.count,
                })
            })
            .collect()
    }

    async fn rollup_prune(&self, before: Timestamp) -> StoreResult<u64> {
        let done = sqlx::query_file!("queries/monitor/rollup_prune.sql", before.to_datetime())
            .execute(&self.bookkeeping)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn queue_counts(&self, now: Timestamp) -> StoreResult<Vec<QueueCounts>> {
        // Without parallel workers: on a small host their start-up costs more
        // than they save (54 ms against 23 ms over 100,000 ready jobs on two
        // cores), and a count that every dashboard and health check makes
        // should not take every core.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0")
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let rows = sqlx::query_file!("queries/monitor/queue_counts.sql", now.to_datetime())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|row| QueueCounts {
                queue: row.queue,
                waiting: row.waiting,
                scheduled: row.scheduled,
                running: row.running,
                failed: row.failed,
                cancelled: row.cancelled,
                oldest_due: row.oldest_due.map(Timestamp::from),
            })
            .collect())
    }
}
