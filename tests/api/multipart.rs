//! Multipart uploads: the plan, an interrupted upload resumed from what S3 already holds, completion
//! checked against the plan, abort.

use clinflow_tests::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

async fn small_parts_app() -> TestApp {
    spawn_app_with(&[
        ("MultipartThresholdBytes", "5242880"),
        ("MultipartPartSizeBytes", "5242880"),
    ])
    .await
}

/// 12 MiB that start like a DICOM file: 128-byte preamble, `DICM`, then varied bytes.
fn large_file() -> Vec<u8> {
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    let mut x: u32 = 0x1234_5678;
    while bytes.len() < 12 * MIB {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(12 * MIB);
    bytes
}

fn slice(file: &[u8], part: &Value) -> Vec<u8> {
    let n = part["partNumber"].as_u64().unwrap() as usize;
    let size = part["size"].as_u64().unwrap() as usize;
    let start = (n - 1) * 5 * MIB;
    file[start..start + size].to_vec()
}

async fn put_part(app: &TestApp, file: &[u8], part: &Value) -> String {
    let r = app.send_presigned(part, slice(file, part)).await;
    assert_eq!(r.status(), 200);
    r.headers()["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_interrupted_multipart_upload_resumes_instead_of_restarting() {
    let app = small_parts_app().await;
    let file = large_file();
    let created = app.create_upload("SUBJ-0001", &file).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let plan = &created.body["upload"];
    assert_eq!(plan["mode"], "multipart");
    assert_eq!(plan["partSize"], 5 * MIB);
    assert_eq!(plan["partCount"], 3);
    let parts = plan["parts"].as_array().unwrap();
    let sizes: Vec<u64> = parts.iter().map(|p| p["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, vec![5 * MIB as u64, 5 * MIB as u64, 2 * MIB as u64]);
    for p in parts {
        assert_eq!(p["method"], "PUT");
        assert_eq!(
            p["headers"]["content-length"],
            p["size"].as_u64().unwrap().to_string()
        );
        assert!(p["url"].as_str().unwrap().contains("uploadId="));
    }
    assert_eq!(plan["resume"]["path"], format!("/v1/uploads/{id}/parts"));

    // The network drops after the first part; the client lost the other URLs.
    let etag1 = put_part(&app, &file, &parts[0]).await;

    // Completing now names what is missing.
    let early = app
        .post(
            &format!("/v1/uploads/{id}/complete"),
            &app.staff(),
            &json!({"parts": [{"partNumber": 1, "etag": etag1}]}),
        )
        .await;
    assert_eq!(early.problem(409), "/problems/parts-incomplete");
    let missing: Vec<u64> = early.body["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(missing, vec![2, 3]);

    // Resume: S3 holds part 1; fresh URLs for 2 and 3.
    let resume = app
        .get(&format!("/v1/uploads/{id}/parts"), &app.staff())
        .await;
    assert_eq!(resume.status, 200, "{}", resume.body);
    let received = resume.body["received"].as_array().unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["partNumber"], 1);
    assert_eq!(received[0]["etag"], etag1);
    let fresh = resume.body["missing"].as_array().unwrap();
    assert_eq!(
        fresh
            .iter()
            .map(|p| p["partNumber"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    let etag2 = put_part(&app, &file, &fresh[0]).await;
    let etag3 = put_part(&app, &file, &fresh[1]).await;

    // An ETag that is not the one S3 holds is refused.
    let wrong = app
        .post(
            &format!("/v1/uploads/{id}/complete"),
            &app.staff(),
            &json!({"parts": [
                {"partNumber": 1, "etag": etag1},
                {"partNumber": 2, "etag": "\"0000\""},
                {"partNumber": 3, "etag": etag3},
            ]}),
        )
        .await;
    assert_eq!(wrong.problem(409), "/problems/parts-incomplete");
    assert_eq!(wrong.body["parts"][0]["partNumber"], 2);

    let all = json!({"parts": [
        {"partNumber": 1, "etag": etag1},
        {"partNumber": 2, "etag": etag2.trim_matches('"')},
        {"partNumber": 3, "etag": etag3},
    ]});
    let done = app
        .post(&format!("/v1/uploads/{id}/complete"), &app.staff(), &all)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["status"], "RECEIVED");
    // A retried completion answers the same.
    let again = app
        .post(&format!("/v1/uploads/{id}/complete"), &app.staff(), &all)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["status"], "RECEIVED");
    // Nothing to resume any more.
    let closed = app
        .get(&format!("/v1/uploads/{id}/parts"), &app.staff())
        .await;
    assert_eq!(closed.problem(409), "/problems/upload-not-open");

    // The object is exactly the file, and its event reached the ingest queue.
    let key = created.body["objectKey"].as_str().unwrap();
    let (len, digest) = app.object_digest(key).await;
    assert_eq!(len, file.len());
    assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&file)));
    let events = object_created(&app.drain_queue("IngestQueue", 5).await);
    assert!(!events.is_empty());
    assert!(events.iter().all(|(k, _)| k == key), "{events:?}");
    assert_eq!(app.multipart_upload_count().await, 0);
}

#[tokio::test]
async fn aborting_a_multipart_upload_releases_its_parts() {
    let app = small_parts_app().await;
    let file = large_file();
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    put_part(&app, &file, &created.body["upload"]["parts"][0]).await;
    assert_eq!(app.multipart_upload_count().await, 1);
    let aborted = app.delete(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(aborted.status, 200, "{}", aborted.body);
    assert_eq!(aborted.body["status"], "ABORTED");
    assert_eq!(app.multipart_upload_count().await, 0);
    let late = app
        .get(&format!("/v1/uploads/{id}/parts"), &app.staff())
        .await;
    assert_eq!(late.problem(409), "/problems/upload-not-open");
}

#[tokio::test]
async fn parts_and_complete_refuse_single_put_uploads() {
    let app = spawn_app().await;
    let created = app.create_upload("SUBJ-0001", b"small").await;
    let id = created.body["uploadId"].as_str().unwrap();
    let parts = app
        .get(&format!("/v1/uploads/{id}/parts"), &app.staff())
        .await;
    assert_eq!(parts.problem(409), "/problems/not-multipart");
    let complete = app
        .post(
            &format!("/v1/uploads/{id}/complete"),
            &app.staff(),
            &json!({"parts": []}),
        )
        .await;
    assert_eq!(complete.problem(409), "/problems/not-multipart");
}

/// 10,000 parts of 5 MiB: the most S3 allows, at the smallest part size the template allows.
async fn ten_thousand_parts_app() -> (TestApp, String, Value) {
    let app = spawn_app_with(&[
        ("MultipartThresholdBytes", "5242880"),
        ("MultipartPartSizeBytes", "5242880"),
        ("MaxUploadBytes", "52428800000"),
    ])
    .await;
    let mut declared = declaration("SUBJ-0001", b"x");
    declared["sizeBytes"] = json!(10_000u64 * 5 * MIB as u64);
    let created = app.post("/v1/uploads", &app.staff(), &declared).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    (app, id, created.body)
}

fn part_numbers(parts: &Value) -> Vec<u64> {
    parts
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partNumber"].as_u64().unwrap())
        .collect()
}

/// A response's size as Lambda returns it; URLs signed in Lambda also carry the role's session
/// token (~2 KB each), which the emulator's credentials do not: counted on top.
fn lambda_response_bytes(body: &Value, urls: usize) -> usize {
    serde_json::to_string(&serde_json::to_string(body).unwrap())
        .unwrap()
        .len()
        + urls * 2048
}

const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

#[tokio::test]
async fn a_plan_of_ten_thousand_parts_is_handed_out_in_batches_under_lambdas_response_limit() {
    let (app, id, created) = ten_thousand_parts_app().await;
    let plan = &created["upload"];
    assert_eq!(plan["partCount"], 10_000);
    assert_eq!(plan["partSize"], 5 * MIB);
    assert_eq!(
        part_numbers(&plan["parts"]),
        (1..=100).collect::<Vec<u64>>()
    );
    assert_eq!(
        plan["next"]["path"],
        format!("/v1/uploads/{id}/parts?from=101")
    );
    let size = lambda_response_bytes(&created, 100);
    assert!(size < LAMBDA_RESPONSE_LIMIT / 10, "the plan: {size} bytes");
    // The record and S3 hold the whole plan.
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["partCount"], 10_000);
    assert_eq!(app.multipart_upload_count().await, 1);

    // Page by page from the plan's `next`: each page a batch, each starting where the last ended
    // (a few pages; then the last one).
    let mut seen = Vec::new();
    let mut next = plan["next"]["path"].as_str().map(str::to_owned);
    for _ in 0..3 {
        let path = next.take().expect("a next page");
        let page = app.get(&path, &app.staff()).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert_eq!(page.body["missingCount"], 10_000);
        let numbers = part_numbers(&page.body["missing"]);
        assert_eq!(numbers.len(), 100, "{path}");
        let size = lambda_response_bytes(&page.body, numbers.len());
        assert!(size < LAMBDA_RESPONSE_LIMIT / 10, "{path}: {size} bytes");
        seen.extend(numbers);
        next = page.body["next"]["path"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, (101..=400).collect::<Vec<u64>>());
    assert_eq!(
        next.as_deref(),
        Some(format!("/v1/uploads/{id}/parts?from=401").as_str())
    );
    let last = app
        .get(&format!("/v1/uploads/{id}/parts?from=9950"), &app.staff())
        .await;
    assert_eq!(
        part_numbers(&last.body["missing"]),
        (9950..=10_000).collect::<Vec<u64>>()
    );
    assert!(last.body.get("next").is_none(), "the last page");

    // From the start (no `from`): the first 100 missing, and where the rest are.
    let first = app
        .get(&format!("/v1/uploads/{id}/parts"), &app.staff())
        .await;
    assert_eq!(
        part_numbers(&first.body["missing"]),
        (1..=100).collect::<Vec<u64>>()
    );
    assert_eq!(
        first.body["next"]["path"],
        format!("/v1/uploads/{id}/parts?from=101")
    );
    // A page past the plan is a malformed request, and writes nothing.
    for from in ["0", "10001", "x"] {
        let bad = app
            .get(&format!("/v1/uploads/{id}/parts?from={from}"), &app.staff())
            .await;
        assert_eq!(bad.problem(400), "/problems/malformed-request", "{from}");
    }
    assert_eq!(app.multipart_upload_count().await, 1);
}

#[tokio::test]
async fn resuming_pages_skip_what_storage_holds() {
    let app = small_parts_app().await;
    let file = large_file();
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    assert!(
        created.body["upload"].get("next").is_none(),
        "3 parts fit one batch"
    );
    put_part(&app, &file, &created.body["upload"]["parts"][1]).await;
    let page = app
        .get(&format!("/v1/uploads/{id}/parts?from=2"), &app.staff())
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["missingCount"], 2);
    assert_eq!(part_numbers(&page.body["missing"]), vec![3]);
    assert_eq!(part_numbers(&page.body["received"]), vec![2]);
    assert!(page.body.get("next").is_none());
}

/// Uploads every part of `file` for a plan and returns the body `complete` takes.
async fn put_every_part(app: &TestApp, file: &[u8], plan: &Value) -> Value {
    let mut parts = Vec::new();
    for p in plan["parts"].as_array().unwrap() {
        let etag = put_part(app, file, p).await;
        parts.push(json!({"partNumber": p["partNumber"], "etag": etag}));
    }
    json!({ "parts": parts })
}

fn received_transitions(
    trail: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
) -> usize {
    trail
        .iter()
        .filter(|e| {
            e.get("new")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|s| s == "RECEIVED")
        })
        .count()
}

#[tokio::test]
async fn completing_a_completed_upload_answers_its_record_whatever_followed() {
    let app = small_parts_app().await;
    let file = large_file();
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let body = put_every_part(&app, &file, &created.body["upload"]).await;
    let path = format!("/v1/uploads/{id}/complete");
    let done = app.post(&path, &app.staff(), &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let again = app.post(&path, &app.staff(), &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, done.body);

    // Processing has begun (the ingest path moved it): a late retry still answers success.
    let uploads = shared::store::dynamodb::DynamoUploads::new(
        app.stack.clients.dynamodb.clone(),
        app.table("UploadsTable"),
        app.table("AuditTable"),
    );
    let upload_id = shared::domain::UploadId::parse(&id).unwrap();
    shared::store::UploadStore::transition(
        &uploads,
        &upload_id,
        shared::domain::UploadStatus::Received,
        shared::domain::UploadStatus::Processing,
        None,
        &shared::store::AuditEntry {
            entity: format!("upload#{id}"),
            actor: "test:ingest".into(),
            at: chrono::Utc::now(),
            action: "upload.status".into(),
            old: Some("RECEIVED".into()),
            new: Some("PROCESSING".into()),
            reason: "processing started".into(),
            correlation_id: "test".into(),
        },
    )
    .await
    .unwrap();
    let late = app.post(&path, &app.staff(), &body).await;
    assert_eq!(late.status, 200, "{}", late.body);
    assert_eq!(late.body["status"], "PROCESSING");

    // One assembly, one RECEIVED in the audit trail, the object exactly the file.
    assert_eq!(received_transitions(&app.audit_trail(&id).await), 1);
    assert_eq!(app.multipart_upload_count().await, 0);
    let (len, digest) = app
        .object_digest(created.body["objectKey"].as_str().unwrap())
        .await;
    assert_eq!(len, file.len());
    assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&file)));
}

