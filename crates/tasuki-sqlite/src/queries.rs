//! Every statement of the store: its `.sql` file under `queries/`, and the
//! columns the code reads from it, in order. [`check_queries`] prepares each
//! against the migrated schema and checks those columns, and that every file
//! is listed, so a statement that no longer fits the schema fails CI. An
//! application that keeps its own statements beside the queue's lists them
//! with [`queries!`](crate::queries) and checks them the same way.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::Connection;

use crate::rows::JOB;
use crate::schedules::SCHEDULE;

/// A statement in a `.sql` file, and the columns the code reads from it, in
/// order; none for a statement that returns none.
#[derive(Debug)]
pub struct Query {
    pub path: &'static str,
    pub sql: &'static str,
    pub columns: &'static [&'static str],
}

/// Declares statements kept in `.sql` files under the folder `dir` of the
/// calling crate, `NAME = "path.sql" => columns;` each, and `ALL`, every one
/// of them, for [`check_queries`] in the crate's tests.
#[macro_export]
macro_rules! queries {
    (dir = $dir:literal; $($name:ident = $path:literal => $columns:expr;)*) => {
        $(pub(crate) const $name: $crate::Query = $crate::Query {
            path: $path,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $dir, "/", $path)),
            columns: $columns,
        };)*
        /// All of them, for the check.
        #[cfg(test)]
        pub(crate) const ALL: &[$crate::Query] = &[$($name),*];
    };
}

/// Prepares every statement of `all` on `conn`, whose schema is migrated,
/// and checks the columns it returns; then checks that every `.sql` file
/// under `dir` is one of them. Says what is wrong.
pub fn check_queries(conn: &Connection, all: &[Query], dir: &Path) -> Result<(), String> {
    for query in all {
        let statement = conn
            .prepare(query.sql)
            .map_err(|e| format!("{} does not prepare: {e}", query.path))?;
        if statement.column_names() != query.columns {
            return Err(format!(
                "{}: it returns the columns {:?}, the code reads {:?}",
                query.path,
                statement.column_names(),
                query.columns
            ));
        }
    }
    let mut files = BTreeSet::new();
    sql_files(dir, dir, &mut files).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let listed: BTreeSet<String> = all.iter().map(|q| q.path.to_owned()).collect();
    if listed.len() != all.len() {
        return Err("a file is listed twice".into());
    }
    if files != listed {
        return Err(format!(
            "the files under {} and the statements listed differ: files {files:?}, listed {listed:?}",
            dir.display()
        ));
    }
    Ok(())
}

fn sql_files(dir: &Path, under: &Path, found: &mut BTreeSet<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sql_files(&path, under, found)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            let relative = path.strip_prefix(under).unwrap_or(&path);
            found.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

crate::queries! {
    dir = "queries";
    JOB_INSERT = "job/insert.sql" => JOB;
    JOB_INSERT_MANY = "job/insert_many.sql" => &[];
    JOB_UNIQUE_HOLDER = "job/unique_holder.sql" => JOB;
    JOB_READY_QUEUES = "job/ready_queues.sql" => &["queue"];
    JOB_BANDS = "job/bands.sql" => &["priority"];
    JOB_CLAIM_BAND = "job/claim_band.sql" => JOB;
    JOB_CANDIDATES = "job/candidates.sql" => &["scheduled_at", "id"];
    JOB_CLAIM_IDS = "job/claim_ids.sql" => JOB;
    JOB_COMPLETE_MANY = "job/complete_many.sql" => &["id"];
    JOB_HELD = "job/held.sql" => &["id"];
    JOB_FAIL_MANY = "job/fail_many.sql" => &["id"];
    JOB_RELEASE_MANY = "job/release_many.sql" => &["id"];
    JOB_HEARTBEAT = "job/heartbeat.sql" => &[];
    JOB_RESCUE_EXPIRED = "job/rescue_expired.sql" => &["id"];
    JOB_PRUNE = "job/prune.sql" => &[];
    JOB_RETRY = "job/retry.sql" => JOB;
    JOB_CANCEL = "job/cancel.sql" => JOB;
    JOB_DELETE_MANY = "job/delete_many.sql" => &["id"];
    JOB_GET = "job/get.sql" => JOB;
    JOB_LIST = "job/list.sql" => JOB;
    JOB_LIST_NEWEST = "job/list_newest.sql" => JOB;
    JOB_MAX_ID = "job/max_id.sql" => &["max_id"];
    JOB_STATS = "job/stats.sql" => &["job_type", "status", "count"];
    JOB_OLDEST_READY = "job/oldest_ready.sql" => &["oldest"];
    JOB_NEXT_SCHEDULED = "job/next_scheduled.sql" => &["next"];
    JOB_NEXT_SCHEDULED_QUEUE = "job/next_scheduled_queue.sql" => &["next"];
    QUEUE_HELD_BACK = "queue/held_back.sql" =>
        &["name", "paused", "concurrency", "rate_limit", "rate_period"];
    QUEUE_RUNNING = "queue/running.sql" => &["running"];
    QUEUE_STARTED = "queue/started.sql" => &["started"];
    QUEUE_START = "queue/start.sql" => &[];
    QUEUE_FORGET_STARTS = "queue/forget_starts.sql" => &[];
    QUEUE_UPDATE = "queue/update.sql" => &[];
    QUEUE_LIST = "queue/list.sql" =>
        &["name", "paused", "concurrency", "rate_limit", "rate_period", "waiting", "running"];
    MONITOR_WORKER_BEAT = "monitor/worker_beat.sql" => &[];
    MONITOR_WORKER_FORGET = "monitor/worker_forget.sql" => &[];
    MONITOR_WORKER_GONE = "monitor/worker_gone.sql" => &[];
    MONITOR_WORKER_LIST = "monitor/worker_list.sql" =>
        &["id", "host", "pid", "queues", "slots", "running", "started_at", "heartbeat_at"];
    MONITOR_ROLLUP_ADD = "monitor/rollup_add.sql" => &[];
    MONITOR_ROLLUP_SINCE = "monitor/rollup_since.sql" =>
        &["minute", "metric", "bucket", "count"];
    MONITOR_ROLLUP_PRUNE = "monitor/rollup_prune.sql" => &[];
    MONITOR_QUEUE_COUNTS = "monitor/queue_counts.sql" =>
        &["queue", "waiting", "scheduled", "running", "failed", "cancelled", "oldest_due"];
    LEADER_ACQUIRE = "leader/acquire.sql" => &["owner"];
    LEADER_RELEASE = "leader/release.sql" => &[];
    SCHEDULE_UPSERT = "schedule/upsert.sql" => &[];
    SCHEDULE_DELETE_OTHERS = "schedule/delete_others.sql" => &[];
    SCHEDULE_LIST = "schedule/list.sql" => SCHEDULE;
    SCHEDULE_RECENT_JOBS = "schedule/recent_jobs.sql" => &["schedule", "job_id"];
    SCHEDULE_ADVANCE = "schedule/advance.sql" => &["name"];
    SCHEDULE_LINK = "schedule/link.sql" => &[];
    SCHEDULE_PAUSE = "schedule/pause.sql" => &["name"];
    SCHEDULE_RESUME = "schedule/resume.sql" => &["name"];
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn every_statement_prepares_against_the_schema_and_every_file_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("schema.db")).unwrap();
        crate::migrate::run(&conn, &crate::migrate::QUEUE).unwrap();
        let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
        super::check_queries(&conn, super::ALL, &queries).unwrap();
    }
}
