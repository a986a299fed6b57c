//! The DICOM header, read in the same streaming pass that hashes and scans an upload.
//!
//! [`HeaderParser`] is a push parser: it takes the object's bytes chunk by chunk, as they come from
//! S3, and keeps only what it extracts (a few short values) and one element header at a time. Every
//! value it does not need is skipped by counting, nested sequences included, so memory is fixed
//! whatever the object or its header claims: a declared length is checked against the bytes that
//! can exist (the object's size) and never allocated. It stops at Pixel Data, recording its length
//! and whether it is encapsulated.
//!
//! It reads what pydicom reads without `force`: the 128-byte preamble and `DICM`, the file meta
//! group (with or without its group length or transfer syntax), then the data set in implicit or
//! explicit VR little endian, explicit big endian, deflated, or any encapsulated syntax. Like
//! pydicom, it decides explicit vs implicit VR from the data set's first element, whatever the meta
//! says, and decodes standard attributes stored with VR UN by their dictionary VR.
//!
//! No identifying value reaches the header: of the identifying attributes of the PS3.15 Basic
//! Profile ([`identifying::IDENTIFYING`]) it records only which are present with content, wherever
//! they are (nested sequences of defined or undefined length included); their values are looked at
//! while they are skipped, never kept. The one exception is the top-level Patient ID, which the
//! processor needs for wrong-patient detection: it is handed out once, apart from the header, as a
//! [`PatientId`] that cannot be printed or serialised.

pub mod identifying;
mod parser;
pub mod synthetic;

pub use parser::HeaderParser;

use serde::{Deserialize, Serialize};

/// What the processor records of a DICOM instance. No value here is ever logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DicomHeader {
    pub transfer_syntax: Option<String>,
    pub sop_class_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub study_instance_uid: Option<String>,
    pub series_instance_uid: Option<String>,
    pub modality: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
    pub rows: Option<u16>,
    pub columns: Option<u16>,
    pub number_of_frames: Option<i64>,
    pub body_part_examined: Option<String>,
    pub manufacturer: Option<String>,
    pub pixel_data: Option<PixelData>,
    /// Keywords of the identifying attributes (PS3.15 Basic Profile, [`identifying::IDENTIFYING`])
    /// present with content anywhere in the data set, in tag order. Never their values.
    #[serde(default)]
    pub identifying_attributes: Vec<String>,
    /// How the data set was encoded (as read, which may differ from what the meta declared).
    pub explicit_vr: bool,
    pub big_endian: bool,
    pub deflated: bool,
    /// Whether a file meta group (0002,xxxx) was present.
    pub has_file_meta: bool,
}

/// A data set's Patient ID (0010,0020), trimmed of padding and white space, as raw bytes (whatever
/// its character set). It has no `Display`, `Serialize` or revealing `Debug`: it can only be hashed
/// (`as_bytes`) and dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientId(Vec<u8>);

impl PatientId {
    /// The normalised value, or `None` when nothing but padding is left.
    pub fn from_value(raw: &[u8]) -> Option<Self> {
        let pad = |b: &u8| *b == 0 || b.is_ascii_whitespace();
        let start = raw.iter().position(|b| !pad(b))?;
        let end = raw.iter().rposition(|b| !pad(b))?;
        Some(Self(raw[start..=end].to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PatientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientId(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PixelData {
    /// Bytes of pixel data: the element's length, or the sum of its fragments when encapsulated.
    pub length: u64,
    pub encapsulated: bool,
    /// Encapsulated only: items after the basic offset table.
    pub fragments: u32,
}

/// Why an object is not an acceptable DICOM file; `reason()` is what quarantine records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DicomError {
    #[error("not_dicom: {0}")]
    NotDicom(String),
    #[error("malformed: {0}")]
    Malformed(String),
}

impl DicomError {
    /// `not_dicom` or `malformed: <detail>`.
    pub fn reason(&self) -> String {
        match self {
            Self::NotDicom(_) => "not_dicom".to_owned(),
            Self::Malformed(detail) => format!("malformed: {detail}"),
        }
    }
}

/// Parses a whole in-memory object (tests, fuzzing); the processor feeds chunks instead.
pub fn parse_header(bytes: &[u8]) -> Result<DicomHeader, DicomError> {
    parse_with_patient_id(bytes).0
}

/// Parses a whole in-memory object, and takes its Patient ID out apart from the header.
pub fn parse_with_patient_id(bytes: &[u8]) -> (Result<DicomHeader, DicomError>, Option<PatientId>) {
    let mut parser = HeaderParser::new(bytes.len() as u64);
    parser.feed(bytes);
    let patient_id = parser.take_patient_id();
    (parser.finish(), patient_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_ids_are_trimmed_and_never_printed() {
        let id = PatientId::from_value(b" PAT-0042 \0").unwrap();
        assert_eq!(id.as_bytes(), b"PAT-0042");
        assert_eq!(format!("{id:?}"), "PatientId(<redacted>)");
        assert_eq!(PatientId::from_value(b"  \0\0"), None);
        assert_eq!(PatientId::from_value(b""), None);
    }
}
