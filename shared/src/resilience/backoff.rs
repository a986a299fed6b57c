//! How long a failed SQS message waits before its next delivery: set with ChangeMessageVisibility
//! before the batch item failure is reported, instead of the queue's whole visibility timeout.
//! Exponential in the receive count, capped, with jitter so that messages which failed together
//! do not all come back together.

use std::time::Duration;

/// The delay (seconds) before message `receive_count` (1 on its first delivery) comes back:
/// `base` doubled per earlier receive, capped at `max` (and at SQS's 12 hours), drawn from the
/// upper half of that step by `jitter` in [0, 1).
pub fn exponential(base: Duration, max: Duration, receive_count: u32, jitter: f64) -> i32 {
    let max = max.as_secs().min(43_000) as f64;
    let exponent = receive_count.saturating_sub(1).min(30);
    let step = (base.as_secs_f64() * f64::from(1u32 << exponent)).min(max);
    (step / 2.0 + jitter.clamp(0.0, 1.0) * step / 2.0).ceil() as i32
}

/// A number in [0, 1) from the clock and the message id: enough to spread retries apart.
pub fn jitter(message_id: &str) -> f64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message_id.hash(&mut h);
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap_or(0)
        .hash(&mut h);
    (h.finish() % 1_000_000) as f64 / 1_000_000.0
}

/// An SQS message's receive count (`ApproximateReceiveCount`; 1 when absent).
pub fn receive_count(attributes: &std::collections::HashMap<String, String>) -> u32 {
    attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_receive_within_jitter_and_are_capped() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(300));
        assert_eq!(exponential(base, max, 1, 0.0), 5);
        assert_eq!(exponential(base, max, 1, 0.999), 10);
        assert_eq!(exponential(base, max, 2, 0.0), 10);
        assert_eq!(exponential(base, max, 3, 0.5), 30);
        assert_eq!(exponential(base, max, 30, 0.999), 300);
        assert_eq!(exponential(base, max, u32::MAX, 0.0), 150);
        for n in 1..10 {
            assert!(exponential(base, max, n + 1, 0.0) >= exponential(base, max, n, 0.0));
        }
        assert!(jitter("a") < 1.0);
    }

    #[test]
    fn the_receive_count_is_read_or_one() {
        let mut attributes = std::collections::HashMap::new();
        assert_eq!(receive_count(&attributes), 1);
        attributes.insert("ApproximateReceiveCount".to_owned(), "4".to_owned());
        assert_eq!(receive_count(&attributes), 4);
    }
}
