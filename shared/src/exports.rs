//! Exports of a subject's history (issue 10): a PDF report or a CSV of every EDC item value and
//! ePRO entry, built asynchronously by the export worker off the exports queue.
//!
//! The lifecycle lives here ([`ExportStatus::can_become`]): `QUEUED → RUNNING → DONE | FAILED`,
//! `QUEUED → FAILED` (the dead-letter queue gave up before any worker ran it), and `RUNNING →
//! RUNNING` only when a worker takes over an attempt whose lease expired. `DONE` and `FAILED` are
//! terminal: a redelivered message finds them and changes nothing.

use crate::domain::{SiteId, SubjectId, TrialId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long a presigned download URL lives (the issue: within 15 minutes).
pub const DOWNLOAD_URL_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Days the exports bucket keeps a finished file (template.yaml's `ExpireExports` rule; a test
/// holds them equal). After that the record stays, as evidence, but offers no link.
pub const FILE_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Pdf,
    Csv,
}

impl ExportFormat {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pdf" => Some(Self::Pdf),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Csv => "text/csv; charset=utf-8; header=present",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExportStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl ExportStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "QUEUED" => Some(Self::Queued),
            "RUNNING" => Some(Self::Running),
            "DONE" => Some(Self::Done),
            "FAILED" => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Done => "DONE",
            Self::Failed => "FAILED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }

    pub fn can_become(self, next: Self) -> bool {
        use ExportStatus::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Queued, Failed)
                | (Running, Running)
                | (Running, Done)
                | (Running, Failed)
        )
    }
}

/// A server-chosen export id (UUID v4, lowercase hyphenated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExportId(String);

impl ExportId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match uuid::Uuid::parse_str(raw) {
            Ok(u) if u.hyphenated().to_string() == raw => Ok(Self(raw.to_owned())),
            _ => Err("an export id is a lowercase hyphenated UUID".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ExportId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An export as the exports table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    pub id: ExportId,
    pub subject: SubjectId,
    pub trial: TrialId,
    pub site: SiteId,
    pub format: ExportFormat,
    pub status: ExportStatus,
    /// Rows consumed so far (EDC item values and diary entries); never decreases within an attempt.
    pub rows_done: u64,
    /// Rows the export will hold, once the worker has counted them.
    pub rows_total: Option<u64>,
    /// The token `sub` of who asked.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where the finished file is (only when `DONE`).
    pub object_key: Option<String>,
    /// Bytes of the finished file.
    pub size_bytes: Option<u64>,
    /// Why it failed (only when `FAILED`): a fixed phrase, never patient data.
    pub reason: Option<String>,
}

impl ExportJob {
    pub fn queued(
        id: ExportId,
        subject: &crate::store::Subject,
        format: ExportFormat,
        by: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            subject: subject.id.clone(),
            trial: subject.trial.clone(),
            site: subject.site.clone(),
            format,
            status: ExportStatus::Queued,
            rows_done: 0,
            rows_total: None,
            requested_by: by.to_owned(),
            requested_at: at,
            updated_at: at,
            object_key: None,
            size_bytes: None,
            reason: None,
        }
    }

    /// The object the worker writes: `exports/<subjectId>/<exportId>.<ext>`.
    pub fn object_key(&self) -> String {
        format!(
            "exports/{}/{}.{}",
            self.subject.as_str(),
            self.id.as_str(),
            self.format.as_str()
        )
    }

    /// The file name a download is saved under.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.{}",
            self.subject.as_str(),
            self.requested_at.format("%Y%m%dT%H%M%SZ"),
            self.format.as_str()
        )
    }
}

/// The message on the exports queue: which export to build. One struct, sent and received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRequested {
    pub export_id: ExportId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_stay_terminal() {
        for s in [ExportStatus::Done, ExportStatus::Failed] {
            for n in [
                ExportStatus::Queued,
                ExportStatus::Running,
                ExportStatus::Done,
                ExportStatus::Failed,
            ] {
                assert!(!s.can_become(n), "{s:?} → {n:?}");
            }
        }
        assert!(ExportStatus::Queued.can_become(ExportStatus::Failed));
        assert!(!ExportStatus::Queued.can_become(ExportStatus::Done));
    }

    #[test]
    fn ids_and_messages_round_trip() {
        let id = ExportId::generate();
        assert_eq!(ExportId::parse(id.as_str()).unwrap(), id);
        assert!(ExportId::parse("../x").is_err());
        assert!(ExportId::parse(&id.as_str().to_uppercase()).is_err());
        let m = ExportRequested {
            export_id: id.clone(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("{{\"exportId\":\"{id}\"}}"));
        assert_eq!(serde_json::from_str::<ExportRequested>(&json).unwrap(), m);
    }
}
