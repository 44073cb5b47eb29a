//! Three worker processes fire schedules on one database, with a pinned
//! clock (`TASUKI_TEST_NOW`), on each engine: every slot's job exists once,
//! after each missed-slot policy, across a SIGKILL (one process killed as it
//! starts firing) and restarts.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use tasuki_core::Timestamp;

use crate::helpers::{Db, Pool, Worker, merge, wait_all};

const SCHEDULES: &str = r#"
[schedules.catch_up]
cron = "* * * * *"
job_type = "probe"
missed = "catch_up"
max_catch_up = 50

[schedules.coalesce]
cron = "*/10 * * * *"
job_type = "probe"

[schedules.skip_hourly]
cron = "0 * * * *"
job_type = "probe"
missed = "skip"

[schedules.skip_minutely]
cron = "* * * * *"
job_type = "probe"
missed = "skip"
"#;

/// The schedules start here (`tasuki migrate` syncs them).
const T0: &str = "2026-01-01T00:00:30Z";
/// 70 minutes of slots missed: catch_up fires its newest 50, coalesce one at
/// 01:10, skip_hourly none (01:00 is 10 minutes late), skip_minutely 01:10.
const T1: &str = "2026-01-01T01:10:00Z";
/// Ten more minutes: catch_up 10, coalesce 01:20, skip_minutely none (01:20
/// is 45 s late, past the grace).
const T2: &str = "2026-01-01T01:20:45Z";

fn minute(m: u32) -> String {
    format!("2026-01-01T{:02}:{:02}:00Z", m / 60, m % 60)
}

/// The slots each schedule fired by T1, or by T2 too.
fn expected(through_t2: bool) -> BTreeMap<String, Vec<String>> {
    let mut catch_up: Vec<String> = (21..=70).map(minute).collect();
    let mut coalesce = vec![minute(70)];
    if through_t2 {
        catch_up.extend((71..=80).map(minute));
        coalesce.push(minute(80));
    }
    BTreeMap::from([
        ("catch_up".to_owned(), catch_up),
        ("coalesce".to_owned(), coalesce),
        ("skip_minutely".to_owned(), vec![minute(70)]),
    ])
}

/// Every schedule's slots that enqueued a job, in order, from the links.
async fn fired(db: &Db) -> BTreeMap<String, Vec<String>> {
    let links: Vec<(String, i64)> = match db.any_pool().await {
        Pool::Sqlite(conn) => conn
            .prepare("SELECT schedule, slot FROM schedule_jobs")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap(),
        Pool::Postgres(pool) => sqlx::query_as(
            "SELECT schedule, (extract(epoch FROM slot) * 1000000)::bigint FROM schedule_jobs",
        )
        .fetch_all(&pool)
        .await
        .unwrap(),
    };
    let mut fired: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (schedule, slot) in links {
        let slot = Timestamp::from_micros(slot).to_string();
        fired.entry(schedule).or_default().push(slot);
    }
    fired.values_mut().for_each(|slots| slots.sort());
    fired
}

fn worker(db: &Db, file: &str, now: &str) -> Worker {
    Worker::spawn(
        db,
        &[("SCHEDULES_FILE", file), ("TASUKI_TEST_NOW", now)],
        &[],
    )
}

/// Waits until each process has started (and so listens for SIGTERM).
fn started(workers: &[Worker]) {
    for worker in workers {
        worker.wait_for("worker started", 1, Duration::from_secs(30));
    }
}

/// Stops started processes with SIGTERM; each must exit cleanly.
fn stop(workers: Vec<Worker>) {
    for worker in &workers {
        worker.signal("-TERM");
    }
    for status in wait_all(workers, Duration::from_secs(60)) {
        assert_eq!(status.code(), Some(0));
    }
}

/// Waits until the database holds `count` linked jobs, looking again at
/// each line the processes log (a fire logs one), failing after the deadline.
async fn wait_for_jobs(db: &Db, count: i64, logs: &mpsc::Receiver<(usize, Value)>) {
    let pool = db.any_pool().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let linked = pool.count("SELECT count(*) FROM schedule_jobs").await;
        if linked == count {
            return;
        }
        assert!(linked < count, "{linked} jobs linked, {count} expected");
        let left = deadline.saturating_duration_since(Instant::now());
        match logs.recv_timeout(left) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{linked} jobs linked after the deadline, {count} expected")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the processes exited with {linked} jobs linked, {count} expected")
            }
        }
    }
}

/// Checks that each slot's job exists once: the slots linked, one job each,
/// and no job that is not a slot's.
async fn check(db: &Db, through_t2: bool) {
    assert_eq!(fired(db).await, expected(through_t2));
    let pool = db.any_pool().await;
    let linked = pool
        .count("SELECT count(DISTINCT l.job_id) FROM schedule_jobs l JOIN job_queue j ON j.id = l.job_id")
        .await;
    let total = expected(through_t2).values().map(Vec::len).sum::<usize>() as i64;
    assert_eq!(linked, total, "one job per slot");
    assert_eq!(pool.count("SELECT count(*) FROM job_queue").await, total);
}

async fn every_slot_fires_once_across_processes(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schedules.toml");
    std::fs::write(&file, SCHEDULES).unwrap();
    let file = file.to_str().unwrap();
    let synced = db
        .command()
        .arg("migrate")
        .envs([("SCHEDULES_FILE", file), ("TASUKI_TEST_NOW", T0)])
        .output()
        .unwrap();
    assert!(synced.status.success(), "{synced:?}");

    // Three processes at T1; one is SIGKILLed once its slots are in, the
    // others stop.
    let mut first: Vec<Worker> = (0..3).map(|_| worker(&db, file, T1)).collect();
    started(&first);
    let logs = merge(&mut first);
    wait_for_jobs(&db, 52, &logs).await;
    first[0].child.kill().unwrap();
    first[0].child.wait().unwrap();
    stop(first.split_off(1));
    check(&db, false).await;

    // Three at T2; one is SIGKILLed as it starts, perhaps mid-fire, and
    // restarted.
    let mut second: Vec<Worker> = (0..3).map(|_| worker(&db, file, T2)).collect();
    started(&second[..1]);
    second[0].child.kill().unwrap();
    second[0].child.wait().unwrap();
    started(&second[1..]);
    let logs = merge(&mut second[1..]);
    wait_for_jobs(&db, 63, &logs).await;
    second[0] = worker(&db, file, T2);
    started(&second[..1]);
    stop(second);
    check(&db, true).await;
    let list = db.json(&["schedules", "list", "--json"]);
    let skip_hourly = &list[2];
    assert_eq!(skip_hourly["name"], "skip_hourly");
    assert_eq!(skip_hourly["last_slot"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_fires_once_across_processes_on_sqlite() {
    every_slot_fires_once_across_processes(Db::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_fires_once_across_processes_on_postgres() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    every_slot_fires_once_across_processes(db).await;
}
