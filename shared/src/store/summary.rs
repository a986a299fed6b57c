//! The per-subject imaging summary the subject report reads: studies and series (sets of UIDs),
//! instances per modality, last study date, uploads pending and quarantined, uploads flagged for a
//! Patient ID that is not the subject's ([`crate::identity`]). Kept from the
//! imaging-events queue; every event applies once, whatever its deliveries or their order, through a
//! marker item per upload written in the same transaction as the counters.

use super::{sdk_failure, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// An outcome from the imaging-events queue, as the summary needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagingEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub upload_id: String,
    pub subject_id: String,
    pub trial_id: String,
    pub site_id: String,
    pub instance: Option<String>,
    pub modality: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub study_date: Option<String>,
    /// The wrong-patient flag's code (`differs_from_subject`, ...), when the upload has one.
    #[serde(default)]
    pub patient_mismatch: Option<String>,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Counted,
    /// Seen before (a redelivery, or an older step arriving after a newer one).
    AlreadyApplied,
    /// Not an event the summary counts.
    Ignored,
}

#[derive(Clone, Debug)]
pub struct DynamoImagingSummary {
    client: Client,
    table: String,
}

const SUMMARY: &str = "SUMMARY";

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Only letters and digits of a modality go into an attribute name.
fn modality_attribute(modality: &str) -> String {
    let clean: String = modality
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    format!(
        "instances_{}",
        if clean.is_empty() { "OT".into() } else { clean }
    )
}

