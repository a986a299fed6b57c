//! The subjects table (`subjectId` → the subject record; `BySite` index: `siteId`, `subjectId`)
//! and the subject keys table (`trialSubjectKey` = `<trialId>#<subjectKey>` → `subjectId`), which
//! makes a subject key unique per trial: enrolment writes the record, the key's claim and the
//! audit entry in one transaction, each conditional on being new.

use super::clinical::{Enrolled, SubjectPage, SubjectRecords};
use super::dynamodb::{corrupt, get_n, get_s, get_time, n, s, transact, Item};
use super::{audit, sdk_failure, AuditEntry, StoreError, Subject, SubjectDirectory};
use crate::clinical::subject::{Sex, SubjectRecord, SubjectStatus};
use crate::domain::{SiteId, SubjectId, SubjectKey, TrialId};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::NaiveDate;
use std::collections::HashMap;

/// The subjects; with [`DynamoSubjects::with_enrolment`], also the key claims and the audit trail
/// enrolment writes.
#[derive(Clone, Debug)]
pub struct DynamoSubjects {
    client: Client,
    table: String,
    enrolment: Option<(String, String)>,
}

/// The key of a subject key's claim.
pub fn trial_subject_key(trial: &TrialId, key: &SubjectKey) -> String {
    format!("{trial}#{key}")
}

fn record_to_item(r: &SubjectRecord) -> Item {
    HashMap::from([
        ("subjectId".into(), s(r.id.as_str())),
        ("trialId".into(), s(r.trial.as_str())),
        ("siteId".into(), s(r.site.as_str())),
        ("subjectKey".into(), s(r.subject_key.as_str())),
        ("sex".into(), s(r.sex.as_str())),
        ("birthYear".into(), n(r.birth_year)),
        (
            "enrolledOn".into(),
            s(r.enrolled_on.format("%Y-%m-%d").to_string()),
        ),
        ("status".into(), s(r.status.as_str())),
        ("enrolledBy".into(), s(&r.enrolled_by)),
        ("enrolledAt".into(), super::dynamodb::time(&r.enrolled_at)),
    ])
}

pub(crate) fn record_from_item(item: &Item) -> Result<SubjectRecord, StoreError> {
    Ok(SubjectRecord {
        id: SubjectId::parse(get_s(item, "subjectId")?).map_err(corrupt("subjectId"))?,
        trial: TrialId::parse(get_s(item, "trialId")?).map_err(corrupt("trialId"))?,
        site: SiteId::parse(get_s(item, "siteId")?).map_err(corrupt("siteId"))?,
        subject_key: SubjectKey::parse(get_s(item, "subjectKey")?)
            .map_err(corrupt("subjectKey"))?,
        sex: Sex::parse(get_s(item, "sex")?)
            .ok_or_else(|| StoreError::Corrupt("attribute sex".into()))?,
        birth_year: get_n(item, "birthYear")?,
        enrolled_on: NaiveDate::parse_from_str(get_s(item, "enrolledOn")?, "%Y-%m-%d")
            .map_err(|_| StoreError::Corrupt("attribute enrolledOn".into()))?,
        status: SubjectStatus::parse(get_s(item, "status")?)
            .ok_or_else(|| StoreError::Corrupt("attribute status".into()))?,
        enrolled_by: get_s(item, "enrolledBy")?.to_owned(),
        enrolled_at: get_time(item, "enrolledAt")?,
    })
}

