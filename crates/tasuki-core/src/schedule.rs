//! Periodic jobs: a schedule's definition, its slots (the instants its cron
//! expression names in its time zone), and which of them fire after a gap,
//! by its missed-slot policy.
//!
//! Nothing here reads the clock or the database: the worker's scheduler
//! loop passes "now", and a store fires a slot with [`Fire`], one
//! conditional write that makes each slot fire once across every process.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{JobId, NewJob, Timestamp};

/// How late the newest slot may be for `skip` to fire it: later than this,
/// the slot was missed, not merely reached a little late.
pub const SKIP_GRACE: Duration = Duration::from_secs(30);

/// How many missed slots `catch_up` fires at most unless told otherwise: a
/// bound, so that a long outage of a frequent schedule cannot flood the
/// queue (River #1035).
pub const DEFAULT_MAX_CATCH_UP: u32 = 100;

/// The most slots `catch_up` may be told to fire after a gap.
pub const MAX_CATCH_UP: u32 = 10_000;

/// What to do with the slots that passed while nothing fired them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Fire only the newest slot, and only within [`SKIP_GRACE`] of it.
    Skip,
    /// One job for all the missed slots, at the newest.
    #[default]
    Coalesce,
    /// One job per missed slot, the newest `max_catch_up` of them.
    CatchUp,
}

/// A schedule as a schedules file declares it and the database keeps it
/// (as JSON text, compared whole to tell a changed definition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five fields (minute to weekday), or six with seconds first.
    pub cron: String,
    /// An IANA time zone, such as `Europe/Paris`.
    #[serde(default = "utc")]
    pub timezone: String,
    pub job_type: String,
    #[serde(default = "empty_object")]
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default)]
    pub missed: Missed,
    /// `catch_up` only; [`DEFAULT_MAX_CATCH_UP`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_catch_up: Option<u32>,
}

fn utc() -> String {
    "UTC".to_owned()
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Why a schedule's definition was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("the name `{0}` is not 1 to 100 letters, digits, `-`, `_` or `.`")]
    Name(String),
    #[error("`{cron}` is not a cron expression: {reason}")]
    Cron { cron: String, reason: String },
    #[error("unknown time zone `{0}` (give an IANA name such as Europe/Paris, or UTC)")]
    TimeZone(String),
    #[error("max_catch_up is for missed = \"catch_up\" only")]
    MaxCatchUpWithoutCatchUp,
    #[error("max_catch_up must be from 1 to {MAX_CATCH_UP}")]
    MaxCatchUpRange,
    #[error("the queue `{0}` is not 1 to 100 letters, digits, `-`, `_` or `.`")]
    Queue(String),
}

