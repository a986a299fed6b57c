//! How long a failed message waits before its next delivery (set with ChangeMessageVisibility
//! before the batch item failure is reported), instead of the queue's whole visibility timeout.

use crate::outcome::Retry;
use chrono::Utc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first retry's delay; each receive doubles it.
    pub base: Duration,
    /// No delay is longer.
    pub max: Duration,
}

impl Backoff {
    /// The delay (seconds) before message `receive_count` (1 on its first delivery) is delivered
    /// again after failing with `why`. `jitter` in [0, 1) spreads retries of messages that failed
    /// together: the delay is drawn from the upper half of the exponential step.
    pub fn delay(&self, why: &Retry, receive_count: u32, jitter: f64) -> i32 {
        let max = self.max.as_secs().min(43_000) as f64;
        match why {
            // Never going to succeed: reach the dead-letter queue without waiting.
            Retry::NotANotification(_) => 0,
            // A fresh invocation has time: at once.
            Retry::Deadline => 0,
            // The lock is held until its holder's deadline: come back just after.
            Retry::Busy { until: Some(until) } => {
                let wait = (*until - Utc::now()).num_seconds().max(0) as f64 + 1.0;
                (wait + jitter * wait.min(10.0)).min(max) as i32
            }
            _ => {
                let exponent = receive_count.saturating_sub(1).min(30);
                let step = (self.base.as_secs_f64() * f64::from(1u32 << exponent)).min(max);
                (step / 2.0 + jitter.clamp(0.0, 1.0) * step / 2.0).ceil() as i32
            }
        }
    }
}

/// A number in [0, 1) from the clock and the message id: enough to spread retries apart.
pub fn jitter(message_id: &str) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message_id.hash(&mut h);
    Utc::now().timestamp_nanos_opt().unwrap_or(0).hash(&mut h);
    (h.finish() % 1_000_000) as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }

    #[test]
    fn delays_double_per_receive_within_jitter_and_are_capped() {
        let why = Retry::Dependency("x".into());
        let b = backoff();
        assert_eq!(b.delay(&why, 1, 0.0), 5);
        assert_eq!(b.delay(&why, 1, 0.999), 10);
        assert_eq!(b.delay(&why, 2, 0.0), 10);
        assert_eq!(b.delay(&why, 3, 0.5), 30);
        assert_eq!(b.delay(&why, 30, 0.999), 300);
        assert_eq!(b.delay(&why, u32::MAX, 0.0), 150);
        for n in 1..10 {
            assert!(b.delay(&why, n + 1, 0.0) >= b.delay(&why, n, 0.0));
        }
    }

    #[test]
    fn poison_and_deadline_come_back_at_once_busy_when_the_lock_ends() {
        let b = backoff();
        let poison = Retry::NotANotification(shared::notification::NotANotification("x".into()));
        assert_eq!(b.delay(&poison, 3, 0.5), 0);
        assert_eq!(b.delay(&Retry::Deadline, 3, 0.5), 0);
        let until = Utc::now() + chrono::Duration::seconds(60);
        let busy = b.delay(&Retry::Busy { until: Some(until) }, 1, 0.0);
        assert!((59..=61).contains(&busy), "{busy}");
        assert!(jitter("a") < 1.0);
    }
}
