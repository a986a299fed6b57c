//! The DynamoDB adapter of [`InstanceIndex`]: `sopInstanceUid` + `sha256` as key, so the same
//! instance and digest is one item whatever the deliveries; a GSI by study (`studyInstanceUid`,
//! `seriesKey`) lists a study's series and instances.

use super::dynamodb::{n, s, time};
use super::{sdk_failure, InstanceIndex, InstanceOutcome, InstanceRecord, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;

#[derive(Clone, Debug)]
pub struct DynamoInstances {
    client: Client,
    table: String,
}

impl DynamoInstances {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Which upload holds the item (`None`: no item).
    async fn holder(&self, r: &InstanceRecord) -> Result<Option<String>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sopInstanceUid", s(&r.sop_instance_uid))
            .key("sha256", s(&r.sha256))
            .consistent_read(true)
            .projection_expression("uploadId")
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem instances", e))?
            .item;
        Ok(item.map(|i| super::dynamodb::get_opt_s(&i, "uploadId").unwrap_or_default()))
    }

    /// New, or a new version when the SOP Instance UID has items with other digests.
    async fn new_or_new_version(&self, r: &InstanceRecord) -> Result<InstanceOutcome, StoreError> {
        let versions = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("sopInstanceUid = :u")
            .expression_attribute_values(":u", s(&r.sop_instance_uid))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("Query instances", e))?
            .count;
        Ok(if versions > 1 {
            InstanceOutcome::NewVersion
        } else {
            InstanceOutcome::New
        })
    }
}

#[async_trait]
impl InstanceIndex for DynamoInstances {
    #[tracing::instrument(name = "instances.record", skip_all)]
    async fn record(&self, r: &InstanceRecord) -> Result<InstanceOutcome, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("sopInstanceUid", s(&r.sop_instance_uid))
            .item("sha256", s(&r.sha256))
            .item("studyInstanceUid", s(&r.study_instance_uid))
            .item(
                "seriesKey",
                s(format!(
                    "{}#{}#{}",
                    r.series_instance_uid, r.sop_instance_uid, r.sha256
                )),
            )
            .item("seriesInstanceUid", s(&r.series_instance_uid))
            .item("modality", s(&r.modality))
            .item("trialId", s(&r.trial))
            .item("siteId", s(&r.site))
            .item("subjectId", s(&r.subject))
            .item("uploadId", s(&r.upload_id))
            .item("objectKey", s(&r.object_key))
            .item("sizeBytes", n(r.size_bytes))
            .item("recordedAt", time(&r.recorded_at))
            .condition_expression("attribute_not_exists(sopInstanceUid)");
        if let Some(date) = &r.study_date {
            put = put.item("studyDate", s(date));
        }
        match put.send().await {
            Ok(_) => self.new_or_new_version(r).await,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                // Ours from an attempt that crashed before the record was updated: the same
                // outcome as then; anyone else's: a duplicate.
                if self.holder(r).await?.as_deref() == Some(r.upload_id.as_str()) {
                    tracing::info!(
                        "instance recorded by this upload before: its own, not a duplicate"
                    );
                    self.new_or_new_version(r).await
                } else {
                    Ok(InstanceOutcome::Duplicate)
                }
            }
            Err(e) => Err(sdk_failure("PutItem instances", e)),
        }
    }
}
