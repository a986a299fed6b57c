//! The ePRO diary (`subjectId`, `entry` = `<recordedAt, RFC 3339 UTC millis>#<entryId>`, so a
//! query is oldest first by when the patient recorded it) and the ePRO requests table
//! (`requestKey` → the first answer to an `Idempotency-Key`, expired by TTL on `expiresAt`).
//! An entry, its request key and its audit entry are one transaction: a retry, concurrent or
//! late, finds the key and writes nothing.

use super::clinical::{EproDiary, EproPage, EproPosition, EproSubmissions, StoredAnswer};
use super::dynamodb::{get_n, get_s, get_time, n, s, time, transact, Item};
use super::{audit, sdk_failure, AuditEntry, StoreError};
use crate::clinical::epro::{EproEntry, PainScore, Symptom};
use crate::domain::SubjectId;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::{BTreeSet, HashMap};

#[derive(Clone, Debug)]
pub struct DynamoEpro {
    client: Client,
    table: String,
    /// The requests and audit tables (writers only).
    writes: Option<(String, String)>,
}

/// The sort key of an entry: oldest first by `recordedAt`, ties by id.
pub fn entry_key(e: &EproEntry) -> String {
    format!(
        "{}#{}",
        e.recorded_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        e.id
    )
}

fn entry_to_item(e: &EproEntry) -> Item {
    HashMap::from([
        ("subjectId".into(), s(e.subject.as_str())),
        ("entry".into(), s(entry_key(e))),
        ("entryId".into(), s(&e.id)),
        ("recordedAt".into(), time(&e.recorded_at)),
        ("painScore".into(), n(e.pain_score.value())),
        (
            "symptoms".into(),
            AttributeValue::L(e.symptoms.iter().map(|x| s(x.as_str())).collect()),
        ),
        (
            "diaryCompleted".into(),
            AttributeValue::Bool(e.diary_completed),
        ),
        ("receivedAt".into(), time(&e.received_at)),
        ("submittedBy".into(), s(&e.submitted_by)),
    ])
}

pub(crate) fn entry_from_item(item: &Item) -> Result<EproEntry, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("epro attribute {what}"));
    let symptoms = item
        .get("symptoms")
        .and_then(|v| v.as_l().ok())
        .ok_or_else(|| corrupt("symptoms"))?
        .iter()
        .map(|v| {
            v.as_s()
                .ok()
                .and_then(|x| Symptom::parse(x))
                .ok_or_else(|| corrupt("symptoms"))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(EproEntry {
        id: get_s(item, "entryId")?.to_owned(),
        subject: SubjectId::parse(get_s(item, "subjectId")?).map_err(|_| corrupt("subjectId"))?,
        recorded_at: get_time(item, "recordedAt")?,
        pain_score: PainScore::new(get_n(item, "painScore")?)
            .ok_or_else(|| corrupt("painScore"))?,
        symptoms,
        diary_completed: *item
            .get("diaryCompleted")
            .and_then(|v| v.as_bool().ok())
            .ok_or_else(|| corrupt("diaryCompleted"))?,
        received_at: get_time(item, "receivedAt")?,
        submitted_by: get_s(item, "submittedBy")?.to_owned(),
    })
}

fn answer_from_item(item: &Item, now: DateTime<Utc>) -> Result<Option<StoredAnswer>, StoreError> {
    let expires: i64 = get_n(item, "expiresAt")?;
    if expires <= now.timestamp() {
        // TTL deletes lazily: an expired key is no key.
        return Ok(None);
    }
    Ok(Some(StoredAnswer {
        fingerprint: get_s(item, "fingerprint")?.to_owned(),
        status: get_n(item, "status")?,
        body: get_s(item, "body")?.to_owned(),
    }))
}

impl DynamoEpro {
    /// Reads the diary only.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            writes: None,
        }
    }

    /// Writes entries too, with their request keys and audit entries.
    pub fn with_writes(
        mut self,
        requests_table: impl Into<String>,
        audit_table: impl Into<String>,
    ) -> Self {
        self.writes = Some((requests_table.into(), audit_table.into()));
        self
    }

    fn tables(&self) -> Result<(&str, &str), StoreError> {
        self.writes
            .as_ref()
            .map(|(r, a)| (r.as_str(), a.as_str()))
            .ok_or_else(|| {
                StoreError::Failed("ePRO writes need the requests and audit tables".into())
            })
    }
}

