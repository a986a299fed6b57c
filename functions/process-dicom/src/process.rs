//! One object version, from claim to published outcome: the orchestration. What it decides is in
//! [`crate::decide`], the tags in [`crate::tags`], the metrics in [`crate::metrics`], the event in
//! [`shared::events`].

use crate::config::{Config, ScannerChoice};
use crate::deadline::Deadline;
use crate::decide::{decide, Decision};
use crate::outcome::{Outcome, Retry, StrayReason};
use crate::patient::PatientCheck;
use crate::signatures::{Fixed, S3Signatures, ScannerSource};
use crate::{metrics, tags};
use chrono::Utc;
use shared::aws::AwsClients;
use shared::domain::{ProcessingResult, Upload, UploadStatus};
use shared::events::{EventKind, ImagingEvent};
use shared::inspect::{Inspection, Inspector};
use shared::notification::{self, Notification, ObjectCreated};
use shared::scan::clamd::Clamd;
use shared::scan::{Scanner, Verdict};
use shared::store::dynamodb::{upload_entity, DynamoUploads};
use shared::store::idempotency::DynamoIdempotency;
use shared::store::instances::DynamoInstances;
use shared::store::patient_links::DynamoPatientLinks;
use shared::store::s3::S3Ingest;
use shared::store::secrets::SecretsManagerPatientKey;
use shared::store::sqs::{SqsPublisher, SqsVisibility};
use shared::store::{
    AuditEntry, Claim, EventPublisher, Idempotency, IngestObjects, InstanceIndex, InstanceOutcome,
    InstanceRecord, MessageVisibility, StoreError, UploadStore,
};
use std::sync::Arc;
use std::time::Duration;

/// The actor the audit trail names for the processor's changes.
pub const ACTOR: &str = "system:process-dicom";

/// A conservative copy rate for planning server-side copies against the deadline.
const COPY_BYTES_PER_SECOND: u64 = 100 * 1024 * 1024;

/// What the processor reads and writes through: the AWS adapters in Lambda, any of them wrapped
/// in a test to fail a call at a chosen point.
#[derive(Clone)]
pub struct Ports {
    pub uploads: Arc<dyn UploadStore>,
    pub objects: Arc<dyn IngestObjects>,
    pub instances: Arc<dyn InstanceIndex>,
    pub idempotency: Arc<dyn Idempotency>,
    pub events: Arc<dyn EventPublisher>,
    pub scanners: Arc<dyn ScannerSource>,
    pub visibility: Arc<dyn MessageVisibility>,
    /// Wrong-patient detection (the deployment's key and the subject links).
    pub patients: Arc<PatientCheck>,
}

