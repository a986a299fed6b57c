//! The S3 adapter of the published reference snapshot: a conditional read for the cache
//! ([`SnapshotSource`]) and the version check and write refresh-cache makes ([`SnapshotPublisher`]).
//!
//! One key holds the current snapshot (the bucket is versioned: earlier snapshots stay as object
//! versions). Its user metadata `snapshot-version` is the snapshot's content hash, so refresh-cache
//! learns whether the source changed with a HEAD, without reading the object.
//!
//! A missing key: readers and refresh-cache hold `s3:ListBucket` on exactly this key (an `s3:prefix`
//! condition), so S3 answers 404, not 403 (see template.yaml).

use super::{sdk_failure, StoreError};
use crate::reference::cache::{Fetched, SnapshotSource};
use crate::reference::snapshot::Snapshot;
use async_trait::async_trait;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

/// The largest snapshot object a reader accepts (compressed; a few thousand entries are ~100 KB).
const MAX_OBJECT: usize = 16 << 20;
const VERSION_METADATA: &str = "snapshot-version";

/// Where refresh-cache publishes.
#[async_trait]
pub trait SnapshotPublisher: Send + Sync {
    /// The version (content hash) of the published snapshot; `None` if none is.
    async fn published_version(&self) -> Result<Option<String>, StoreError>;
    async fn publish(&self, snapshot: &Snapshot) -> Result<(), StoreError>;
}

#[derive(Clone, Debug)]
pub struct S3Snapshots {
    client: Client,
    bucket: String,
    key: String,
}

impl S3Snapshots {
    pub fn new(client: Client, bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            key: key.into(),
        }
    }
}

#[async_trait]
impl SnapshotSource for S3Snapshots {
    #[tracing::instrument(name = "snapshot.fetch", skip_all)]
    async fn fetch(&self, if_none_match: Option<&str>) -> Result<Fetched, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_if_none_match(if_none_match.map(str::to_owned))
            .send()
            .await
        {
            Ok(out) => out,
            // 304 is not an error in HTTP, but the SDK reports every non-2xx as one.
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(304) => {
                return Ok(Fetched::NotModified)
            }
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(Fetched::Missing)
            }
            Err(e) => return Err(sdk_failure("GetObject snapshot", e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading the snapshot: {e}")))?
        {
            if bytes.len() + chunk.len() > MAX_OBJECT {
                return Err(StoreError::Corrupt(
                    "the snapshot object is too large".into(),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Changed { bytes, etag })
    }
}

#[async_trait]
impl SnapshotPublisher for S3Snapshots {
    async fn published_version(&self) -> Result<Option<String>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .metadata()
                .and_then(|m| m.get(VERSION_METADATA))
                .cloned()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_failure("HeadObject snapshot", e)),
        }
    }

    async fn publish(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        // The SDK adds a CRC32 checksum of the body, which S3 verifies before storing it.
        let body = snapshot.encode();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type("application/gzip")
            .metadata(VERSION_METADATA, &snapshot.version)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_failure("PutObject snapshot", e))?;
        Ok(())
    }
}
