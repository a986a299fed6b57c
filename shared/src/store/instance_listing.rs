//! A subject's DICOM instances: the instances table's `BySubject` index (`subjectId`,
//! `studyInstanceUid`), read page by page up to a bound.

use super::{sdk_failure, InstanceListing, InstanceRecord, StoreError, SubjectInstances};
use crate::domain::SubjectId;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// The instances table's index by subject.
pub const BY_SUBJECT: &str = "BySubject";

#[derive(Clone, Debug)]
pub struct DynamoInstanceListing {
    client: Client,
    table: String,
}

impl DynamoInstanceListing {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn record_of(item: &HashMap<String, AttributeValue>) -> Result<InstanceRecord, StoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("instance attribute {name} missing")))
    };
    Ok(InstanceRecord {
        sop_instance_uid: text("sopInstanceUid")?,
        sha256: text("sha256")?,
        study_instance_uid: text("studyInstanceUid")?,
        series_instance_uid: text("seriesInstanceUid")?,
        modality: text("modality")?,
        study_date: item.get("studyDate").and_then(|v| v.as_s().ok()).cloned(),
        trial: text("trialId")?,
        site: text("siteId")?,
        subject: text("subjectId")?,
        upload_id: text("uploadId")?,
        object_key: text("objectKey")?,
        size_bytes: item
            .get("sizeBytes")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("instance attribute sizeBytes".into()))?,
        recorded_at: chrono::DateTime::parse_from_rfc3339(&text("recordedAt")?)
            .map_err(|e| StoreError::Corrupt(format!("instance recordedAt: {e}")))?
            .with_timezone(&chrono::Utc),
    })
}

#[async_trait]
impl InstanceListing for DynamoInstanceListing {
    #[tracing::instrument(name = "instances.of_subject", skip_all)]
    async fn of_subject(
        &self,
        subject: &SubjectId,
        max: usize,
    ) -> Result<SubjectInstances, StoreError> {
        let mut instances = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_SUBJECT)
                .key_condition_expression("subjectId = :s")
                .expression_attribute_values(":s", AttributeValue::S(subject.as_str().into()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_failure("Query instances by subject", e))?;
            for item in out.items() {
                if instances.len() == max {
                    return Ok(SubjectInstances {
                        instances,
                        complete: false,
                    });
                }
                instances.push(record_of(item)?);
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => {
                    return Ok(SubjectInstances {
                        instances,
                        complete: true,
                    })
                }
            }
        }
    }
}
