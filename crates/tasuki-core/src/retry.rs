//! What happens after a failed attempt: retry with exponential backoff and
//! full jitter, retry after a given delay, or fail for good.

use std::time::Duration;

use crate::Timestamp;

/// How a handler's failure asks to be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Retry after the policy's backoff, while retries are left.
    Retry,
    /// Retry after this delay, while retries are left.
    RetryAfter(Duration),
    /// Fail now without retry: the job can never succeed (bad payload, no handler).
    Permanent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAt(Timestamp),
    Fail,
}

/// Exponential backoff with full jitter: the n-th retry (n from 0) waits a
/// uniformly random time in `[0, min(max, base * 2^n))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff before the `retry`-th retry (0-based).
    pub fn ceiling(&self, retry: i32) -> Duration {
        let factor = 1u32
            .checked_shl(u32::try_from(retry).unwrap_or(0))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The backoff before the `retry`-th retry, `unit` being a random number in `[0, 1)`.
    pub fn backoff(&self, retry: i32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// Decides a failed attempt of a job that has had `retry_count` of its
    /// `max_retries` retries.
    pub fn decide(
        &self,
        retry_count: i32,
        max_retries: i32,
        kind: FailureKind,
        now: Timestamp,
        unit: f64,
    ) -> RetryDecision {
        if retry_count >= max_retries {
            return RetryDecision::Fail;
        }
        match kind {
            FailureKind::Permanent => RetryDecision::Fail,
            FailureKind::Retry => {
                RetryDecision::RetryAt(now.saturating_add(self.backoff(retry_count, unit)))
            }
            FailureKind::RetryAfter(delay) => RetryDecision::RetryAt(now.saturating_add(delay)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_micros(1_000_000_000);

    #[test]
    fn ceiling_doubles_then_caps() {
        let policy = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let ceilings: Vec<u64> = (0..6).map(|n| policy.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 10, 10]);
        assert_eq!(policy.ceiling(1_000), Duration::from_secs(10));
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(2, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(2, 0.5), Duration::from_secs(2));
        assert_eq!(
            policy.backoff(2, 0.999_999),
            Duration::from_secs(4).mul_f64(0.999_999)
        );
    }

    #[test]
    fn retries_until_the_budget_is_spent() {
        let policy = RetryPolicy::default();
        let at = |retry_count| policy.decide(retry_count, 3, FailureKind::Retry, NOW, 0.5);
        assert_eq!(
            at(0),
            RetryDecision::RetryAt(NOW.saturating_add(Duration::from_millis(500)))
        );
        assert_eq!(
            at(2),
            RetryDecision::RetryAt(NOW.saturating_add(Duration::from_secs(2)))
        );
        assert_eq!(at(3), RetryDecision::Fail);
    }

    #[test]
    fn permanent_failures_and_explicit_delays() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(0, 3, FailureKind::Permanent, NOW, 0.5),
            RetryDecision::Fail
        );
        let delay = Duration::from_secs(42);
        assert_eq!(
            policy.decide(0, 3, FailureKind::RetryAfter(delay), NOW, 0.5),
            RetryDecision::RetryAt(NOW.saturating_add(delay))
        );
        assert_eq!(
            policy.decide(0, 0, FailureKind::RetryAfter(delay), NOW, 0.5),
            RetryDecision::Fail
        );
    }
}
