//! ingest-failures' configuration, from the environment template.yaml gives the function.

use shared::config::{ConfigError, Source};

#[derive(Debug, Clone)]
pub struct Config {
    pub uploads_table: String,
    pub audit_table: String,
    /// process-dicom's claims, where the last error of each upload's processing is kept.
    pub idempotency_table: String,
    pub bucket: String,
    pub incoming_prefix: String,
    pub imaging_events_queue_url: String,
}

impl Config {
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            uploads_table: env.required("UPLOADS_TABLE")?,
            audit_table: env.required("AUDIT_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            bucket: env.required("UPLOAD_BUCKET")?,
            incoming_prefix: env.required("UPLOAD_PREFIX")?,
            imaging_events_queue_url: env.required("IMAGING_EVENTS_QUEUE_URL")?,
        })
    }
}
