//! The clinical data of a subject, as the clinical routes write it and the report reads it:
//! - [`subject`]: enrolment and the subject record (the report's demographics);
//! - [`forms`]: EDC case-report forms keyed like CDISC ODM (form OID → item group → item OID),
//!   validated against a catalogue, with typed views (vital signs, labs, adverse events,
//!   concomitant medications);
//! - [`epro`]: patient-reported diary entries (pain score, symptoms, diary completed).
//!
//! Every value here is parsed once, at the edge; parsing collects every problem with its JSON
//! path ([`FieldError`]) so a client learns all of them from one 422.

pub mod epro;
pub mod forms;
pub mod subject;

use serde::Serialize;

/// One reason a request body was refused: where (a JSON pointer into the body) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// How far a client's clock may run ahead of ours before a timestamp counts as "in the future".
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);