impl DynamoImagingSummary {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn marker_key(e: &ImagingEvent) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("subjectId".into(), s(&e.subject_id)),
            ("item".into(), s(format!("UPLOAD#{}", e.upload_id))),
        ])
    }

    fn summary_update(
        &self,
        e: &ImagingEvent,
        pending: i64,
        outcome: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut adds = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("subjectId", s(&e.subject_id))
            .key("item", s(SUMMARY))
            .expression_attribute_values(":trial", s(&e.trial_id))
            .expression_attribute_values(":site", s(&e.site_id));
        if pending != 0 {
            adds.push("#pending :pending".to_owned());
            update = update.expression_attribute_values(":pending", n(pending));
        }
        if outcome && e.kind == "upload.quarantined" {
            adds.push("#quarantined :one".to_owned());
            update = update.expression_attribute_values(":one", n(1));
        }
        if outcome && e.kind == "upload.processed" && e.instance.as_deref() != Some("duplicate") {
            adds.push("#instances :one, #modality :one".to_owned());
            update = update
                .expression_attribute_values(":one", n(1))
                .expression_attribute_names(
                    "#modality",
                    modality_attribute(e.modality.as_deref().unwrap_or("OT")),
                );
            if let Some(study) = &e.study_instance_uid {
                adds.push("#studies :study".to_owned());
                update = update
                    .expression_attribute_values(":study", AttributeValue::Ss(vec![study.clone()]));
            }
            if e.patient_mismatch.is_some() {
                adds.push("#mismatches :upload".to_owned());
                update = update.expression_attribute_values(
                    ":upload",
                    AttributeValue::Ss(vec![e.upload_id.clone()]),
                );
            }
            if let Some(series) = &e.series_instance_uid {
                adds.push("#series :series".to_owned());
                update = update.expression_attribute_values(
                    ":series",
                    AttributeValue::Ss(vec![series.clone()]),
                );
            }
        }
        for (placeholder, name) in [
            ("#pending", "pending"),
            ("#quarantined", "quarantined"),
            ("#instances", "instances"),
            ("#studies", "studies"),
            ("#series", "series"),
            ("#mismatches", "patientMismatchUploads"),
        ] {
            if adds.iter().any(|a| a.contains(placeholder)) {
                update = update.expression_attribute_names(placeholder, name);
            }
        }
        let mut expression = "SET trialId = :trial, siteId = :site".to_owned();
        if !adds.is_empty() {
            expression.push_str(" ADD ");
            expression.push_str(&adds.join(", "));
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(|e| StoreError::Failed(format!("summary update: {e}")))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        super::dynamodb::transact(&self.client, "TransactWriteItems imaging summary", items).await
    }

    pub async fn apply(&self, e: &ImagingEvent) -> Result<Applied, StoreError> {
        let final_state = match e.kind.as_str() {
            "upload.processing" => None,
            "upload.processed" => Some("PROCESSED"),
            "upload.quarantined" => Some("QUARANTINED"),
            _ => return Ok(Applied::Ignored),
        };
        let Some(state) = final_state else {
            // Processing started: pending +1, once, and only if no outcome came first.
            let marker = Put::builder()
                .table_name(&self.table)
                .set_item(Some(Self::marker_key(e)))
                .item("state", s("PROCESSING"))
                .condition_expression("attribute_not_exists(subjectId)")
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            let applied = self
                .transact(vec![
                    TransactWriteItem::builder().put(marker).build(),
                    self.summary_update(e, 1, false)?,
                ])
                .await?;
            return Ok(if applied {
                Applied::Counted
            } else {
                Applied::AlreadyApplied
            });
        };
        // The usual order: PROCESSING → final, pending -1.
        let mut marker = Update::builder()
            .table_name(&self.table)
            .update_expression("SET #state = :final")
            .condition_expression("#state = :processing")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":final", s(state))
            .expression_attribute_values(":processing", s("PROCESSING"));
        for (k, v) in Self::marker_key(e) {
            marker = marker.key(k, v);
        }
        let marker = marker
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        if self
            .transact(vec![
                TransactWriteItem::builder().update(marker).build(),
                self.summary_update(e, -1, true)?,
            ])
            .await?
        {
            self.record_study_date(e).await?;
            return Ok(Applied::Counted);
        }
        // The outcome arrived first (or alone): count it, without pending.
        let marker = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::marker_key(e)))
            .item("state", s(state))
            .condition_expression("attribute_not_exists(subjectId)")
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        if self
            .transact(vec![
                TransactWriteItem::builder().put(marker).build(),
                self.summary_update(e, 0, true)?,
            ])
            .await?
        {
            self.record_study_date(e).await?;
            return Ok(Applied::Counted);
        }
        Ok(Applied::AlreadyApplied)
    }

    /// The latest study date (DICOM DA, YYYYMMDD, compares as text).
    async fn record_study_date(&self, e: &ImagingEvent) -> Result<(), StoreError> {
        let Some(date) = e
            .study_date
            .as_deref()
            .filter(|d| d.len() == 8 && e.kind == "upload.processed")
        else {
            return Ok(());
        };
        match self
            .client
            .update_item()
            .table_name(&self.table)
            .key("subjectId", s(&e.subject_id))
            .key("item", s(SUMMARY))
            .update_expression("SET lastStudyDate = :d")
            .condition_expression("attribute_not_exists(lastStudyDate) OR lastStudyDate < :d")
            .expression_attribute_values(":d", s(date))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_failure("UpdateItem last study date", err)),
        }
    }

    /// The summary of one subject, as JSON (the subject report will read it through here).
    pub async fn get(&self, subject: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("subjectId", s(subject))
            .key("item", s(SUMMARY))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem imaging summary", e))?
            .item;
        Ok(item.map(|item| {
            let num = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
            };
            let count = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_ss().ok())
                    .map(|v| v.len())
                    .unwrap_or(0)
            };
            let mut mismatches: Vec<String> = item
                .get("patientMismatchUploads")
                .and_then(|v| v.as_ss().ok())
                .cloned()
                .unwrap_or_default();
            mismatches.sort();
            let by_modality: serde_json::Map<String, serde_json::Value> = item
                .iter()
                .filter_map(|(k, v)| {
                    let m = k.strip_prefix("instances_")?;
                    Some((
                        m.to_owned(),
                        serde_json::json!(v.as_n().ok()?.parse::<i64>().ok()?),
                    ))
                })
                .collect();
            serde_json::json!({
                "subjectId": subject,
                "studies": count("studies"),
                "series": count("series"),
                "instances": num("instances"),
                "instancesByModality": by_modality,
                "lastStudyDate": item.get("lastStudyDate").and_then(|v| v.as_s().ok()),
                "pending": num("pending"),
                "quarantined": num("quarantined"),
                "patientMismatches": mismatches.len(),
                "patientMismatchUploads": mismatches,
            })
        }))
    }
}
