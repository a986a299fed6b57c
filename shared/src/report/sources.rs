//! The report's ports: one per source, each returning the clinical types of [`crate::clinical`].

use crate::clinical::epro::EproEntry;
use crate::clinical::forms::FormData;
use crate::clinical::subject::SubjectRecord;
use crate::domain::SubjectId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The sources of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceName {
    Demographics,
    Edc,
    Epro,
    Imaging,
}

impl SourceName {
    pub const ALL: [SourceName; 4] = [Self::Demographics, Self::Edc, Self::Epro, Self::Imaging];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Demographics => "demographics",
            Self::Edc => "edc",
            Self::Epro => "epro",
            Self::Imaging => "imaging",
        }
    }

    /// The environment variables' prefix (`EDC_URL`, `EDC_TIMEOUT_MS`).
    pub fn env_prefix(self) -> &'static str {
        match self {
            Self::Demographics => "DEMOGRAPHICS",
            Self::Edc => "EDC",
            Self::Epro => "EPRO",
            Self::Imaging => "IMAGING",
        }
    }
}

/// Why a source gave nothing usable. The text names the operation, never a value read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Down, refusing, throttling or answering 5xx: worth a retry later.
    #[error("source unavailable: {0}")]
    Unavailable(String),
    /// It answered something that is not the contract.
    #[error("source answered outside its contract: {0}")]
    Malformed(String),
}

impl From<crate::store::StoreError> for SourceError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Corrupt(what) => Self::Malformed(what),
            StoreError::Unavailable(what)
            | StoreError::Failed(what)
            | StoreError::Conflict(what) => Self::Unavailable(what),
        }
    }
}

/// The subject record: who the subject is (pseudonymously), their trial and site. `None`: no
/// such subject.
#[async_trait]
pub trait Demographics: Send + Sync {
    async fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, SourceError>;
}

/// The subject's EDC case-report forms (at most one per form OID).
#[async_trait]
pub trait EdcSource: Send + Sync {
    async fn forms(&self, id: &SubjectId) -> Result<Vec<FormData>, SourceError>;
}

/// The subject's ePRO diary entries recorded at or after `since`, oldest first.
#[async_trait]
pub trait EproSource: Send + Sync {
    async fn diary(
        &self,
        id: &SubjectId,
        since: DateTime<Utc>,
    ) -> Result<Vec<EproEntry>, SourceError>;
}

/// What the report needs of a subject's imaging: counts, no identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagingStatus {
    pub studies: u64,
    pub series: u64,
    pub instances: u64,
    /// The latest study date (DICOM DA, `YYYYMMDD`).
    pub last_study_date: Option<String>,
    /// Uploads being processed.
    pub pending: u64,
    /// Uploads quarantined (malware, not DICOM, checksum mismatch, ...).
    pub quarantined: u64,
    /// Uploads that failed processing for good.
    pub failed: u64,
    /// Uploads whose Patient ID belongs to another subject (wrong-patient detection).
    pub patient_mismatches: u64,
}

impl ImagingStatus {
    /// From the imaging summary's JSON (`store::summary`, `GET .../imaging`'s `summary`); absent
    /// counters are 0.
    pub fn from_summary(summary: &serde_json::Value) -> Result<Self, SourceError> {
        if !summary.is_object() {
            return Err(SourceError::Malformed(
                "imaging summary is not an object".into(),
            ));
        }
        let count = |k: &str| -> Result<u64, SourceError> {
            match summary.get(k) {
                None | Some(serde_json::Value::Null) => Ok(0),
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| SourceError::Malformed(format!("imaging summary {k}"))),
            }
        };
        Ok(Self {
            studies: count("studies")?,
            series: count("series")?,
            instances: count("instances")?,
            last_study_date: summary
                .get("lastStudyDate")
                .and_then(|v| v.as_str())
                .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned),
            pending: count("pending")?,
            quarantined: count("quarantined")?,
            failed: count("failed")?,
            patient_mismatches: count("patientMismatches")?,
        })
    }
}

/// The subject's imaging status (all zeros before the first upload).
#[async_trait]
pub trait ImagingSource: Send + Sync {
    async fn imaging(&self, id: &SubjectId) -> Result<ImagingStatus, SourceError>;
}
