//! Ports: the small traits handlers take their dependencies as, and their AWS adapters
//! ([`dynamodb`], [`s3`]). Integration tests run the adapters against the emulator.

pub mod audit;
pub mod clinical;
pub mod dynamodb;
pub mod epro;
pub mod export_jobs;
pub mod export_objects;
pub mod exports;
pub mod forms;
pub mod idempotency;
pub mod instance_listing;
pub mod instances;
pub mod patient_links;
pub mod rate_limits;
pub mod reference;
pub mod s3;
pub mod secrets;
pub mod snapshots;
pub mod sqs;
pub mod subjects;
pub mod summary;
pub mod upload_listing;

use crate::domain::{ObjectKey, SiteId, SubjectId, TrialId, Upload, UploadId, UploadStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item not in the state it expected (someone else changed it).
    #[error("conditional write refused: {0}")]
    Conflict(String),
    /// The dependency is throttling, timing out or down; the caller may retry later.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
    /// An item in storage does not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// Any other failure of the dependency (logged where it happened).
    #[error("dependency failed: {0}")]
    Failed(String),
}

/// A trial subject as the site-scoping check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub id: SubjectId,
    pub trial: TrialId,
    pub site: SiteId,
}

/// Reads the scope of a subject (its trial and site); the whole record is [`clinical::SubjectRecords`].
#[async_trait]
pub trait SubjectDirectory: Send + Sync {
    async fn subject(&self, id: &SubjectId) -> Result<Option<Subject>, StoreError>;
}

/// One entry of the append-only audit trail: who, when (UTC), what, old → new, why.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// What changed, e.g. `upload#<id>`.
    pub entity: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub action: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub reason: String,
    pub correlation_id: String,
}

/// The upload records. Every write is conditional and carries its audit entry in the same transaction.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Writes a new record; `Conflict` if the id exists.
    async fn create(&self, upload: &Upload, audit: &AuditEntry) -> Result<(), StoreError>;
    async fn get(&self, id: &UploadId) -> Result<Option<Upload>, StoreError>;
    /// Moves the record from `from` to `to`; `Conflict` if it is not in `from` any more.
    async fn transition(
        &self,
        id: &UploadId,
        from: UploadStatus,
        to: UploadStatus,
        reason: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Ends processing: PROCESSING → PROCESSED or QUARANTINED, with what processing found.
    async fn finish_processing(
        &self,
        id: &UploadId,
        to: UploadStatus,
        reason: Option<&str>,
        result: &crate::domain::ProcessingResult,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
}

/// Where a page of a subject's uploads ends: the position the next page starts after (the uploads
/// index is ordered by `createdAt`, ties by upload id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPosition {
    pub upload: UploadId,
    pub created_at: DateTime<Utc>,
}

/// One page of a subject's uploads, newest first.
#[derive(Debug, Clone)]
pub struct UploadPage {
    pub uploads: Vec<Upload>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<UploadPosition>,
}

/// A subject's uploads, newest first (the uploads table's `BySubject` index).
#[async_trait]
pub trait UploadListing: Send + Sync {
    /// At most `limit` uploads of `subject` (in `status`, if given), after `after`.
    async fn list(
        &self,
        subject: &SubjectId,
        status: Option<UploadStatus>,
        limit: usize,
        after: Option<&UploadPosition>,
    ) -> Result<UploadPage, StoreError>;
}

/// A subject's indexed DICOM instances (the instances table's `BySubject` index).
#[async_trait]
pub trait InstanceListing: Send + Sync {
    /// Every instance of `subject`, up to `max`; `complete` is false when there were more.
    async fn of_subject(
        &self,
        subject: &SubjectId,
        max: usize,
    ) -> Result<SubjectInstances, StoreError>;
}

#[derive(Debug, Clone, Default)]
pub struct SubjectInstances {
    pub instances: Vec<InstanceRecord>,
    pub complete: bool,
}

/// A subject's imaging summary, as imaging-summary keeps it ([`summary`]).
#[async_trait]
pub trait ImagingSummaries: Send + Sync {
    async fn summary(&self, subject: &SubjectId) -> Result<Option<serde_json::Value>, StoreError>;
}

/// A stream of an object's bytes, chunk by chunk, never the whole object.
#[async_trait]
pub trait ChunkSource: Send {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, StoreError>;
}

/// An object version opened for reading.
pub struct OpenedObject {
    pub size: u64,
    pub version: Option<String>,
    pub body: Box<dyn ChunkSource>,
}

/// The upload bucket, as the processor uses it.
#[async_trait]
pub trait IngestObjects: Send + Sync {
    fn bucket(&self) -> &str;
    /// Opens exactly this version (the one the event names), or the current one.
    async fn open(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<OpenedObject>, StoreError>;
    /// Server-side copy of that version to `to`, with tags; multipart copy above 5 GiB, keeping
    /// the source's Content-Type, metadata and encryption either way.
    async fn copy(
        &self,
        from: &str,
        version: Option<&str>,
        size: u64,
        to: &str,
        tags: &[(&str, &str)],
    ) -> Result<(), StoreError>;
    /// The version of the key whose ETag is `etag` (the latest, if several): for events that do
    /// not name their version (emulators omit `versionId`; S3 always sends it for a versioned bucket).
    async fn version_with_etag(&self, key: &str, etag: &str) -> Result<Option<String>, StoreError>;
    /// Removes the key from the normal path (a delete marker: the version itself is kept).
    async fn remove(&self, key: &str) -> Result<(), StoreError>;
    /// Deletes one version of the key for good (what was quarantined leaves no readable copy
    /// outside the quarantine area, not even a noncurrent version). Already gone is success.
    async fn delete_version(&self, key: &str, version: &str) -> Result<(), StoreError>;
}

/// One DICOM instance, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub sop_instance_uid: String,
    pub sha256: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub modality: String,
    /// The study's date (DICOM DA, `YYYYMMDD`) as the header gives it.
    pub study_date: Option<String>,
    pub trial: String,
    pub site: String,
    pub subject: String,
    pub upload_id: String,
    pub object_key: String,
    pub size_bytes: u64,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceOutcome {
    New,
    /// The same SOP Instance UID with the same digest: nothing new.
    Duplicate,
    /// The same SOP Instance UID with another digest: kept as a new version, flagged.
    NewVersion,
}

impl InstanceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Duplicate => "duplicate",
            Self::NewVersion => "new_version",
        }
    }
}

