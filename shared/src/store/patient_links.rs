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

/// How often a refused link is re-read and tried again before the message goes back to the queue
/// (a refusal that shows no conflict means a concurrent upload wrote the same links).
const ATTEMPTS: usize = 3;

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
        for _ in 0..ATTEMPTS {
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
            if super::dynamodb::transact(&self.client, "TransactWriteItems patient links", items)
                .await?
            {
                return Ok(Vec::new());
            }
            let mut conflicts = Vec::new();
            if self
                .read(patient_key(trial, hash), "subjectId")
                .await?
                .is_some_and(|linked| linked != subject.as_str())
            {
                conflicts.push(MismatchReason::MatchesOtherSubject);
            }
            if self
                .read(subject_key(trial, subject), "patientHash")
                .await?
                .is_some_and(|linked| linked != hash.as_str())
            {
                conflicts.push(MismatchReason::DiffersFromSubject);
            }
            if !conflicts.is_empty() {
                return Ok(conflicts);
            }
        }
        Err(StoreError::Conflict(
            "patient links: refused without a conflict to show".into(),
        ))
    }
}
