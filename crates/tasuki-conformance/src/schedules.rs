//! Schedules: every slot fires once however many processes fire at once,
//! each missed-slot policy, pause and resume, and definitions synced.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use tasuki_core::{
    JobFilter, Missed, Schedule, ScheduleQuery, ScheduleSpec, Store, StoreError, StoredSchedule,
    Timestamp, fire_due,
};

use crate::{T0, TestDb, at, secs};

/// A schedule whose jobs are of type `name`, so that they tell apart.
pub fn schedule(name: &str, cron: &str, missed: Missed, max_catch_up: Option<u32>) -> Schedule {
    let spec = ScheduleSpec {
        cron: cron.into(),
        timezone: "UTC".into(),
        job_type: name.into(),
        payload: json!({"from": name}),
        queue: None,
        missed,
        max_catch_up,
    };
    Schedule::new(name, spec).expect("a valid schedule")
}

async fn stored(store: &Arc<dyn Store>, name: &str) -> StoredSchedule {
    let query = ScheduleQuery {
        name: Some(name.into()),
        recent_jobs: 1_000,
    };
    store.schedule_list(query).await.unwrap().remove(0)
}

/// The `scheduled_at` of every job of each type, in id order.
async fn slots_by_type(store: &Arc<dyn Store>) -> BTreeMap<String, Vec<Timestamp>> {
    let filter = JobFilter {
        limit: 10_000,
        ..JobFilter::default()
    };
    let mut slots: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    for job in store.job_list(filter).await.unwrap().items {
        slots
            .entry(job.job_type)
            .or_default()
            .push(job.scheduled_at);
    }
    slots
}

fn minutes(from: u64, to: u64) -> Vec<Timestamp> {
    (from..=to).map(|m| at(secs(60 * m))).collect()
}

/// Three processes (store handles of their own) with two firers each fire
/// together after every step of a pinned clock: each slot has one job.
pub async fn schedule_slots_fire_once_across_processes(db: &TestDb) {
    let stores = [db.store.clone(), db.reopen().await, db.reopen().await];
    let schedules = [
        schedule("every_minute", "* * * * *", Missed::CatchUp, Some(1_000)),
        schedule("every_five", "*/5 * * * *", Missed::Coalesce, None),
    ];
    stores[0].schedule_sync(&schedules, T0).await.unwrap();
    let mut now = T0;
    for _ in 0..40 {
        // Steps of 37 s: some pass no slot, some one.
        now = now.saturating_add(secs(37));
        let mut firers = tokio::task::JoinSet::new();
        for store in stores.iter().chain(stores.iter()) {
            let store = store.clone();
            firers.spawn(async move { fire_due(&*store, now, None).await.unwrap() });
        }
        firers.join_all().await;
    }
    // 40 × 37 s = 24 min 40 s.
    let slots = slots_by_type(&db.store).await;
    assert_eq!(slots["every_minute"], minutes(1, 24));
    assert_eq!(
        slots["every_five"],
        [5, 10, 15, 20].map(|m| at(secs(60 * m)))
    );
    let every_minute = stored(&db.store, "every_minute").await;
    assert_eq!(
        every_minute.recent_jobs.len(),
        24,
        "each job is linked to its slot"
    );
    assert_eq!(every_minute.last_slot, Some(at(secs(24 * 60))));
    assert_eq!(every_minute.next_run(now), Some(at(secs(25 * 60))));
    let newest = stores[1]
        .schedule_list(ScheduleQuery {
            name: None,
            recent_jobs: 2,
        })
        .await
        .unwrap();
    assert_eq!(newest[0].schedule.name, "every_five");
    let ids = |s: &StoredSchedule| s.recent_jobs.clone();
    assert_eq!(
        ids(&newest[1]),
        every_minute.recent_jobs[..2],
        "newest first"
    );
}