#[async_trait]
pub trait InstanceIndex: Send + Sync {
    /// Records the instance. The upload that recorded it before (a retry after a crash) gets
    /// its own outcome again, never `Duplicate` of itself.
    async fn record(&self, instance: &InstanceRecord) -> Result<InstanceOutcome, StoreError>;
}

/// A lock held on a claim key, for one version of the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    pub version: String,
    /// Names the holder: only it may complete or release the lock.
    pub token: String,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the lock until the time it gave.
    Acquired(Lease),
    /// This version was done before; the stored result.
    Completed(String),
    /// Someone else holds an unexpired lock on the key (for this or another version) until then.
    InProgress { until: Option<DateTime<Utc>> },
}

/// At-least-once delivery made exactly-once in effect, as AWS Lambda Powertools' idempotency
/// utility does it, with one lock per key (an upload) and a completion per version of the work:
/// a conditional lock that expires with the holder's deadline, the results of completed versions,
/// and the last error of a released lock (what the dead-letter consumer reports).
#[async_trait]
pub trait Idempotency: Send + Sync {
    async fn claim(
        &self,
        key: &str,
        version: &str,
        lock_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;
    /// Records the version's result and frees the lock; `Conflict` if the lease was lost.
    async fn complete(&self, lease: &Lease, result: &str) -> Result<(), StoreError>;
    /// Frees the lock without completing the version (it failed, or went back to the queue),
    /// recording why.
    async fn release(&self, lease: &Lease, error: &str) -> Result<(), StoreError>;
    /// Where the key's claim stands: the lock's holder's deadline while one holds it, and why the
    /// last released lock was released.
    async fn state(&self, key: &str) -> Result<ClaimState, StoreError>;
}

/// What [`Idempotency::state`] finds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimState {
    /// Some holder's lock runs until then (it may be in the past: an expired lock).
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The visibility of a message being handled: how long until its queue delivers it again.
#[async_trait]
pub trait MessageVisibility: Send + Sync {
    async fn delay(&self, receipt_handle: &str, seconds: i32) -> Result<(), StoreError>;
}

/// A queue the next stage reads.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, body: &str, correlation_id: &str) -> Result<(), StoreError>;
}

/// A request the client makes itself, presigned: method, URL and the headers it must send as given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresignedHttp {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// A part S3 already holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPart {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
}

/// What S3 says of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub version_id: Option<String>,
}

/// The upload bucket, as the upload API uses it: it presigns, it never carries the bytes.
#[async_trait]
pub trait UploadObjects: Send + Sync {
    fn bucket(&self) -> &str;
    async fn presign_put(
        &self,
        key: &ObjectKey,
        size: u64,
        content_type: &str,
        sha256_base64: &str,
        ttl: Duration,
    ) -> Result<PresignedHttp, StoreError>;
    /// Starts a multipart upload; returns S3's upload id.
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: &str,
    ) -> Result<String, StoreError>;
    async fn presign_part(
        &self,
        key: &ObjectKey,
        s3_upload_id: &str,
        part_number: u32,
        size: u64,
        ttl: Duration,
    ) -> Result<PresignedHttp, StoreError>;
    /// The parts S3 holds; `Conflict` when S3 no longer knows the multipart upload (completed or
    /// aborted).
    async fn list_parts(
        &self,
        key: &ObjectKey,
        s3_upload_id: &str,
    ) -> Result<Vec<StoredPart>, StoreError>;
    /// Assembles the parts; `Conflict` when S3 no longer knows the multipart upload.
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        s3_upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StoreError>;
    /// Aborts; an upload S3 no longer knows counts as aborted.
    async fn abort_multipart(&self, key: &ObjectKey, s3_upload_id: &str) -> Result<(), StoreError>;
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError>;
}

/// Maps an SDK error to a [`StoreError`], logging the full cause chain (never the payload).
pub(crate) fn sdk_failure<E, R>(
    operation: &'static str,
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
    let unavailable = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_)
    ) || {
        let text = format!("{}", DisplayErrorContext(&err));
        text.contains("Throttl")
            || text.contains("ProvisionedThroughputExceeded")
            || text.contains("SlowDown")
            || text.contains("ServiceUnavailable")
            // A write that met a transaction on its item: DynamoDB asks for a retry.
            || text.contains("TransactionConflict")
    };
    let message = format!("{operation}: {}", DisplayErrorContext(&err));
    tracing::error!(operation, error = %message, "AWS call failed");
    if unavailable {
        StoreError::Unavailable(operation.to_owned())
    } else {
        StoreError::Failed(operation.to_owned())
    }
}
