//! Ports of the exports ([`crate::exports`]): the exports table (status, progress, a lease per
//! attempt) and the exports bucket (multipart upload as the worker goes, presigned download).
//!
//! Every status change is a conditional write that names the state it expects, so two deliveries
//! of one message can never both write: the second finds the export `RUNNING` under a live lease
//! (it backs off) or terminal (it changes nothing).

use super::{AuditEntry, StoreError};
use crate::domain::SubjectId;
use crate::exports::{ExportId, ExportJob};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The caller now runs this attempt (`RUNNING`, its lease until the given time).
    Running(ExportJob),
    /// Already `DONE` or `FAILED`: nothing to do.
    Finished(ExportJob),
    /// Another attempt holds a live lease: try again later.
    Busy,
    /// No such export.
    Missing,
}

#[async_trait]
pub trait ExportJobs: Send + Sync {
    /// Writes a new `QUEUED` export with the audit entry of the read it asks for, in one transaction.
    async fn create(&self, job: &ExportJob, audit: &AuditEntry) -> Result<(), StoreError>;
    async fn get(&self, id: &ExportId) -> Result<Option<ExportJob>, StoreError>;
    /// A subject's exports, newest first, at most `limit`.
    async fn of_subject(
        &self,
        subject: &SubjectId,
        limit: usize,
    ) -> Result<Vec<ExportJob>, StoreError>;
    /// `QUEUED → RUNNING`, or takes over a `RUNNING` attempt whose lease expired before `now`;
    /// the progress restarts at 0 for the new attempt.
    async fn claim(
        &self,
        id: &ExportId,
        attempt: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Claimed, StoreError>;
    /// Records progress of `attempt` (and extends its lease); `Conflict` when the attempt lost its
    /// lease or `rows_done` would go backwards.
    async fn progress(
        &self,
        id: &ExportId,
        attempt: &str,
        rows_done: u64,
        rows_total: u64,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<(), StoreError>;
    /// `RUNNING → DONE` for `attempt`, with where the file is and its size.
    async fn finish(
        &self,
        id: &ExportId,
        attempt: &str,
        object_key: &str,
        size_bytes: u64,
        rows: u64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// → `FAILED` with `reason`, as `by` may: false when the export is terminal already, or
    /// when a live attempt other than `by` holds it (that attempt ends it).
    async fn fail(
        &self,
        id: &ExportId,
        by: FailedBy<'_>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Who ends an export `FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedBy<'a> {
    /// The attempt that holds it (its own failure): only while it still holds it, so an attempt
    /// that lost its lease never fails the one that took over.
    Attempt(&'a str),
    /// No attempt (the dead-letter queue, or the request whose message the queue refused): only
    /// while it is `QUEUED` or its last attempt's lease has run out — never under a live attempt.
    NoAttempt,
}

/// One uploaded part: its number and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
}

/// The exports bucket.
#[async_trait]
pub trait ExportObjects: Send + Sync {
    /// Starts a multipart upload of `key`; its upload id.
    async fn start(&self, key: &str, content_type: &str) -> Result<String, StoreError>;
    async fn part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError>;
    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError>;
    /// Aborts the upload: its parts are deleted and no object appears.
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;
    /// A presigned GET of `key`, saved as `file_name`, valid for `ttl`.
    async fn download_url(
        &self,
        key: &str,
        file_name: &str,
        ttl: Duration,
    ) -> Result<String, StoreError>;
}

/// How many diary entries a subject has (the progress total, counted before streaming them).
#[async_trait]
pub trait DiaryCount: Send + Sync {
    async fn count(&self, subject: &SubjectId) -> Result<u64, StoreError>;
}
