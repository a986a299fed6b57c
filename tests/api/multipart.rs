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
