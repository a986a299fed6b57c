//! The imaging events process-dicom and ingest-failures publish to the imaging-events queue and
//! imaging-summary consumes: one struct for both sides, so the message has one shape.
//!
//! An event carries identifiers of the trial world (upload, trial, site, subject, DICOM UIDs) and
//! never a patient identifier.

use crate::domain::{ProcessingResult, Upload};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happened to an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// Processing started (the record went to PROCESSING).
    #[serde(rename = "upload.processing")]
    Processing,
    /// Accepted: copied to the accepted area, indexed.
    #[serde(rename = "upload.processed")]
    Processed,
    /// Quarantined with a reason.
    #[serde(rename = "upload.quarantined")]
    Quarantined,
    /// Processing gave up (the ingest queue dead-lettered the object): terminal FAILED.
    #[serde(rename = "upload.failed")]
    Failed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "upload.processing",
            Self::Processed => "upload.processed",
            Self::Quarantined => "upload.quarantined",
            Self::Failed => "upload.failed",
        }
    }

    /// Whether the upload's processing ended with this event.
    pub fn is_outcome(self) -> bool {
        !matches!(self, Self::Processing)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of the imaging-events queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagingEvent {
    /// `<uploadId>:<type>`: the same event published again has the same id, so a consumer can
    /// recognise a redelivery or a re-publication.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub upload_id: String,
    pub trial_id: String,
    pub site_id: String,
    pub subject_id: String,
    pub correlation_id: String,
    pub at: DateTime<Utc>,
    /// Why the upload is in its status (quarantine or failure reason).
    pub reason: Option<String>,
    /// For accepted instances: `new`, `duplicate` or `new_version`.
    pub instance: Option<String>,
    pub modality: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    /// DICOM DA (YYYYMMDD).
    pub study_date: Option<String>,
    /// The wrong-patient flag's code (`differs_from_subject`, ...), when the upload has one.
    #[serde(default)]
    pub patient_mismatch: Option<String>,
}

impl ImagingEvent {
    /// The event `kind` of `upload`, with what processing found when it is given.
    pub fn of(upload: &Upload, kind: EventKind, result: Option<&ProcessingResult>) -> Self {
        let dicom = result.and_then(|r| r.dicom.as_ref());
        Self {
            event_id: format!("{}:{kind}", upload.id),
            kind,
            upload_id: upload.id.to_string(),
            trial_id: upload.trial.to_string(),
            site_id: upload.site.to_string(),
            subject_id: upload.subject.to_string(),
            correlation_id: upload.correlation_id.clone(),
            at: Utc::now(),
            reason: upload.status_reason.clone(),
            instance: result.and_then(|r| r.instance.clone()),
            modality: dicom.and_then(|d| d.modality.clone()),
            study_instance_uid: dicom.and_then(|d| d.study_instance_uid.clone()),
            series_instance_uid: dicom.and_then(|d| d.series_instance_uid.clone()),
            sop_instance_uid: dicom.and_then(|d| d.sop_instance_uid.clone()),
            study_date: dicom.and_then(|d| d.study_date.clone()),
            patient_mismatch: result
                .and_then(|r| r.patient_mismatch.as_ref())
                .map(|m| m.code()),
        }
    }

    pub fn to_json(&self) -> String {
        // Strings, options and a time: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_wire_names_and_unknown_ones_are_refused() {
        for kind in [
            EventKind::Processing,
            EventKind::Processed,
            EventKind::Quarantined,
            EventKind::Failed,
        ] {
            let wire = serde_json::to_value(kind).unwrap();
            assert_eq!(wire, kind.as_str());
            assert_eq!(serde_json::from_value::<EventKind>(wire).unwrap(), kind);
        }
        assert!(serde_json::from_str::<EventKind>("\"upload.deleted\"").is_err());
    }

    #[test]
    fn an_event_round_trips_and_carries_no_patient_identifier() {
        let text = r#"{"eventId":"u:upload.processed","type":"upload.processed","uploadId":"u",
            "trialId":"T","siteId":"S","subjectId":"SUBJ-1","correlationId":"c",
            "at":"2026-11-27T10:00:02.000Z","reason":null,"instance":"new","modality":"CT",
            "studyInstanceUid":"1.2","seriesInstanceUid":"1.2.3","sopInstanceUid":"1.2.3.4",
            "studyDate":"20040119"}"#;
        let e: ImagingEvent = serde_json::from_str(text).unwrap();
        assert_eq!(e.kind, EventKind::Processed);
        let back: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(back["type"], "upload.processed");
        assert_eq!(
            serde_json::from_value::<ImagingEvent>(back.clone()).unwrap(),
            e
        );
        assert!(back.get("patientId").is_none());
    }
}
