//! A job's writes committed with its completion, on each engine. The writes
//! may enqueue a job, then go to a table of the test's own, `effects`, as an
//! application's would, with the id that the enqueue answered.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::json;
use tasuki_core::{
    Completion, Job, JobCheck, JobFilter, JobStatus, NewJob, Store, StoreError, Writes,
};
use tasuki_sqlite::Commit;

use crate::{Backend, LEASE, T0, TestDb, at, claim, ids, noop, secs};

/// Creates the test's own table: `effects (job_id, follow_up)`, unique by
/// job.
pub async fn create_effects(backend: &Backend) {
    const TABLE: &str = "CREATE TABLE effects (job_id bigint PRIMARY KEY, follow_up bigint)";
    match backend {
        Backend::Sqlite(store) => store
            .write(Commit::Acknowledged, |tx| {
                Ok(tx.conn().execute_batch(TABLE)?)
            })
            .await
            .unwrap(),
        Backend::Postgres(store) => {
            sqlx::query(TABLE).execute(store.pool()).await.unwrap();
        }
    }
}

/// A job's writes: `follow_up` enqueued when given, then a row in
/// `effects` that holds its id. A row that breaks the key fails the writes
/// after the enqueue.
pub fn effect(backend: &Backend, job_id: i64, follow_up: Option<NewJob>) -> Writes {
    match backend {
        Backend::Sqlite(_) => tasuki_sqlite::writes(move |tx| {
            let enqueued = match &follow_up {
                Some(job) => Some(tx.enqueue(job.clone())?.0),
                None => None,
            };
            tx.conn().execute(
                "INSERT INTO effects (job_id, follow_up) VALUES (?1, ?2)",
                (job_id, enqueued),
            )?;
            Ok(())
        }),
        Backend::Postgres(_) => tasuki_postgres::writes(move |tx| {
            let follow_up = follow_up.clone();
            Box::pin(async move {
                let enqueued = match follow_up {
                    Some(job) => Some(tx.enqueue(job).await?.0),
                    None => None,
                };
                sqlx::query("INSERT INTO effects (job_id, follow_up) VALUES ($1, $2)")
                    .bind(job_id)
                    .bind(enqueued)
                    .execute(tx.conn())
                    .await?;
                Ok(())
            })
        }),
    }
}

