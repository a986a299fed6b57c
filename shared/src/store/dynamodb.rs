//! DynamoDB adapters: uploads (conditional writes with their audit entry in the same transaction);
//! and the attribute helpers the other DynamoDB adapters ([`super::subjects`], [`super::forms`],
//! [`super::epro`], [`super::audit`], [`super::instances`], [`super::idempotency`],
//! [`super::summary`]) share.

use super::{sdk_failure, AuditEntry, StoreError, UploadStore};
use crate::domain::{
    ObjectKey, Sha256Digest, SiteId, SubjectId, TrialId, Upload, UploadId, UploadMode, UploadStatus,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn time(t: &DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing or not a string")))
}

pub(super) fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|raw| raw.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} missing or not a number")))
}

pub(super) fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(get_s(item, name)?)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an RFC 3339 time")))
}

pub(super) fn corrupt(name: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("attribute {name}: {e}"))
}

/// Moved to [`super::subjects`]; named here too for the functions that import it from here.
pub use super::subjects::DynamoSubjects;

/// The uploads table plus the audit table its changes are recorded in.
#[derive(Clone, Debug)]
pub struct DynamoUploads {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoUploads {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
        }
    }

    fn audit_put(&self, audit: &AuditEntry) -> Result<TransactWriteItem, StoreError> {
        super::audit::put(&self.audit_table, audit)
    }

    async fn write(
        &self,
        operation: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        if transact(&self.client, operation, items).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(operation.to_owned()))
        }
    }

    /// The audit trail of one entity, oldest first (tests and, later, the audit API).
    pub async fn audit_trail(&self, entity: &str) -> Result<Vec<Item>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.audit_table)
            .key_condition_expression("entity = :e")
            .expression_attribute_values(":e", s(entity))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("Query audit", e))?;
        Ok(out.items.unwrap_or_default())
    }
}

/// One DynamoDB transaction: `Ok(true)` written, `Ok(false)` refused by one of its conditions.
///
/// Real DynamoDB cancels a transaction that meets another one on the same item
/// (`TransactionConflict`) rather than queueing it; such a cancellation is retried here a few times
/// with jittered backoff, then reported as unavailable (the caller's retry path takes it).
pub(crate) async fn transact(
    client: &Client,
    operation: &'static str,
    items: Vec<TransactWriteItem>,
) -> Result<bool, StoreError> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let err = match client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await
        {
            Ok(_) => return Ok(true),
            Err(err) => err,
        };
        let reasons: Vec<String> = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(t)) => t
                .cancellation_reasons()
                .iter()
                .filter_map(|r| r.code().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if reasons.iter().any(|r| r == "ConditionalCheckFailed") {
            return Ok(false);
        }
        if reasons.iter().any(|r| r == "TransactionConflict") && attempt < ATTEMPTS {
            let base = 25u64 << attempt;
            let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * base / 255;
            tracing::info!(operation, attempt, "transaction conflict; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(base / 2 + jitter / 2)).await;
            continue;
        }
        return Err(sdk_failure(operation, err));
    }
    Err(StoreError::Unavailable(operation.to_owned()))
}

pub fn upload_entity(id: &UploadId) -> String {
    format!("upload#{id}")
}