#[tokio::test]
async fn concurrent_completions_both_answer_success_and_record_it_once() {
    let app = small_parts_app().await;
    // 6 MiB: a 5 MiB part and a 1 MiB one.
    let file: Vec<u8> = large_file()[..6 * MIB].to_vec();
    for round in 0..5 {
        let created = app.create_upload("SUBJ-0001", &file).await;
        let id = created.body["uploadId"].as_str().unwrap().to_owned();
        let body = put_every_part(&app, &file, &created.body["upload"]).await;
        let path = format!("/v1/uploads/{id}/complete");
        let token = app.staff();
        let (a, b) = tokio::join!(
            app.post(&path, &token, &body),
            app.post(&path, &token, &body)
        );
        for r in [&a, &b] {
            assert_eq!(r.status, 200, "round {round}: {}", r.body);
            assert_eq!(r.body["status"], "RECEIVED", "round {round}");
        }
        assert_eq!(
            received_transitions(&app.audit_trail(&id).await),
            1,
            "round {round}"
        );
        let (len, _) = app
            .object_digest(created.body["objectKey"].as_str().unwrap())
            .await;
        assert_eq!(len, file.len(), "round {round}");
    }
    assert_eq!(app.multipart_upload_count().await, 0);
}

/// The upload bucket through the real adapter, but `complete_multipart`'s answer is lost once
/// after S3 assembled the parts (the client's or the function's timeout, a dropped connection).
struct AnswerLostOnce {
    inner: shared::store::s3::S3Uploads,
    lost: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl shared::store::UploadObjects for AnswerLostOnce {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    async fn presign_put(
        &self,
        key: &shared::domain::ObjectKey,
        size: u64,
        content_type: &str,
        sha256_base64: &str,
        ttl: std::time::Duration,
    ) -> Result<shared::store::PresignedHttp, shared::store::StoreError> {
        self.inner
            .presign_put(key, size, content_type, sha256_base64, ttl)
            .await
    }
    async fn create_multipart(
        &self,
        key: &shared::domain::ObjectKey,
        content_type: &str,
    ) -> Result<String, shared::store::StoreError> {
        self.inner.create_multipart(key, content_type).await
    }
    async fn presign_part(
        &self,
        key: &shared::domain::ObjectKey,
        s3_upload_id: &str,
        part_number: u32,
        size: u64,
        ttl: std::time::Duration,
    ) -> Result<shared::store::PresignedHttp, shared::store::StoreError> {
        self.inner
            .presign_part(key, s3_upload_id, part_number, size, ttl)
            .await
    }
    async fn list_parts(
        &self,
        key: &shared::domain::ObjectKey,
        s3_upload_id: &str,
    ) -> Result<Vec<shared::store::StoredPart>, shared::store::StoreError> {
        self.inner.list_parts(key, s3_upload_id).await
    }
    async fn complete_multipart(
        &self,
        key: &shared::domain::ObjectKey,
        s3_upload_id: &str,
        parts: &[shared::store::StoredPart],
    ) -> Result<(), shared::store::StoreError> {
        self.inner
            .complete_multipart(key, s3_upload_id, parts)
            .await?;
        if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(shared::store::StoreError::Unavailable(
                "CompleteMultipartUpload (answer lost)".into(),
            ));
        }
        Ok(())
    }
    async fn abort_multipart(
        &self,
        key: &shared::domain::ObjectKey,
        s3_upload_id: &str,
    ) -> Result<(), shared::store::StoreError> {
        self.inner.abort_multipart(key, s3_upload_id).await
    }
    async fn head(
        &self,
        key: &shared::domain::ObjectKey,
    ) -> Result<Option<shared::store::ObjectHead>, shared::store::StoreError> {
        self.inner.head(key).await
    }
}

