//! Per-client token buckets shared by every Lambda execution environment: one item per bucket
//! (`bucket` = `<scope>#<client>`) in the rate-limits table, updated read–compute–conditional
//! write with the arithmetic of [`crate::resilience::token_limit`] (go-zero's token limiter), a
//! `version` attribute as the condition (a concurrent writer makes the write fail and the decision
//! is made again from what it wrote), and `expiresAt` for DynamoDB's TTL.
//!
//! When the table cannot be reached (an error other than a lost race), decisions fall back to an
//! in-process bucket with the same rate and burst (go-zero's rescue limiter). go-zero then pings
//! Redis from a background goroutine until it answers; a Lambda execution environment is frozen
//! between invocations, so no background task can be relied on: this limiter instead stays
//! in-process for a cooldown (`cooldown_ms`) and then tries the table again on the next request.
//! While in-process, each execution environment limits on its own: a client spread over N warm
//! environments may get up to N times its rate until the table is back.
//!
//! A refusal writes nothing: the bucket it would store (the refilled tokens at `now`) is the same
//! bucket as the stored one, so a flood of refused requests costs reads only.

use super::dynamodb::{get_n, n, s};
use super::sdk_failure;
use crate::resilience::token_limit::{Bucket, Clock, Decision, InProcessLimiter, TokenLimit};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::Client;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// `Retry-After`, whole seconds, rounded up (0 when allowed).
    pub retry_after_seconds: u64,
    /// Decided by the shared table (false: by this process's fallback buckets).
    pub shared: bool,
}

impl RateDecision {
    fn of(d: &Decision, shared: bool) -> Self {
        Self {
            allowed: d.allowed,
            retry_after_seconds: d.retry_after_seconds(),
            shared,
        }
    }
}

/// Takes one token of a client's bucket. Never fails: a limiter that cannot reach its store
/// decides in-process.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn allow(&self, client: &str) -> RateDecision;
}

/// Read, compute, conditional write: attempts before the fallback decides (only a client racing
/// itself from many environments at once loses that often).
const ATTEMPTS: u32 = 5;

pub struct DynamoRateLimiter {
    client: Client,
    table: String,
    scope: String,
    limit: TokenLimit,
    clock: Arc<dyn Clock>,
    rescue: InProcessLimiter,
    cooldown_ms: i64,
    /// Until when (Unix ms) decisions stay in-process after the table failed.
    table_down_until: AtomicI64,
}

enum Attempt {
    Decided(Decision),
    /// The conditional write was refused: another writer moved the bucket — or this attempt's own
    /// write did, its answer lost and the SDK's retry refused (the next attempt's read tells which,
    /// by the writer id the write stored).
    Lost {
        writer: String,
        decision: Decision,
    },
    Unreachable,
}

