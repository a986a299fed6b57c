//! The S3 adapter of [`UploadObjects`]: presigning and multipart bookkeeping. It never carries the
//! bytes of an upload.

use super::{
    sdk_failure, ChunkSource, IngestObjects, ObjectHead, OpenedObject, PresignedHttp, StoreError,
    StoredPart, UploadObjects,
};
use crate::domain::ObjectKey;
use async_trait::async_trait;
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_sdk_s3::Client;
use std::time::Duration;

/// Server-side encryption every upload requests (and every presigned URL signs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (AES256).
    S3Managed,
    /// SSE-KMS with the account's AWS managed key for S3.
    Kms,
}

impl Encryption {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "SSE-S3" => Ok(Self::S3Managed),
            "SSE-KMS" => Ok(Self::Kms),
            other => Err(format!(
                "unknown bucket encryption {other:?} (SSE-S3 or SSE-KMS)"
            )),
        }
    }

    pub(crate) fn sdk(self) -> ServerSideEncryption {
        match self {
            Self::S3Managed => ServerSideEncryption::Aes256,
            Self::Kms => ServerSideEncryption::AwsKms,
        }
    }
}

#[derive(Clone, Debug)]
pub struct S3Uploads {
    client: Client,
    bucket: String,
    encryption: Encryption,
}

impl S3Uploads {
    pub fn new(client: Client, bucket: impl Into<String>, encryption: Encryption) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            encryption,
        }
    }
}

fn presigning(ttl: Duration) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Failed(format!("presigning: {e}")))
}

fn to_http(req: PresignedRequest) -> PresignedHttp {
    PresignedHttp {
        method: req.method().to_owned(),
        url: req.uri().to_owned(),
        headers: req
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect(),
    }
}

#[async_trait]
impl UploadObjects for S3Uploads {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        size: u64,
        content_type: &str,
        sha256_base64: &str,
        ttl: Duration,
    ) -> Result<PresignedHttp, StoreError> {
        let length = i64::try_from(size).map_err(|_| StoreError::Failed("size".into()))?;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_length(length)
            .content_type(content_type)
            .checksum_sha256(sha256_base64)
            .server_side_encryption(self.encryption.sdk())
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| sdk_failure("presign PutObject", e))?;
        Ok(to_http(req))
    }

    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: &str,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .server_side_encryption(self.encryption.sdk())
            .send()
            .await
            .map_err(|e| sdk_failure("CreateMultipartUpload", e))?;
        out.upload_id
            .ok_or_else(|| StoreError::Failed("CreateMultipartUpload returned no upload id".into()))
    }

    async fn presign_part(
        &self,
        key: &ObjectKey,
        s3_upload_id: &str,
        part_number: u32,
        size: u64,
        ttl: Duration,
    ) -> Result<PresignedHttp, StoreError> {
        let number = i32::try_from(part_number).map_err(|_| StoreError::Failed("part".into()))?;
        let length = i64::try_from(size).map_err(|_| StoreError::Failed("size".into()))?;
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(s3_upload_id)
            .part_number(number)
            .content_length(length)
            .presigned(presigning(ttl)?)
            .await
            .map_err(|e| sdk_failure("presign UploadPart", e))?;
        Ok(to_http(req))
    }

    async fn list_parts(
        &self,
        key: &ObjectKey,
        s3_upload_id: &str,
    ) -> Result<Vec<StoredPart>, StoreError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key.as_str())
                .upload_id(s3_upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| no_such_upload_or("ListParts", e))?;
            for p in out.parts() {
                let (Some(number), Some(etag)) = (p.part_number(), p.e_tag()) else {
                    continue;
                };
                parts.push(StoredPart {
                    part_number: u32::try_from(number).unwrap_or(0),
                    size: u64::try_from(p.size().unwrap_or(0)).unwrap_or(0),
                    etag: etag.to_owned(),
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        s3_upload_id: &str,
        parts: &[StoredPart],
    ) -> Result<(), StoreError> {
        complete_upload(
            &self.client,
            &self.bucket,
            key.as_str(),
            s3_upload_id,
            parts.iter().map(|p| {
                (
                    i32::try_from(p.part_number).unwrap_or(i32::MAX),
                    p.etag.as_str(),
                )
            }),
        )
        .await
        .map_err(|e| no_such_upload_or("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &ObjectKey, s3_upload_id: &str) -> Result<(), StoreError> {
        abort_upload(
            &self.client,
            &self.bucket,
            key.as_str(),
            s3_upload_id,
            "AbortMultipartUpload",
        )
        .await
    }

    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectHead>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectHead {
                size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
                version_id: out.version_id().map(str::to_owned),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_failure("HeadObject", e)),
        }
    }
}

/// S3's `NoSuchUpload` (the multipart upload was completed or aborted) as a [`StoreError::Conflict`];
/// any other failure as usual.
/// CompleteMultipartUpload of `parts` (part number, ETag) in the order given: the one call both
/// buckets' multipart adapters make (uploads here, exports in `export_objects`).
pub(super) async fn complete_upload<'a>(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: impl Iterator<Item = (i32, &'a str)>,
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
> {
    let completed = parts
        .map(|(number, etag)| {
            CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build()
        })
        .collect();
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
}

/// AbortMultipartUpload; an upload already gone (aborted, completed, expired) is no failure.
pub(super) async fn abort_upload(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    operation: &'static str,
) -> Result<(), StoreError> {
    match client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
        Err(e) => Err(sdk_failure(operation, e)),
    }
}

