//! process-dicom's EMF metrics (namespace `clinflow`, `Function` = `process-dicom`): `Objects` and
//! `ProcessingTime` by `Outcome` for every object version handled, `ObjectBytes` by outcome for
//! what was concluded. The template's alarms and dashboard read these names.

use crate::outcome::{Outcome, Retry};
use shared::metrics::{Metrics, Unit};
use std::time::Duration;

const FUNCTION: &str = "process-dicom";

/// One object version handled, however it ended.
pub fn object(result: &Result<Outcome, Retry>, elapsed: Duration) {
    let outcome = match result {
        Ok(o) => o.metric(),
        Err(e) => e.metric(),
    };
    Metrics::new(FUNCTION)
        .dimension("Outcome", outcome)
        .count("Objects", 1)
        .millis("ProcessingTime", elapsed)
        .emit();
}

/// A message refused before any object was processed (not a notification, no time left, its
/// upload locked by another delivery).
pub fn refused(why: &Retry) {
    Metrics::new(FUNCTION)
        .dimension("Outcome", why.metric())
        .count("Objects", 1)
        .emit();
}

/// The size of a concluded object.
pub fn concluded(outcome: Outcome, bytes: u64) {
    Metrics::new(FUNCTION)
        .dimension("Outcome", outcome.metric())
        .value("ObjectBytes", Unit::Bytes, bytes as f64)
        .emit();
}
