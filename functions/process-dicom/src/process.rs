//! One object version, from claim to published outcome.

use crate::config::{Config, ScannerChoice};
use crate::notification::{self, Notification, ObjectCreated};
use crate::patient::PatientCheck;
use crate::signatures::{Fixed, S3Signatures, ScannerSource};
use chrono::{DateTime, Utc};
use shared::aws::AwsClients;
use shared::domain::{ProcessingResult, Upload, UploadId, UploadStatus};
use shared::inspect::{Inspection, Inspector};
use shared::metrics::{Metrics, Unit};
use shared::scan::clamd::Clamd;
use shared::scan::Verdict;
use shared::store::dynamodb::{upload_entity, DynamoIdempotency, DynamoInstances, DynamoUploads};
use shared::store::patient_links::DynamoPatientLinks;
use shared::store::s3::S3Ingest;
use shared::store::secrets::SecretsManagerPatientKey;
use shared::store::sqs::SqsPublisher;
use shared::store::{
    AuditEntry, Claim, EventPublisher, Idempotency, IngestObjects, InstanceIndex, InstanceRecord,
    StoreError, UploadStore,
};
use std::sync::Arc;
use std::time::Duration;

/// The actor the audit trail names for the processor's changes.
pub const ACTOR: &str = "system:process-dicom";

/// Why a message goes back to the queue (logged; SQS retries it, then dead-letters it).
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    #[error("{0}")]
    NotANotification(#[from] notification::NotANotification),
    #[error("another delivery of this object is being processed")]
    Busy,
    #[error("not enough time left before the Lambda deadline")]
    Deadline,
    #[error("dependency: {0}")]
    Dependency(String),
}

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry::Dependency(e.to_string())
    }
}

impl From<shared::scan::ScanError> for Retry {
    fn from(e: shared::scan::ScanError) -> Self {
        Retry::Dependency(e.to_string())
    }
}

/// The invocation's deadline, less the margin kept to hand a message back cleanly.
pub struct Deadline {
    at: DateTime<Utc>,
}

impl Deadline {
    pub fn from_context(context: &lambda_runtime::Context, margin: Duration) -> Self {
        let end = if context.deadline == 0 {
            Utc::now() + chrono::Duration::minutes(15)
        } else {
            DateTime::from_timestamp_millis(context.deadline as i64).unwrap_or_else(Utc::now)
        };
        Self {
            at: end - chrono::Duration::from_std(margin).unwrap_or_default(),
        }
    }

    pub fn too_close(&self) -> bool {
        Utc::now() >= self.at
    }

    /// Would `work` still end before the deadline?
    fn allows(&self, work: Duration) -> bool {
        Utc::now() + chrono::Duration::from_std(work).unwrap_or_default() < self.at
    }

    /// The lock on an object is held no longer than the invocation can live.
    fn lock_until(&self) -> DateTime<Utc> {
        self.at
    }
}

/// A conservative copy rate for planning server-side copies against the deadline.
const COPY_BYTES_PER_SECOND: u64 = 100 * 1024 * 1024;

pub struct Processor {
    pub(crate) config: Config,
    uploads: Arc<dyn UploadStore>,
    objects: Arc<dyn IngestObjects>,
    instances: Arc<dyn InstanceIndex>,
    idempotency: Arc<dyn Idempotency>,
    events: Arc<dyn EventPublisher>,
    scanners: Arc<dyn ScannerSource>,
    patients: PatientCheck,
}

/// Where processing leaves an object and why.
enum Decision {
    Accept,
    Quarantine(String),
}

impl Processor {
    pub fn new(config: Config, clients: &AwsClients) -> Self {
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
            patients: PatientCheck::new(
                Arc::new(SecretsManagerPatientKey::new(
                    clients.secrets.clone(),
                    &config.patient_id_key_secret,
                )),
                Arc::new(DynamoPatientLinks::new(
                    clients.dynamodb.clone(),
                    &config.patient_links_table,
                )),
            ),
            config,
        }
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