impl DynamoSubjects {
    /// Reads only (the scoping check, the report's demographics, the site's list).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            enrolment: None,
        }
    }

    /// Enrols too: claims subject keys in `keys_table`, audits in `audit_table`.
    pub fn with_enrolment(
        mut self,
        keys_table: impl Into<String>,
        audit_table: impl Into<String>,
    ) -> Self {
        self.enrolment = Some((keys_table.into(), audit_table.into()));
        self
    }

    /// Writes a subject with only what the scoping check reads (fixtures of the upload tests).
    pub async fn put(&self, subject: &Subject) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("subjectId", s(subject.id.as_str()))
            .item("trialId", s(subject.trial.as_str()))
            .item("siteId", s(subject.site.as_str()))
            .send()
            .await
            .map_err(|e| sdk_failure("PutItem subjects", e))?;
        Ok(())
    }

    /// Writes a full record and its key claim without an audit entry: demo and test fixtures
    /// only (the local stack's seeding). An existing subject or key is left as it is.
    pub async fn seed(&self, keys_table: &str, record: &SubjectRecord) -> Result<(), StoreError> {
        let items = self.enrolment_writes(keys_table, record)?;
        transact(&self.client, "TransactWriteItems seed subject", items).await?;
        Ok(())
    }

    fn enrolment_writes(
        &self,
        keys_table: &str,
        record: &SubjectRecord,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let subject = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record_to_item(record)))
            .condition_expression("attribute_not_exists(subjectId)")
            .build()
            .map_err(|e| StoreError::Failed(format!("subject item: {e}")))?;
        let claim = Put::builder()
            .table_name(keys_table)
            .item(
                "trialSubjectKey",
                s(trial_subject_key(&record.trial, &record.subject_key)),
            )
            .item("subjectId", s(record.id.as_str()))
            .condition_expression("attribute_not_exists(trialSubjectKey)")
            .build()
            .map_err(|e| StoreError::Failed(format!("subject key item: {e}")))?;
        Ok(vec![
            TransactWriteItem::builder().put(subject).build(),
            TransactWriteItem::builder().put(claim).build(),
        ])
    }

    /// The subject that holds `key` in `trial`, if any.
    async fn holder(
        &self,
        keys_table: &str,
        trial: &TrialId,
        key: &SubjectKey,
    ) -> Result<Option<SubjectId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(keys_table)
            .key("trialSubjectKey", s(trial_subject_key(trial, key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem subject keys", e))?;
        out.item
            .map(|item| SubjectId::parse(get_s(&item, "subjectId")?).map_err(corrupt("subjectId")))
            .transpose()
    }
}

#[async_trait]
impl SubjectDirectory for DynamoSubjects {
    #[tracing::instrument(name = "subjects.scope", skip_all)]
    async fn subject(&self, id: &SubjectId) -> Result<Option<Subject>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("subjectId", s(id.as_str()))
            .projection_expression("trialId, siteId")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem subjects", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        Ok(Some(Subject {
            id: id.clone(),
            trial: TrialId::parse(get_s(&item, "trialId")?).map_err(corrupt("trialId"))?,
            site: SiteId::parse(get_s(&item, "siteId")?).map_err(corrupt("siteId"))?,
        }))
    }
}

#[async_trait]
impl SubjectRecords for DynamoSubjects {
    #[tracing::instrument(name = "subjects.get", skip_all)]
    async fn get(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("subjectId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem subjects", e))?;
        out.item.as_ref().map(record_from_item).transpose()
    }

    #[tracing::instrument(name = "subjects.enrol", skip_all)]
    async fn enrol(
        &self,
        record: &SubjectRecord,
        audit: &AuditEntry,
    ) -> Result<Enrolled, StoreError> {
        let Some((keys_table, audit_table)) = &self.enrolment else {
            return Err(StoreError::Failed(
                "enrolment needs the subject keys and audit tables".into(),
            ));
        };
        let mut items = self.enrolment_writes(keys_table, record)?;
        items.push(audit::put(audit_table, audit)?);
        if transact(&self.client, "TransactWriteItems enrol", items).await? {
            return Ok(Enrolled::New);
        }
        // Refused: the key is taken (a retry, a double click, a clash). Who holds it?
        let holder = self
            .holder(keys_table, &record.trial, &record.subject_key)
            .await?
            .ok_or_else(|| StoreError::Conflict("subject id taken".into()))?;
        let existing = self
            .get(&holder)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a subject key claims a missing subject".into()))?;
        Ok(Enrolled::Existing(existing))
    }

    #[tracing::instrument(name = "subjects.list_site", skip_all)]
    async fn list_site(
        &self,
        site: &SiteId,
        limit: usize,
        after: Option<&SubjectId>,
    ) -> Result<SubjectPage, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("BySite")
            .key_condition_expression("siteId = :site")
            .expression_attribute_values(":site", s(site.as_str()))
            .limit(limit.clamp(1, 1000) as i32);
        if let Some(after) = after {
            query = query
                .exclusive_start_key("siteId", s(site.as_str()))
                .exclusive_start_key("subjectId", s(after.as_str()));
        }
        let out = query
            .send()
            .await
            .map_err(|e| sdk_failure("Query subjects BySite", e))?;
        let subjects = out
            .items
            .unwrap_or_default()
            .iter()
            .map(record_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key {
            Some(key) => {
                Some(SubjectId::parse(get_s(&key, "subjectId")?).map_err(corrupt("subjectId"))?)
            }
            None => None,
        };
        Ok(SubjectPage { subjects, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn subject_items_round_trip() {
        let r = SubjectRecord {
            id: SubjectId::parse("SUBJ-1").unwrap(),
            trial: TrialId::parse("T1").unwrap(),
            site: SiteId::parse("S1").unwrap(),
            subject_key: SubjectKey::parse("BOS-0001").unwrap(),
            sex: Sex::Female,
            birth_year: 1961,
            enrolled_on: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
            status: SubjectStatus::Enrolled,
            enrolled_by: "u".into(),
            enrolled_at: chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .unwrap(),
        };
        assert_eq!(record_from_item(&record_to_item(&r)).unwrap(), r);
        assert_eq!(trial_subject_key(&r.trial, &r.subject_key), "T1#BOS-0001");
    }
}
