//! Deadlines: the invocation's (Lambda's, less a margin kept to hand a message back cleanly), and
//! each message's own within it.

use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: DateTime<Utc>,
}

impl Deadline {
    /// The invocation's deadline less `margin`.
    pub fn from_context(context: &lambda_runtime::Context, margin: Duration) -> Self {
        let end = if context.deadline == 0 {
            Utc::now() + chrono::Duration::minutes(15)
        } else {
            DateTime::from_timestamp_millis(context.deadline as i64).unwrap_or_else(Utc::now)
        };
        Self {
            at: end - chrono::Duration::from_std(margin).unwrap_or_default(),
        }
    }

    /// A message's own deadline: at most `budget` from now, never past this one.
    pub fn for_message(&self, budget: Duration) -> Self {
        let own = Utc::now() + chrono::Duration::from_std(budget).unwrap_or(chrono::Duration::MAX);
        Self {
            at: own.min(self.at),
        }
    }

    pub fn too_close(&self) -> bool {
        Utc::now() >= self.at
    }

    /// Time left (zero when passed).
    pub fn remaining(&self) -> Duration {
        (self.at - Utc::now()).to_std().unwrap_or_default()
    }

    /// Would `work` still end before the deadline?
    pub fn allows(&self, work: Duration) -> bool {
        Utc::now() + chrono::Duration::from_std(work).unwrap_or(chrono::Duration::MAX) < self.at
    }

    /// The lock on an upload is held no longer than the message may run.
    pub fn lock_until(&self) -> DateTime<Utc> {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_deadline_is_its_budget_or_the_invocation_s_whichever_comes_first() {
        let mut context = lambda_runtime::Context::default();
        context.deadline = (Utc::now().timestamp_millis() + 100_000) as u64;
        let invocation = Deadline::from_context(&context, Duration::from_secs(20));
        let short = invocation.for_message(Duration::from_secs(10));
        assert!(short.remaining() <= Duration::from_secs(10));
        let long = invocation.for_message(Duration::from_secs(1000));
        assert!(long.remaining() <= Duration::from_secs(80));
        assert!(long.remaining() > Duration::from_secs(70));
        assert!(!long.too_close());
        assert!(long.allows(Duration::from_secs(60)));
        assert!(!long.allows(Duration::from_secs(90)));
    }
}
