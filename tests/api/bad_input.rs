//! Bad input gets a 4xx RFC 9457 problem and writes nothing: no record, no audit entry, no object,
//! no multipart upload.

use clinflow_tests::*;
use serde_json::{json, Value};

fn good() -> Value {
    declaration("SUBJ-0001", b"a small DICOM file")
}

fn with(field: &str, value: Value) -> Value {
    let mut v = good();
    v[field] = value;
    v
}

fn without(field: &str) -> Value {
    let mut v = good();
    v.as_object_mut().unwrap().remove(field);
    v
}

async fn raw_post(app: &TestApp, content_type: &str, body: Vec<u8>) -> Reply {
    let r = app
        .http
        .post(app.url("/v1/uploads"))
        .bearer_auth(app.staff())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    checked_reply("POST", "/v1/uploads", r).await
}

#[tokio::test]
async fn every_bad_declaration_is_refused_and_writes_nothing() {
    let app = spawn_app_with(&[("MaxUploadBytes", "1000000")]).await;
    let staff = app.staff();
    let hex31 = "ab".repeat(31);
    use base64::Engine as _;
    let b64_31 = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
    let cases: Vec<(&str, Value, u16, &str, Option<&str>)> = vec![
        (
            "unknown field",
            with("extra", json!(1)),
            400,
            "malformed-request",
            None,
        ),
        (
            "missing field",
            without("sha256"),
            400,
            "malformed-request",
            None,
        ),
        (
            "size as text",
            with("sizeBytes", json!("12")),
            400,
            "malformed-request",
            None,
        ),
        (
            "negative size",
            with("sizeBytes", json!(-1)),
            400,
            "malformed-request",
            None,
        ),
        (
            "size 0",
            with("sizeBytes", json!(0)),
            422,
            "invalid-upload",
            Some("sizeBytes"),
        ),
        (
            "size above the maximum",
            with("sizeBytes", json!(1_000_001)),
            422,
            "invalid-upload",
            Some("sizeBytes"),
        ),
        (
            "not DICOM",
            with("contentType", json!("image/jpeg")),
            422,
            "invalid-upload",
            Some("contentType"),
        ),
        (
            "sha256 of 31 bytes (hex)",
            with("sha256", json!(hex31)),
            422,
            "invalid-upload",
            Some("sha256"),
        ),
        (
            "sha256 of 31 bytes (base64)",
            with("sha256", json!(b64_31)),
            422,
            "invalid-upload",
            Some("sha256"),
        ),
        (
            "sha256 that is not hex or base64",
            with("sha256", json!("zz-not-a-digest")),
            422,
            "invalid-upload",
            Some("sha256"),
        ),
        (
            "empty file name",
            with("fileName", json!("  ")),
            422,
            "invalid-upload",
            Some("fileName"),
        ),
        (
            "file name with a path",
            with("fileName", json!("../../etc/passwd")),
            422,
            "invalid-upload",
            Some("fileName"),
        ),
        (
            "subject id that could escape a key",
            with("subjectId", json!("../SUBJ")),
            422,
            "invalid-upload",
            Some("subjectId"),
        ),
        (
            "unknown subject",
            with("subjectId", json!("SUBJ-9999")),
            404,
            "not-found",
            None,
        ),
        (
            "subject outside the caller's sites",
            with("subjectId", json!("SUBJ-0101")),
            404,
            "not-found",
            None,
        ),
    ];
    for (name, body, status, kind, field) in cases {
        let r = app.post("/v1/uploads", &staff, &body).await;
        assert_eq!(
            r.problem(status),
            format!("/problems/{kind}"),
            "{name}: {}",
            r.body
        );
        if let Some(field) = field {
            let fields: Vec<&str> = r.body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: errors"))
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, vec![field], "{name}");
        }
        assert!(r.body["detail"].is_string(), "{name}");
        app.assert_nothing_written().await;
    }

    let malformed = raw_post(&app, "application/json", b"{\"subjectId\": ".to_vec()).await;
    assert_eq!(malformed.problem(400), "/problems/malformed-request");
    let not_json = raw_post(&app, "text/plain", b"subjectId=SUBJ-0001".to_vec()).await;
    assert_eq!(not_json.problem(415), "/problems/unsupported-media-type");
    let mut huge = good();
    huge["fileName"] = json!("x".repeat(70 * 1024));
    let oversized = raw_post(&app, "application/json", serde_json::to_vec(&huge).unwrap()).await;
    assert_eq!(oversized.problem(413), "/problems/payload-too-large");
    app.assert_nothing_written().await;

    // Sanity: the same stack accepts the good declaration.
    assert_eq!(app.post("/v1/uploads", &staff, &good()).await.status, 201);
}

#[tokio::test]
async fn bad_completions_and_ids_are_refused() {
    let app = spawn_app_with(&[
        ("MultipartThresholdBytes", "5242880"),
        ("MultipartPartSizeBytes", "5242880"),
    ])
    .await;
    let staff = app.staff();
    let mut big = good();
    big["sizeBytes"] = json!(11 * 1024 * 1024);
    let created = app.post("/v1/uploads", &staff, &big).await;
    assert_eq!(created.status, 201);
    let id = created.body["uploadId"].as_str().unwrap();
    let path = format!("/v1/uploads/{id}/complete");
    for (body, status, kind) in [
        (
            json!({"parts": [{"partNumber": 0, "etag": "x"}]}),
            422,
            "invalid-parts",
        ),
        (
            json!({"parts": [{"partNumber": 4, "etag": "x"}]}),
            422,
            "invalid-parts",
        ),
        (
            json!({"parts": [{"partNumber": 1, "etag": "x"}, {"partNumber": 1, "etag": "y"}]}),
            422,
            "invalid-parts",
        ),
        (
            json!({"parts": [{"partNumber": 1}]}),
            400,
            "malformed-request",
        ),
        (
            json!({"parts": [], "force": true}),
            400,
            "malformed-request",
        ),
    ] {
        let r = app.post(&path, &staff, &body).await;
        assert_eq!(r.problem(status), format!("/problems/{kind}"), "{body}");
    }
    // Ids that are not upload ids name nothing.
    for bad in ["not-a-uuid", "00000000-0000-4000-8000-000000000000"] {
        let r = app.get(&format!("/v1/uploads/{bad}"), &staff).await;
        assert_eq!(r.problem(404), "/problems/not-found");
    }
    assert_eq!(
        app.get(&format!("/v1/uploads/{id}"), &staff).await.body["status"],
        "AWAITING_UPLOAD"
    );
}