/// The rows of `effects`, in order: each job's id, and the id its enqueue
/// answered.
pub async fn effects(backend: &Backend) -> Vec<(i64, Option<i64>)> {
    const SELECT: &str = "SELECT job_id, follow_up FROM effects ORDER BY job_id";
    match backend {
        Backend::Sqlite(store) => store
            .read(|conn| {
                let mut statement = conn.prepare(SELECT)?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap(),
        Backend::Postgres(store) => sqlx::query_as(SELECT)
            .fetch_all(store.pool())
            .await
            .unwrap(),
    }
}

fn completing(job: &Job, writes: Writes) -> Completion {
    Completion {
        id: job.id,
        attempt: job.attempt,
        result: Some(json!({"done": true})),
        writes: Some(writes),
    }
}

async fn jobs_of_type(store: &Arc<dyn Store>, job_type: &str) -> Vec<Job> {
    let filter = JobFilter {
        job_type: Some(job_type.into()),
        limit: 100,
        ..Default::default()
    };
    store.job_list(filter).await.unwrap().items
}

fn follow_up() -> NewJob {
    NewJob::new("follow_up", json!({}), at(secs(5))).priority(2)
}

/// A job's writes commit in the transaction that completes it: its row and
/// the job it enqueues appear with the completion.
pub async fn writes_commit_with_the_completion(db: &TestDb) {
    create_effects(&db.backend).await;
    let store = &db.store;
    let id = store.job_insert(noop(T0)).await.unwrap().job.id;
    let job = claim(store, "w", 1, T0).await.remove(0);
    let writes = effect(&db.backend, id.0, Some(follow_up()));
    let completed = store
        .job_complete_many(at(secs(5)), vec![completing(&job, writes)])
        .await
        .unwrap();
    assert_eq!(completed.ids, [id]);
    assert!(completed.failed_writes.is_empty());

    let done = store.job_get(id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.result, Some(json!({"done": true})));
    let follow_ups = jobs_of_type(store, "follow_up").await;
    assert_eq!(follow_ups.len(), 1);
    assert_eq!(
        effects(&db.backend).await,
        [(id.0, Some(follow_ups[0].id.0))]
    );
    assert_eq!(
        (follow_ups[0].status, follow_ups[0].priority),
        (JobStatus::Pending, 2)
    );
}

/// An attempt whose lease was lost writes nothing: neither its completion
/// nor its writes commit, and the attempt that took over does both.
pub async fn writes_of_a_lost_lease_do_not_commit(db: &TestDb) {
    create_effects(&db.backend).await;
    let store = &db.store;
    let id = store.job_insert(noop(T0)).await.unwrap().job.id;
    let first = claim(store, "slow", 1, T0).await.remove(0);
    store.job_rescue_expired(at(LEASE), 10).await.unwrap();
    let second = claim(store, "fast", 1, at(LEASE)).await.remove(0);
    assert_eq!((second.id, second.attempt), (id, first.attempt + 1));

    let late = effect(&db.backend, id.0, Some(follow_up()));
    let completed = store
        .job_complete_many(at(LEASE + secs(1)), vec![completing(&first, late)])
        .await
        .unwrap();
    assert!(completed.ids.is_empty() && completed.failed_writes.is_empty());
    assert!(effects(&db.backend).await.is_empty());
    assert!(jobs_of_type(store, "follow_up").await.is_empty());

    let current = effect(&db.backend, id.0, Some(follow_up()));
    let completed = store
        .job_complete_many(at(LEASE + secs(2)), vec![completing(&second, current)])
        .await
        .unwrap();
    assert_eq!(completed.ids, [id]);
    let follow_ups = jobs_of_type(store, "follow_up").await;
    assert_eq!(follow_ups.len(), 1);
    assert_eq!(
        effects(&db.backend).await,
        [(id.0, Some(follow_ups[0].id.0))]
    );
}

/// Refuses one job type, as a registry refuses a payload.
struct Refuse(&'static str);

impl JobCheck for Refuse {
    fn check(&self, job: &mut NewJob) -> Result<(), String> {
        if job.job_type == self.0 {
            Err(format!("`{}` is refused", self.0))
        } else {
            Ok(())
        }
    }
}

/// Completions of one batch commit together, and writes that fail roll back
/// alone: one whose row breaks a unique key after it enqueued a job, one
/// whose follow-up job its check refuses, and one whose follow-up job the
/// database refuses, leave nothing and are reported; the others commit.
pub async fn failing_writes_roll_back_alone(db: &TestDb) {
    create_effects(&db.backend).await;
    let store = &db.store;
    for _ in 0..5 {
        store.job_insert(noop(T0)).await.unwrap();
    }
    let jobs = claim(store, "w", 5, T0).await;
    let (kept, duplicate, refused, plain, bad) = (&jobs[0], &jobs[1], &jobs[2], &jobs[3], &jobs[4]);
    let batch = vec![
        completing(kept, effect(&db.backend, kept.id.0, Some(follow_up()))),
        // The same row as `kept`'s: the unique key refuses it.
        completing(duplicate, effect(&db.backend, kept.id.0, Some(follow_up()))),
        completing(
            refused,
            effect(&db.backend, refused.id.0, Some(follow_up()))
                .checked_by(Arc::new(Refuse("follow_up"))),
        ),
        Completion {
            id: plain.id,
            attempt: plain.attempt,
            result: None,
            writes: None,
        },
        // A negative retry count breaks the table's check.
        completing(
            bad,
            effect(&db.backend, bad.id.0, Some(follow_up().max_retries(-1))),
        ),
    ];
    let completed = store.job_complete_many(at(secs(5)), batch).await.unwrap();
    assert_eq!(completed.ids, [kept.id, plain.id]);
    let failed = &completed.failed_writes;
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed.iter().any(|(id, _)| *id == bad.id));
    assert!(
        failed
            .iter()
            .any(|(id, e)| *id == duplicate.id && matches!(e, StoreError::Duplicate(_)))
    );
    assert!(
        failed
            .iter()
            .any(|(id, e)| *id == refused.id && matches!(e, StoreError::Rejected(_)))
    );
    for job in [duplicate, refused, bad] {
        assert_eq!(
            store.job_get(job.id).await.unwrap().status,
            JobStatus::Processing
        );
    }
    let follow_ups = jobs_of_type(store, "follow_up").await;
    assert_eq!(follow_ups.len(), 1);
    assert_eq!(
        effects(&db.backend).await,
        [(kept.id.0, Some(follow_ups[0].id.0))]
    );
}

/// How many items each call of [`Effects`] wrote, for the check below.
static EFFECTS_CALLS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// [`effect`] as a set, on PostgreSQL: every job's row in one insert.
struct Effects;

impl tasuki_postgres::WriteSet for Effects {
    /// The job's id, and the job it enqueues.
    type Item = (i64, Option<NewJob>);

    fn write<'t, 'c>(
        tx: &'t mut tasuki_postgres::Tx<'c>,
        items: Vec<&'t (i64, Option<NewJob>)>,
    ) -> BoxFuture<'t, Result<(), tasuki_postgres::Error>> {
        EFFECTS_CALLS.lock().unwrap().push(items.len());
        Box::pin(async move {
            let (mut job_ids, mut follow_ups) = (Vec::new(), Vec::new());
            for (job_id, follow_up) in items {
                job_ids.push(*job_id);
                follow_ups.push(match follow_up {
                    Some(job) => Some(tx.enqueue(job.clone()).await?.0),
                    None => None,
                });
            }
            sqlx::query("INSERT INTO effects SELECT * FROM unnest($1::int8[], $2::int8[])")
                .bind(&job_ids)
                .bind(&follow_ups)
                .execute(tx.conn())
                .await?;
            Ok(())
        })
    }
}

/// Takes the calls of [`Effects`] made since the last take.
fn effects_calls() -> Vec<usize> {
    std::mem::take(&mut *EFFECTS_CALLS.lock().unwrap())
}

/// PostgreSQL's set writes: the items of a batch's jobs go to one call,
/// beside a job's own writes, and without the item of an attempt whose
/// lease was lost. When the call fails, each item runs alone, and the one
/// that fails rolls back alone. Items whose enqueues are checked otherwise
/// go to calls of their own.
pub async fn set_writes_run_together_and_fail_alone(db: &TestDb) {
    assert!(
        matches!(db.backend, Backend::Postgres(_)),
        "set writes are PostgreSQL's"
    );
    create_effects(&db.backend).await;
    let store = &db.store;
    for _ in 0..8 {
        store.job_insert(noop(T0)).await.unwrap();
    }
    let jobs = claim(store, "w", 8, T0).await;
    let set = |job: &Job, row: i64, follow_up: Option<NewJob>| {
        completing(
            job,
            tasuki_postgres::set_writes::<Effects>((row, follow_up)),
        )
    };
    let stale = Completion {
        attempt: jobs[4].attempt - 1,
        ..set(&jobs[4], jobs[4].id.0, None)
    };
    let first = vec![
        set(&jobs[0], jobs[0].id.0, Some(follow_up())),
        completing(&jobs[1], effect(&db.backend, jobs[1].id.0, None)),
        stale,
        set(&jobs[2], jobs[2].id.0, None),
        set(&jobs[3], jobs[3].id.0, Some(follow_up())),
    ];
    effects_calls();
    let completed = store.job_complete_many(at(secs(5)), first).await.unwrap();
    assert_eq!(completed.ids, ids(&jobs[..4]));
    assert!(completed.failed_writes.is_empty());
    assert_eq!(effects_calls(), [3], "one call for the three held items");

    // jobs[5] writes jobs[0]'s row again, which the key refuses.
    let second = vec![
        set(&jobs[4], jobs[4].id.0, None),
        set(&jobs[5], jobs[0].id.0, Some(follow_up())),
    ];
    let completed = store.job_complete_many(at(secs(6)), second).await.unwrap();
    assert_eq!(completed.ids, [jobs[4].id]);
    assert!(
        matches!(completed.failed_writes.as_slice(), [(id, StoreError::Duplicate(_))] if *id == jobs[5].id),
        "{:?}",
        completed.failed_writes
    );
    assert_eq!(effects_calls(), [2, 1, 1], "together, then each alone");
    assert_eq!(
        store.job_get(jobs[5].id).await.unwrap().status,
        JobStatus::Processing
    );

    let checked = completing(
        &jobs[7],
        tasuki_postgres::set_writes::<Effects>((jobs[7].id.0, None))
            .checked_by(Arc::new(Refuse("nothing"))),
    );
    let third = vec![set(&jobs[6], jobs[6].id.0, None), checked];
    let completed = store.job_complete_many(at(secs(7)), third).await.unwrap();
    assert_eq!(completed.ids, ids(&jobs[6..]));
    assert_eq!(effects_calls(), [1, 1], "checked otherwise, apart");

    let mut follow_ups: Vec<i64> = jobs_of_type(store, "follow_up")
        .await
        .iter()
        .map(|job| job.id.0)
        .collect();
    follow_ups.sort_unstable();
    let rows = effects(&db.backend).await;
    assert_eq!(
        rows.iter().map(|(job, _)| *job).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 6, 7].map(|i| jobs[i].id.0),
    );
    let mut enqueued: Vec<i64> = rows
        .iter()
        .filter_map(|(_, follow_up)| *follow_up)
        .collect();
    enqueued.sort_unstable();
    assert_eq!(
        enqueued, follow_ups,
        "the follow-ups of jobs[0] and jobs[3]"
    );
    assert_eq!(follow_ups.len(), 2);
}
