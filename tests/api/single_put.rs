//! The main job: a presigned single PUT of a real DICOM file, the S3 event on the ingest queue, the
//! record's status and its audit trail.

use clinflow_tests::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn a_real_dicom_file_put_to_its_presigned_url_reaches_the_ingest_queue() {
    let app = spawn_app().await;
    let file = dicom_file("CT_small.dcm");
    let created = app.create_upload("SUBJ-0001", &file).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    assert_eq!(created.headers["location"], format!("/v1/uploads/{id}"));
    assert_eq!(created.body["status"], "AWAITING_UPLOAD");
    assert_eq!(created.body["upload"]["mode"], "single");

    // The URL signs length, type, checksum and encryption: they are the headers the client must send.
    let put = &created.body["upload"];
    let url = put["url"].as_str().unwrap();
    let signed = url
        .split("X-Amz-SignedHeaders=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_eq!(
        signed,
        "content-length%3Bcontent-type%3Bhost%3Bx-amz-checksum-sha256%3Bx-amz-server-side-encryption"
    );
    assert!(url.contains("X-Amz-Expires=900"));
    let headers = put["headers"].as_object().unwrap();
    assert_eq!(headers["content-length"], file.len().to_string());
    assert_eq!(headers["content-type"], "application/dicom");
    use base64::Engine as _;
    assert_eq!(
        headers["x-amz-checksum-sha256"],
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&file))
    );
    // The key is the server's: trial / site / subject / upload id, never the client's file name.
    let key = created.body["objectKey"].as_str().unwrap();
    assert_eq!(
        key,
        format!("incoming/CLIN-DEMO-01/{BOS}/SUBJ-0001/{id}.dcm")
    );

    let put_response = app.send_presigned(put, file.clone()).await;
    assert_eq!(put_response.status(), 200);

    // The S3 event arrives on the ingest queue (after moto's s3:TestEvent).
    let messages = app.drain_queue("IngestQueue", 5).await;
    let created_events = object_created(&messages);
    assert_eq!(
        created_events,
        vec![(key.to_owned(), file.len() as u64)],
        "{messages:?}"
    );

    // The bytes in S3 are the bytes sent.
    let (len, digest) = app.object_digest(key).await;
    assert_eq!(len, file.len());
    assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&file)));

    // A read is only a read: the arrival is the S3 event's to record (process-dicom), so the record
    // still awaits its upload here, where no consumer polls; a monitor of the site sees it too.
    let monitor = app.token("monitor", &[BOS]);
    let record = app.get(&format!("/v1/uploads/{id}"), &monitor).await;
    assert_eq!(record.status, 200, "{}", record.body);
    assert_eq!(record.body["status"], "AWAITING_UPLOAD");
    assert_eq!(record.body["sizeBytes"], file.len());
    assert!(record.body.get("upload").is_none(), "no URLs in the record");

    // One change, one audit entry: who, when, old -> new. The reads wrote nothing.
    let trail = app.audit_trail(&id).await;
    let transitions: Vec<(Option<String>, String, String)> = trail
        .iter()
        .map(|i| {
            (
                i.get("old").and_then(|v| v.as_s().ok()).cloned(),
                i["new"].as_s().unwrap().clone(),
                i["actor"].as_s().unwrap().clone(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        vec![(None, "AWAITING_UPLOAD".into(), "tester".into())]
    );
}

#[tokio::test]
async fn correlation_id_travels_from_the_request_into_the_record_and_its_audit_trail() {
    let app = spawn_app().await;
    let file = b"DICM-ish".to_vec();
    let r = app
        .http
        .post(app.url("/v1/uploads"))
        .bearer_auth(app.staff())
        .header("x-correlation-id", "walk-42")
        .json(&declaration("SUBJ-0001", &file))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "walk-42");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["correlationId"], "walk-42");
    assert_eq!(
        app.send_presigned(&body["upload"], file).await.status(),
        200
    );
    let id = body["uploadId"].as_str().unwrap();
    let read = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(read.body["correlationId"], "walk-42");
    let trail = app.audit_trail(id).await;
    assert_eq!(trail.len(), 1);
    for entry in trail {
        assert_eq!(entry["correlationId"].as_s().unwrap(), "walk-42");
    }
}

#[tokio::test]
async fn an_upload_not_yet_put_stays_awaiting_and_can_be_aborted_once() {
    let app = spawn_app().await;
    let created = app.create_upload("SUBJ-0002", b"bytes").await;
    let id = created.body["uploadId"].as_str().unwrap();
    let path = format!("/v1/uploads/{id}");
    assert_eq!(
        app.get(&path, &app.staff()).await.body["status"],
        "AWAITING_UPLOAD"
    );
    let aborted = app.delete(&path, &app.staff()).await;
    assert_eq!(aborted.status, 200, "{}", aborted.body);
    assert_eq!(aborted.body["status"], "ABORTED");
    // Idempotent.
    assert_eq!(
        app.delete(&path, &app.staff()).await.body["status"],
        "ABORTED"
    );
}

#[tokio::test]
async fn an_upload_already_put_cannot_be_aborted() {
    let app = spawn_app().await;
    let file = dicom_file("MR_small.dcm");
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap();
    assert_eq!(
        app.send_presigned(&created.body["upload"], file)
            .await
            .status(),
        200
    );
    let r = app.delete(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(r.problem(409), "/problems/upload-not-open");
    // The refusal wrote nothing: the record awaits the S3 event's processing, not aborted.
    assert_eq!(
        app.get(&format!("/v1/uploads/{id}"), &app.staff())
            .await
            .body["status"],
        "AWAITING_UPLOAD"
    );
    assert_eq!(app.audit_trail(id).await.len(), 1);
}
