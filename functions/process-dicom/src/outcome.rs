//! How one object's processing ends: an [`Outcome`], or a [`Retry`] that hands the message back.

use chrono::{DateTime, Utc};
use shared::notification::NotANotification;
use shared::scan::ScanError;
use shared::store::StoreError;

/// Why an object is moved to `quarantine/stray/` without changing any upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrayReason {
    /// Its key names no upload (or another key than the upload's).
    NoUploadRecord,
    UploadAborted,
    /// Another version of a key whose upload was concluded with a first one.
    SecondObjectVersion,
}

impl StrayReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoUploadRecord => "no_upload_record",
            Self::UploadAborted => "upload_aborted",
            Self::SecondObjectVersion => "second_object_version",
        }
    }
}

/// What processing did with an object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Quarantined,
    Stray(StrayReason),
    /// Concluded by an earlier delivery that did not finish: cleaned up and published again.
    Republished,
    /// The upload ended FAILED (the ingest queue gave up on it): left as it is, for an operator.
    LeftFailed,
}

impl Outcome {
    /// What the idempotency record keeps for the version.
    pub fn result(self) -> String {
        match self {
            Self::Processed => "PROCESSED".into(),
            Self::Quarantined => "QUARANTINED".into(),
            Self::Stray(reason) => format!("stray: {}", reason.as_str()),
            Self::Republished => "republished".into(),
            Self::LeftFailed => "left FAILED".into(),
        }
    }

    /// The `Outcome` dimension of the `Objects` metric.
    pub fn metric(self) -> &'static str {
        match self {
            Self::Processed => "PROCESSED",
            Self::Quarantined => "QUARANTINED",
            Self::Stray(_) => "STRAY",
            Self::Republished => "REPUBLISHED",
            Self::LeftFailed => "LEFT_FAILED",
        }
    }

    /// Whether the version is done for good (a FAILED upload's version is not: an operator may
    /// reprocess it).
    pub fn completes(self) -> bool {
        !matches!(self, Self::LeftFailed)
    }
}

/// Why a message goes back to the queue (logged; retried after a delay, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    /// A body that is not an S3 notification: it never will be; back at once, to reach the DLQ.
    #[error("{0}")]
    NotANotification(#[from] NotANotification),
    /// Another delivery holds the upload's lock (until then, when known).
    #[error("another delivery of this upload is being processed")]
    Busy { until: Option<DateTime<Utc>> },
    #[error("not enough time left before the message's deadline")]
    Deadline,
    /// The object's body sent nothing for the read timeout.
    #[error("the object's body stalled")]
    Stalled,
    /// No scanner could be loaded (e.g. no signature database in the bucket): nothing started.
    #[error("scanner unavailable: {0}")]
    ScannerUnavailable(String),
    #[error("dependency: {0}")]
    Dependency(String),
}

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry::Dependency(e.to_string())
    }
}

impl From<ScanError> for Retry {
    fn from(e: ScanError) -> Self {
        Retry::Dependency(e.to_string())
    }
}

impl Retry {
    /// The `Outcome` dimension of the `Objects` metric.
    pub fn metric(&self) -> &'static str {
        match self {
            Self::NotANotification(_) => "NOT_A_NOTIFICATION",
            Self::Busy { .. } => "BUSY",
            Self::Deadline => "DEADLINE",
            Self::Stalled => "STALLED",
            Self::ScannerUnavailable(_) => "SCANNER_UNAVAILABLE",
            Self::Dependency(_) => "RETRY",
        }
    }
}