/// A named schedule whose cron expression and time zone are known good.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub spec: ScheduleSpec,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Checks a definition: its name, cron expression, time zone and bound.
    /// (Its job type and payload are the registry's to check.)
    pub fn new(name: impl Into<String>, spec: ScheduleSpec) -> Result<Self, DefinitionError> {
        let name = name.into();
        // The rule of queue names: it reads the same in a URL and a log.
        if !crate::is_queue_name(&name) {
            return Err(DefinitionError::Name(name));
        }
        let cron: Cron =
            spec.cron
                .parse()
                .map_err(|e: croner::errors::CronError| DefinitionError::Cron {
                    cron: spec.cron.clone(),
                    reason: e.to_string(),
                })?;
        if let Some(queue) = spec.queue.as_ref().filter(|q| !crate::is_queue_name(q)) {
            return Err(DefinitionError::Queue(queue.clone()));
        }
        let tz: Tz = spec
            .timezone
            .parse()
            .map_err(|_| DefinitionError::TimeZone(spec.timezone.clone()))?;
        match (spec.missed, spec.max_catch_up) {
            (Missed::CatchUp, Some(max)) if !(1..=MAX_CATCH_UP).contains(&max) => {
                return Err(DefinitionError::MaxCatchUpRange);
            }
            (Missed::Skip | Missed::Coalesce, Some(_)) => {
                return Err(DefinitionError::MaxCatchUpWithoutCatchUp);
            }
            _ => {}
        }
        Ok(Self {
            name,
            spec,
            cron,
            tz,
        })
    }

    /// The definition as the database keeps it: JSON text, compared whole
    /// to tell a changed definition from the same one synced again.
    pub fn definition(&self) -> String {
        serde_json::to_string(&self.spec).expect("a definition of strings and JSON serializes")
    }

    /// Reads back a definition that [`Schedule::definition`] wrote.
    pub fn from_definition(name: String, text: &str) -> Result<Self, String> {
        let spec = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::new(name, spec).map_err(|e| e.to_string())
    }

    /// The first slot after `after`, if the expression names any.
    pub fn next_slot(&self, after: Timestamp) -> Option<Timestamp> {
        let from = self.local(whole_second(after));
        let next = self.cron.find_next_occurrence(&from, false).ok()?;
        Some(Timestamp::from(next.with_timezone(&Utc)))
    }

    /// Up to `limit` slots after `cursor` and at or before `now`, newest first.
    fn slots_back(&self, cursor: Timestamp, now: Timestamp, limit: u32) -> Vec<Timestamp> {
        let mut slots = Vec::new();
        let mut from = self.local(whole_second(now));
        let mut inclusive = true;
        while slots.len() < limit as usize {
            let Ok(slot) = self.cron.find_previous_occurrence(&from, inclusive) else {
                break;
            };
            let at = Timestamp::from(slot.with_timezone(&Utc));
            if at <= cursor {
                break;
            }
            slots.push(at);
            from = slot;
            inclusive = false;
        }
        slots
    }

    fn local(&self, t: Timestamp) -> DateTime<Tz> {
        self.tz.from_utc_datetime(&t.to_datetime().naive_utc())
    }

    /// The job a slot enqueues: due at the slot, created now, in the
    /// schedule's queue.
    fn job(&self, slot: Timestamp, now: Timestamp) -> NewJob {
        let job = NewJob::new(&self.spec.job_type, self.spec.payload.clone(), now);
        match &self.spec.queue {
            Some(queue) => job.queue(queue),
            None => job,
        }
        .scheduled_at(slot)
    }
}

/// Slots are whole seconds: the last whole second at or before `t`.
fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.as_micros().div_euclid(1_000_000) * 1_000_000)
}

/// A schedule as the database keeps it, with where it stands.
#[derive(Clone, Debug)]
pub struct StoredSchedule {
    pub schedule: Schedule,
    /// Bumped whenever the definition changes: a firer that read an older
    /// one fires nothing.
    pub revision: i64,
    /// Every slot at or before it is done with: fired, skipped, before the
    /// schedule existed, or passed while it was paused.
    pub cursor: Timestamp,
    /// The newest slot that enqueued a job.
    pub last_slot: Option<Timestamp>,
    pub paused: bool,
    /// The jobs of the newest slots, newest first (as many as asked for).
    pub recent_jobs: Vec<JobId>,
}

/// One conditional write: move `name`'s cursor from `cursor` to `through`
/// and enqueue `jobs` (each with its slot), only while the schedule is
/// unpaused, still at `revision` and its cursor still at `cursor`. Of
/// firers that read the same cursor, one wins; the others change nothing.
#[derive(Clone, Debug)]
pub struct Fire {
    pub name: String,
    pub revision: i64,
    pub cursor: Timestamp,
    pub through: Timestamp,
    /// Oldest first.
    pub jobs: Vec<(Timestamp, NewJob)>,
}

