//! The conformance suite: the behaviour every store backend must show, and
//! the fresh test databases ([`fresh`], [`engine_tests!`]) that the other
//! crates' tests run on, on each engine.
//!
//! [`conformance_tests!`] makes each check below one test per engine. Time
//! is always passed in, never read, so every check pins it.

mod claim;
mod engines;
mod lifecycle;
mod manage;
mod monitor;
mod queues;
mod schedules;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tasuki_core::{ClaimParams, Job, JobId, NewJob, Store, Timestamp};

pub use claim::*;
pub use engines::{Backend, Engine, TestDb, fresh, postgres_available};
pub use lifecycle::*;
pub use manage::*;
pub use monitor::*;
pub use queues::*;
pub use schedules::*;
pub use writes::*;

/// Expands to one `#[tokio::test]` per check, each on a fresh database of `$engine`.
#[macro_export]
macro_rules! conformance_tests {
    ($engine:expr) => {
        $crate::conformance_tests!(@each $engine;
            claim_is_exclusive_under_concurrency,
            claim_orders_by_priority_then_schedule_then_id,
            claim_respects_schedule_and_limit,
            lease_expiry_and_rescue,
            rescue_without_retries_left_fails,
            fencing_rejects_stale_attempts,
            heartbeat_extends_only_live_leases_of_owner,
            release_spends_no_retry,
            failure_with_retry_and_without,
            retry_of_failed_job,
            cancel_pending_and_scheduled_only,
            get_and_list_with_filters_and_cursor,
            stats_by_status_and_type,
            prune_deletes_old_finished_jobs_only,
            bulk_insert_hundred_thousand,
            leader_lease_is_exclusive_until_expiry,
            next_scheduled_at_tracks_the_ready_set,
            jobs_are_claimed_from_their_queue,
            a_paused_queue_starts_nothing_until_resumed,
            queue_changes_keep_the_other_settings,
            a_unique_key_admits_one_job,
            a_bulk_enqueue_answers_per_unique_job,
            a_retry_never_makes_a_second_live_unique_job,
            workers_report_and_go,
            rollup_counts_add_up_and_age_out,
            queue_counts_come_by_state,
            delete_many_leaves_running_jobs,
            each_attempt_names_its_worker
        );
        $crate::conformance_tests!(@each_db $engine;
            writes_commit_with_the_completion,
            writes_of_a_lost_lease_do_not_commit,
            failing_writes_roll_back_alone,
            a_concurrency_limit_holds_across_processes,
            a_rate_limit_holds_in_every_window,
            schedule_slots_fire_once_across_processes,
            schedule_missed_slot_policies,
            schedule_pause_and_resume,
            schedule_sync_updates_and_deletes
        );
    };
    (@each $engine:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(db) = $crate::fresh($engine).await {
                    $crate::$check(db.store.clone()).await;
                }
            }
        )*
    };
    (@each_db $engine:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                if let Some(db) = $crate::fresh($engine).await {
                    $crate::$check(&db).await;
                }
            }
        )*
    };
}

/// The pinned start of every check: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_micros(1_767_225_600_000_000);

pub const LEASE: Duration = Duration::from_secs(30);

pub(crate) fn at(offset: Duration) -> Timestamp {
    T0.saturating_add(offset)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(crate) fn noop(now: Timestamp) -> NewJob {
    NewJob::new("noop", json!({}), now)
}

pub(crate) async fn claim(
    store: &Arc<dyn Store>,
    owner: &str,
    limit: u32,
    now: Timestamp,
) -> Vec<Job> {
    store
        .job_claim(ClaimParams {
            owner,
            queue: None,
            limit,
            now,
            lease_expires_at: now.saturating_add(LEASE),
        })
        .await
        .expect("claim")
}

pub(crate) fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

/// The ids of a bulk enqueue, in order.
pub(crate) async fn insert_ids(store: &Arc<dyn Store>, jobs: Vec<NewJob>) -> Vec<JobId> {
    let inserted = store.job_insert_many(jobs).await.expect("insert");
    inserted.into_iter().map(|i| i.id).collect()
}