impl DynamoRateLimiter {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        scope: impl Into<String>,
        limit: TokenLimit,
        clock: Arc<dyn Clock>,
        cooldown_ms: i64,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            scope: scope.into(),
            limit,
            clock,
            rescue: InProcessLimiter::new(limit),
            cooldown_ms,
            table_down_until: AtomicI64::new(i64::MIN),
        }
    }

    /// Is the table being skipped right now (after a failure, within the cooldown)?
    pub fn in_fallback(&self) -> bool {
        self.clock.now_ms() < self.table_down_until.load(Ordering::Relaxed)
    }

    async fn attempt(&self, key: &str, now: i64, previous: Option<&(String, Decision)>) -> Attempt {
        let read = match self
            .client
            .get_item()
            .table_name(&self.table)
            .key("bucket", s(key))
            .consistent_read(true)
            .send()
            .await
        {
            Ok(out) => out.item,
            Err(e) => {
                sdk_failure("GetItem rate limits", e);
                return Attempt::Unreachable;
            }
        };
        let (stored, version) = match &read {
            Some(item) => match (
                get_n::<u64>(item, "tokens"),
                get_n::<i64>(item, "refreshedAt"),
                get_n::<u64>(item, "version"),
            ) {
                (Ok(tokens_milli), Ok(refreshed_ms), Ok(version)) => (
                    Some(Bucket {
                        tokens_milli,
                        refreshed_ms,
                    }),
                    Some(version),
                ),
                // A malformed bucket is overwritten as if new (it limits, it holds no data).
                _ => (None, get_n::<u64>(item, "version").ok()),
            },
            None => (None, None),
        };
        if let (Some(item), Some((writer, decision))) = (&read, previous) {
            if item.get("writer").and_then(|w| w.as_s().ok()) == Some(writer) {
                // The previous attempt's write is the one stored (its answer lost, the SDK's
                // retry refused): its decision stands. (Were it already overwritten by another
                // writer, this attempt takes a second token: the client is limited a little
                // early, never let past its limit.)
                return Attempt::Decided(*decision);
            }
        }
        let decision = self.limit.take(stored, now, 1);
        if !decision.allowed {
            return Attempt::Decided(decision);
        }
        let expires = now / 1000 + decision.ttl_seconds as i64 + 1;
        let writer = uuid::Uuid::new_v4().simple().to_string();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("bucket", s(key))
            .item("tokens", n(decision.bucket.tokens_milli))
            .item("refreshedAt", n(decision.bucket.refreshed_ms))
            .item("version", n(version.unwrap_or(0) + 1))
            .item("writer", s(&writer))
            .item("expiresAt", n(expires));
        put = match (read.is_some(), version) {
            (true, Some(v)) => put
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(v)),
            (true, None) => put.condition_expression("attribute_not_exists(version)"),
            // `bucket` is a DynamoDB reserved word.
            (false, _) => put
                .condition_expression("attribute_not_exists(#bucket)")
                .expression_attribute_names("#bucket", "bucket"),
        };
        match put.send().await {
            Ok(_) => Attempt::Decided(decision),
            Err(e) => {
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) {
                    Attempt::Lost { writer, decision }
                } else {
                    sdk_failure("PutItem rate limits", e);
                    Attempt::Unreachable
                }
            }
        }
    }
}

#[async_trait]
impl RateLimiter for DynamoRateLimiter {
    #[tracing::instrument(name = "rate_limit.allow", skip_all)]
    async fn allow(&self, client: &str) -> RateDecision {
        let key = format!("{}#{client}", self.scope);
        let now = self.clock.now_ms();
        if now < self.table_down_until.load(Ordering::Relaxed) {
            return RateDecision::of(&self.rescue.take(&key, now, 1), false);
        }
        let mut previous = None;
        for _ in 0..ATTEMPTS {
            match self
                .attempt(&key, self.clock.now_ms(), previous.as_ref())
                .await
            {
                Attempt::Decided(d) => return RateDecision::of(&d, true),
                Attempt::Lost { writer, decision } => previous = Some((writer, decision)),
                Attempt::Unreachable => {
                    tracing::warn!(
                        cooldown_ms = self.cooldown_ms,
                        "rate-limit table unreachable: limiting in-process"
                    );
                    // Counted (EMF), so an operator sees the shared limit is not in force.
                    crate::metrics::Metrics::new("rate-limiter")
                        .dimension("Scope", self.scope.clone())
                        .count("TableUnreachable", 1)
                        .emit();
                    let now = self.clock.now_ms();
                    self.table_down_until
                        .store(now.saturating_add(self.cooldown_ms), Ordering::Relaxed);
                    return RateDecision::of(&self.rescue.take(&key, now, 1), false);
                }
            }
        }
        // Every attempt lost a race on the client's own bucket: that client is sending from many
        // places at once — a flood. Refusing is the safe answer (the in-process buckets start full,
        // so deciding there would hand each environment a fresh burst).
        tracing::warn!("rate-limit bucket contended: refused");
        RateDecision {
            allowed: false,
            retry_after_seconds: 1,
            shared: true,
        }
    }
}
