//! Values of the trial world. Each is parsed once, at the edge; a value that has its type is valid.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifiers that end up in object keys and table keys: 1 to `max` characters of `[A-Za-z0-9._-]`,
/// starting with a letter or digit. Nothing else can reach a key (no `/`, no `..`, no spaces).
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, String> {
                let ok_len = (1..=$max).contains(&raw.len());
                let ok_first = raw.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
                let ok_chars = raw
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                if ok_len && ok_first && ok_chars {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(format!(
                        concat!("a ", $what, " is 1 to {} characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit"),
                        $max
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A trial subject's pseudonymous code, e.g. `SUBJ-0001`. Never a name or a medical record number.
    SubjectId, "subject id", 64
);
identifier!(
    /// A trial site, e.g. `SITE-BOS-01`.
    SiteId, "site id", 64
);
identifier!(
    /// A trial (protocol), e.g. `CLIN-2026-01`.
    TrialId, "trial id", 64
);
identifier!(
    /// The subject's key within its trial as the site assigns it at screening (CDISC ODM
    /// `SubjectKey`), e.g. `BOS-0007`: pseudonymous, unique per trial. Never a name or an MRN.
    SubjectKey, "subject key", 32
);

/// A server-chosen upload id (UUID v4, lowercase hyphenated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UploadId(String);

impl UploadId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match uuid::Uuid::try_parse(raw) {
            Ok(u) if u.hyphenated().to_string() == raw => Ok(Self(raw.to_owned())),
            _ => Err("an upload id is a lowercase hyphenated UUID".to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SHA-256 digest: exactly 32 bytes, given as 64 hex digits or as base64 (the form S3's
/// `x-amz-checksum-sha256` header takes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bytes = if raw.len() == 64 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(raw).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(raw))
                .map_err(|_| "sha256 must be 64 hex digits or the base64 of 32 bytes".to_owned())?
        };
        let array: [u8; 32] = bytes.try_into().map_err(|v: Vec<u8>| {
            format!("sha256 must decode to exactly 32 bytes, not {}", v.len())
        })?;
        Ok(Self(array))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

/// An object key the server chose: `<prefix><trial>/<site>/<subject>/<upload>.dcm`. The client's file
/// name never takes part in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn for_upload(
        prefix: &str,
        trial: &TrialId,
        site: &SiteId,
        subject: &SubjectId,
        upload: &UploadId,
    ) -> Self {
        Self(format!("{prefix}{trial}/{site}/{subject}/{upload}.dcm"))
    }

    /// A key read back from storage (a record written by this service).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an upload is in its life. `AWAITING_UPLOAD → RECEIVED → PROCESSING → PROCESSED |
/// QUARANTINED | FAILED`; `AWAITING_UPLOAD → ABORTED` when the uploader gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UploadStatus {
    AwaitingUpload,
    Received,
    Processing,
    Processed,
    Quarantined,
    Failed,
    Aborted,
}

impl UploadStatus {
    pub const ALL: [UploadStatus; 7] = [
        Self::AwaitingUpload,
        Self::Received,
        Self::Processing,
        Self::Processed,
        Self::Quarantined,
        Self::Failed,
        Self::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "AWAITING_UPLOAD",
            Self::Received => "RECEIVED",
            Self::Processing => "PROCESSING",
            Self::Processed => "PROCESSED",
            Self::Quarantined => "QUARANTINED",
            Self::Failed => "FAILED",
            Self::Aborted => "ABORTED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// The lifecycle's edges. Anything else is refused by the store's conditional write.
    pub fn can_become(self, next: Self) -> bool {
        use UploadStatus::*;
        matches!(
            (self, next),
            (AwaitingUpload, Received)
                | (AwaitingUpload, Processing)
                | (AwaitingUpload, Aborted)
                | (Received, Processing)
                | (Processing, Processed)
                | (Processing, Quarantined)
                | (Processing, Failed)
                // The ingest queue gave up on an object whose processing never started (e.g. no
                // scanner could be loaded): the dead-letter consumer ends the upload FAILED.
                | (AwaitingUpload, Failed)
                | (Received, Failed)
                // An operator sends a FAILED upload back into processing (its object is kept).
                | (Failed, Received)
        )
    }
}

impl fmt::Display for UploadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the bytes reach S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadMode {
    /// One presigned PUT that signs length, type and SHA-256.
    Single,
    /// An S3 multipart upload: every part `part_size` bytes but the last.
    Multipart {
        s3_upload_id: String,
        part_size: u64,
        part_count: u32,
    },
}

impl UploadMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Multipart { .. } => "multipart",
        }
    }
}

/// The upload record: what was declared, where it goes, and where it is in its life.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub id: UploadId,
    pub subject: SubjectId,
    pub trial: TrialId,
    pub site: SiteId,
    /// The client's file name, kept as data only (it may contain anything, even a patient's name:
    /// it is never logged and never part of a key).
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: u64,
    pub sha256: Sha256Digest,
    pub bucket: String,
    pub key: ObjectKey,
    pub mode: UploadMode,
    pub status: UploadStatus,
    /// Why the record is in its status (quarantine reason, failure), when there is one.
    pub status_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the URLs handed out with the record stop working.
    pub expires_at: DateTime<Utc>,
    pub correlation_id: String,
    /// Set when processing ends (PROCESSED or QUARANTINED).
    pub processing: Option<ProcessingResult>,
}