/// After a gap: `skip` fires the newest slot only within its grace,
/// `coalesce` one job at the newest, `catch_up` the newest of its bound.
pub async fn schedule_missed_slot_policies(db: &TestDb) {
    let store = &db.store;
    let schedules = [
        schedule("skip", "0 * * * *", Missed::Skip, None),
        schedule("coalesce", "*/10 * * * *", Missed::Coalesce, None),
        schedule("catch_up", "* * * * *", Missed::CatchUp, Some(5)),
    ];
    store.schedule_sync(&schedules, T0).await.unwrap();
    let gap = at(secs(2 * 3600 + 20 * 60));
    fire_due(&**store, gap, None).await.unwrap();
    let slots = slots_by_type(store).await;
    assert!(!slots.contains_key("skip"), "02:00 was 20 minutes late");
    assert_eq!(slots["coalesce"], [at(secs(140 * 60))]);
    assert_eq!(slots["catch_up"], minutes(136, 140));
    let skipped = stored(store, "skip").await;
    assert_eq!((skipped.cursor, skipped.last_slot), (at(secs(7200)), None));

    // 03:00 is reached 10 s late: within the grace, it fires.
    fire_due(&**store, at(secs(3 * 3600 + 10)), None)
        .await
        .unwrap();
    assert_eq!(slots_by_type(store).await["skip"], [at(secs(3 * 3600))]);
}

/// A paused schedule fires nothing, even for a firer that read it before
/// the pause; resumed, it fires from then on, not the slots it slept through.
pub async fn schedule_pause_and_resume(db: &TestDb) {
    let store = &db.store;
    let every = schedule("every", "* * * * *", Missed::Coalesce, None);
    store.schedule_sync(&[every], T0).await.unwrap();
    let before = stored(store, "every").await.due(at(secs(300))).unwrap();
    store.schedule_pause("every").await.unwrap();
    assert_eq!(store.schedule_fire(before).await.unwrap(), None);
    fire_due(&**store, at(secs(600)), None).await.unwrap();
    let paused = stored(store, "every").await;
    assert!(paused.paused && paused.recent_jobs.is_empty());
    assert_eq!(paused.next_run(at(secs(600))), None);

    store.schedule_resume("every", at(secs(630))).await.unwrap();
    let fired = fire_due(&**store, at(secs(650)), None).await.unwrap();
    assert!(fired.jobs.is_empty(), "no slot of the pause fires");
    assert_eq!(fired.next, Some(at(secs(660))));
    fire_due(&**store, at(secs(660)), None).await.unwrap();
    assert_eq!(slots_by_type(store).await["every"], [at(secs(660))]);

    for missing in [
        store.schedule_pause("nope").await,
        store.schedule_resume("nope", T0).await,
    ] {
        assert!(matches!(missing, Err(StoreError::NotFound)));
    }
    let query = ScheduleQuery {
        name: Some("nope".into()),
        recent_jobs: 0,
    };
    assert!(matches!(
        store.schedule_list(query).await,
        Err(StoreError::NotFound)
    ));
}

/// Syncing again changes nothing; a changed definition gets a new revision
/// (so a firer holding the old one fires nothing); an undeclared one goes,
/// its jobs staying.
pub async fn schedule_sync_updates_and_deletes(db: &TestDb) {
    let store = &db.store;
    let first = schedule("s", "* * * * *", Missed::Coalesce, None);
    store
        .schedule_sync(std::slice::from_ref(&first), T0)
        .await
        .unwrap();
    store.schedule_sync(&[first], at(secs(30))).await.unwrap();
    let synced = stored(store, "s").await;
    assert_eq!((synced.revision, synced.cursor), (1, T0));

    let stale = synced.due(at(secs(120))).unwrap();
    let changed = schedule("s", "*/2 * * * *", Missed::Coalesce, None);
    store.schedule_sync(&[changed], at(secs(90))).await.unwrap();
    assert_eq!(store.schedule_fire(stale).await.unwrap(), None);
    let resynced = stored(store, "s").await;
    assert_eq!(resynced.revision, 2);
    assert_eq!(resynced.cursor, T0, "a change keeps the cursor");
    assert_eq!(resynced.schedule.spec.cron, "*/2 * * * *");
    fire_due(&**store, at(secs(120)), None).await.unwrap();
    assert_eq!(slots_by_type(store).await["s"], [at(secs(120))]);

    store.schedule_sync(&[], at(secs(150))).await.unwrap();
    let all = store.schedule_list(ScheduleQuery::default()).await.unwrap();
    assert!(all.is_empty());
    assert_eq!(slots_by_type(store).await["s"].len(), 1, "its job stays");
}
