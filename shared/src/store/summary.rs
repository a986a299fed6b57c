//! The per-subject imaging summary the subject report reads: studies and series (sets of UIDs),
//! instances per modality, study dates (the last one is their maximum), uploads pending,
//! quarantined and failed, uploads flagged for a Patient ID that is not the subject's
//! ([`crate::identity`]). Kept from the imaging-events queue; every event applies once, whatever
//! its deliveries or their order, through a marker item per upload written in the same transaction
//! as the counters — one write per event, so no part of an event can be applied without the rest.

use super::{sdk_failure, StoreError};
pub use crate::events::{EventKind, ImagingEvent};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// Rounds of an outcome's conditional steps before it is handed back to its queue.
const ROUNDS: usize = 4;

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
const PROCESSING: &str = "PROCESSING";
const FAILED: &str = "FAILED";

/// The event's study date when it is a DICOM DA (YYYYMMDD, which compares as text).
fn study_date(e: &ImagingEvent) -> Option<&str> {
    e.study_date
        .as_deref()
        .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
}

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

    /// The counters an event changes: `pending` by `pending`, and with `outcome` the event's own
    /// counts (instances, studies, series and study dates for an accepted instance; quarantined or
    /// failed), less one `failed` when the outcome follows a failure (a reprocessed upload).
    fn summary_update(
        &self,
        e: &ImagingEvent,
        pending: i64,
        outcome: bool,
        after_failure: bool,
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
        if after_failure {
            adds.push("#failed :minus_one".to_owned());
            update = update.expression_attribute_values(":minus_one", n(-1));
        }
        let counts = |kind| outcome && e.kind == kind;
        if counts(EventKind::Quarantined) {
            adds.push("#quarantined :one".to_owned());
        }
        if counts(EventKind::Failed) {
            adds.push("#failed :one".to_owned());
        }
        if counts(EventKind::Processed) && e.instance.as_deref() != Some("duplicate") {
            adds.push("#instances :one, #modality :one".to_owned());
            update = update.expression_attribute_names(
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
        // The study date goes into a set in this same write: adding to a set is idempotent and
        // the last study date is the set's maximum, so it cannot be lost between two writes.
        if let Some(date) = study_date(e).filter(|_| counts(EventKind::Processed)) {
            adds.push("#dates :date".to_owned());
            update =
                update.expression_attribute_values(":date", AttributeValue::Ss(vec![date.into()]));
        }
        if adds.iter().any(|a| a.contains(":one")) {
            update = update.expression_attribute_values(":one", n(1));
        }
        for (placeholder, name) in [
            ("#pending", "pending"),
            ("#quarantined", "quarantined"),
            ("#failed", "failed"),
            ("#instances", "instances"),
            ("#studies", "studies"),
            ("#series", "series"),
            ("#dates", "studyDates"),
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

    fn marker_put(&self, e: &ImagingEvent, state: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::marker_key(e)))
            .item("state", s(state))
            .condition_expression("attribute_not_exists(subjectId)")
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn marker_move(
        &self,
        e: &ImagingEvent,
        from: &str,
        to: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut marker = Update::builder()
            .table_name(&self.table)
            .update_expression("SET #state = :to")
            .condition_expression("#state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":from", s(from));
        for (k, v) in Self::marker_key(e) {
            marker = marker.key(k, v);
        }
        let marker = marker
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(marker).build())
    }

    /// Applies one event, once: each branch is one transaction of the upload's marker (its
    /// condition says which step the summary has seen) and the counters.
    pub async fn apply(&self, e: &ImagingEvent) -> Result<Applied, StoreError> {
        let state = match e.kind {
            EventKind::Processing => {
                // Processing started: pending +1, once, and only if no outcome came first.
                let applied = self
                    .transact(vec![
                        self.marker_put(e, PROCESSING)?,
                        self.summary_update(e, 1, false, false)?,
                    ])
                    .await?;
                return Ok(if applied {
                    Applied::Counted
                } else {
                    Applied::AlreadyApplied
                });
            }
            EventKind::Processed => "PROCESSED",
            EventKind::Quarantined => "QUARANTINED",
            EventKind::Failed => "FAILED",
        };
        // Three conditional steps, each a transaction; a concurrent event of the same upload (its
        // PROCESSING, handled by another invocation) may land between two of them, so when none
        // applied the marker is read: still movable → another round; already final → a redelivery.
        for _ in 0..ROUNDS {
            // The usual order: PROCESSING → final, pending -1.
            if self
                .transact(vec![
                    self.marker_move(e, PROCESSING, state)?,
                    self.summary_update(e, -1, true, false)?,
                ])
                .await?
            {
                return Ok(Applied::Counted);
            }
            // The outcome arrived first (or alone): count it, without pending.
            if self
                .transact(vec![
                    self.marker_put(e, state)?,
                    self.summary_update(e, 0, true, false)?,
                ])
                .await?
            {
                return Ok(Applied::Counted);
            }
            // A failed upload reprocessed to an outcome: failed -1, the outcome counted.
            if e.kind != EventKind::Failed
                && self
                    .transact(vec![
                        self.marker_move(e, FAILED, state)?,
                        self.summary_update(e, 0, true, true)?,
                    ])
                    .await?
            {
                return Ok(Applied::Counted);
            }
            match self.marker_state(e).await?.as_deref() {
                None | Some(PROCESSING) => continue,
                Some(FAILED) if e.kind != EventKind::Failed => continue,
                Some(seen) => {
                    if seen != state {
                        // Not a redelivery of this outcome: the summary counted another one.
                        tracing::warn!(upload = %e.upload_id, counted = seen, event = state, "an outcome other than the one counted: not applied");
                    }
                    return Ok(Applied::AlreadyApplied);
                }
            }
        }
        // Never dropped: the message returns to its queue and is applied later.
        Err(StoreError::Conflict(format!(
            "the summary marker of {} kept moving",
            e.upload_id
        )))
    }

    /// The step the summary has seen of the event's upload (its marker's state), read consistently.
    async fn marker_state(&self, e: &ImagingEvent) -> Result<Option<String>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::marker_key(e)))
            .consistent_read(true)
            .projection_expression("#state")
            .expression_attribute_names("#state", "state")
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem imaging summary marker", e))?
            .item;
        Ok(item.and_then(|i| i.get("state").and_then(|v| v.as_s().ok()).cloned()))
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
            // The latest of the recorded study dates (and of the single date older items keep).
            let last_study_date = item
                .get("studyDates")
                .and_then(|v| v.as_ss().ok())
                .into_iter()
                .flatten()
                .chain(item.get("lastStudyDate").and_then(|v| v.as_s().ok()))
                .max()
                .cloned();
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
                "lastStudyDate": last_study_date,
                "pending": num("pending"),
                "quarantined": num("quarantined"),
                "failed": num("failed"),
                "patientMismatches": mismatches.len(),
                "patientMismatchUploads": mismatches,
            })
        }))
    }
}

#[async_trait::async_trait]
impl super::ImagingSummaries for DynamoImagingSummary {
    async fn summary(
        &self,
        subject: &crate::domain::SubjectId,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.get(subject.as_str()).await
    }
}