impl StoredSchedule {
    /// What to fire at `now`: `None` when paused or no slot is due.
    pub fn due(&self, now: Timestamp) -> Option<Fire> {
        if self.paused {
            return None;
        }
        let schedule = &self.schedule;
        let limit = match schedule.spec.missed {
            Missed::Skip | Missed::Coalesce => 1,
            Missed::CatchUp => schedule.spec.max_catch_up.unwrap_or(DEFAULT_MAX_CATCH_UP),
        };
        let mut slots = schedule.slots_back(self.cursor, now, limit);
        let through = *slots.first()?;
        if schedule.spec.missed == Missed::Skip && now.since(through) > SKIP_GRACE {
            slots.clear();
        }
        slots.reverse();
        Some(Fire {
            name: schedule.name.clone(),
            revision: self.revision,
            cursor: self.cursor,
            through,
            jobs: slots
                .into_iter()
                .map(|slot| (slot, schedule.job(slot, now)))
                .collect(),
        })
    }

    /// When it fires next, as seen at `now`; `None` while paused.
    pub fn next_run(&self, now: Timestamp) -> Option<Timestamp> {
        if self.paused {
            return None;
        }
        self.schedule.next_slot(self.cursor.max(now))
    }

    /// What the API and the CLI show of it at `now`.
    pub fn view(&self, now: Timestamp) -> ScheduleView {
        let spec = &self.schedule.spec;
        ScheduleView {
            name: self.schedule.name.clone(),
            cron: spec.cron.clone(),
            timezone: spec.timezone.clone(),
            job_type: spec.job_type.clone(),
            payload: spec.payload.clone(),
            queue: spec.queue.clone(),
            missed: spec.missed,
            max_catch_up: (spec.missed == Missed::CatchUp)
                .then(|| spec.max_catch_up.unwrap_or(DEFAULT_MAX_CATCH_UP)),
            paused: self.paused,
            last_slot: self.last_slot,
            next_run: self.next_run(now),
            recent_jobs: self.recent_jobs.clone(),
        }
    }
}

