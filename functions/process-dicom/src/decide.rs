//! The decision over one inspection: accept, or quarantine with the first reason that applies.

use shared::domain::Upload;
use shared::inspect::Inspection;
use shared::scan::Verdict;

/// Where processing leaves an object and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Quarantine(String),
}

/// The scanner's reason first, then integrity against the declaration, then the DICOM parse.
pub fn decide(upload: &Upload, inspection: &Inspection) -> Decision {
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
