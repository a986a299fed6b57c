//! process-dicom's configuration, from the environment template.yaml gives the function.

use shared::config::{ConfigError, Source};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScannerChoice {
    /// The built-in engine over ClamAV-format databases kept under `signatures_prefix` in the bucket.
    Builtin,
    /// A clamd daemon at this address.
    Clamd(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub uploads_table: String,
    pub audit_table: String,
    pub instances_table: String,
    pub idempotency_table: String,
    /// Subject ↔ Patient ID hash links (wrong-patient detection).
    pub patient_links_table: String,
    /// The Secrets Manager secret (ARN or name) holding the Patient ID hashing key.
    pub patient_id_key_secret: String,
    pub bucket: String,
    pub incoming_prefix: String,
    pub accepted_prefix: String,
    pub quarantine_prefix: String,
    pub imaging_events_queue_url: String,
    pub scanner: ScannerChoice,
    pub signatures_prefix: String,
    pub signatures_check: Duration,
    pub scan_max_bytes: u64,
    /// Time kept in hand before the Lambda deadline: a message not finished by then goes back to
    /// the queue, before anything is half-written.
    pub deadline_margin: Duration,
    /// The ingest queue (its messages' retry delays are set on it).
    pub ingest_queue_url: String,
    /// The most one message may take, within the invocation's deadline.
    pub message_timeout: Duration,
    /// The longest an object's body may send nothing before its message fails (alone).
    pub read_timeout: Duration,
    /// Retry delays of a failed message: exponential from `retry_base`, capped at `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
}

impl Config {
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        let scanner = match env.parsed_or("SCANNER", "builtin".to_owned())?.as_str() {
            "builtin" => ScannerChoice::Builtin,
            "clamd" => ScannerChoice::Clamd(env.required("CLAMD_ADDRESS")?),
            other => {
                return Err(ConfigError::Invalid {
                    name: "SCANNER",
                    reason: format!("{other:?}: builtin or clamd"),
                })
            }
        };
        Ok(Self {
            uploads_table: env.required("UPLOADS_TABLE")?,
            audit_table: env.required("AUDIT_TABLE")?,
            instances_table: env.required("INSTANCES_TABLE")?,
            idempotency_table: env.required("IDEMPOTENCY_TABLE")?,
            patient_links_table: env.required("PATIENT_LINKS_TABLE")?,
            patient_id_key_secret: env.required("PATIENT_ID_KEY_SECRET")?,
            bucket: env.required("UPLOAD_BUCKET")?,
            incoming_prefix: env.required("UPLOAD_PREFIX")?,
            accepted_prefix: env.parsed_or("ACCEPTED_PREFIX", "accepted/".to_owned())?,
            quarantine_prefix: env.parsed_or("QUARANTINE_PREFIX", "quarantine/".to_owned())?,
            imaging_events_queue_url: env.required("IMAGING_EVENTS_QUEUE_URL")?,
            scanner,
            signatures_prefix: env
                .parsed_or("SIGNATURES_PREFIX", "scanner/signatures/".to_owned())?,
            signatures_check: Duration::from_secs(env.parsed_or("SIGNATURES_CHECK_SECONDS", 300)?),
            scan_max_bytes: env.parsed_or("SCAN_MAX_BYTES", 64 * 1024 * 1024 * 1024)?,
            deadline_margin: Duration::from_secs(env.parsed_or("DEADLINE_MARGIN_SECONDS", 20)?),
            ingest_queue_url: env.required("INGEST_QUEUE_URL")?,
            message_timeout: Duration::from_secs(env.parsed_or("MESSAGE_TIMEOUT_SECONDS", 600)?),
            read_timeout: Duration::from_secs(env.parsed_or("READ_TIMEOUT_SECONDS", 30)?),
            retry_base: Duration::from_secs(env.parsed_or("RETRY_BASE_SECONDS", 10)?),
            retry_max: Duration::from_secs(env.parsed_or("RETRY_MAX_SECONDS", 900)?),
        })
    }
}
