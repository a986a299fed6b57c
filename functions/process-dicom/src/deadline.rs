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
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        Self {
            at: end.checked_sub_signed(margin).unwrap_or(end),
        }
    }

    /// A message's own deadline: at most `budget` from now, never past this one.
    pub fn for_message(&self, budget: Duration) -> Self {
        Self {
            at: after(budget).min(self.at),
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
        after(work) < self.at
    }

    /// The lock on an upload is held no longer than the message may run.
    pub fn lock_until(&self) -> DateTime<Utc> {
        self.at
    }
}

/// `span` from now (the end of time if that is past it).
fn after(span: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(span)
        .ok()
        .and_then(|d| Utc::now().checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
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
        assert!(!long.allows(Duration::MAX));
        assert_eq!(
            invocation.for_message(Duration::MAX).lock_until(),
            invocation.lock_until()
        );
    }
}
