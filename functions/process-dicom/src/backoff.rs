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
                shared::resilience::backoff::exponential(self.base, self.max, receive_count, jitter)
            }
        }
    }
}

pub use shared::resilience::backoff::jitter;

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
    fn poison_and_deadline_come_back_at_once_busy_when_the_lock_ends() {
        let b = backoff();
        let poison = Retry::NotANotification(shared::notification::NotANotification("x".into()));
        assert_eq!(b.delay(&poison, 3, 0.5), 0);
        assert_eq!(b.delay(&Retry::Deadline, 3, 0.5), 0);
        let until = Utc::now() + chrono::Duration::seconds(60);
        let busy = b.delay(&Retry::Busy { until: Some(until) }, 1, 0.0);
        assert!((59..=61).contains(&busy), "{busy}");
        // Any other failure: exponential from the base (shared::resilience::backoff).
        assert_eq!(b.delay(&Retry::Dependency("x".into()), 3, 0.5), 30);
        assert!(jitter("a") < 1.0);
    }
}
