//! Wrong-patient detection for an accepted upload: its Patient ID, hashed with the deployment's
//! key, against the subject's links ([`shared::identity`]). The value itself goes no further.

use shared::dicom::PatientId;
use shared::domain::Upload;
use shared::identity::{PatientKeySource, PatientLinks, PatientMismatch};
use shared::store::StoreError;
use std::sync::Arc;

pub struct PatientCheck {
    keys: Arc<dyn PatientKeySource>,
    links: Arc<dyn PatientLinks>,
}

impl PatientCheck {
    pub fn new(keys: Arc<dyn PatientKeySource>, links: Arc<dyn PatientLinks>) -> Self {
        Self { keys, links }
    }

    /// The flag for this upload, if any. An upload without a Patient ID links nothing and is not
    /// flagged (its identifying attributes on the record say it has none).
    pub async fn check(
        &self,
        upload: &Upload,
        patient_id: Option<&PatientId>,
    ) -> Result<Option<PatientMismatch>, StoreError> {
        let Some(patient_id) = patient_id else {
            return Ok(None);
        };
        let hash = self.keys.key().await?.hash(patient_id);
        let reasons = self
            .links
            .link(&upload.trial, &upload.subject, &hash, &upload.id)
            .await?;
        let mismatch = PatientMismatch::from_reasons(reasons);
        if let Some(m) = &mismatch {
            tracing::warn!(
                patient_mismatch = %m.code(),
                "upload flagged: its Patient ID is not the subject's (kept, for review)"
            );
        }
        Ok(mismatch)
    }
}
