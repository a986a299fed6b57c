//! upload-url's configuration, from the environment template.yaml gives the function.

use shared::config::{ConfigError, Source};
use shared::store::s3::Encryption;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// S3's largest single PUT.
const S3_MAX_SINGLE_PUT: u64 = 5 * 1024 * MIB;
/// S3's smallest part (but the last) of a multipart upload.
pub(crate) const S3_MIN_PART: u64 = 5 * MIB;
/// S3's largest number of parts.
pub(crate) const S3_MAX_PARTS: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub subjects_table: String,
    pub uploads_table: String,
    pub audit_table: String,
    pub bucket: String,
    /// Every upload key starts with it; the bucket's notification to the ingest queue filters on it.
    pub prefix: String,
    pub url_ttl: Duration,
    /// Above this size an upload gets a multipart plan.
    pub multipart_threshold: u64,
    pub max_upload: u64,
    /// The part size a multipart plan starts from (grown when the object needs more than 10,000 parts).
    pub part_size: u64,
    pub encryption: Encryption,
    /// The ingest queue (reprocessing sends an object's event to it again); optional.
    pub ingest_queue_url: Option<String>,
}

impl Config {
    pub fn from_source(env: &impl Source) -> Result<Self, ConfigError> {
        let ttl_seconds: u64 = env.parsed_or("UPLOAD_URL_TTL_SECONDS", 900)?;
        if !(1..=900).contains(&ttl_seconds) {
            return Err(ConfigError::Invalid {
                name: "UPLOAD_URL_TTL_SECONDS",
                reason: "presigned URLs live at most 900 seconds".into(),
            });
        }
        let multipart_threshold = env.parsed_or("MULTIPART_THRESHOLD_BYTES", 64 * MIB)?;
        if !(S3_MIN_PART..=S3_MAX_SINGLE_PUT).contains(&multipart_threshold) {
            return Err(ConfigError::Invalid {
                name: "MULTIPART_THRESHOLD_BYTES",
                reason: "between 5 MiB and 5 GiB (S3's single-PUT limit)".into(),
            });
        }
        let part_size = env.parsed_or("MULTIPART_PART_SIZE_BYTES", 16 * MIB)?;
        if part_size < S3_MIN_PART {
            return Err(ConfigError::Invalid {
                name: "MULTIPART_PART_SIZE_BYTES",
                reason: "at least 5 MiB (S3's smallest part)".into(),
            });
        }
        let encryption =
            Encryption::parse(&env.required("BUCKET_ENCRYPTION")?).map_err(|reason| {
                ConfigError::Invalid {
                    name: "BUCKET_ENCRYPTION",
                    reason,
                }
            })?;
        Ok(Self {
            subjects_table: env.required("SUBJECTS_TABLE")?,
            uploads_table: env.required("UPLOADS_TABLE")?,
            audit_table: env.required("AUDIT_TABLE")?,
            bucket: env.required("UPLOAD_BUCKET")?,
            prefix: env.required("UPLOAD_PREFIX")?,
            url_ttl: Duration::from_secs(ttl_seconds),
            multipart_threshold,
            max_upload: env.parsed_or("MAX_UPLOAD_BYTES", 10 * 1024 * MIB)?,
            part_size,
            encryption,
            ingest_queue_url: env.get("INGEST_QUEUE_URL").filter(|u| !u.is_empty()),
        })
    }

    /// The part size for an object of `size` bytes: the configured size, grown (in whole MiB) until
    /// the object fits in S3's 10,000 parts.
    pub(crate) fn part_size_for(&self, size: u64) -> u64 {
        let needed = size.div_ceil(S3_MAX_PARTS).div_ceil(MIB) * MIB;
        self.part_size.max(needed).max(S3_MIN_PART)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("SUBJECTS_TABLE", "s"),
            ("UPLOADS_TABLE", "u"),
            ("AUDIT_TABLE", "a"),
            ("UPLOAD_BUCKET", "b"),
            ("UPLOAD_PREFIX", "incoming/"),
            ("BUCKET_ENCRYPTION", "SSE-S3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn defaults_and_limits() {
        let c = Config::from_source(&env(&[])).unwrap();
        assert_eq!(c.url_ttl, Duration::from_secs(900));
        assert_eq!(c.multipart_threshold, 64 * MIB);
        assert!(Config::from_source(&env(&[("UPLOAD_URL_TTL_SECONDS", "901")])).is_err());
        assert!(Config::from_source(&env(&[("MULTIPART_THRESHOLD_BYTES", "1")])).is_err());
        assert!(Config::from_source(&env(&[("BUCKET_ENCRYPTION", "none")])).is_err());
    }

    #[test]
    fn part_size_grows_to_fit_ten_thousand_parts() {
        let c = Config::from_source(&env(&[])).unwrap();
        assert_eq!(c.part_size_for(100 * MIB), 16 * MIB);
        let huge = 1024 * 1024 * MIB; // 1 TiB
        let p = c.part_size_for(huge);
        assert!(huge.div_ceil(p) <= S3_MAX_PARTS);
        assert_eq!(p % MIB, 0);
    }
}
