//! The append-only audit trail (AuditTable: `entity`, `change` = `<at, microseconds UTC>#<random>`).
//!
//! Changes write their entry inside their own transaction ([`put`]); a user's read of patient data
//! appends one with [`AuditLog::append`] before the data is answered (21 CFR Part 11 §11.10(e),
//! HIPAA §164.312(b)): if it cannot be written, the data is not shown. The role of every function
//! may only `PutItem` here (and `Query` for the trail's readers): nothing is ever updated or
//! deleted.
//!
//! Entities: `upload#<uploadId>`, `subject#<subjectId>` (enrolment, forms, ePRO and every read of
//! the subject's data).

use super::dynamodb::{s, time, Item};
use super::{sdk_failure, AuditEntry, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;

/// The audit entity of a subject's clinical data.
pub fn subject_entity(id: &crate::domain::SubjectId) -> String {
    format!("subject#{id}")
}

/// One stored entry and where it sits in its entity's trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// The entry's sort key (`change`): what a page continues after.
    pub position: String,
    pub entry: AuditEntry,
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Oldest first.
    pub records: Vec<AuditRecord>,
    pub next: Option<String>,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one entry on its own (an audited read); never overwrites one.
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// At most `limit` entries of `entity`, oldest first, after `after`.
    async fn trail(
        &self,
        entity: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, StoreError>;
}

/// The item of an entry: a new `change` key each time.
pub(crate) fn item(entry: &AuditEntry) -> Item {
    let change = format!(
        "{}#{}",
        entry.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        uuid::Uuid::new_v4().simple()
    );
    let mut item: Item = HashMap::from([
        ("entity".into(), s(&entry.entity)),
        ("change".into(), s(change)),
        ("actor".into(), s(&entry.actor)),
        ("at".into(), time(&entry.at)),
        ("action".into(), s(&entry.action)),
        ("reason".into(), s(&entry.reason)),
        ("correlationId".into(), s(&entry.correlation_id)),
    ]);
    if let Some(old) = &entry.old {
        item.insert("old".into(), s(old));
    }
    if let Some(new) = &entry.new {
        item.insert("new".into(), s(new));
    }
    item
}

/// The entry as one write of a transaction (conditional on a new key: never an overwrite).
pub(crate) fn put(table: &str, entry: &AuditEntry) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item(entry)))
        .condition_expression("attribute_not_exists(entity)")
        .build()
        .map_err(|e| StoreError::Failed(format!("audit item: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn text(item: &Item, name: &str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("audit attribute {name} missing")))
}

pub(crate) fn record(item: &Item) -> Result<AuditRecord, StoreError> {
    let at = DateTime::parse_from_rfc3339(&text(item, "at")?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt("audit attribute at".into()))?;
    let opt = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    Ok(AuditRecord {
        position: text(item, "change")?,
        entry: AuditEntry {
            entity: text(item, "entity")?,
            actor: text(item, "actor")?,
            at,
            action: text(item, "action")?,
            old: opt("old"),
            new: opt("new"),
            reason: opt("reason").unwrap_or_default(),
            correlation_id: opt("correlationId").unwrap_or_default(),
        },
    })
}

/// The audit table.
#[derive(Clone, Debug)]
pub struct DynamoAuditLog {
    client: Client,
    table: String,
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl AuditLog for DynamoAuditLog {
    #[tracing::instrument(name = "audit.append", skip_all, fields(action = %entry.action))]
    async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(entry)))
            .condition_expression("attribute_not_exists(entity)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // The key is new to this call (a random UUIDv4, 122 bits), and the SDK sends the same item
            // on each of its retries: a key already present is this entry, written by an attempt
            // whose answer was lost (a timeout, a reset), not anyone else's.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                tracing::info!("audit entry already written by an earlier attempt of this call");
                Ok(())
            }
            Err(e) => Err(sdk_failure("PutItem audit", e)),
        }
    }

    #[tracing::instrument(name = "audit.trail", skip_all)]
    async fn trail(
        &self,
        entity: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("entity = :e")
            .expression_attribute_values(":e", s(entity))
            .consistent_read(true)
            .limit(limit.clamp(1, 1000) as i32);
        if let Some(after) = after {
            query = query
                .exclusive_start_key("entity", s(entity))
                .exclusive_start_key("change", s(after));
        }
        let out = query
            .send()
            .await
            .map_err(|e| sdk_failure("Query audit", e))?;
        let records = out
            .items
            .unwrap_or_default()
            .iter()
            .map(record)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .and_then(|k| k.get("change").and_then(|v| v.as_s().ok()).cloned());
        Ok(AuditPage { records, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_a_fresh_key_each_time() {
        let entry = AuditEntry {
            entity: "subject#S1".into(),
            actor: "u1".into(),
            at: Utc::now(),
            action: "form.change".into(),
            old: Some("{\"1/SYSBP\":\"120\"}".into()),
            new: Some("{\"1/SYSBP\":\"125\"}".into()),
            reason: "transcription error".into(),
            correlation_id: "c".into(),
        };
        let (a, b) = (item(&entry), item(&entry));
        assert_ne!(a["change"], b["change"]);
        let back = record(&a).unwrap();
        assert_eq!(back.entry.old, entry.old);
        assert_eq!(back.entry.reason, entry.reason);
        assert_eq!(
            back.entry.at.timestamp_millis(),
            entry.at.timestamp_millis()
        );
    }
}