fn upload_to_item(u: &Upload) -> Item {
    let mut item: Item = HashMap::from([
        ("uploadId".into(), s(u.id.as_str())),
        ("subjectId".into(), s(u.subject.as_str())),
        ("trialId".into(), s(u.trial.as_str())),
        ("siteId".into(), s(u.site.as_str())),
        ("fileName".into(), s(&u.file_name)),
        ("contentType".into(), s(&u.content_type)),
        ("sizeBytes".into(), n(u.size_bytes)),
        ("sha256".into(), s(u.sha256.to_hex())),
        ("bucket".into(), s(&u.bucket)),
        ("objectKey".into(), s(u.key.as_str())),
        ("status".into(), s(u.status.as_str())),
        ("createdBy".into(), s(&u.created_by)),
        ("createdAt".into(), time(&u.created_at)),
        ("updatedAt".into(), time(&u.updated_at)),
        ("expiresAt".into(), time(&u.expires_at)),
        ("correlationId".into(), s(&u.correlation_id)),
    ]);
    match &u.mode {
        UploadMode::Single => {
            item.insert("mode".into(), s("single"));
        }
        UploadMode::Multipart {
            s3_upload_id,
            part_size,
            part_count,
        } => {
            item.insert("mode".into(), s("multipart"));
            item.insert("s3UploadId".into(), s(s3_upload_id));
            item.insert("partSize".into(), n(part_size));
            item.insert("partCount".into(), n(part_count));
        }
    }
    if let Some(reason) = &u.status_reason {
        item.insert("statusReason".into(), s(reason));
    }
    if let Some(result) = u
        .processing
        .as_ref()
        .and_then(|p| serde_json::to_string(p).ok())
    {
        item.insert("processing".into(), s(result));
    }
    item
}

pub(crate) fn upload_from_item(item: &Item) -> Result<Upload, StoreError> {
    let mode = match get_s(item, "mode")? {
        "single" => UploadMode::Single,
        "multipart" => UploadMode::Multipart {
            s3_upload_id: get_s(item, "s3UploadId")?.to_owned(),
            part_size: get_n(item, "partSize")?,
            part_count: get_n(item, "partCount")?,
        },
        other => return Err(StoreError::Corrupt(format!("unknown mode {other}"))),
    };
    Ok(Upload {
        id: UploadId::parse(get_s(item, "uploadId")?).map_err(corrupt("uploadId"))?,
        subject: SubjectId::parse(get_s(item, "subjectId")?).map_err(corrupt("subjectId"))?,
        trial: TrialId::parse(get_s(item, "trialId")?).map_err(corrupt("trialId"))?,
        site: SiteId::parse(get_s(item, "siteId")?).map_err(corrupt("siteId"))?,
        file_name: get_s(item, "fileName")?.to_owned(),
        content_type: get_s(item, "contentType")?.to_owned(),
        size_bytes: get_n(item, "sizeBytes")?,
        sha256: Sha256Digest::parse(get_s(item, "sha256")?).map_err(corrupt("sha256"))?,
        bucket: get_s(item, "bucket")?.to_owned(),
        key: ObjectKey::from_stored(get_s(item, "objectKey")?.to_owned()),
        mode,
        status: UploadStatus::parse(get_s(item, "status")?)
            .ok_or_else(|| StoreError::Corrupt("unknown status".into()))?,
        status_reason: get_opt_s(item, "statusReason"),
        created_by: get_s(item, "createdBy")?.to_owned(),
        created_at: get_time(item, "createdAt")?,
        updated_at: get_time(item, "updatedAt")?,
        expires_at: get_time(item, "expiresAt")?,
        correlation_id: get_s(item, "correlationId")?.to_owned(),
        processing: get_opt_s(item, "processing")
            .map(|raw| serde_json::from_str(&raw))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("attribute processing: {e}")))?,
    })
}