impl Ports {
    /// The AWS adapters, as the template configures them.
    pub fn aws(config: &Config, clients: &AwsClients) -> Self {
        let scanners: Arc<dyn ScannerSource> = match &config.scanner {
            ScannerChoice::Builtin => Arc::new(S3Signatures::new(
                clients.s3.clone(),
                &config.bucket,
                &config.signatures_prefix,
                config.signatures_check,
                config.scan_max_bytes,
            )),
            ScannerChoice::Clamd(address) => Arc::new(Fixed(Arc::new(Clamd::new(
                address,
                Duration::from_secs(60),
            )))),
        };
        Self {
            uploads: Arc::new(DynamoUploads::new(
                clients.dynamodb.clone(),
                &config.uploads_table,
                &config.audit_table,
            )),
            objects: Arc::new(S3Ingest::new(clients.s3.clone(), &config.bucket)),
            instances: Arc::new(DynamoInstances::new(
                clients.dynamodb.clone(),
                &config.instances_table,
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
            scanners,
            visibility: Arc::new(SqsVisibility::new(
                clients.sqs.clone(),
                &config.ingest_queue_url,
            )),
            patients: Arc::new(PatientCheck::new(
                Arc::new(SecretsManagerPatientKey::new(
                    clients.secrets.clone(),
                    &config.patient_id_key_secret,
                )),
                Arc::new(DynamoPatientLinks::new(
                    clients.dynamodb.clone(),
                    &config.patient_links_table,
                )),
            )),
        }
    }
}

pub struct Processor {
    pub(crate) config: Config,
    pub(crate) ports: Ports,
}

impl Processor {
    pub fn new(config: Config, clients: &AwsClients) -> Self {
        let ports = Ports::aws(&config, clients);
        Self::with_ports(config, ports)
    }

    pub fn with_ports(config: Config, ports: Ports) -> Self {
        Self { config, ports }
    }

    pub(crate) async fn message(&self, body: &str, deadline: &Deadline) -> Result<(), Retry> {
        match notification::parse(body)? {
            Notification::Test => {
                tracing::info!("s3:TestEvent skipped");
                Ok(())
            }
            Notification::Created(objects) => {
                for object in objects {
                    self.object(&object, deadline).await?;
                }
                Ok(())
            }
        }
    }

    /// Claims the object's upload, processes this version within the message's deadline, and
    /// records the claim's outcome.
    pub(crate) async fn object(
        &self,
        created: &ObjectCreated,
        deadline: &Deadline,
    ) -> Result<(), Retry> {
        if created.bucket != self.ports.objects.bucket()
            || !created.key.starts_with(&self.config.incoming_prefix)
        {
            tracing::warn!("object outside the upload area skipped");
            return Ok(());
        }
        let resolved;
        let created = match (&created.version_id, &created.etag) {
            (None, Some(etag)) => {
                resolved = ObjectCreated {
                    version_id: self
                        .ports
                        .objects
                        .version_with_etag(&created.key, etag)
                        .await?,
                    ..created.clone()
                };
                &resolved
            }
            _ => created,
        };
        let lease = match self
            .ports
            .idempotency
            .claim(
                &created.claim_key(),
                created.version(),
                deadline.lock_until(),
            )
            .await?
        {
            Claim::Completed(_) => {
                tracing::info!("already processed: duplicate delivery skipped");
                return Ok(());
            }
            Claim::InProgress { until } => {
                let busy = Retry::Busy { until };
                metrics::refused(&busy);
                return Err(busy);
            }
            Claim::Acquired(lease) => lease,
        };
        let started = std::time::Instant::now();
        // Whatever stalls (a body, a call), only this message fails, before its deadline.
        let processed =
            match tokio::time::timeout(deadline.remaining(), self.process(created, deadline)).await
            {
                Ok(processed) => processed,
                Err(_) => Err(Retry::Deadline),
            };
        metrics::object(&processed, started.elapsed());
        match processed {
            Ok(outcome) if outcome.completes() => {
                if let Err(e) = self
                    .ports
                    .idempotency
                    .complete(&lease, &outcome.result())
                    .await
                {
                    // The outcome is recorded; free the claim so that the redelivery finds it
                    // concluded within seconds instead of waiting out this attempt's deadline.
                    if let Err(release) =
                        self.ports.idempotency.release(&lease, &e.to_string()).await
                    {
                        tracing::warn!(error = %release, "could not release the claim; it expires with the deadline");
                    }
                    return Err(e.into());
                }
                Ok(())
            }
            Ok(outcome) => {
                if let Err(e) = self
                    .ports
                    .idempotency
                    .release(&lease, &outcome.result())
                    .await
                {
                    tracing::warn!(error = %e, "could not release the claim; it expires with the deadline");
                }
                Ok(())
            }
            Err(e) => {
                if let Err(release) = self.ports.idempotency.release(&lease, &e.to_string()).await {
                    tracing::warn!(error = %release, "could not release the claim; it expires with the deadline");
                }
                Err(e)
            }
        }
    }

    /// The upload the object belongs to, if its key is that upload's.
    async fn upload_of(&self, created: &ObjectCreated) -> Result<Option<Upload>, Retry> {
        let Some(id) = created.upload_id(&self.config.incoming_prefix) else {
            return Ok(None);
        };
        Ok(self
            .ports
            .uploads
            .get(&id)
            .await?
            .filter(|u| u.key.as_str() == created.key))
    }

    async fn process(
        &self,
        created: &ObjectCreated,
        deadline: &Deadline,
    ) -> Result<Outcome, Retry> {
        let relative = &created.key[self.config.incoming_prefix.len()..];
        let mut scanner: Option<Arc<dyn Scanner>> = None;
        // A concurrent write (a read recording RECEIVED) may move the record between our read and
        // our write: look again, a few times.
        let mut upload = None;
        for _ in 0..4 {
            let Some(found) = self.upload_of(created).await? else {
                return self
                    .quarantine_stray(created, relative, StrayReason::NoUploadRecord)
                    .await;
            };
            let span = tracing::Span::current();
            span.record("upload", tracing::field::display(&found.id));
            span.record("correlation_id", found.correlation_id.as_str());
            match found.status {
                UploadStatus::Processing => {
                    upload = Some(found);
                    break;
                }
                UploadStatus::AwaitingUpload | UploadStatus::Received => {
                    // The scanner before the transition: without one nothing starts, and the
                    // upload is not left in PROCESSING.
                    if scanner.is_none() {
                        scanner = Some(self.scanner().await?);
                    }
                    if self
                        .transition(&found, UploadStatus::Processing, "processing started")
                        .await?
                    {
                        let mut started = found;
                        started.status = UploadStatus::Processing;
                        self.publish(&started, EventKind::Processing, None).await?;
                        upload = Some(started);
                        break;
                    }
                }
                UploadStatus::Aborted => {
                    return self
                        .quarantine_stray(created, relative, StrayReason::UploadAborted)
                        .await;
                }
                UploadStatus::Failed => {
                    tracing::warn!("the upload ended FAILED: the object is left for an operator");
                    return Ok(Outcome::LeftFailed);
                }
                UploadStatus::Processed | UploadStatus::Quarantined => {
                    return self.already_concluded(&found, created, relative).await;
                }
            }
        }
        let Some(upload) = upload else {
            return Err(Retry::Busy { until: None });
        };
        let scanner = match scanner {
            Some(s) => s,
            None => self.scanner().await?,
        };

        let Some(mut object) = self
            .ports
            .objects
            .open(&created.key, created.version_id.as_deref())
            .await?
        else {
            return Err(Retry::Dependency("the object version is gone".into()));
        };
        let mut inspector = Inspector::start(scanner.as_ref(), object.size).await?;
        loop {
            let wait = self.config.read_timeout.min(deadline.remaining());
            let chunk = match tokio::time::timeout(wait, object.body.next_chunk()).await {
                Ok(chunk) => chunk?,
                Err(_) if deadline.too_close() => return Err(Retry::Deadline),
                Err(_) => return Err(Retry::Stalled),
            };
            let Some(chunk) = chunk else { break };
            inspector.update(chunk).await?;
            if deadline.too_close() {
                return Err(Retry::Deadline);
            }
        }
        let inspection = inspector.finish().await?;
        let copy_time = Duration::from_secs(1 + inspection.size / COPY_BYTES_PER_SECOND);
        if !deadline.allows(copy_time) {
            return Err(Retry::Deadline);
        }
        let decision = decide(&upload, &inspection);
        self.conclude(
            &upload,
            created,
            relative,
            object.version.as_deref(),
            inspection,
            decision,
        )
        .await
    }

    /// The scanner, or a clear failure: logged, counted (`SCANNER_UNAVAILABLE`, alarmed on).
    async fn scanner(&self) -> Result<Arc<dyn Scanner>, Retry> {
        self.ports.scanners.scanner().await.map_err(|e| {
            tracing::error!(error = %e, "no scanner: processing not started");
            Retry::ScannerUnavailable(e.to_string())
        })
    }

    /// The record is PROCESSED or QUARANTINED. The same version: an earlier delivery concluded it
    /// and stopped before the end; finish its clean-up and publish again (idempotently). Another
    /// version: a stray.
    async fn already_concluded(
        &self,
        upload: &Upload,
        created: &ObjectCreated,
        relative: &str,
    ) -> Result<Outcome, Retry> {
        let same = upload
            .processing
            .as_ref()
            .is_some_and(|p| p.source_version == created.version_id);
        if !same {
            return self
                .quarantine_stray(created, relative, StrayReason::SecondObjectVersion)
                .await;
        }
        self.retire_incoming(upload.status, created).await?;
        self.publish_outcome(upload).await?;
        Ok(Outcome::Republished)
    }

    /// Takes the object out of `incoming/` once its outcome is recorded: an accepted one behind a
    /// delete marker (its version kept 30 days beside the accepted copy); a quarantined one for
    /// good, version and all, so nothing of it stays readable outside `quarantine/`.
    async fn retire_incoming(
        &self,
        status: UploadStatus,
        created: &ObjectCreated,
    ) -> Result<(), Retry> {
        match (status, created.version_id.as_deref()) {
            (UploadStatus::Quarantined, Some(version)) => {
                self.ports
                    .objects
                    .delete_version(&created.key, version)
                    .await?
            }
            _ => self.ports.objects.remove(&created.key).await?,
        }
        Ok(())
    }

    async fn conclude(
        &self,
        upload: &Upload,
        created: &ObjectCreated,
        relative: &str,
        version: Option<&str>,
        inspection: Inspection,
        decision: Decision,
    ) -> Result<Outcome, Retry> {
        let (to, status, reason, tags) = match &decision {
            Decision::Accept => (
                format!("{}{relative}", self.config.accepted_prefix),
                UploadStatus::Processed,
                None,
                tags::accepted(upload.id.as_str()),
            ),
            Decision::Quarantine(reason) => (
                format!("{}{relative}", self.config.quarantine_prefix),
                UploadStatus::Quarantined,
                Some(reason.clone()),
                tags::quarantined(&inspection.verdict, reason, upload.id.as_str()),
            ),
        };
        let tag_refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.ports
            .objects
            .copy(&created.key, version, inspection.size, &to, &tag_refs)
            .await?;

        let dicom = inspection.dicom.clone().ok();
        let instance = match (&decision, &dicom) {
            (Decision::Accept, Some(h)) => Some(
                self.ports
                    .instances
                    .record(&InstanceRecord {
                        sop_instance_uid: h.sop_instance_uid.clone().unwrap_or_default(),
                        sha256: hex::encode(inspection.sha256),
                        study_instance_uid: h.study_instance_uid.clone().unwrap_or_default(),
                        series_instance_uid: h.series_instance_uid.clone().unwrap_or_default(),
                        modality: h.modality.clone().unwrap_or_else(|| "OT".into()),
                        study_date: h.study_date.clone(),
                        trial: upload.trial.to_string(),
                        site: upload.site.to_string(),
                        subject: upload.subject.to_string(),
                        upload_id: upload.id.to_string(),
                        object_key: to.clone(),
                        size_bytes: inspection.size,
                        recorded_at: Utc::now(),
                    })
                    .await?,
            ),
            _ => None,
        };
        if let Some(InstanceOutcome::NewVersion) = instance {
            tracing::warn!("same SOP Instance UID with another digest: kept as a new version");
        }
        let patient_mismatch = match &decision {
            Decision::Accept => {
                self.ports
                    .patients
                    .check(upload, inspection.patient_id.as_ref())
                    .await?
            }
            Decision::Quarantine(_) => None,
        };
        let audit_reason = match (&reason, &patient_mismatch) {
            (Some(reason), _) => reason.clone(),
            (None, Some(m)) => format!("processed; patient_mismatch: {}", m.code()),
            (None, None) => "processed".to_owned(),
        };
        let result = ProcessingResult {
            object_key: to,
            source_version: version.map(str::to_owned),
            size_bytes: inspection.size,
            sha256: hex::encode(inspection.sha256),
            scan: match &inspection.verdict {
                Verdict::Clean => "clean".into(),
                Verdict::Infected { signature } => format!("infected: {signature}"),
                Verdict::Unscannable { reason } => format!("unscannable: {reason}"),
            },
            dicom,
            patient_mismatch,
            instance: instance.map(|i| i.as_str().to_owned()),
            processed_at: Utc::now(),
        };
        if let Some(resolved) = self
            .finish(
                upload,
                created,
                status,
                reason.as_deref(),
                &audit_reason,
                &result,
            )
            .await?
        {
            return Ok(resolved);
        }
        self.retire_incoming(status, created).await?;
        tracing::info!(outcome = %status, reason = reason.as_deref().unwrap_or(""), size_bytes = inspection.size, "upload processed");
        let outcome = match status {
            UploadStatus::Quarantined => Outcome::Quarantined,
            _ => Outcome::Processed,
        };
        metrics::concluded(outcome, inspection.size);

        let mut done = upload.clone();
        done.status = status;
        done.status_reason = reason;
        done.processing = Some(result);
        self.publish_outcome(&done).await?;
        Ok(outcome)
    }

    /// Records the outcome: PROCESSING → `status`. A refused write is re-read and resolved at
    /// once, never left to the queue's visibility timeout: `None` when this delivery recorded
    /// it, or the outcome of what the record says instead.
    async fn finish(
        &self,
        upload: &Upload,
        created: &ObjectCreated,
        status: UploadStatus,
        reason: Option<&str>,
        audit_reason: &str,
        result: &ProcessingResult,
    ) -> Result<Option<Outcome>, Retry> {
        for _ in 0..3 {
            let audit = self.audit(upload, UploadStatus::Processing, status, audit_reason);
            match self
                .ports
                .uploads
                .finish_processing(&upload.id, status, reason, result, &audit)
                .await
            {
                Ok(()) => return Ok(None),
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(now) = self.upload_of(created).await? else {
                return Err(Retry::Dependency("the upload record is gone".into()));
            };
            tracing::warn!(status = %now.status, "outcome refused: the record moved; resolving");
            match now.status {
                // Not ours to move (real DynamoDB never lets it regress; an emulator might):
                // back to PROCESSING, then record the outcome.
                UploadStatus::AwaitingUpload | UploadStatus::Received => {
                    self.transition(&now, UploadStatus::Processing, "processing resumed")
                        .await?;
                }
                UploadStatus::Processing => {}
                UploadStatus::Processed | UploadStatus::Quarantined => {
                    let relative = &created.key[self.config.incoming_prefix.len()..];
                    return self
                        .already_concluded(&now, created, relative)
                        .await
                        .map(Some);
                }
                UploadStatus::Failed => {
                    tracing::warn!("the upload was ended FAILED meanwhile: outcome not recorded");
                    return Ok(Some(Outcome::LeftFailed));
                }
                UploadStatus::Aborted => {
                    return Err(Retry::Dependency("an aborted upload was processed".into()));
                }
            }
        }
        Err(Retry::Busy { until: None })
    }

    /// An object that belongs to no open upload: copied out of the upload area, tagged with why,
    /// and its version deleted from `incoming/` (it was never scanned).
    async fn quarantine_stray(
        &self,
        created: &ObjectCreated,
        relative: &str,
        reason: StrayReason,
    ) -> Result<Outcome, Retry> {
        let to = format!("{}stray/{relative}", self.config.quarantine_prefix);
        let suffix = created
            .version_id
            .as_deref()
            .map(|v| format!(".{}", tags::tag_value(v)))
            .unwrap_or_default();
        let to = format!("{to}{suffix}");
        let stray_tags = tags::stray(reason.as_str());
        let tag_refs: Vec<(&str, &str)> =
            stray_tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.ports
            .objects
            .copy(
                &created.key,
                created.version_id.as_deref(),
                created.size,
                &to,
                &tag_refs,
            )
            .await?;
        match created.version_id.as_deref() {
            Some(version) => {
                self.ports
                    .objects
                    .delete_version(&created.key, version)
                    .await?
            }
            // Unversioned: removing the key would remove what another upload may have put there.
            None if reason == StrayReason::SecondObjectVersion => {}
            None => self.ports.objects.remove(&created.key).await?,
        }
        tracing::warn!(
            reason = reason.as_str(),
            "object quarantined without changing any upload"
        );
        Ok(Outcome::Stray(reason))
    }

    fn audit(
        &self,
        upload: &Upload,
        from: UploadStatus,
        to: UploadStatus,
        reason: &str,
    ) -> AuditEntry {
        AuditEntry {
            entity: upload_entity(&upload.id),
            actor: ACTOR.into(),
            at: Utc::now(),
            action: "upload.status".into(),
            old: Some(from.as_str().into()),
            new: Some(to.as_str().into()),
            reason: reason.into(),
            correlation_id: upload.correlation_id.clone(),
        }
    }

    /// Moves the record; `false` when someone moved it first (look again).
    async fn transition(
        &self,
        upload: &Upload,
        to: UploadStatus,
        reason: &str,
    ) -> Result<bool, Retry> {
        let audit = self.audit(upload, upload.status, to, reason);
        match self
            .ports
            .uploads
            .transition(&upload.id, upload.status, to, None, &audit)
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn publish_outcome(&self, upload: &Upload) -> Result<(), Retry> {
        let kind = match upload.status {
            UploadStatus::Processed => EventKind::Processed,
            UploadStatus::Quarantined => EventKind::Quarantined,
            _ => EventKind::Failed,
        };
        self.publish(upload, kind, upload.processing.as_ref()).await
    }

    async fn publish(
        &self,
        upload: &Upload,
        kind: EventKind,
        result: Option<&ProcessingResult>,
    ) -> Result<(), Retry> {
        let event = ImagingEvent::of(upload, kind, result);
        self.ports
            .events
            .publish(&event.to_json(), &upload.correlation_id)
            .await?;
        Ok(())
    }
}
