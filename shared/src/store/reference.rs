//! The DynamoDB adapter of the reference data's source of truth: one table keyed (`kind`, `code`),
//! the value as JSON, a `version` for the admin route's `If-Match`, who and when. Each change is
//! written with its audit entry (entity `reference#<kind>#<code>`) in one transaction.

use super::dynamodb::{n, s, time, transact, Item};
use super::{sdk_failure, AuditEntry, StoreError};
use crate::reference::{ReferenceEntry, ReferenceKind, ReferenceValue};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

/// One page of a kind's entries, in code order.
#[derive(Debug, Clone)]
pub struct ReferencePage {
    pub entries: Vec<ReferenceEntry>,
    /// The last code of this page, where the next starts after; `None` on the last page.
    pub next: Option<String>,
}

/// What refresh-cache reads: every entry of a kind, a page at a time.
#[async_trait]
pub trait ReferenceSource: Send + Sync {
    async fn page(
        &self,
        kind: ReferenceKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ReferencePage, StoreError>;
}

/// What the admin route reads and writes.
#[async_trait]
pub trait ReferenceAdmin: Send + Sync {
    async fn get(
        &self,
        kind: ReferenceKind,
        code: &str,
    ) -> Result<Option<ReferenceEntry>, StoreError>;
    /// Writes `entry` (whose `version` is the new one) if the stored version is `entry.version - 1`
    /// (0: none stored), with its audit entry; `Conflict` when someone else wrote first.
    async fn put(
        &self,
        entry: &ReferenceEntry,
        by: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
}

#[derive(Clone, Debug)]
pub struct DynamoReference {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoReference {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
        }
    }

    /// A reader of the source only (refresh-cache): it knows no audit table, and its writes fail.
    pub fn reader(client: Client, table: impl Into<String>) -> Self {
        Self::new(client, table, "")
    }
}

pub fn reference_entity(kind: ReferenceKind, code: &str) -> String {
    format!("reference#{kind}#{code}")
}

fn entry_from_item(kind: ReferenceKind, item: &Item) -> Result<ReferenceEntry, StoreError> {
    let code = item
        .get("code")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt("reference item without code".into()))?;
    let value: ReferenceValue = item
        .get("value")
        .and_then(|v| v.as_s().ok())
        .and_then(|raw| serde_json::from_str(raw).ok())
        .filter(|v: &ReferenceValue| v.kind() == kind)
        .ok_or_else(|| StoreError::Corrupt(format!("reference {kind} {code}: value")))?;
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|raw| raw.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("reference {kind} {code}: version")))?;
    Ok(ReferenceEntry {
        kind,
        code: code.clone(),
        value,
        version,
    })
}

/// The item of one reference entry (also what the local stack seeds from the committed CSVs).
pub fn entry_item(entry: &ReferenceEntry, by: &str, at: DateTime<Utc>) -> Item {
    Item::from([
        ("kind".into(), s(entry.kind.as_str())),
        ("code".into(), s(&entry.code)),
        (
            "value".into(),
            s(serde_json::to_string(&entry.value).unwrap_or_default()),
        ),
        ("version".into(), n(entry.version)),
        ("updatedBy".into(), s(by)),
        ("updatedAt".into(), time(&at)),
    ])
}

#[async_trait]
impl ReferenceSource for DynamoReference {
    #[tracing::instrument(name = "reference.page", skip_all, fields(kind = %kind))]
    async fn page(
        &self,
        kind: ReferenceKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ReferencePage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("kind = :k")
            .expression_attribute_values(":k", s(kind.as_str()))
            .consistent_read(true)
            .limit(limit.clamp(1, 1000) as i32);
        if let Some(code) = after {
            query = query
                .exclusive_start_key("kind", s(kind.as_str()))
                .exclusive_start_key("code", s(code));
        }
        let out = query
            .send()
            .await
            .map_err(|e| sdk_failure("Query reference", e))?;
        let entries = out
            .items()
            .iter()
            .map(|item| entry_from_item(kind, item))
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("code"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(ReferencePage { entries, next })
    }
}

#[async_trait]
impl ReferenceAdmin for DynamoReference {
    async fn get(
        &self,
        kind: ReferenceKind,
        code: &str,
    ) -> Result<Option<ReferenceEntry>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("kind", s(kind.as_str()))
            .key("code", s(code))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem reference", e))?;
        out.item.map(|i| entry_from_item(kind, &i)).transpose()
    }

    async fn put(
        &self,
        entry: &ReferenceEntry,
        by: &str,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        if self.audit_table.is_empty() {
            return Err(StoreError::Failed(
                "a reader of the reference source cannot write".into(),
            ));
        }
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(entry_item(entry, by, at)));
        put = if entry.version <= 1 {
            put.condition_expression("attribute_not_exists(kind)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(entry.version - 1))
        };
        let put = put
            .build()
            .map_err(|e| StoreError::Failed(format!("reference item: {e}")))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            super::audit::put(&self.audit_table, audit)?,
        ];
        if transact(&self.client, "TransactWriteItems reference", items).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict("reference entry changed".into()))
        }
    }
}
