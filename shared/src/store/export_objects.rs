//! The S3 adapter of [`ExportObjects`]: the worker's multipart upload of an export file, encrypted
//! at rest, and the presigned GET a finished export is downloaded with (the bucket itself is
//! readable by no one but the worker's role and such URLs).

use super::exports::{ExportObjects, UploadedPart};
use super::s3::{abort_upload, complete_upload, Encryption};
use super::{sdk_failure, StoreError};
use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct S3Exports {
    client: Client,
    bucket: String,
    encryption: Encryption,
}

impl S3Exports {
    pub fn new(client: Client, bucket: impl Into<String>, encryption: Encryption) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            encryption,
        }
    }
}

#[async_trait]
impl ExportObjects for S3Exports {
    async fn start(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(self.encryption.sdk())
            .send()
            .await
            .map_err(|e| sdk_failure("CreateMultipartUpload (export)", e))?;
        out.upload_id
            .ok_or_else(|| StoreError::Failed("CreateMultipartUpload gave no upload id".into()))
    }

    async fn part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Vec<u8>,
    ) -> Result<UploadedPart, StoreError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_failure("UploadPart (export)", e))?;
        Ok(UploadedPart {
            number,
            etag: out.e_tag.unwrap_or_default(),
        })
    }

    async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        complete_upload(
            &self.client,
            &self.bucket,
            key,
            upload_id,
            parts.iter().map(|p| (p.number, p.etag.as_str())),
        )
        .await
        .map_err(|e| sdk_failure("CompleteMultipartUpload (export)", e))?;
        Ok(())
    }

    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        abort_upload(
            &self.client,
            &self.bucket,
            key,
            upload_id,
            "AbortMultipartUpload (export)",
        )
        .await
    }

    async fn download_url(
        &self,
        key: &str,
        file_name: &str,
        ttl: Duration,
    ) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::Failed(format!("presigning: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(format!("attachment; filename=\"{file_name}\""))
            .presigned(config)
            .await
            .map_err(|e| sdk_failure("presign GetObject (export)", e))?;
        Ok(request.uri().to_owned())
    }
}