#[async_trait]
impl EproDiary for DynamoEpro {
    #[tracing::instrument(name = "epro.page", skip_all)]
    async fn page(
        &self,
        subject: &SubjectId,
        since: Option<DateTime<Utc>>,
        limit: usize,
        after: Option<&EproPosition>,
    ) -> Result<EproPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":s", s(subject.as_str()))
            .consistent_read(true)
            .limit(limit.clamp(1, 1000) as i32);
        query = match since {
            Some(since) => query
                .key_condition_expression("subjectId = :s AND entry >= :since")
                .expression_attribute_values(
                    ":since",
                    s(since.to_rfc3339_opts(SecondsFormat::Millis, true)),
                ),
            None => query.key_condition_expression("subjectId = :s"),
        };
        if let Some(after) = after {
            query = query
                .exclusive_start_key("subjectId", s(subject.as_str()))
                .exclusive_start_key("entry", s(&after.0));
        }
        let out = query
            .send()
            .await
            .map_err(|e| sdk_failure("Query epro", e))?;
        let entries = out
            .items
            .unwrap_or_default()
            .iter()
            .map(entry_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key
            .and_then(|k| k.get("entry").and_then(|v| v.as_s().ok()).cloned())
            .map(EproPosition);
        Ok(EproPage { entries, next })
    }
}

#[async_trait]
impl EproSubmissions for DynamoEpro {
    #[tracing::instrument(name = "epro.answer", skip_all)]
    async fn answer(&self, request_key: &str) -> Result<Option<StoredAnswer>, StoreError> {
        let (requests, _) = self.tables()?;
        let out = self
            .client
            .get_item()
            .table_name(requests)
            .key("requestKey", s(request_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem epro requests", e))?;
        match out.item {
            Some(item) => answer_from_item(&item, Utc::now()),
            None => Ok(None),
        }
    }

    #[tracing::instrument(name = "epro.record", skip_all)]
    async fn record(
        &self,
        request_key: &str,
        answer: &StoredAnswer,
        keep_until: DateTime<Utc>,
        entry: &EproEntry,
        audit_entry: &AuditEntry,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        let (requests, audit_table) = self.tables()?;
        let request = Put::builder()
            .table_name(requests)
            .item("requestKey", s(request_key))
            .item("fingerprint", s(&answer.fingerprint))
            .item("status", n(answer.status))
            .item("body", s(&answer.body))
            .item("subjectId", s(entry.subject.as_str()))
            .item("entryId", s(&entry.id))
            .item("expiresAt", n(keep_until.timestamp()))
            // A key expired but not yet deleted by TTL may be used again.
            .condition_expression("attribute_not_exists(requestKey) OR expiresAt <= :now")
            .expression_attribute_values(":now", n(Utc::now().timestamp()))
            .build()
            .map_err(|e| StoreError::Failed(format!("request item: {e}")))?;
        let stored = Put::builder()
            .table_name(&self.table)
            .set_item(Some(entry_to_item(entry)))
            .condition_expression("attribute_not_exists(subjectId)")
            .build()
            .map_err(|e| StoreError::Failed(format!("epro item: {e}")))?;
        let items = vec![
            TransactWriteItem::builder().put(request).build(),
            TransactWriteItem::builder().put(stored).build(),
            audit::put(audit_table, audit_entry)?,
        ];
        if transact(&self.client, "TransactWriteItems epro", items).await? {
            return Ok(None);
        }
        // Another request holds the key: its answer (read after its transaction committed).
        self.answer(request_key)
            .await?
            .map(Some)
            .ok_or_else(|| StoreError::Conflict("epro request key".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_items_round_trip_and_sort_by_recorded_time() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let e = EproEntry {
            id: "e1".into(),
            subject: SubjectId::parse("SUBJ-1").unwrap(),
            recorded_at: t("2026-11-28T07:00:00.250Z"),
            pain_score: PainScore::new(4).unwrap(),
            symptoms: [Symptom::Nausea, Symptom::Fatigue].into_iter().collect(),
            diary_completed: true,
            received_at: t("2026-11-28T07:00:01Z"),
            submitted_by: "u".into(),
        };
        assert_eq!(entry_from_item(&entry_to_item(&e)).unwrap(), e);
        assert_eq!(entry_key(&e), "2026-11-28T07:00:00.250Z#e1");
    }
}
