//! One dead-lettered object: its upload ended FAILED (or found ended), and `upload.failed`
//! published.

use crate::config::Config;
use chrono::Utc;
use shared::aws::AwsClients;
use shared::domain::{Upload, UploadStatus};
use shared::events::{EventKind, ImagingEvent};
use shared::notification::ObjectCreated;
use shared::store::dynamodb::{upload_entity, DynamoUploads};
use shared::store::idempotency::DynamoIdempotency;
use shared::store::sqs::SqsPublisher;
use shared::store::{AuditEntry, EventPublisher, Idempotency, StoreError, UploadStore};
use std::sync::Arc;

/// The actor the audit trail names for these changes.
pub const ACTOR: &str = "system:ingest-failures";

/// What became of a dead-lettered object's upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Now FAILED (this delivery recorded it).
    MarkedFailed,
    /// FAILED before: `upload.failed` published again.
    AlreadyFailed,
    /// PROCESSED, QUARANTINED or ABORTED: nothing to do.
    EndedOtherwise,
    /// The key names no upload (or is outside the upload area): nothing to mark.
    NoUpload,
    /// A delivery holds the upload's lock: the message comes back later.
    StillProcessing,
}

impl Ended {
    /// The `Result` dimension of the `Uploads` metric (`FAILED` is alarmed on).
    pub fn metric(self) -> &'static str {
        match self {
            Self::MarkedFailed => "FAILED",
            Self::AlreadyFailed => "ALREADY_FAILED",
            Self::EndedOtherwise => "ALREADY_ENDED",
            Self::NoUpload => "NO_UPLOAD",
            Self::StillProcessing => "STILL_PROCESSING",
        }
    }
}

/// What the consumer reads and writes through (the AWS adapters; wrapped in a test to fail a call).
#[derive(Clone)]
pub struct Ports {
    pub uploads: Arc<dyn UploadStore>,
    pub idempotency: Arc<dyn Idempotency>,
    pub events: Arc<dyn EventPublisher>,
}

impl Ports {
    pub fn aws(config: &Config, clients: &AwsClients) -> Self {
        Self {
            uploads: Arc::new(DynamoUploads::new(
                clients.dynamodb.clone(),
                &config.uploads_table,
                &config.audit_table,
            )),
            idempotency: Arc::new(DynamoIdempotency::new(
                clients.dynamodb.clone(),
                &config.idempotency_table,
                chrono::Duration::days(7),
            )),
            events: Arc::new(SqsPublisher::new(
                clients.sqs.clone(),
                &config.imaging_events_queue_url,
            )),
        }
    }
}

pub struct IngestFailures {
    config: Config,
    ports: Ports,
}

impl IngestFailures {
    pub fn new(config: Config, clients: &AwsClients) -> Self {
        let ports = Ports::aws(&config, clients);
        Self::with_ports(config, ports)
    }

    pub fn with_ports(config: Config, ports: Ports) -> Self {
        Self { config, ports }
    }

    pub(crate) async fn object(
        &self,
        created: &ObjectCreated,
        receive_count: u32,
    ) -> Result<Ended, StoreError> {
        if created.bucket != self.config.bucket {
            return Ok(Ended::NoUpload);
        }
        let Some(id) = created.upload_id(&self.config.incoming_prefix) else {
            tracing::warn!("dead-lettered object names no upload: left where it is");
            return Ok(Ended::NoUpload);
        };
        // A conditional write refused means the record moved meanwhile: look again.
        for _ in 0..3 {
            let Some(upload) = self
                .ports
                .uploads
                .get(&id)
                .await?
                .filter(|u| u.key.as_str() == created.key)
            else {
                tracing::warn!("dead-lettered object names no upload: left where it is");
                return Ok(Ended::NoUpload);
            };
            let span = tracing::Span::current();
            span.record("upload", tracing::field::display(&upload.id));
            span.record("correlation_id", upload.correlation_id.as_str());
            match upload.status {
                UploadStatus::Failed => {
                    self.publish_failed(&upload).await?;
                    return Ok(Ended::AlreadyFailed);
                }
                UploadStatus::Processed | UploadStatus::Quarantined | UploadStatus::Aborted => {
                    tracing::info!(status = %upload.status, "dead-lettered object's upload ended otherwise");
                    return Ok(Ended::EndedOtherwise);
                }
                UploadStatus::AwaitingUpload
                | UploadStatus::Received
                | UploadStatus::Processing => {}
            }
            // A delivery still holds the upload's lock (a duplicate event dead-lettered while
            // another is processed): not failed; look again later.
            let claim = self.ports.idempotency.state(&created.claim_key()).await?;
            if claim.locked_until.is_some_and(|until| until > Utc::now()) {
                tracing::info!("the upload is being processed: the dead letter waits");
                return Ok(Ended::StillProcessing);
            }
            let reason = reason(claim.last_error.as_deref(), receive_count);
            let audit = AuditEntry {
                entity: upload_entity(&upload.id),
                actor: ACTOR.into(),
                at: Utc::now(),
                action: "upload.status".into(),
                old: Some(upload.status.as_str().into()),
                new: Some(UploadStatus::Failed.as_str().into()),
                reason: reason.clone(),
                correlation_id: upload.correlation_id.clone(),
            };
            match self
                .ports
                .uploads
                .transition(
                    &upload.id,
                    upload.status,
                    UploadStatus::Failed,
                    Some(&reason),
                    &audit,
                )
                .await
            {
                Ok(()) => {
                    tracing::error!(from = %upload.status, "upload FAILED: the ingest queue gave up on it");
                    let mut failed = upload;
                    failed.status = UploadStatus::Failed;
                    failed.status_reason = Some(reason);
                    self.publish_failed(&failed).await?;
                    return Ok(Ended::MarkedFailed);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(
            "the upload kept moving; the message is retried".into(),
        ))
    }

    async fn publish_failed(&self, upload: &Upload) -> Result<(), StoreError> {
        let event = ImagingEvent::of(upload, EventKind::Failed, upload.processing.as_ref());
        self.ports
            .events
            .publish(&event.to_json(), &upload.correlation_id)
            .await
    }
}

/// What is known: how often the ingest queue delivered the object, and the last error
/// process-dicom recorded on its claim.
fn reason(last_error: Option<&str>, receive_count: u32) -> String {
    format!(
        "processing_failed: the ingest queue gave up on the object (receive count {receive_count}); last error: {}",
        last_error.unwrap_or("none recorded")
    )
}
