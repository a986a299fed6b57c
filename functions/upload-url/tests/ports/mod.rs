//! Scripted ports shared by this crate's fault and log tests: a subject directory and an upload
//! store that can be down, and an object store that records what it was asked.
#![allow(dead_code)]

use async_trait::async_trait;
use shared::domain::{ObjectKey, SiteId, SubjectId, TrialId, Upload, UploadId, UploadStatus};
use shared::store::{
    AuditEntry, ObjectHead, PresignedHttp, StoreError, StoredPart, Subject, SubjectDirectory,
    UploadObjects, UploadStore,
};
use std::collections::{BTreeMap, HashMap};
pub use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use upload_url::{Config, UploadApi};

pub struct Subjects {
    pub down: bool,
}

#[async_trait]
impl SubjectDirectory for Subjects {
    async fn subject(&self, id: &SubjectId) -> Result<Option<Subject>, StoreError> {
        if self.down {
            return Err(StoreError::Unavailable("GetItem subjects".into()));
        }
        Ok(Some(Subject {
            id: id.clone(),
            trial: TrialId::parse("CLIN-DEMO-01").unwrap(),
            site: SiteId::parse("SITE-BOS-01").unwrap(),
        }))
    }
}

pub struct Uploads {
    pub down: bool,
}

#[async_trait]
impl UploadStore for Uploads {
    async fn create(&self, _: &Upload, _: &AuditEntry) -> Result<(), StoreError> {
        if self.down {
            Err(StoreError::Unavailable("TransactWriteItems".into()))
        } else {
            Ok(())
        }
    }
    async fn get(&self, _: &UploadId) -> Result<Option<Upload>, StoreError> {
        Ok(None)
    }
    async fn transition(
        &self,
        _: &UploadId,
        _: UploadStatus,
        _: UploadStatus,
        _: Option<&str>,
        _: &AuditEntry,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn finish_processing(
        &self,
        _: &UploadId,
        _: UploadStatus,
        _: Option<&str>,
        _: &shared::domain::ProcessingResult,
        _: &AuditEntry,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Records every call; never touches a network.
#[derive(Default)]
pub struct Objects {
    pub calls: Mutex<Vec<String>>,
}

pub fn presigned() -> PresignedHttp {
    PresignedHttp {
        method: "PUT".into(),
        url: "https://bucket.s3.amazonaws.com/key?X-Amz-Signature=x".into(),
        headers: BTreeMap::new(),
    }
}

#[async_trait]
impl UploadObjects for Objects {
    fn bucket(&self) -> &str {
        "bucket"
    }
    async fn presign_put(
        &self,
        _: &ObjectKey,
        _: u64,
        _: &str,
        _: &str,
        _: Duration,
    ) -> Result<PresignedHttp, StoreError> {
        self.calls.lock().unwrap().push("presign_put".into());
        Ok(presigned())
    }
    async fn create_multipart(&self, _: &ObjectKey, _: &str) -> Result<String, StoreError> {
        self.calls.lock().unwrap().push("create_multipart".into());
        Ok("mpu-1".into())
    }
    async fn presign_part(
        &self,
        _: &ObjectKey,
        _: &str,
        _: u32,
        _: u64,
        _: Duration,
    ) -> Result<PresignedHttp, StoreError> {
        Ok(presigned())
    }
    async fn list_parts(&self, _: &ObjectKey, _: &str) -> Result<Vec<StoredPart>, StoreError> {
        Ok(Vec::new())
    }
    async fn complete_multipart(
        &self,
        _: &ObjectKey,
        _: &str,
        _: &[StoredPart],
    ) -> Result<(), StoreError> {
        Ok(())
    }
    async fn abort_multipart(&self, _: &ObjectKey, upload: &str) -> Result<(), StoreError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("abort_multipart {upload}"));
        Ok(())
    }
    async fn head(&self, _: &ObjectKey) -> Result<Option<ObjectHead>, StoreError> {
        Ok(None)
    }
}

pub fn config() -> Config {
    let env: HashMap<String, String> = [
        ("SUBJECTS_TABLE", "s"),
        ("UPLOADS_TABLE", "u"),
        ("AUDIT_TABLE", "a"),
        ("UPLOAD_BUCKET", "bucket"),
        ("UPLOAD_PREFIX", "incoming/"),
        ("BUCKET_ENCRYPTION", "SSE-S3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Config::from_source(&env).unwrap()
}

/// The sample event of events/, with another body.
pub fn create_request(body: serde_json::Value) -> lambda_http::Request {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/upload-url-create.json"
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["body"] = serde_json::Value::String(body.to_string());
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

pub fn declaration(size: u64, file_name: &str) -> serde_json::Value {
    serde_json::json!({
        "subjectId": "SUBJ-0001",
        "fileName": file_name,
        "contentType": "application/dicom",
        "sizeBytes": size,
        "sha256": "3dd31e5cc835b3f2cdd46c9da1982f59251e78518fefa8163d914631c66437d6",
    })
}

pub fn body_json(response: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    let bytes: &[u8] = response.body().as_ref();
    serde_json::from_slice(bytes).unwrap()
}
