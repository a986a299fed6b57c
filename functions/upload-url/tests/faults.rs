//! Faults the emulator cannot produce, injected through scripted ports: a dependency that is down
//! answers 503 and leaves nothing behind (a started multipart upload is aborted); and what the
//! handler logs carries the request and correlation ids but no patient data.

use async_trait::async_trait;
use shared::domain::{ObjectKey, SiteId, SubjectId, TrialId, Upload, UploadId, UploadStatus};
use shared::store::{
    AuditEntry, ObjectHead, PresignedHttp, StoreError, StoredPart, Subject, SubjectDirectory,
    UploadObjects, UploadStore,
};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use upload_url::{Config, UploadApi};

struct Subjects {
    down: bool,
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

struct Uploads {
    down: bool,
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
struct Objects {
    calls: Mutex<Vec<String>>,
}

fn presigned() -> PresignedHttp {
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

fn config() -> Config {
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
fn create_request(body: serde_json::Value) -> lambda_http::Request {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/upload-url-create.json"
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["body"] = serde_json::Value::String(body.to_string());
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn declaration(size: u64, file_name: &str) -> serde_json::Value {
    serde_json::json!({
        "subjectId": "SUBJ-0001",
        "fileName": file_name,
        "contentType": "application/dicom",
        "sizeBytes": size,
        "sha256": "3dd31e5cc835b3f2cdd46c9da1982f59251e78518fefa8163d914631c66437d6",
    })
}

fn body_json(response: &lambda_http::Response<lambda_http::Body>) -> serde_json::Value {
    let bytes: &[u8] = response.body().as_ref();
    serde_json::from_slice(bytes).unwrap()
}

#[tokio::test]
async fn a_store_that_is_down_answers_503_and_leaves_no_multipart_upload_behind() {
    let objects = Arc::new(Objects::default());
    let api = UploadApi::with_ports(
        config(),
        Arc::new(Subjects { down: false }),
        Arc::new(Uploads { down: true }),
        objects.clone(),
    );
    let response = api
        .handle(create_request(declaration(300 * 1024 * 1024, "ct.dcm")))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(body_json(&response)["type"], "/problems/unavailable");
    assert_eq!(
        *objects.calls.lock().unwrap(),
        vec![
            "create_multipart".to_owned(),
            "abort_multipart mpu-1".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_subject_directory_that_is_down_answers_503_before_anything_is_presigned() {
    let objects = Arc::new(Objects::default());
    let api = UploadApi::with_ports(
        config(),
        Arc::new(Subjects { down: true }),
        Arc::new(Uploads { down: false }),
        objects.clone(),
    );
    let response = api
        .handle(create_request(declaration(1000, "ct.dcm")))
        .await;
    assert_eq!(response.status(), 503);
    assert!(objects.calls.lock().unwrap().is_empty());
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_carry_the_ids_and_no_patient_data() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .flatten_event(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // Other tests of this binary run on other threads without a subscriber: a callsite they
        // reach first is cached as "never interesting", and this test's span would then not
        // exist (a flake seen when many test binaries share the cores). Recompute with this
        // subscriber in place.
        tracing::callsite::rebuild_interest_cache();
        let api = UploadApi::with_ports(
            config(),
            Arc::new(Subjects { down: false }),
            Arc::new(Uploads { down: false }),
            Arc::new(Objects::default()),
        );
        for body in [
            declaration(1000, "DOE_JANE_1961-04-02.dcm"),
            declaration(0, "DOE_JANE_1961-04-02.dcm"),
        ] {
            let response = runtime.block_on(api.handle(create_request(body)));
            assert!(response.status().as_u16() < 500);
        }
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{logs}");
    for line in &lines {
        assert_eq!(line["span"]["request_id"], "JKJaXmPLvHcESHA=", "{line}");
        assert_eq!(line["span"]["correlation_id"], "sample-event-1", "{line}");
    }
    for phi in ["DOE_JANE", "1961-04-02", "SUBJ-0001", "3dd31e5cc835"] {
        assert!(!logs.contains(phi), "{phi} reached a log line: {logs}");
    }
}
