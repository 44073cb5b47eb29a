//! The driverless ceiling: tasuki's own claim and complete statements run
//! through SQLite's C API on one thread, with no async driver, no worker and
//! no handler around them. Every other SQLite number can be read against it:
//! it is what SQLite itself does with these statements on this machine.

use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::ensure;
use tasuki_core::Timestamp;

// The store's statements, byte for byte: a claim of every queue lists the
// queues with ready jobs and their priority bands, then claims the one band
// it finds (all jobs here are in `default`, at one priority).
const READY_QUEUES: &str = include_str!("../../tasuki-sqlite/queries/job/ready_queues.sql");
const BANDS: &str = include_str!("../../tasuki-sqlite/queries/job/bands.sql");
const CLAIM: &str = include_str!("../../tasuki-sqlite/queries/job/claim_band.sql");
const COMPLETE: &str = include_str!("../../tasuki-sqlite/queries/job/complete_many.sql");

/// Claims `batch` jobs at a time and completes them until none is left, on a
/// database that the store has migrated and filled with `n` ready jobs.
/// Claims and completions commit with `synchronous=NORMAL`, as the store's
/// bookkeeping does at either durability. Returns jobs per second.
pub(crate) fn ceiling(path: &str, n: usize, batch: usize) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    let mut ready_queues = conn.prepare(READY_QUEUES)?;
    let mut bands = conn.prepare(BANDS)?;
    let mut claim = conn.prepare(CLAIM)?;
    let mut complete = conn.prepare(COMPLETE)?;
    let mut attempts = String::new();
    let started = Instant::now();
    let mut done = 0;
    loop {
        let now = Timestamp::now();
        let lease = now.saturating_add(Duration::from_secs(30)).as_micros();
        let Some(queue) = ready_queues
            .query_map([], |row| row.get::<_, String>(0))?
            .next()
            .transpose()?
        else {
            break;
        };
        let Some(priority) = bands
            .query_map([&queue], |row| row.get::<_, i64>(0))?
            .next()
            .transpose()?
        else {
            break;
        };
        let now = now.as_micros();
        let mut rows = claim.query(("ceiling", lease, now, batch as i64, queue, priority))?;
        attempts.clear();
        attempts.push('{');
        while let Some(row) = rows.next()? {
            // Every column is read, as a driver would before handing it on.
            for i in 0..row.as_ref().column_count() {
                row.get_ref(i)?;
            }
            let (id, attempt): (i64, i64) = (row.get("id")?, row.get("attempt")?);
            if attempts.len() > 1 {
                attempts.push(',');
            }
            write!(attempts, "\"{id}\":{attempt}")?;
        }
        drop(rows);
        if attempts.len() == 1 {
            break;
        }
        attempts.push('}');
        let now = Timestamp::now().as_micros();
        let mut completed = complete.query((now, attempts.as_str(), "{}"))?;
        while completed.next()?.is_some() {
            done += 1;
        }
    }
    ensure!(done == n, "completed {done} of {n}");
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use tasuki_core::{JobStatus, JobStore, NewJob, Timestamp};
    use tasuki_sqlite::{SqliteConfig, SqliteStore};

    #[tokio::test]
    async fn completes_every_job_the_store_enqueued_and_the_store_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.db").display().to_string();
        let config = SqliteConfig::new(&path);
        let now = Timestamp::now();
        let jobs = (0..100)
            .map(|_| NewJob::new("noop", serde_json::json!({}), now))
            .collect();
        let store = SqliteStore::open(&config).await.unwrap();
        store.job_insert_many(jobs).await.unwrap();
        drop(store);

        // Batches of 16 leave a partial last one; it fails unless it
        // completed all 100 itself.
        super::ceiling(&path, 100, 16).unwrap();

        let store = SqliteStore::open(&config).await.unwrap();
        let stats = store.job_stats(Timestamp::now()).await.unwrap();
        assert_eq!(stats.by_status[&JobStatus::Completed], 100);
        assert_eq!(stats.by_status[&JobStatus::Processing], 0);
    }
}
