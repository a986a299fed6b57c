//! The S3 adapter of [`UploadObjects`]: presigning and multipart bookkeeping. It never carries the
//! bytes of an upload.

use super::{sdk_failure, ObjectHead, PresignedHttp, StoreError, StoredPart, UploadObjects};
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

    fn sdk(self) -> ServerSideEncryption {
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
                .map_err(|e| sdk_failure("ListParts", e))?;
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
        let completed = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(i32::try_from(p.part_number).unwrap_or(i32::MAX))
                    .e_tag(&p.etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(s3_upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_failure("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(&self, key: &ObjectKey, s3_upload_id: &str) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(s3_upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => Ok(()),
            Err(e) => Err(sdk_failure("AbortMultipartUpload", e)),
        }
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