/// A schedule as the API answers and the CLI prints it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub job_type: String,
    pub payload: Value,
    pub queue: Option<String>,
    pub missed: Missed,
    /// For `catch_up`: the most missed slots it fires.
    pub max_catch_up: Option<u32>,
    pub paused: bool,
    /// The newest slot that enqueued a job.
    pub last_slot: Option<Timestamp>,
    pub next_run: Option<Timestamp>,
    /// The jobs of the newest slots, newest first.
    pub recent_jobs: Vec<JobId>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn t(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    fn spec(cron: &str, missed: Missed, max_catch_up: Option<u32>) -> ScheduleSpec {
        ScheduleSpec {
            cron: cron.into(),
            timezone: "UTC".into(),
            job_type: "probe".into(),
            payload: json!({}),
            queue: None,
            missed,
            max_catch_up,
        }
    }

    fn stored(spec: ScheduleSpec, cursor: &str) -> StoredSchedule {
        StoredSchedule {
            schedule: Schedule::new("s", spec).unwrap(),
            revision: 1,
            cursor: t(cursor),
            last_slot: None,
            paused: false,
            recent_jobs: Vec::new(),
        }
    }

    fn fired(fire: &Fire) -> Vec<String> {
        fire.jobs.iter().map(|(slot, _)| slot.to_string()).collect()
    }

    #[test]
    fn slots_follow_the_time_zone_across_daylight_saving() {
        let mut daily = spec("30 2 * * *", Missed::Coalesce, None);
        daily.timezone = "Europe/Paris".into();
        let schedule = Schedule::new("daily", daily).unwrap();
        // 02:30 Paris is 01:30 UTC in winter, 00:30 UTC in summer; on
        // 2026-03-29 02:30 does not exist in Paris.
        let winter = schedule.next_slot(t("2026-01-10T12:00:00Z")).unwrap();
        assert_eq!(winter, t("2026-01-11T01:30:00Z"));
        let summer = schedule.next_slot(t("2026-06-10T12:00:00Z")).unwrap();
        assert_eq!(summer, t("2026-06-11T00:30:00Z"));
        let gap = schedule.next_slot(t("2026-03-28T12:00:00Z")).unwrap();
        assert!(gap > t("2026-03-28T12:00:00Z") && gap <= t("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn coalesce_fires_once_at_the_newest_missed_slot() {
        let s = stored(
            spec("*/10 * * * *", Missed::Coalesce, None),
            "2026-01-01T00:00:00Z",
        );
        assert!(s.due(t("2026-01-01T00:09:59Z")).is_none());
        let fire = s.due(t("2026-01-01T01:05:00Z")).unwrap();
        assert_eq!(fire.through, t("2026-01-01T01:00:00Z"));
        assert_eq!(fired(&fire), ["2026-01-01T01:00:00Z"]);
        assert_eq!(fire.jobs[0].1.scheduled_at, fire.through);
        assert_eq!(fire.jobs[0].1.created_at, t("2026-01-01T01:05:00Z"));
    }

    #[test]
    fn catch_up_fires_each_missed_slot_up_to_its_bound() {
        let s = stored(
            spec("* * * * *", Missed::CatchUp, Some(3)),
            "2026-01-01T00:00:00Z",
        );
        let fire = s.due(t("2026-01-01T00:02:30Z")).unwrap();
        assert_eq!(
            fired(&fire),
            ["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]
        );
        let fire = s.due(t("2026-01-01T10:00:00Z")).unwrap();
        assert_eq!(
            fired(&fire),
            [
                "2026-01-01T09:58:00Z",
                "2026-01-01T09:59:00Z",
                "2026-01-01T10:00:00Z"
            ]
        );
        assert_eq!(fire.through, t("2026-01-01T10:00:00Z"));
    }

    #[test]
    fn skip_fires_the_newest_slot_only_within_the_grace() {
        let s = stored(
            spec("0 * * * *", Missed::Skip, None),
            "2026-01-01T00:00:00Z",
        );
        let on_time = s.due(t("2026-01-01T03:00:20Z")).unwrap();
        assert_eq!(fired(&on_time), ["2026-01-01T03:00:00Z"]);
        let late = s.due(t("2026-01-01T03:20:00Z")).unwrap();
        assert!(late.jobs.is_empty());
        assert_eq!(
            late.through,
            t("2026-01-01T03:00:00Z"),
            "skipped slots are done with"
        );
    }

    #[test]
    fn a_paused_schedule_has_nothing_due_and_no_next_run() {
        let mut s = stored(
            spec("* * * * *", Missed::Coalesce, None),
            "2026-01-01T00:00:00Z",
        );
        let now = t("2026-01-01T00:05:00Z");
        assert_eq!(s.next_run(now), Some(t("2026-01-01T00:06:00Z")));
        s.paused = true;
        assert!(s.due(now).is_none());
        assert_eq!(s.next_run(now), None);
    }

    #[test]
    fn seconds_are_optional_and_bad_definitions_say_why() {
        assert!(Schedule::new("fast", spec("*/5 * * * * *", Missed::Skip, None)).is_ok());
        let bad = |name: &str, spec: ScheduleSpec| Schedule::new(name, spec).unwrap_err();
        assert_eq!(
            bad("a b", spec("* * * * *", Missed::Skip, None)),
            DefinitionError::Name("a b".into())
        );
        assert!(matches!(
            bad("x", spec("61 * * * *", Missed::Skip, None)),
            DefinitionError::Cron { .. }
        ));
        let mut zone = spec("* * * * *", Missed::Skip, None);
        zone.timezone = "Mars/Olympus".into();
        assert_eq!(
            bad("x", zone),
            DefinitionError::TimeZone("Mars/Olympus".into())
        );
        assert_eq!(
            bad("x", spec("* * * * *", Missed::Skip, Some(5))),
            DefinitionError::MaxCatchUpWithoutCatchUp
        );
        assert_eq!(
            bad("x", spec("* * * * *", Missed::CatchUp, Some(0))),
            DefinitionError::MaxCatchUpRange
        );
    }
}
