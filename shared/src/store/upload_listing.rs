//! A subject's uploads, newest first: the uploads table's `BySubject` index (`subjectId`,
//! `createdAt`), queried backwards.
//!
//! A status filter is applied by DynamoDB after it reads (`Limit` counts what it read, not what
//! matched), so a page is gathered over a few queries; the position handed back is the last upload
//! returned, so the next page starts right after it, whatever DynamoDB read beyond.

use super::dynamodb::{time, upload_from_item};
use super::{sdk_failure, StoreError, UploadListing, UploadPage, UploadPosition};
use crate::domain::{SubjectId, UploadId, UploadStatus};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// The uploads table's index by subject.
pub const BY_SUBJECT: &str = "BySubject";
/// Queries one page may take before it is handed back short (with its position).
const MAX_QUERIES: usize = 8;
/// Items read per query when a filter discards some.
const FILTERED_READ: i32 = 100;

#[derive(Clone, Debug)]
pub struct DynamoUploadListing {
    client: Client,
    table: String,
}

impl DynamoUploadListing {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn start_key(subject: &SubjectId, p: &UploadPosition) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "uploadId".into(),
            AttributeValue::S(p.upload.as_str().into()),
        ),
        (
            "subjectId".into(),
            AttributeValue::S(subject.as_str().into()),
        ),
        ("createdAt".into(), time(&p.created_at)),
    ])
}

fn position_of(key: &HashMap<String, AttributeValue>) -> Result<UploadPosition, StoreError> {
    let get = |name: &str| {
        key.get(name)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("index key without {name}")))
    };
    Ok(UploadPosition {
        upload: UploadId::parse(get("uploadId")?)
            .map_err(|e| StoreError::Corrupt(format!("uploadId: {e}")))?,
        created_at: chrono::DateTime::parse_from_rfc3339(get("createdAt")?)
            .map_err(|e| StoreError::Corrupt(format!("createdAt: {e}")))?
            .with_timezone(&chrono::Utc),
    })
}

#[async_trait]
impl UploadListing for DynamoUploadListing {
    #[tracing::instrument(name = "uploads.list", skip_all, fields(limit))]
    async fn list(
        &self,
        subject: &SubjectId,
        status: Option<UploadStatus>,
        limit: usize,
        after: Option<&UploadPosition>,
    ) -> Result<UploadPage, StoreError> {
        let limit = limit.max(1);
        let mut uploads = Vec::new();
        let mut start = after.map(|p| start_key(subject, p));
        for _ in 0..MAX_QUERIES {
            let wanted = limit + 1 - uploads.len().min(limit);
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_SUBJECT)
                .key_condition_expression("subjectId = :s")
                .expression_attribute_values(":s", AttributeValue::S(subject.as_str().into()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take());
            query = match status {
                Some(status) => query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(
                        ":status",
                        AttributeValue::S(status.as_str().into()),
                    )
                    .limit(FILTERED_READ),
                None => query.limit(i32::try_from(wanted).unwrap_or(FILTERED_READ)),
            };
            let out = query
                .send()
                .await
                .map_err(|e| sdk_failure("Query uploads by subject", e))?;
            for item in out.items() {
                uploads.push(upload_from_item(item)?);
            }
            if uploads.len() > limit {
                // More than a page: it ends at its last upload.
                uploads.truncate(limit);
                let last = uploads.last().map(|u| UploadPosition {
                    upload: u.id.clone(),
                    created_at: u.created_at,
                });
                return Ok(UploadPage {
                    uploads,
                    next: last,
                });
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => {
                    return Ok(UploadPage {
                        uploads,
                        next: None,
                    })
                }
            }
        }
        // Many reads filtered away: a short page, continuing where DynamoDB stopped reading.
        let next = start.as_ref().map(position_of).transpose()?;
        Ok(UploadPage { uploads, next })
    }
}
