//! A token bucket per client, the arithmetic of go-zero's Redis token limiter
//! (`core/limit/tokenlimit.go` and its `tokenscript.lua`), in milliseconds and in whole
//! milli-tokens so every decision is exact:
//!
//! ```text
//! fill_time = capacity / rate                    ttl = floor(2 * fill_time)
//! last      = stored tokens, or capacity         refreshed = stored time, or 0
//! filled    = min(capacity, last + (now - refreshed) * rate)
//! allowed   = filled >= requested                tokens = filled - requested if allowed
//! store tokens and now, both expiring after ttl
//! ```
//!
//! go-zero passes `now` in whole seconds; here it is milliseconds (`rate` tokens a second is
//! `rate` milli-tokens a millisecond), so a bucket refills smoothly instead of once a second.
//! A refusal also says when `requested` tokens will be there ([`Decision::retry_after_ms`]), which
//! the API turns into `Retry-After`.
//!
//! [`InProcessLimiter`] keeps the same buckets in memory: go-zero's "rescue" limiter, used with the
//! same rate and burst when the shared store cannot be reached.

use std::collections::HashMap;
use std::sync::Mutex;

/// Milli-tokens per token.
const MILLI: u64 = 1000;

/// A limit: `rate` tokens a second, at most `burst` in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimit {
    pub rate: u32,
    pub burst: u32,
}

/// A bucket as stored: milli-tokens left at `refreshed_ms` (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub tokens_milli: u64,
    pub refreshed_ms: i64,
}

/// What one request gets, and the bucket to store after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub bucket: Bucket,
    /// When refused: milliseconds until the bucket holds the requested tokens (0 when allowed).
    pub retry_after_ms: u64,
    /// How long the stored bucket matters (go-zero's `ttl`, at least one second): past it the
    /// bucket would be full again anyway.
    pub ttl_seconds: u64,
}

impl Decision {
    /// `Retry-After` in whole seconds, rounded up (at least 1 when refused).
    pub fn retry_after_seconds(&self) -> u64 {
        if self.allowed {
            0
        } else {
            self.retry_after_ms.div_ceil(1000).max(1)
        }
    }
}

impl TokenLimit {
    pub fn new(rate: u32, burst: u32) -> Result<Self, String> {
        if rate == 0 || burst == 0 {
            return Err("rate and burst must be at least 1".into());
        }
        Ok(Self { rate, burst })
    }

    fn capacity_milli(&self) -> u64 {
        u64::from(self.burst) * MILLI
    }

    /// Takes `requested` tokens from `stored` (`None`: no bucket yet) at `now_ms`.
    pub fn take(&self, stored: Option<Bucket>, now_ms: i64, requested: u32) -> Decision {
        let capacity = self.capacity_milli();
        let (last, refreshed) = match stored {
            Some(b) => (b.tokens_milli.min(capacity), b.refreshed_ms),
            None => (capacity, 0),
        };
        // A clock that went backwards adds nothing (go-zero: math.max(0, now - last_refreshed)).
        let delta = u64::try_from(now_ms.saturating_sub(refreshed)).unwrap_or(0);
        // rate tokens/s = rate milli-tokens/ms.
        let filled = capacity.min(last.saturating_add(delta.saturating_mul(u64::from(self.rate))));
        let wanted = u64::from(requested) * MILLI;
        let allowed = filled >= wanted;
        let tokens = if allowed { filled - wanted } else { filled };
        let retry_after_ms = if allowed {
            0
        } else {
            (wanted - filled).div_ceil(u64::from(self.rate))
        };
        Decision {
            allowed,
            bucket: Bucket {
                tokens_milli: tokens,
                refreshed_ms: now_ms,
            },
            retry_after_ms,
            ttl_seconds: ((2 * u64::from(self.burst)) / u64::from(self.rate)).max(1),
        }
    }
}

/// The time limiters read: Unix milliseconds. Injected, so tests decide what "now" is.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// The buckets of one process (one Lambda execution environment): go-zero's rescue limiter, with
/// the same arithmetic as the shared one. Buckets idle past their ttl are dropped as others are
/// added, so memory stays bounded by the clients of the last few seconds.
#[derive(Debug)]
pub struct InProcessLimiter {
    limit: TokenLimit,
    buckets: Mutex<HashMap<String, (Bucket, i64)>>,
}

