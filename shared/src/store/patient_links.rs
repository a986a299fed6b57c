//! [`PatientLinks`] on DynamoDB (template.yaml: `PatientLinksTable`, key `link`). Two items per
//! link, written together in one transaction, each conditional:
//! - `PATIENT#<trial>#<hash>` → `subjectId`: whose patient this hash is;
//! - `SUBJECT#<trial>#<subject>` → `patientHash`: whose hash this subject has.
//!
//! Both keep the upload that made them and when. Neither holds a Patient ID.

use super::{sdk_failure, StoreError};
use crate::domain::{SubjectId, TrialId, UploadId};
use crate::identity::{MismatchReason, PatientHash, PatientLinks};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{SecondsFormat, Utc};

/// How often a link is read and tried again (after a refusal that shows no conflict: a concurrent
/// upload wrote the same links; or a transaction conflict) before the message goes back to the queue.
const ATTEMPTS: u32 = 4;

#[derive(Clone, Debug)]
pub struct DynamoPatientLinks {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn patient_key(trial: &TrialId, hash: &PatientHash) -> String {
    format!("PATIENT#{trial}#{}", hash.as_str())
}

fn subject_key(trial: &TrialId, subject: &SubjectId) -> String {
    format!("SUBJECT#{trial}#{subject}")
}

impl DynamoPatientLinks {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Sets `attribute` to `value` on the item `key`, unless it holds another value already.
    fn link_item(
        &self,
        key: String,
        attribute: &str,
        value: &str,
        upload: &UploadId,
        now: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("link", s(key))
            .update_expression(
                "SET #a = :v, firstUploadId = if_not_exists(firstUploadId, :u), linkedAt = if_not_exists(linkedAt, :now)",
            )
            .condition_expression("attribute_not_exists(#a) OR #a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", s(value))
            .expression_attribute_values(":u", s(upload.as_str()))
            .expression_attribute_values(":now", s(now))
            .build()
            .map_err(|e| StoreError::Failed(format!("patient link: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn read(&self, key: String, attribute: &str) -> Result<Option<String>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("link", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem patient link", e))?
            .item;
        Ok(item
            .as_ref()
            .and_then(|i| i.get(attribute))
            .and_then(|v| v.as_s().ok())
            .cloned())
    }
}

#[async_trait]
impl PatientLinks for DynamoPatientLinks {
    #[tracing::instrument(name = "patient_links.link", skip_all)]
    async fn link(
        &self,
        trial: &TrialId,
        subject: &SubjectId,
        hash: &PatientHash,
        upload: &UploadId,
    ) -> Result<Vec<MismatchReason>, StoreError> {
        for attempt in 0..ATTEMPTS {
            // Read first: once a subject's patient is linked (the usual case, e.g. the hundreds of
            // instances of one series), there is nothing to write and nothing to contend for.
            let linked_subject = self.read(patient_key(trial, hash), "subjectId").await?;
            let linked_hash = self
                .read(subject_key(trial, subject), "patientHash")
                .await?;
            let mut conflicts = Vec::new();
            if linked_subject
                .as_deref()
                .is_some_and(|s| s != subject.as_str())
            {
                conflicts.push(MismatchReason::MatchesOtherSubject);
            }
            if linked_hash.as_deref().is_some_and(|h| h != hash.as_str()) {
                conflicts.push(MismatchReason::DiffersFromSubject);
            }
            if !conflicts.is_empty() {
                return Ok(conflicts);
            }
            if linked_subject.is_some() && linked_hash.is_some() {
                return Ok(Vec::new());
            }
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
            let items = vec![
                self.link_item(
                    patient_key(trial, hash),
                    "subjectId",
                    subject.as_str(),
                    upload,
                    &now,
                )?,
                self.link_item(
                    subject_key(trial, subject),
                    "patientHash",
                    hash.as_str(),
                    upload,
                    &now,
                )?,
            ];
            match self.transact(items).await? {
                Written::Yes => return Ok(Vec::new()),
                // Someone linked one side first: read again, and decide on what is there now.
                Written::Refused => {}
                // Another transaction on the same item was in flight: a moment, then again.
                Written::Contended => {
                    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 50;
                    tokio::time::sleep(std::time::Duration::from_millis(
                        20 * (1 << attempt) + jitter,
                    ))
                    .await;
                }
            }
        }
        Err(StoreError::Unavailable(
            "patient links: still contended after retries".into(),
        ))
    }
}

/// What a link transaction did.
enum Written {
    Yes,
    /// A condition failed: one side is linked to something else, or was linked meanwhile.
    Refused,
    /// DynamoDB cancelled it for a concurrent transaction on the same item (`TransactionConflict`).
    Contended,
}

impl DynamoPatientLinks {
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Written, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Written::Yes),
            Err(err) => {
                let reasons: Vec<String> = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(t)) => t
                        .cancellation_reasons()
                        .iter()
                        .filter_map(|r| r.code().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                if reasons.iter().any(|r| r == "ConditionalCheckFailed") {
                    Ok(Written::Refused)
                } else if reasons.iter().any(|r| r == "TransactionConflict") {
                    Ok(Written::Contended)
                } else {
                    Err(sdk_failure("TransactWriteItems patient links", err))
                }
            }
        }
    }
}