#[async_trait]
impl UploadStore for DynamoUploads {
    #[tracing::instrument(name = "uploads.create", skip_all, fields(upload = %upload.id))]
    async fn create(&self, upload: &Upload, audit: &AuditEntry) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(upload_to_item(upload)))
            .condition_expression("attribute_not_exists(uploadId)")
            .build()
            .map_err(|e| StoreError::Failed(format!("upload item: {e}")))?;
        self.write(
            "TransactWriteItems create upload",
            vec![
                TransactWriteItem::builder().put(put).build(),
                self.audit_put(audit)?,
            ],
        )
        .await
    }

    #[tracing::instrument(name = "uploads.get", skip_all, fields(upload = %id))]
    async fn get(&self, id: &UploadId) -> Result<Option<Upload>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("uploadId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem uploads", e))?;
        out.item.as_ref().map(upload_from_item).transpose()
    }

    #[tracing::instrument(name = "uploads.transition", skip_all, fields(upload = %id, from = %from, to = %to))]
    async fn transition(
        &self,
        id: &UploadId,
        from: UploadStatus,
        to: UploadStatus,
        reason: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        if !from.can_become(to) {
            return Err(StoreError::Conflict(format!("{from} cannot become {to}")));
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("uploadId", s(id.as_str()))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(from.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", time(&audit.at));
        update = match reason {
            Some(reason) => update
                .update_expression("SET #status = :to, updatedAt = :now, statusReason = :reason")
                .expression_attribute_values(":reason", s(reason)),
            None => {
                update.update_expression("SET #status = :to, updatedAt = :now REMOVE statusReason")
            }
        };
        let update = update
            .build()
            .map_err(|e| StoreError::Failed(format!("status update: {e}")))?;
        self.write(
            "TransactWriteItems upload status",
            vec![
                TransactWriteItem::builder().update(update).build(),
                self.audit_put(audit)?,
            ],
        )
        .await
    }

    #[tracing::instrument(name = "uploads.finish_processing", skip_all, fields(upload = %id, to = %to))]
    async fn finish_processing(
        &self,
        id: &UploadId,
        to: UploadStatus,
        reason: Option<&str>,
        result: &crate::domain::ProcessingResult,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        if !UploadStatus::Processing.can_become(to) {
            return Err(StoreError::Conflict(format!(
                "PROCESSING cannot become {to}"
            )));
        }
        let result =
            serde_json::to_string(result).map_err(|e| StoreError::Failed(e.to_string()))?;
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("uploadId", s(id.as_str()))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", s(UploadStatus::Processing.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", time(&audit.at))
            .expression_attribute_values(":result", s(result));
        update = match reason {
            Some(reason) => update
                .update_expression(
                    "SET #status = :to, updatedAt = :now, processing = :result, statusReason = :reason",
                )
                .expression_attribute_values(":reason", s(reason)),
            None => update
                .update_expression("SET #status = :to, updatedAt = :now, processing = :result REMOVE statusReason"),
        };
        let update = update
            .build()
            .map_err(|e| StoreError::Failed(format!("processing update: {e}")))?;
        self.write(
            "TransactWriteItems upload processed",
            vec![
                TransactWriteItem::builder().update(update).build(),
                self.audit_put(audit)?,
            ],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_items_round_trip() {
        let now = Utc::now();
        let id = UploadId::generate();
        let upload = Upload {
            id: id.clone(),
            subject: SubjectId::parse("SUBJ-1").unwrap(),
            trial: TrialId::parse("T1").unwrap(),
            site: SiteId::parse("S1").unwrap(),
            file_name: "ct scan (1).dcm".into(),
            content_type: "application/dicom".into(),
            size_bytes: 123,
            sha256: Sha256Digest::from_bytes([7; 32]),
            bucket: "b".into(),
            key: ObjectKey::from_stored("incoming/T1/S1/SUBJ-1/x.dcm".into()),
            mode: UploadMode::Multipart {
                s3_upload_id: "abc".into(),
                part_size: 8,
                part_count: 16,
            },
            status: UploadStatus::AwaitingUpload,
            status_reason: Some("why".into()),
            created_by: "user".into(),
            created_at: now,
            updated_at: now,
            expires_at: now,
            correlation_id: "c".into(),
            processing: None,
        };
        let back = upload_from_item(&upload_to_item(&upload)).unwrap();
        // times are stored to the millisecond
        assert_eq!(back.id, upload.id);
        assert_eq!(back.mode, upload.mode);
        assert_eq!(back.sha256, upload.sha256);
        assert_eq!(back.status_reason, upload.status_reason);
        assert_eq!(back.created_at.timestamp_millis(), now.timestamp_millis());
    }
}
