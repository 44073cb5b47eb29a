//! What operators watch, on SQLite: worker heartbeats, the per-minute
//! rollup and the queues' counts by state.

use async_trait::async_trait;
use rusqlite::Row;
use tasuki_core::{
    BucketCount, Metric, MonitorStore, QueueCounts, RollupCount, StoreResult, Timestamp,
    WORKER_FORGOTTEN_AFTER, WorkerInfo,
};

use crate::SqliteStore;
use crate::queries;
use crate::rows::{self, Error, corrupt};
use crate::writer::Commit;

fn worker(row: &Row<'_>) -> Result<WorkerInfo, Error> {
    let queues: String = row.get(3)?;
    Ok(WorkerInfo {
        id: row.get(0)?,
        host: row.get(1)?,
        pid: row.get(2)?,
        queues: serde_json::from_str(&queues).map_err(|e| corrupt("worker queues", e))?,
        slots: row.get(4)?,
        running: row.get(5)?,
        started_at: Timestamp::from_micros(row.get(6)?),
        heartbeat_at: Timestamp::from_micros(row.get(7)?),
    })
}

fn bucket_count(row: &Row<'_>) -> Result<BucketCount, Error> {
    let metric: String = row.get(1)?;
    Ok(BucketCount {
        minute: Timestamp::from_micros(row.get(0)?),
        metric: Metric::parse(&metric).ok_or_else(|| corrupt("rollup metric", &metric))?,
        bucket: row.get(2)?,
        count: row.get(3)?,
    })
}

fn queue_counts(row: &Row<'_>) -> Result<QueueCounts, Error> {
    Ok(QueueCounts {
        queue: row.get(0)?,
        waiting: row.get(1)?,
        scheduled: row.get(2)?,
        running: row.get(3)?,
        failed: row.get(4)?,
        cancelled: row.get(5)?,
        oldest_due: row.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
    })
}

#[async_trait]
impl MonitorStore for SqliteStore {
    async fn worker_beat(&self, worker: &WorkerInfo) -> StoreResult<()> {
        let w = worker.clone();
        let queues = serde_json::to_string(&w.queues).expect("queues serialize");
        let forget = w.heartbeat_at.saturating_sub(WORKER_FORGOTTEN_AFTER);
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                conn.prepare_cached(queries::MONITOR_WORKER_BEAT.sql)?
                    .execute((
                        &w.id,
                        &w.host,
                        w.pid,
                        &queues,
                        w.slots,
                        w.running,
                        w.started_at.as_micros(),
                        w.heartbeat_at.as_micros(),
                    ))?;
                conn.prepare_cached(queries::MONITOR_WORKER_FORGET.sql)?
                    .execute([forget.as_micros()])?;
                Ok(())
            })
            .await
    }

    async fn worker_gone(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                conn.prepare_cached(queries::MONITOR_WORKER_GONE.sql)?
                    .execute([id])?;
                Ok(())
            })
            .await
    }

    async fn worker_list(&self, since: Timestamp) -> StoreResult<Vec<WorkerInfo>> {
        self.readers
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::MONITOR_WORKER_LIST.sql)?;
                rows::all(statement.query([since.as_micros()])?, worker)
            })
            .await
    }

    async fn rollup_add(&self, counts: Vec<RollupCount>) -> StoreResult<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                let mut statement = conn.prepare_cached(queries::MONITOR_ROLLUP_ADD.sql)?;
                for c in &counts {
                    statement.execute((
                        c.minute.as_micros(),
                        &c.queue,
                        c.metric.as_str(),
                        c.bucket,
                        c.count,
                    ))?;
                }
                Ok(())
            })
            .await
    }

    async fn rollup_since(&self, since: Timestamp) -> StoreResult<Vec<BucketCount>> {
        self.readers
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::MONITOR_ROLLUP_SINCE.sql)?;
                rows::all(statement.query([since.as_micros()])?, bucket_count)
            })
            .await
    }

    async fn rollup_prune(&self, before: Timestamp) -> StoreResult<u64> {
        self.writer
            .write(Commit::Bookkeeping, move |conn| {
                let mut statement = conn.prepare_cached(queries::MONITOR_ROLLUP_PRUNE.sql)?;
                Ok(statement.execute([before.as_micros()])? as u64)
            })
            .await
    }

    async fn queue_counts(&self, now: Timestamp) -> StoreResult<Vec<QueueCounts>> {
        self.readers
            .read(move |conn| {
                let mut statement = conn.prepare_cached(queries::MONITOR_QUEUE_COUNTS.sql)?;
                rows::all(statement.query([now.as_micros()])?, queue_counts)
            })
            .await
    }
}