fn no_such_upload_or<E, R>(
    operation: &'static str,
    err: aws_sdk_s3::error::SdkError<E, R>,
) -> StoreError
where
    E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if err.as_service_error().and_then(|e| e.code()) == Some("NoSuchUpload") {
        tracing::info!(operation, "the multipart upload no longer exists");
        return StoreError::Conflict(format!("{operation}: no such multipart upload"));
    }
    sdk_failure(operation, err)
}

/// Percent-encodes a key for `x-amz-copy-source` and tagging: all but unreserved characters and `/`.
fn encode(raw: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// S3's largest single CopyObject; above it the copy is multipart (UploadPartCopy).
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;
const COPY_PART: u64 = 512 * 1024 * 1024;

/// The processor's view of the upload bucket.
#[derive(Clone, Debug)]
pub struct S3Ingest {
    client: Client,
    bucket: String,
    /// Objects up to this size are copied with one CopyObject; larger ones part by part.
    single_copy_limit: u64,
    copy_part: u64,
}

impl S3Ingest {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            single_copy_limit: MAX_SINGLE_COPY,
            copy_part: COPY_PART,
        }
    }

    /// Lower limits than S3's, so a test takes the multipart copy with a few MiB (parts of at least
    /// 5 MiB but the last, as S3 requires).
    pub fn with_copy_limits(mut self, single_copy_limit: u64, copy_part: u64) -> Self {
        self.single_copy_limit = single_copy_limit;
        self.copy_part = copy_part.max(5 * 1024 * 1024);
        self
    }

    fn copy_source(&self, key: &str, version: Option<&str>) -> String {
        let mut source = format!("{}/{}", self.bucket, encode(key, true));
        if let Some(v) = version {
            source.push_str("?versionId=");
            source.push_str(&encode(v, false));
        }
        source
    }
}

struct S3Body(aws_sdk_s3::primitives::ByteStream);

#[async_trait]
impl ChunkSource for S3Body {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, StoreError> {
        self.0.try_next().await.map_err(|e| {
            tracing::warn!(error = %aws_sdk_s3::error::DisplayErrorContext(&e), "object stream failed");
            StoreError::Unavailable("GetObject body".into())
        })
    }
}

#[async_trait]
impl IngestObjects for S3Ingest {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn open(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<OpenedObject>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
        {
            Ok(out) => Ok(Some(OpenedObject {
                size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
                version: out.version_id().map(str::to_owned),
                body: Box::new(S3Body(out.body)),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_failure("GetObject", e)),
        }
    }

    async fn copy(
        &self,
        from: &str,
        version: Option<&str>,
        size: u64,
        to: &str,
        tags: &[(&str, &str)],
    ) -> Result<(), StoreError> {
        let tagging = tags
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k, false), encode(v, false)))
            .collect::<Vec<_>>()
            .join("&");
        let source = self.copy_source(from, version);
        if size <= self.single_copy_limit {
            // CopyObject keeps the source's Content-Type and metadata (MetadataDirective COPY).
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(to)
                .copy_source(&source)
                .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
                .tagging(tagging)
                .send()
                .await
                .map_err(|e| sdk_failure("CopyObject", e))?;
            return Ok(());
        }
        // A multipart copy starts a new object: it inherits nothing from its source, so what the
        // source carries (Content-Type, metadata, encryption) is given again.
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(from)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| sdk_failure("HeadObject (copy)", e))?;
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(to)
            .tagging(tagging)
            .set_content_type(head.content_type)
            .set_content_encoding(head.content_encoding)
            .set_content_disposition(head.content_disposition)
            .set_content_language(head.content_language)
            .set_cache_control(head.cache_control)
            .set_metadata(head.metadata)
            .set_server_side_encryption(head.server_side_encryption)
            .set_ssekms_key_id(head.ssekms_key_id)
            .set_bucket_key_enabled(head.bucket_key_enabled)
            .send()
            .await
            .map_err(|e| sdk_failure("CreateMultipartUpload (copy)", e))?
            .upload_id
            .ok_or_else(|| StoreError::Failed("CreateMultipartUpload returned no id".into()))?;
        let mut parts = Vec::new();
        let mut start = 0u64;
        let mut number = 1i32;
        while start < size {
            let end = (start + self.copy_part).min(size) - 1;
            let copied = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(to)
                .upload_id(&upload_id)
                .part_number(number)
                .copy_source(&source)
                .copy_source_range(format!("bytes={start}-{end}"))
                .send()
                .await;
            let etag = match copied {
                Ok(out) => out
                    .copy_part_result
                    .and_then(|r| r.e_tag)
                    .unwrap_or_default(),
                Err(e) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(to)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    return Err(sdk_failure("UploadPartCopy", e));
                }
            };
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build(),
            );
            start = end + 1;
            number += 1;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(to)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_failure("CompleteMultipartUpload (copy)", e))?;
        Ok(())
    }

    async fn version_with_etag(&self, key: &str, etag: &str) -> Result<Option<String>, StoreError> {
        let listed = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| sdk_failure("ListObjectVersions", e))?;
        let bare = |t: &str| t.trim_matches('"').to_owned();
        Ok(listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .filter(|v| v.e_tag().map(bare) == Some(bare(etag)))
            .max_by_key(|v| v.last_modified().map(|t| (t.secs(), t.subsec_nanos())))
            .and_then(|v| v.version_id())
            .filter(|v| *v != "null")
            .map(str::to_owned))
    }

    async fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_failure("DeleteObject", e))?;
        Ok(())
    }

    async fn delete_version(&self, key: &str, version: &str) -> Result<(), StoreError> {
        // Deleting a version that is already gone succeeds (S3 answers 204).
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .map_err(|e| sdk_failure("DeleteObject (version)", e))?;
        Ok(())
    }
}