/// What processing concluded about an upload, kept on its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessingResult {
    /// Where the object now is: the accepted or the quarantine area.
    pub object_key: String,
    /// The version of the uploaded object that was inspected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// Size and SHA-256 (hex) measured over every byte.
    pub size_bytes: u64,
    pub sha256: String,
    /// The scanner's verdict: `clean`, `infected: <signature>` or `unscannable: <why>`.
    pub scan: String,
    /// The DICOM header as parsed: no identifying value, only which identifying attributes are
    /// present (`identifyingAttributes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dicom: Option<crate::dicom::DicomHeader>,
    /// Set when the upload's Patient ID (compared by keyed hash, see [`crate::identity`]) is not the
    /// subject's, or is another subject's. The upload is accepted all the same, and flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_mismatch: Option<crate::identity::PatientMismatch>,
    /// For accepted instances: `new`, `duplicate` (same SOP Instance UID and digest seen before) or
    /// `new_version` (same SOP Instance UID, another digest: kept, and flagged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub processed_at: DateTime<Utc>,
}

/// Sizes of a multipart plan: part `n` (1-based) of `count` is `part_size` bytes, the last one the rest.
pub fn part_length(total: u64, part_size: u64, part_number: u32) -> u64 {
    let start = (u64::from(part_number) - 1) * part_size;
    total.saturating_sub(start).min(part_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_anything_that_could_escape_a_key() {
        for bad in [
            "",
            "../x",
            "a/b",
            "a b",
            "-lead",
            ".hidden",
            "é",
            &"x".repeat(65),
        ] {
            assert!(SubjectId::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["SUBJ-0001", "a", "S.1_2-3", &"x".repeat(64)] {
            assert!(SubjectId::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn sha256_accepts_hex_and_base64_of_32_bytes_only() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d = Sha256Digest::parse(hex).unwrap();
        assert_eq!(d.to_hex(), hex);
        assert_eq!(Sha256Digest::parse(&d.to_base64()).unwrap(), d);
        assert_eq!(Sha256Digest::parse(&hex.to_uppercase()).unwrap(), d);
        assert!(Sha256Digest::parse(&hex[..62]).is_err());
        assert!(Sha256Digest::parse("AAAA").is_err()); // base64 of 3 bytes
        assert!(Sha256Digest::parse("not a digest!").is_err());
        assert!(Sha256Digest::parse("").is_err());
    }

    #[test]
    fn upload_ids_are_canonical_uuids() {
        let id = UploadId::generate();
        assert_eq!(UploadId::parse(id.as_str()).unwrap(), id);
        assert!(UploadId::parse(&id.as_str().to_uppercase()).is_err());
        assert!(UploadId::parse("1234").is_err());
    }

    #[test]
    fn lifecycle_edges() {
        use UploadStatus::*;
        assert!(AwaitingUpload.can_become(Received));
        assert!(Processing.can_become(Quarantined));
        assert!(!Processed.can_become(AwaitingUpload));
        assert!(!Aborted.can_become(Received));
        for s in UploadStatus::ALL {
            assert_eq!(UploadStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn part_lengths_cover_the_object_exactly() {
        let (total, part): (u64, u64) = (10 * 1024 * 1024 + 7, 4 * 1024 * 1024);
        let count = total.div_ceil(part) as u32;
        let sum: u64 = (1..=count).map(|n| part_length(total, part, n)).sum();
        assert_eq!(sum, total);
        assert_eq!(part_length(total, part, count), 2 * 1024 * 1024 + 7);
    }
}