/// `POST /v1/uploads/{id}/complete` as API Gateway hands it to the function (events/ sample, site
/// staff at BOS).
fn complete_event(id: &str, body: &Value) -> lambda_http::Request {
    let path = repo_root_path().join("events/upload-url-complete.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let raw = format!("/v1/uploads/{id}/complete");
    event["rawPath"] = json!(raw);
    event["requestContext"]["http"]["path"] = json!(raw);
    event["pathParameters"] = json!({ "uploadId": id });
    event["body"] = json!(body.to_string());
    event["isBase64Encoded"] = json!(false);
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn repo_root_path() -> std::path::PathBuf {
    local_stack::emulator::repo_root()
}

#[tokio::test]
async fn a_completion_whose_answer_was_lost_after_storage_assembled_it_is_finished_by_the_retry() {
    let app = small_parts_app().await;
    let file = large_file();
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let body = put_every_part(&app, &file, &created.body["upload"]).await;

    // The first try: S3 assembles the parts; its answer never arrives, so the record stays open.
    let function = &app.stack.functions["UploadUrlFunction"];
    let config = upload_url::Config::from_source(&function.environment).unwrap();
    let clients = &app.stack.clients;
    let api = upload_url::UploadApi::with_ports(
        config.clone(),
        std::sync::Arc::new(shared::store::dynamodb::DynamoSubjects::new(
            clients.dynamodb.clone(),
            &config.subjects_table,
        )),
        std::sync::Arc::new(shared::store::dynamodb::DynamoUploads::new(
            clients.dynamodb.clone(),
            &config.uploads_table,
            &config.audit_table,
        )),
        std::sync::Arc::new(AnswerLostOnce {
            inner: shared::store::s3::S3Uploads::new(
                clients.s3.clone(),
                &config.bucket,
                config.encryption,
            ),
            lost: std::sync::atomic::AtomicBool::new(false),
        }),
    );
    let first = api.handle(complete_event(&id, &body)).await;
    assert_eq!(first.status(), 503);
    assert_eq!(app.multipart_upload_count().await, 0, "S3 assembled it");
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "AWAITING_UPLOAD");

    // The client retries: S3 no longer knows the multipart upload; the object is there, whole.
    let retry = app
        .post(&format!("/v1/uploads/{id}/complete"), &app.staff(), &body)
        .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body["status"], "RECEIVED");
    let trail = app.audit_trail(&id).await;
    assert_eq!(received_transitions(&trail), 1);
    let (len, digest) = app
        .object_digest(created.body["objectKey"].as_str().unwrap())
        .await;
    assert_eq!(len, file.len());
    assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&file)));
    // And once more, for good measure: the same answer, nothing more recorded.
    let again = app
        .post(&format!("/v1/uploads/{id}/complete"), &app.staff(), &body)
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(received_transitions(&app.audit_trail(&id).await), 1);
}

#[tokio::test]
async fn completing_a_multipart_upload_storage_no_longer_holds_is_refused_and_writes_nothing() {
    let app = small_parts_app().await;
    let file = large_file();
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let body = put_every_part(&app, &file, &created.body["upload"]).await;
    // The bucket's lifecycle rule aborted it (incomplete after 2 days).
    let listed = app
        .stack
        .clients
        .s3
        .list_multipart_uploads()
        .bucket(app.bucket())
        .send()
        .await
        .unwrap();
    let mpu = &listed.uploads()[0];
    app.stack
        .clients
        .s3
        .abort_multipart_upload()
        .bucket(app.bucket())
        .key(mpu.key().unwrap())
        .upload_id(mpu.upload_id().unwrap())
        .send()
        .await
        .unwrap();
    let refused = app
        .post(&format!("/v1/uploads/{id}/complete"), &app.staff(), &body)
        .await;
    assert_eq!(refused.problem(409), "/problems/upload-not-open");
    assert_eq!(received_transitions(&app.audit_trail(&id).await), 0);
    assert!(
        !app.object_exists(created.body["objectKey"].as_str().unwrap())
            .await
    );
}