    /// Claims one object version, processes it, and records the claim's outcome.
    pub(crate) async fn object(
        &self,
        created: &ObjectCreated,
        deadline: &Deadline,
    ) -> Result<(), Retry> {
        if created.bucket != self.objects.bucket()
            || !created.key.starts_with(&self.config.incoming_prefix)
        {
            tracing::warn!("object outside the upload area skipped");
            return Ok(());
        }
        let key = created.idempotency_key();
        match self.idempotency.claim(&key, deadline.lock_until()).await? {
            Claim::Completed(_) => {
                tracing::info!("already processed: duplicate delivery skipped");
                return Ok(());
            }
            Claim::InProgress => return Err(Retry::Busy),
            Claim::Acquired => {}
        }
        let started = std::time::Instant::now();
        let processed = self.process(created, deadline).await;
        let outcome = match &processed {
            Ok(result) if result.starts_with("stray") => "STRAY",
            Ok(result) if result == "republished" => "REPUBLISHED",
            Ok(result) if result == UploadStatus::Quarantined.as_str() => "QUARANTINED",
            Ok(_) => "PROCESSED",
            Err(Retry::Busy) => "BUSY",
            Err(Retry::Deadline) => "DEADLINE",
            Err(_) => "RETRY",
        };
        Metrics::new("process-dicom")
            .dimension("Outcome", outcome)
            .count("Objects", 1)
            .millis("ProcessingTime", started.elapsed())
            .emit();
        match processed {
            Ok(result) => {
                self.idempotency.complete(&key, &result).await?;
                Ok(())
            }
            Err(e) => {
                if let Err(release) = self.idempotency.release(&key).await {
                    tracing::warn!(error = %release, "could not release the claim; it expires with the deadline");
                }
                Err(e)
            }
        }
    }

    async fn process(&self, created: &ObjectCreated, deadline: &Deadline) -> Result<String, Retry> {
        let relative = &created.key[self.config.incoming_prefix.len()..];
        let upload_id = relative
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_suffix(".dcm"))
            .and_then(|id| UploadId::parse(id).ok());
        let upload = match &upload_id {
            Some(id) => self
                .uploads
                .get(id)
                .await?
                .filter(|u| u.key.as_str() == created.key),
            None => None,
        };
        let Some(mut upload) = upload else {
            return self
                .quarantine_stray(created, relative, "no_upload_record")
                .await;
        };
        let span = tracing::Span::current();
        span.record("upload", tracing::field::display(&upload.id));
        span.record("correlation_id", upload.correlation_id.as_str());

        // A concurrent read may record RECEIVED between our read and our write: look again.
        let mut attempts = 0;
        while matches!(
            upload.status,
            UploadStatus::AwaitingUpload | UploadStatus::Received
        ) && attempts < 3
        {
            attempts += 1;
            match self
                .transition(&upload, UploadStatus::Processing, "processing started")
                .await
            {
                Ok(()) => {
                    upload.status = UploadStatus::Processing;
                    self.publish(&upload, "upload.processing", None).await?;
                }
                Err(Retry::Busy) => {
                    upload = self.uploads.get(&upload.id).await?.ok_or(Retry::Busy)?;
                }
                Err(e) => return Err(e),
            }
        }
        match upload.status {
            UploadStatus::AwaitingUpload | UploadStatus::Received => return Err(Retry::Busy),
            UploadStatus::Processing => {}
            UploadStatus::Aborted => {
                return self
                    .quarantine_stray(created, relative, "upload_aborted")
                    .await;
            }
            UploadStatus::Processed | UploadStatus::Quarantined | UploadStatus::Failed => {
                let same = upload
                    .processing
                    .as_ref()
                    .is_some_and(|p| p.source_version == created.version_id);
                if same {
                    // Finished before the claim was completed: publish again, idempotently.
                    self.publish_outcome(&upload).await?;
                    return Ok("republished".into());
                }
                return self
                    .quarantine_stray(created, relative, "second_object_version")
                    .await;
            }
        }

