//! Named queues: each job is in one; a queue may be paused, and may limit
//! how many of its jobs run at once and start per period, across every
//! process. The stores enforce both in the claim's own transaction, from
//! what the database holds.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::{StoreResult, Timestamp};

/// At most `limit` jobs of a queue start in any window of `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub period: Duration,
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut rate = s.serialize_struct("RateLimit", 2)?;
        rate.serialize_field("limit", &self.limit)?;
        rate.serialize_field(
            "period_ms",
            &u64::try_from(self.period.as_millis()).unwrap_or(u64::MAX),
        )?;
        rate.end()
    }
}

impl RateLimit {
    /// The period in microseconds, as the stores keep it.
    pub fn period_micros(&self) -> i64 {
        i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX)
    }
}

/// What a queue allows: a queue no one has configured runs freely.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueSettings {
    pub paused: bool,
    /// The most jobs of the queue processing at once, over all processes.
    pub concurrency: Option<u32>,
    pub rate_limit: Option<RateLimit>,
}

impl QueueSettings {
    /// The settings as both stores keep them: integers, the rate period in
    /// microseconds (a limit with no period is none).
    pub fn from_stored(
        paused: bool,
        concurrency: Option<i64>,
        rate_limit: Option<i64>,
        rate_period: Option<i64>,
    ) -> Self {
        QueueSettings {
            paused,
            concurrency: concurrency.and_then(|c| u32::try_from(c).ok()),
            rate_limit: rate_limit
                .zip(rate_period)
                .map(|(limit, period)| RateLimit {
                    limit: u32::try_from(limit).unwrap_or(u32::MAX),
                    period: Duration::from_micros(u64::try_from(period).unwrap_or(0)),
                }),
        }
    }

    /// How many jobs a claim may take, given the queue's jobs processing now
    /// and started within the rate limit's window.
    pub fn allowance(&self, wanted: u32, running: i64, started_in_window: i64) -> u32 {
        let left =
            |limit: u32, used: i64| u32::try_from((i64::from(limit) - used).max(0)).unwrap_or(0);
        if self.paused {
            return 0;
        }
        let mut allowed = wanted;
        if let Some(concurrency) = self.concurrency {
            allowed = allowed.min(left(concurrency, running));
        }
        if let Some(rate) = self.rate_limit {
            allowed = allowed.min(left(rate.limit, started_in_window));
        }
        allowed
    }
}

/// A change to a queue's settings; `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueChange {
    pub paused: Option<bool>,
    pub concurrency: Option<Option<u32>>,
    pub rate_limit: Option<Option<RateLimit>>,
}

impl QueueChange {
    pub fn apply(&self, mut settings: QueueSettings) -> QueueSettings {
        if let Some(paused) = self.paused {
            settings.paused = paused;
        }
        if let Some(concurrency) = self.concurrency {
            settings.concurrency = concurrency;
        }
        if let Some(rate) = self.rate_limit {
            settings.rate_limit = rate;
        }
        settings
    }
}

/// A queue: its settings and the live jobs in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueInfo {
    pub name: String,
    #[serde(flatten)]
    pub settings: QueueSettings,
    /// Jobs waiting: pending or waiting to retry, due or not.
    pub waiting: i64,
    /// Jobs processing.
    pub running: i64,
}

/// The queues' settings. A queue exists as soon as a job names it; its
/// settings are stored when first changed.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Every queue that holds live jobs or has settings, by name.
    async fn queue_list(&self) -> StoreResult<Vec<QueueInfo>>;
    /// Changes a queue's settings (pause, resume, limits); they reach every
    /// process's next claim, and a resume wakes idle workers.
    async fn queue_update(
        &self,
        name: &str,
        change: QueueChange,
        now: Timestamp,
    ) -> StoreResult<QueueInfo>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_takes_what_every_limit_leaves() {
        let free = QueueSettings::default();
        assert_eq!(free.allowance(10, 50, 50), 10);
        let limited = QueueSettings {
            concurrency: Some(5),
            rate_limit: Some(RateLimit {
                limit: 8,
                period: Duration::from_secs(1),
            }),
            ..free
        };
        assert_eq!(limited.allowance(10, 2, 0), 3);
        assert_eq!(limited.allowance(10, 0, 6), 2);
        assert_eq!(
            limited.allowance(10, 7, 0),
            0,
            "over the limit after a change"
        );
        assert_eq!(limited.allowance(10, 0, 9), 0);
        let paused = QueueSettings {
            paused: true,
            ..free
        };
        assert_eq!(paused.allowance(10, 0, 0), 0);
    }
}
