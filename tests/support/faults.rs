//! Fault injection at the ports (shared/src/store/mod.rs): each wrapper delegates to the real
//! adapter and fails (or stalls) a chosen call a chosen number of times, so a test can crash the
//! processor at a named point and check the end state.

use async_trait::async_trait;
use shared::domain::{ProcessingResult, Upload, UploadId, UploadStatus};
use shared::store::{
    AuditEntry, ChunkSource, Claim, ClaimState, EventPublisher, Idempotency, IngestObjects, Lease,
    OpenedObject, StoreError, UploadStore,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Fires a given number of times, then never again.
#[derive(Debug, Default)]
pub struct Trip(AtomicU32);

impl Trip {
    pub fn times(n: u32) -> Self {
        Self(AtomicU32::new(n))
    }

    pub fn fires(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn remaining(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

fn injected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("injected failure: {what}"))
}

/// The upload store, with faults at recording the outcome.
pub struct FaultyUploads {
    pub inner: Arc<dyn UploadStore>,
    /// `finish_processing` fails before writing (a crash after everything before it).
    pub fail_finish: Trip,
    /// Before `finish_processing`, the record is moved back to RECEIVED behind the processor's
    /// back (the lost update an emulator without isolated transactions produced), so the
    /// conditional write is refused.
    pub regress_before_finish: Option<(Trip, aws_sdk_dynamodb::Client, String)>,
}

impl FaultyUploads {
    pub fn new(inner: Arc<dyn UploadStore>) -> Self {
        Self {
            inner,
            fail_finish: Trip::default(),
            regress_before_finish: None,
        }
    }
}

#[async_trait]
impl UploadStore for FaultyUploads {
    async fn create(&self, upload: &Upload, audit: &AuditEntry) -> Result<(), StoreError> {
        self.inner.create(upload, audit).await
    }

    async fn get(&self, id: &UploadId) -> Result<Option<Upload>, StoreError> {
        self.inner.get(id).await
    }

    async fn transition(
        &self,
        id: &UploadId,
        from: UploadStatus,
        to: UploadStatus,
        reason: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.inner.transition(id, from, to, reason, audit).await
    }

    async fn finish_processing(
        &self,
        id: &UploadId,
        to: UploadStatus,
        reason: Option<&str>,
        result: &ProcessingResult,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        if self.fail_finish.fires() {
            return Err(injected("finish_processing"));
        }
        if let Some((trip, client, table)) = &self.regress_before_finish {
            if trip.fires() {
                client
                    .update_item()
                    .table_name(table)
                    .key(
                        "uploadId",
                        aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()),
                    )
                    .update_expression("SET #s = :r")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(
                        ":r",
                        aws_sdk_dynamodb::types::AttributeValue::S("RECEIVED".into()),
                    )
                    .send()
                    .await
                    .expect("regress the record");
            }
        }
        self.inner
            .finish_processing(id, to, reason, result, audit)
            .await
    }
}

/// A body that never sends a byte.
struct Stalled;

#[async_trait]
impl ChunkSource for Stalled {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, StoreError> {
        std::future::pending().await
    }
}

/// The upload bucket, with faults at retiring the object from incoming/ and at reading it.
pub struct FaultyObjects {
    pub inner: Arc<dyn IngestObjects>,
    /// `remove` and `delete_version` fail (a crash after the record was updated).
    pub fail_retire: Trip,
    /// Opening this key gives a body that stalls.
    pub stall_key: Option<String>,
}

impl FaultyObjects {
    pub fn new(inner: Arc<dyn IngestObjects>) -> Self {
        Self {
            inner,
            fail_retire: Trip::default(),
            stall_key: None,
        }
    }
}

#[async_trait]
impl IngestObjects for FaultyObjects {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn open(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<OpenedObject>, StoreError> {
        let opened = self.inner.open(key, version).await?;
        if self.stall_key.as_deref() == Some(key) {
            return Ok(opened.map(|o| OpenedObject {
                body: Box::new(Stalled),
                ..o
            }));
        }
        Ok(opened)
    }

    async fn copy(
        &self,
        from: &str,
        version: Option<&str>,
        size: u64,
        to: &str,
        tags: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        self.inner.copy(from, version, size, to, tags).await
    }

    async fn version_with_etag(&self, key: &str, etag: &str) -> Result<Option<String>, StoreError> {
        self.inner.version_with_etag(key, etag).await
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        if self.fail_retire.fires() {
            return Err(injected("remove"));
        }
        self.inner.remove(key).await
    }

    async fn delete_version(&self, key: &str, version: &str) -> Result<(), StoreError> {
        if self.fail_retire.fires() {
            return Err(injected("delete_version"));
        }
        self.inner.delete_version(key, version).await
    }
}

/// The idempotency claims, with a fault at completing one (the outcome is recorded, the claim's
/// completion is not).
pub struct FaultyIdempotency {
    pub inner: Arc<dyn Idempotency>,
    pub fail_complete: Trip,
}

impl FaultyIdempotency {
    pub fn new(inner: Arc<dyn Idempotency>) -> Self {
        Self {
            inner,
            fail_complete: Trip::default(),
        }
    }
}

#[async_trait]
impl Idempotency for FaultyIdempotency {
    async fn claim(
        &self,
        key: &str,
        version: &str,
        lock_until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Claim, StoreError> {
        self.inner.claim(key, version, lock_until).await
    }

    async fn complete(&self, lease: &Lease, result: &str) -> Result<(), StoreError> {
        if self.fail_complete.fires() {
            return Err(injected("idempotency complete"));
        }
        self.inner.complete(lease, result).await
    }

    async fn release(&self, lease: &Lease, error: &str) -> Result<(), StoreError> {
        self.inner.release(lease, error).await
    }

    async fn state(&self, key: &str) -> Result<ClaimState, StoreError> {
        self.inner.state(key).await
    }
}

/// The imaging-events queue, with a fault at publishing an outcome (a crash after the record was
/// concluded and the object retired, before the next stage heard of it). "Processing started"
/// events pass.
pub struct FaultyEvents {
    pub inner: Arc<dyn EventPublisher>,
    pub fail_outcome: Trip,
}

#[async_trait]
impl EventPublisher for FaultyEvents {
    async fn publish(&self, body: &str, correlation_id: &str) -> Result<(), StoreError> {
        let kind = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|e| e["type"].as_str().map(str::to_owned));
        if kind.as_deref() != Some("upload.processing") && self.fail_outcome.fires() {
            return Err(injected("publish"));
        }
        self.inner.publish(body, correlation_id).await
    }
}