impl InProcessLimiter {
    pub fn new(limit: TokenLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> TokenLimit {
        self.limit
    }

    pub fn take(&self, client: &str, now_ms: i64, requested: u32) -> Decision {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = buckets.get(client).map(|(b, _)| *b);
        let decision = self.limit.take(stored, now_ms, requested);
        if buckets.len() >= 10_000 {
            buckets.retain(|_, (_, expires)| *expires > now_ms);
        }
        let expires = now_ms.saturating_add((decision.ttl_seconds * 1000) as i64);
        buckets.insert(client.to_owned(), (decision.bucket, expires));
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: u32, burst: u32) -> TokenLimit {
        TokenLimit::new(rate, burst).unwrap()
    }

    #[test]
    fn a_new_bucket_starts_full() {
        // burst 3: 3000 milli-tokens, take 1000.
        let d = limit(1, 3).take(None, 1_000_000, 1);
        assert!(d.allowed);
        assert_eq!(d.bucket.tokens_milli, 2000);
        assert_eq!(d.bucket.refreshed_ms, 1_000_000);
        // ttl = floor(2 * 3 / 1) = 6 s.
        assert_eq!(d.ttl_seconds, 6);
        assert_eq!(d.retry_after_seconds(), 0);
    }

    #[test]
    fn the_burst_then_a_refusal_with_the_time_to_the_next_token() {
        let l = limit(1, 3);
        let mut b = None;
        for expected in [2000, 1000, 0] {
            let d = l.take(b, 10_000, 1);
            assert!(d.allowed);
            assert_eq!(d.bucket.tokens_milli, expected);
            b = Some(d.bucket);
        }
        // 250 ms later: 0 + 250 * 1 = 250 milli-tokens; 750 missing at 1 milli-token/ms = 750 ms.
        let d = l.take(b, 10_250, 1);
        assert!(!d.allowed);
        assert_eq!(d.bucket.tokens_milli, 250);
        assert_eq!(d.retry_after_ms, 750);
        assert_eq!(d.retry_after_seconds(), 1);
        // The refusal still records the refill (go-zero stores filled tokens and now).
        let d = l.take(Some(d.bucket), 11_000, 1);
        assert!(d.allowed);
        assert_eq!(d.bucket.tokens_milli, 0);
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        // 5 tokens/s, burst 2: an hour idle gives 2 tokens, not 18,000.
        let l = limit(5, 2);
        let d = l.take(
            Some(Bucket {
                tokens_milli: 0,
                refreshed_ms: 0,
            }),
            3_600_000,
            1,
        );
        assert!(d.allowed);
        assert_eq!(d.bucket.tokens_milli, 1000);
        // 2 * 2 / 5 = 0 -> at least 1 s.
        assert_eq!(d.ttl_seconds, 1);
    }

    #[test]
    fn fractional_refill_in_milliseconds() {
        // 2 tokens/s: 2 milli-tokens per ms. From 0 at t=0, at t=300 ms there are 600.
        let l = limit(2, 10);
        let empty = Some(Bucket {
            tokens_milli: 0,
            refreshed_ms: 0,
        });
        let d = l.take(empty, 300, 1);
        assert!(!d.allowed);
        assert_eq!(d.bucket.tokens_milli, 600);
        // 400 missing at 2/ms: 200 ms; Retry-After rounds up to 1 s.
        assert_eq!(d.retry_after_ms, 200);
        assert_eq!(d.retry_after_seconds(), 1);
        // Asking for 5 tokens from empty at 2/s: 2.5 s -> Retry-After 3.
        let d = l.take(empty, 0, 5);
        assert_eq!(d.retry_after_ms, 2500);
        assert_eq!(d.retry_after_seconds(), 3);
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        let l = limit(1, 3);
        let b = Bucket {
            tokens_milli: 500,
            refreshed_ms: 5_000,
        };
        let d = l.take(Some(b), 4_000, 1);
        assert!(!d.allowed);
        assert_eq!(d.bucket.tokens_milli, 500);
        assert_eq!(d.retry_after_ms, 500);
    }

    #[test]
    fn a_stored_bucket_above_capacity_is_capped() {
        // After the burst was lowered: 10 stored tokens, burst now 2.
        let d = limit(1, 2).take(
            Some(Bucket {
                tokens_milli: 10_000,
                refreshed_ms: 0,
            }),
            0,
            1,
        );
        assert_eq!(d.bucket.tokens_milli, 1000);
    }

    #[test]
    fn zero_rate_or_burst_is_refused() {
        assert!(TokenLimit::new(0, 1).is_err());
        assert!(TokenLimit::new(1, 0).is_err());
    }

    #[test]
    fn in_process_buckets_are_per_client() {
        let l = InProcessLimiter::new(limit(1, 2));
        assert!(l.take("a", 0, 1).allowed);
        assert!(l.take("a", 0, 1).allowed);
        assert!(!l.take("a", 0, 1).allowed);
        assert!(l.take("b", 0, 1).allowed);
        assert!(l.take("a", 1000, 1).allowed);
    }
}
