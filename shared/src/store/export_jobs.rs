//! The exports table (`exportId`; `BySubject` index: `subjectId`, `requestedAt`) and the diary
//! count the export worker's progress total needs.
//!
//! Every status change is one conditional `UpdateItem` naming the state it expects (see
//! [`crate::exports::ExportStatus::can_become`]); an attempt holds the export under `attempt` and
//! `leaseUntil` (epoch ms), and its progress and its `DONE` are refused once another attempt took
//! over. The export's creation carries its audit entry (the read of patient data it asks for) in
//! the same transaction.

use super::dynamodb::{get_n, get_opt_s, get_s, get_time, n, s, time, transact, Item};
use super::exports::{Claimed, DiaryCount, ExportJobs, FailedBy};
use super::{audit, sdk_failure, AuditEntry, StoreError};
use crate::domain::{SiteId, SubjectId, TrialId};
use crate::exports::{ExportFormat, ExportId, ExportJob, ExportStatus};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{Put, ReturnValue, Select, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct DynamoExports {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoExports {
    pub fn new(client: Client, table: impl Into<String>, audit_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            audit_table: audit_table.into(),
        }
    }

    fn update(&self, id: &ExportId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("exportId", s(id.as_str()))
            .expression_attribute_names("#status", "status")
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn lease_end(now: DateTime<Utc>, lease: Duration) -> i64 {
    ms(now) + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

fn job_to_item(j: &ExportJob) -> Item {
    let mut item = HashMap::from([
        ("exportId".into(), s(j.id.as_str())),
        ("subjectId".into(), s(j.subject.as_str())),
        ("trialId".into(), s(j.trial.as_str())),
        ("siteId".into(), s(j.site.as_str())),
        ("format".into(), s(j.format.as_str())),
        ("status".into(), s(j.status.as_str())),
        ("rowsDone".into(), n(j.rows_done)),
        ("requestedBy".into(), s(&j.requested_by)),
        ("requestedAt".into(), time(&j.requested_at)),
        ("updatedAt".into(), time(&j.updated_at)),
    ]);
    if let Some(t) = j.rows_total {
        item.insert("rowsTotal".into(), n(t));
    }
    item
}

fn job_from_item(item: &Item) -> Result<ExportJob, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("export attribute {what}"));
    Ok(ExportJob {
        id: ExportId::parse(get_s(item, "exportId")?).map_err(|_| bad("exportId"))?,
        subject: SubjectId::parse(get_s(item, "subjectId")?).map_err(|_| bad("subjectId"))?,
        trial: TrialId::parse(get_s(item, "trialId")?).map_err(|_| bad("trialId"))?,
        site: SiteId::parse(get_s(item, "siteId")?).map_err(|_| bad("siteId"))?,
        format: ExportFormat::parse(get_s(item, "format")?).ok_or_else(|| bad("format"))?,
        status: ExportStatus::parse(get_s(item, "status")?).ok_or_else(|| bad("status"))?,
        rows_done: get_n(item, "rowsDone")?,
        rows_total: get_n(item, "rowsTotal").ok(),
        requested_by: get_s(item, "requestedBy")?.to_owned(),
        requested_at: get_time(item, "requestedAt")?,
        updated_at: get_time(item, "updatedAt")?,
        object_key: get_opt_s(item, "objectKey"),
        size_bytes: get_n(item, "sizeBytes").ok(),
        reason: get_opt_s(item, "reason"),
    })
}

/// Whether the stored export is in `status` under `attempt` (the attempt that wrote it).
fn own_attempt(item: &Item, status: ExportStatus, attempt: &str) -> bool {
    get_opt_s(item, "status").as_deref() == Some(status.as_str())
        && get_opt_s(item, "attempt").as_deref() == Some(attempt)
}

impl DynamoExports {
    /// The export's stored item (a consistent read).
    async fn item(&self, id: &ExportId) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key("exportId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_failure("GetItem exports", e))?
            .item)
    }
}

fn refused<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl ExportJobs for DynamoExports {
    #[tracing::instrument(name = "exports.create", skip_all)]
    async fn create(&self, job: &ExportJob, entry: &AuditEntry) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(job_to_item(job)))
            .condition_expression("attribute_not_exists(exportId)")
            .build()
            .map_err(|e| StoreError::Failed(format!("building Put exports: {e}")))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            audit::put(&self.audit_table, entry)?,
        ];
        if transact(&self.client, "TransactWriteItems exports", items).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict("export id taken".into()))
        }
    }

    #[tracing::instrument(name = "exports.get", skip_all)]
    async fn get(&self, id: &ExportId) -> Result<Option<ExportJob>, StoreError> {
        self.item(id).await?.as_ref().map(job_from_item).transpose()
    }

    #[tracing::instrument(name = "exports.of_subject", skip_all)]
    async fn of_subject(
        &self,
        subject: &SubjectId,
        limit: usize,
    ) -> Result<Vec<ExportJob>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("BySubject")
            .key_condition_expression("subjectId = :s")
            .expression_attribute_values(":s", s(subject.as_str()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 100) as i32)
            .send()
            .await
            .map_err(|e| sdk_failure("Query exports BySubject", e))?;
        out.items
            .unwrap_or_default()
            .iter()
            .map(job_from_item)
            .collect()
    }

    #[tracing::instrument(name = "exports.claim", skip_all)]
    async fn claim(
        &self,
        id: &ExportId,
        attempt: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claimed, StoreError> {
        let result = self
            .update(id)
            .condition_expression(
                "attribute_exists(exportId) AND (#status = :queued OR (#status = :running AND leaseUntil < :now))",
            )
            .update_expression(
                "SET #status = :running, attempt = :a, leaseUntil = :l, rowsDone = :zero, updatedAt = :t",
            )
            .expression_attribute_values(":queued", s(ExportStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(ExportStatus::Running.as_str()))
            .expression_attribute_values(":now", n(ms(now)))
            .expression_attribute_values(":a", s(attempt))
            .expression_attribute_values(":l", n(lease_end(now, lease)))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":t", time(&now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claimed::Running(job_from_item(
                out.attributes.as_ref().unwrap_or(&Item::new()),
            )?)),
            Err(e) if e.as_service_error().is_some_and(refused) => match self.item(id).await? {
                None => Ok(Claimed::Missing),
                Some(item) => {
                    let job = job_from_item(&item)?;
                    if job.status.is_terminal() {
                        Ok(Claimed::Finished(job))
                    } else if own_attempt(&item, ExportStatus::Running, attempt) {
                        // This attempt's own claim (an attempt id is unique per delivery): its
                        // answer was lost and the SDK's retry refused. Not busy: ours.
                        Ok(Claimed::Running(job))
                    } else {
                        Ok(Claimed::Busy)
                    }
                }
            },
            Err(e) => Err(sdk_failure("UpdateItem exports (claim)", e)),
        }
    }

    #[tracing::instrument(name = "exports.progress", skip_all)]
    async fn progress(
        &self,
        id: &ExportId,
        attempt: &str,
        rows_done: u64,
        rows_total: u64,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), StoreError> {
        let result = self
            .update(id)
            .condition_expression("#status = :running AND attempt = :a AND rowsDone <= :done")
            .update_expression(
                "SET rowsDone = :done, rowsTotal = :total, leaseUntil = :l, updatedAt = :t",
            )
            .expression_attribute_values(":running", s(ExportStatus::Running.as_str()))
            .expression_attribute_values(":a", s(attempt))
            .expression_attribute_values(":done", n(rows_done))
            .expression_attribute_values(":total", n(rows_total))
            .expression_attribute_values(":l", n(lease_end(now, lease)))
            .expression_attribute_values(":t", time(&now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(refused) => Err(StoreError::Conflict(
                "the attempt no longer holds the export".into(),
            )),
            Err(e) => Err(sdk_failure("UpdateItem exports (progress)", e)),
        }
    }

    #[tracing::instrument(name = "exports.finish", skip_all)]
    async fn finish(
        &self,
        id: &ExportId,
        attempt: &str,
        object_key: &str,
        size_bytes: u64,
        rows: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = self
            .update(id)
            .condition_expression("#status = :running AND attempt = :a")
            .update_expression(
                "SET #status = :done, objectKey = :k, sizeBytes = :size, rowsDone = :rows, rowsTotal = :rows, updatedAt = :t REMOVE leaseUntil",
            )
            .expression_attribute_values(":running", s(ExportStatus::Running.as_str()))
            .expression_attribute_values(":done", s(ExportStatus::Done.as_str()))
            .expression_attribute_values(":a", s(attempt))
            .expression_attribute_values(":k", s(object_key))
            .expression_attribute_values(":size", n(size_bytes))
            .expression_attribute_values(":rows", n(rows))
            .expression_attribute_values(":t", time(&now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(refused) => {
                // This attempt's own finish, its answer lost and the SDK's retry refused?
                match self.item(id).await? {
                    Some(item)
                        if own_attempt(&item, ExportStatus::Done, attempt)
                            && get_opt_s(&item, "objectKey").as_deref() == Some(object_key) =>
                    {
                        Ok(())
                    }
                    _ => Err(StoreError::Conflict(
                        "the attempt no longer holds the export".into(),
                    )),
                }
            }
            Err(e) => Err(sdk_failure("UpdateItem exports (finish)", e)),
        }
    }

    #[tracing::instrument(name = "exports.fail", skip_all)]
    async fn fail(
        &self,
        id: &ExportId,
        by: FailedBy<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let update = self.update(id);
        let update = match by {
            FailedBy::Attempt(attempt) => update
                .condition_expression("#status = :running AND attempt = :a")
                .expression_attribute_values(":a", s(attempt)),
            FailedBy::NoAttempt => update
                .condition_expression(
                    "#status = :queued OR (#status = :running AND leaseUntil < :now)",
                )
                .expression_attribute_values(":queued", s(ExportStatus::Queued.as_str()))
                .expression_attribute_values(":now", n(ms(now))),
        };
        let result = update
            .update_expression(
                "SET #status = :failed, reason = :r, updatedAt = :t REMOVE leaseUntil",
            )
            .expression_attribute_values(":running", s(ExportStatus::Running.as_str()))
            .expression_attribute_values(":failed", s(ExportStatus::Failed.as_str()))
            .expression_attribute_values(":r", s(reason))
            .expression_attribute_values(":t", time(&now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(refused) => Ok(false),
            Err(e) => Err(sdk_failure("UpdateItem exports (fail)", e)),
        }
    }
}

/// Counts a subject's diary entries with `Select=COUNT` queries (no item data leaves the table).
#[derive(Clone, Debug)]
pub struct DynamoDiaryCount {
    client: Client,
    table: String,
}

impl DynamoDiaryCount {
    pub fn new(client: Client, epro_table: impl Into<String>) -> Self {
        Self {
            client,
            table: epro_table.into(),
        }
    }
}

#[async_trait]
impl DiaryCount for DynamoDiaryCount {
    #[tracing::instrument(name = "epro.count", skip_all)]
    async fn count(&self, subject: &SubjectId) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("subjectId = :s")
                .expression_attribute_values(":s", s(subject.as_str()))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_failure("Query epro (count)", e))?;
            total += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(total),
            }
        }
    }
}
