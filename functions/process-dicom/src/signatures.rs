//! Where the scanner comes from: the built-in engine over the signature databases kept in the
//! bucket (`.hdb`, `.hsb`, `.ndb` under a prefix), reloaded when their ETags change; or clamd.

use async_trait::async_trait;
use shared::scan::signatures::SignatureDb;
use shared::scan::{BuiltinScanner, ScanError, Scanner};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[async_trait]
pub trait ScannerSource: Send + Sync {
    async fn scanner(&self) -> Result<Arc<dyn Scanner>, ScanError>;
}

/// A scanner that does not change (clamd, which reloads its own databases).
pub struct Fixed(pub Arc<dyn Scanner>);

#[async_trait]
impl ScannerSource for Fixed {
    async fn scanner(&self) -> Result<Arc<dyn Scanner>, ScanError> {
        Ok(Arc::clone(&self.0))
    }
}

struct Loaded {
    /// (key, ETag) of every database file, sorted: the version of the signature set.
    fingerprint: Vec<(String, String)>,
    scanner: Arc<BuiltinScanner>,
}

pub struct S3Signatures {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    check_every: Duration,
    max_bytes: u64,
    state: Mutex<(Option<Loaded>, Option<Instant>)>,
}

impl S3Signatures {
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: &str,
        prefix: &str,
        check_every: Duration,
        max_bytes: u64,
    ) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            check_every,
            max_bytes,
            state: Mutex::new((None, None)),
        }
    }

    async fn fingerprint(&self) -> Result<Vec<(String, String)>, ScanError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&self.prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    ScanError(format!(
                        "listing signatures: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                })?;
            for o in page.contents() {
                let key = o.key().unwrap_or_default();
                if [".hdb", ".hsb", ".ndb"]
                    .iter()
                    .any(|ext| key.ends_with(ext))
                {
                    out.push((key.to_owned(), o.e_tag().unwrap_or_default().to_owned()));
                }
            }
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        out.sort();
        Ok(out)
    }

    async fn load(&self, fingerprint: Vec<(String, String)>) -> Result<Loaded, ScanError> {
        let mut db = SignatureDb::default();
        for (key, _) in &fingerprint {
            let object = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| {
                    ScanError(format!(
                        "reading {key}: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ))
                })?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| ScanError(format!("reading {key}: {e}")))?
                .into_bytes();
            let text = String::from_utf8_lossy(&bytes);
            db.add_file(key, &text).map_err(ScanError)?;
        }
        if db.is_empty() {
            // A scanner without signatures would call everything clean.
            return Err(ScanError(format!(
                "no signatures under s3://{}/{}: refusing to scan",
                self.bucket, self.prefix
            )));
        }
        tracing::info!(
            files = fingerprint.len(),
            hash_signatures = db.hashes.len(),
            body_signatures = db.bodies.len(),
            skipped = db.skipped.len(),
            "signature database loaded"
        );
        let scanner = BuiltinScanner::new(db, self.max_bytes).map_err(ScanError)?;
        Ok(Loaded {
            fingerprint,
            scanner: Arc::new(scanner),
        })
    }
}

#[async_trait]
impl ScannerSource for S3Signatures {
    async fn scanner(&self) -> Result<Arc<dyn Scanner>, ScanError> {
        let mut state = self.state.lock().await;
        let due = state.1.is_none_or(|t| t.elapsed() >= self.check_every);
        if due {
            match self.fingerprint().await {
                Ok(fp) if state.0.as_ref().is_some_and(|l| l.fingerprint == fp) => {}
                Ok(fp) => match self.load(fp).await {
                    Ok(loaded) => state.0 = Some(loaded),
                    // A broken or emptied update: keep scanning with the set that loaded last.
                    Err(e) if state.0.is_some() => {
                        tracing::error!(error = %e, "signature update not loaded; keeping the loaded set")
                    }
                    Err(e) => return Err(e),
                },
                // Keep scanning with what is loaded; without anything, fail the message (retried).
                Err(e) if state.0.is_some() => {
                    tracing::warn!(error = %e, "signature check failed; keeping the loaded set")
                }
                Err(e) => return Err(e),
            }
            state.1 = Some(Instant::now());
        }
        match &state.0 {
            Some(l) => Ok(Arc::clone(&l.scanner) as Arc<dyn Scanner>),
            None => Err(ScanError("no signature database loaded".into())),
        }
    }
}
