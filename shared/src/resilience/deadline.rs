//! The time a function has left, as a [`Deadline`]: Lambda gives each invocation a wall-clock
//! deadline (epoch milliseconds, `Context::deadline`); the function keeps a margin to answer and
//! gives every outbound call at most what remains (the Go seed's `context.WithDeadline`).

use std::time::Duration;
use tokio::time::Instant;

/// When the answer must be on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Instant);

impl Deadline {
    /// `margin` before the invocation's deadline (`deadline_ms`: epoch milliseconds, as Lambda
    /// gives it), measured against the wall clock now.
    pub fn from_epoch_millis(deadline_ms: u64, margin: Duration) -> Self {
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        Self::after(left.saturating_sub(margin))
    }

    /// `left` from now.
    pub fn after(left: Duration) -> Self {
        Self(Instant::now() + left)
    }

    pub fn instant(&self) -> Instant {
        self.0
    }

    /// What is left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// A call's budget: its own timeout, or what is left if that is less.
    pub fn budget(&self, own: Duration) -> Duration {
        own.min(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_comes_off_the_lambda_deadline() {
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        let d = Deadline::from_epoch_millis(now_ms + 10_000, Duration::from_millis(500));
        let left = d.remaining();
        assert!(left <= Duration::from_millis(9_500), "{left:?}");
        assert!(left > Duration::from_millis(9_000), "{left:?}");
        assert_eq!(d.budget(Duration::from_secs(2)), Duration::from_secs(2));
        assert!(d.budget(Duration::from_secs(60)) <= Duration::from_millis(9_500));
        // A deadline already past leaves nothing, not a panic.
        let past =
            Deadline::from_epoch_millis(now_ms.saturating_sub(5_000), Duration::from_secs(1));
        assert_eq!(past.remaining(), Duration::ZERO);
    }
}