        let Some(mut object) = self
            .objects
            .open(&created.key, created.version_id.as_deref())
            .await?
        else {
            return Err(Retry::Dependency("the object version is gone".into()));
        };
        let scanner = self.scanners.scanner().await?;
        let mut inspector = Inspector::start(scanner.as_ref(), object.size).await?;
        while let Some(chunk) = object.body.next_chunk().await? {
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

    async fn conclude(
        &self,
        upload: &Upload,
        created: &ObjectCreated,
        relative: &str,
        version: Option<&str>,
        inspection: Inspection,
        decision: Decision,
    ) -> Result<String, Retry> {
        let (to, status, reason, tags): (
            String,
            UploadStatus,
            Option<String>,
            Vec<(&str, String)>,
        ) = match &decision {
            Decision::Accept => (
                format!("{}{relative}", self.config.accepted_prefix),
                UploadStatus::Processed,
                None,
                vec![
                    ("clinflow-scan", "clean".into()),
                    ("clinflow-upload", upload.id.to_string()),
                ],
            ),
            Decision::Quarantine(reason) => (
                format!("{}{relative}", self.config.quarantine_prefix),
                UploadStatus::Quarantined,
                Some(reason.clone()),
                vec![
                    ("clinflow-scan", scan_tag(&inspection.verdict).into()),
                    ("clinflow-reason", tag_value(reason)),
                    ("clinflow-upload", upload.id.to_string()),
                ],
            ),
        };
        let tag_refs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.objects
            .copy(&created.key, version, inspection.size, &to, &tag_refs)
            .await?;

        let dicom = inspection.dicom.clone().ok();
        let instance = match (&decision, &dicom) {
            (Decision::Accept, Some(h)) => Some(
                self.instances
                    .record(&InstanceRecord {
                        sop_instance_uid: h.sop_instance_uid.clone().unwrap_or_default(),
                        sha256: hex::encode(inspection.sha256),
                        study_instance_uid: h.study_instance_uid.clone().unwrap_or_default(),
                        series_instance_uid: h.series_instance_uid.clone().unwrap_or_default(),
                        modality: h.modality.clone().unwrap_or_else(|| "OT".into()),
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
        if let Some(shared::store::InstanceOutcome::NewVersion) = instance {
            tracing::warn!("same SOP Instance UID with another digest: kept as a new version");
        }
        let patient_mismatch = match &decision {
            Decision::Accept => {
                self.patients
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
        let audit = self.audit(upload, UploadStatus::Processing, status, &audit_reason);
        self.uploads
            .finish_processing(&upload.id, status, reason.as_deref(), &result, &audit)
            .await?;
        self.objects.remove(&created.key).await?;
        tracing::info!(outcome = %status, reason = reason.as_deref().unwrap_or(""), size_bytes = inspection.size, "upload processed");
        Metrics::new("process-dicom")
            .dimension("Outcome", status.as_str())
            .value("ObjectBytes", Unit::Bytes, inspection.size as f64)
            .emit();

        let mut done = upload.clone();
        done.status = status;
        done.status_reason = reason;
        done.processing = Some(result);
        self.publish_outcome(&done).await?;
        Ok(status.as_str().to_owned())
    }

    /// An object that belongs to no open upload: moved out of the upload area, tagged with why.
    async fn quarantine_stray(
        &self,
        created: &ObjectCreated,
        relative: &str,
        reason: &str,
    ) -> Result<String, Retry> {
        let to = format!("{}stray/{relative}", self.config.quarantine_prefix);
        let suffix = created
            .version_id
            .as_deref()
            .map(|v| format!(".{}", tag_value(v)))
            .unwrap_or_default();
        let to = format!("{to}{suffix}");
        self.objects
            .copy(
                &created.key,
                created.version_id.as_deref(),
                created.size,
                &to,
                &[("clinflow-scan", "unscanned"), ("clinflow-reason", reason)],
            )
            .await?;
        if reason != "second_object_version" {
            self.objects.remove(&created.key).await?;
        }
        tracing::warn!(reason, "object quarantined without changing any upload");
        Ok(format!("stray: {reason}"))
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

    async fn transition(
        &self,
        upload: &Upload,
        to: UploadStatus,
        reason: &str,
    ) -> Result<(), Retry> {
        let audit = self.audit(upload, upload.status, to, reason);
        match self
            .uploads
            .transition(&upload.id, upload.status, to, None, &audit)
            .await
        {
            Ok(()) => Ok(()),
            // Someone moved it first (a read recorded RECEIVED): retry with a fresh look.
            Err(StoreError::Conflict(_)) => Err(Retry::Busy),
            Err(e) => Err(e.into()),
        }
    }

    async fn publish_outcome(&self, upload: &Upload) -> Result<(), Retry> {
        let kind = match upload.status {
            UploadStatus::Processed => "upload.processed",
            UploadStatus::Quarantined => "upload.quarantined",
            _ => "upload.failed",
        };
        self.publish(upload, kind, upload.processing.as_ref()).await
    }

    /// Publishes an imaging event. Its id is derived from the upload and the kind, so a consumer can
    /// recognise a redelivery or a re-publication.
    async fn publish(
        &self,
        upload: &Upload,
        kind: &str,
        result: Option<&ProcessingResult>,
    ) -> Result<(), Retry> {
        let dicom = result.and_then(|r| r.dicom.as_ref());
        let body = serde_json::json!({
            "eventId": format!("{}:{kind}", upload.id),
            "type": kind,
            "uploadId": upload.id.to_string(),
            "trialId": upload.trial.to_string(),
            "siteId": upload.site.to_string(),
            "subjectId": upload.subject.to_string(),
            "correlationId": upload.correlation_id,
            "at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "reason": upload.status_reason,
            "instance": result.and_then(|r| r.instance.clone()),
            "modality": dicom.and_then(|d| d.modality.clone()),
            "studyInstanceUid": dicom.and_then(|d| d.study_instance_uid.clone()),
            "seriesInstanceUid": dicom.and_then(|d| d.series_instance_uid.clone()),
            "sopInstanceUid": dicom.and_then(|d| d.sop_instance_uid.clone()),
            "studyDate": dicom.and_then(|d| d.study_date.clone()),
            "patientMismatch": result.and_then(|r| r.patient_mismatch.as_ref()).map(|m| m.code()),
        });
        self.events
            .publish(&body.to_string(), &upload.correlation_id)
            .await?;
        Ok(())
    }
}

/// Accept, or quarantine with the first reason that applies: the scanner's, then integrity, then
/// the DICOM parse.
fn decide(upload: &Upload, inspection: &Inspection) -> Decision {
    match &inspection.verdict {
        Verdict::Infected { signature } => {
            return Decision::Quarantine(format!("malware: {signature}"))
        }
        Verdict::Unscannable { reason } => {
            return Decision::Quarantine(format!("unscannable: {reason}"))
        }
        Verdict::Clean => {}
    }
    if inspection.size != upload.size_bytes {
        return Decision::Quarantine(format!(
            "size_mismatch: declared {} bytes, received {}",
            upload.size_bytes, inspection.size
        ));
    }
    if inspection.sha256 != *upload.sha256.as_bytes() {
        return Decision::Quarantine("checksum_mismatch".into());
    }
    match &inspection.dicom {
        Err(e) => Decision::Quarantine(e.reason()),
        Ok(h) => {
            // An instance is indexed by these (Type 1 in every image IOD): without one it cannot be.
            let identifiers = [
                (&h.sop_instance_uid, "SOP Instance UID (0008,0018)"),
                (&h.study_instance_uid, "Study Instance UID (0020,000D)"),
                (&h.series_instance_uid, "Series Instance UID (0020,000E)"),
            ];
            match identifiers
                .iter()
                .find(|(v, _)| v.as_deref().unwrap_or("").is_empty())
            {
                Some((_, what)) => Decision::Quarantine(format!("malformed: no {what}")),
                None => Decision::Accept,
            }
        }
    }
}

fn scan_tag(v: &Verdict) -> &'static str {
    match v {
        Verdict::Clean => "clean",
        Verdict::Infected { .. } => "infected",
        Verdict::Unscannable { .. } => "unscannable",
    }
}

/// S3 tag values: at most 256 of letters, digits, spaces and `+ - = . _ : / @`.
fn tag_value(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tag_value;

    #[test]
    fn tag_values_are_sanitised() {
        assert_eq!(
            tag_value("malformed: (0010,0020) is long"),
            "malformed: _0010_0020_ is long"
        );
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
    }
}
