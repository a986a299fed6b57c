//! The DynamoDB adapter of [`Idempotency`]. One item per claim key (an upload's object key):
//! `id`; the lock (`lockOwner`, `lockUntil` in epoch ms, `lockedVersion`), present only while held;
//! `versions`, a map of each completed version to its result; `lastError` and `lastErrorAt` of the
//! last released lock; `expiresAt` (epoch s, the table's TTL attribute), pushed on at every write.

use super::dynamodb::{get_opt_s, n, s, Item};
use super::{sdk_failure, Claim, ClaimState, Idempotency, Lease, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct DynamoIdempotency {
    client: Client,
    table: String,
    /// How long an item is kept after its last write (its TTL).
    keep: chrono::Duration,
}

impl DynamoIdempotency {
    pub fn new(client: Client, table: impl Into<String>, keep: chrono::Duration) -> Self {
        Self {
            client,
            table: table.into(),
            keep,
        }
    }

    fn expires(&self) -> AttributeValue {
        n((Utc::now() + self.keep).timestamp())
    }

    async fn read(&self, key: &str) -> Result<Item, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem idempotency", e))?
            .item
            .unwrap_or_default())
    }
}

fn locked_until(item: &Item) -> Option<DateTime<Utc>> {
    item.get("lockUntil")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
}

fn conditional<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl Idempotency for DynamoIdempotency {
    #[tracing::instrument(name = "idempotency.claim", skip_all)]
    async fn claim(
        &self,
        key: &str,
        version: &str,
        lock_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let now = Utc::now();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(key))
            .update_expression(
                "SET lockOwner = :owner, lockUntil = :until, lockedVersion = :version, \
                 expiresAt = :expires, #versions = if_not_exists(#versions, :none)",
            )
            .condition_expression(
                "(attribute_not_exists(lockUntil) OR lockUntil < :now) \
                 AND attribute_not_exists(#versions.#version)",
            )
            .expression_attribute_names("#versions", "versions")
            .expression_attribute_names("#version", version)
            .expression_attribute_values(":owner", s(&token))
            .expression_attribute_values(":until", n(lock_until.timestamp_millis()))
            .expression_attribute_values(":version", s(version))
            .expression_attribute_values(":expires", self.expires())
            .expression_attribute_values(":none", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await;
        match update {
            Ok(_) => {
                return Ok(Claim::Acquired(Lease {
                    key: key.to_owned(),
                    version: version.to_owned(),
                    token,
                }))
            }
            Err(e) if e.as_service_error().is_some_and(conditional) => {}
            Err(e) => return Err(sdk_failure("UpdateItem idempotency claim", e)),
        }
        let item = self.read(key).await?;
        if item.get("lockOwner").and_then(|v| v.as_s().ok()) == Some(&token) {
            // Our own claim, written by an attempt whose answer was lost (the SDK retried it).
            return Ok(Claim::Acquired(Lease {
                key: key.to_owned(),
                version: version.to_owned(),
                token,
            }));
        }
        let done = item
            .get("versions")
            .and_then(|v| v.as_m().ok())
            .and_then(|m| m.get(version))
            .and_then(|r| r.as_s().ok());
        if let Some(result) = done {
            return Ok(Claim::Completed(result.clone()));
        }
        let until = locked_until(&item);
        // Released between our write and our read: someone else will take it, or we will on retry.
        Ok(Claim::InProgress { until })
    }

    #[tracing::instrument(name = "idempotency.complete", skip_all)]
    async fn complete(&self, lease: &Lease, result: &str) -> Result<(), StoreError> {
        let completed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(&lease.key))
            .update_expression(
                "SET #versions.#version = :result, expiresAt = :expires \
                 REMOVE lockOwner, lockUntil, lockedVersion",
            )
            .condition_expression("lockOwner = :owner")
            .expression_attribute_names("#versions", "versions")
            .expression_attribute_names("#version", &lease.version)
            .expression_attribute_values(":result", s(result))
            .expression_attribute_values(":expires", self.expires())
            .expression_attribute_values(":owner", s(&lease.token))
            .send()
            .await;
        match completed {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(conditional) => {
                // The version completed with this result: our own completion, its answer lost
                // (or, after our lease ran out, another holder's with the same result — the same
                // end). Another result, or none: the lease was lost.
                let item = self.read(&lease.key).await?;
                let stored = item
                    .get("versions")
                    .and_then(|v| v.as_m().ok())
                    .and_then(|m| m.get(&lease.version))
                    .and_then(|r| r.as_s().ok());
                if stored.map(String::as_str) == Some(result) {
                    Ok(())
                } else {
                    Err(StoreError::Conflict(
                        "idempotency complete: the lease was lost".into(),
                    ))
                }
            }
            Err(e) => Err(sdk_failure("UpdateItem idempotency complete", e)),
        }
    }

    #[tracing::instrument(name = "idempotency.release", skip_all)]
    async fn release(&self, lease: &Lease, error: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(&lease.key))
            .update_expression(
                "SET lastError = :error, lastErrorAt = :at, expiresAt = :expires \
                 REMOVE lockOwner, lockUntil, lockedVersion",
            )
            .condition_expression("lockOwner = :owner")
            .expression_attribute_values(":error", s(error.chars().take(1000).collect::<String>()))
            .expression_attribute_values(
                ":at",
                s(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            )
            .expression_attribute_values(":expires", self.expires())
            .expression_attribute_values(":owner", s(&lease.token))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            // Expired and taken by someone else: not ours to free any more.
            Err(e) if e.as_service_error().is_some_and(conditional) => Ok(()),
            Err(e) => Err(sdk_failure("UpdateItem idempotency release", e)),
        }
    }

    async fn state(&self, key: &str) -> Result<ClaimState, StoreError> {
        let item = self.read(key).await?;
        Ok(ClaimState {
            locked_until: locked_until(&item),
            last_error: get_opt_s(&item, "lastError"),
        })
    }
}
