//! Exports end to end on the local stack (exports → exports queue → export-worker → exports bucket
//! → presigned download), under each function's own IAM role: the CSV holds every EDC item value
//! and every diary entry, the PDF the same risk score as the report, both are audited; exports are
//! scoped like their subject; bad requests write nothing; an export its dead-letter queue receives
//! ends `FAILED`.

use clinflow_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

fn exports_path(subject: &str) -> String {
    format!("/v1/subjects/{subject}/exports")
}

/// Requests an export as `token`; its id.
async fn request(app: &TestApp, token: &str, subject: &str, format: &str) -> String {
    let r = app
        .post(&exports_path(subject), token, &json!({"format": format}))
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "QUEUED");
    let id = r.body["exportId"].as_str().unwrap().to_owned();
    assert_eq!(
        r.headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("/v1/exports/{id}").as_str())
    );
    id
}

/// The bytes behind a `DONE` export's link, and the `content-disposition` S3 answers with.
async fn download(export: &Value) -> (Vec<u8>, String) {
    let url = export["download"]["url"].as_str().expect("a download link");
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200);
    let disposition = r
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (r.bytes().await.unwrap().to_vec(), disposition)
}

fn actions(
    audit: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>],
) -> Vec<String> {
    audit
        .iter()
        .filter_map(|i| i.get("action").and_then(|a| a.as_s().ok()).cloned())
        .collect()
}

/// A subject of BOS with vital signs, two labs (ALT above its range), a serious adverse event and
/// five diary entries.
async fn subject_with_history(app: &TestApp, subject_key: &str) -> String {
    let staff = app.staff();
    let subject = app.enrol_subject(BOS, subject_key).await;
    let ae = json!({"itemGroups": [
        {"itemGroupOid": "IG.AE", "repeatKey": 1, "items": {"AETERM": "Pneumonia",
         "AESTDTC": "2026-11-10", "AESER": "Y", "AESEV": "SEVERE", "AEOUT": "RECOVERING"}},
        // A term a spreadsheet would run as a formula.
        {"itemGroupOid": "IG.AE", "repeatKey": 2, "items": {"AETERM": "=HYPERLINK(\"http://x\")",
         "AESTDTC": "2026-11-12", "AESER": "N", "AESEV": "MILD", "AEOUT": "RECOVERED"}}]});
    let lb = json!({"itemGroups": [
        {"itemGroupOid": "IG.LB", "repeatKey": 1, "items": {"LBDAT": "2026-11-20",
         "LBTESTCD": "ALT", "LBORRES": 112.0, "LBORRESU": "U/L", "LBORNRLO": 7, "LBORNRHI": 56}},
        {"itemGroupOid": "IG.LB", "repeatKey": 2, "items": {"LBDAT": "2026-11-20",
         "LBTESTCD": "HGB", "LBORRES": 13.5, "LBORRESU": "g/dL", "LBORNRLO": 12, "LBORNRHI": 16}}]});
    for (oid, body) in [("VS", &vital_signs(128, 84)), ("AE", &ae), ("LB", &lb)] {
        let r = app.put_form(&staff, &subject, oid, None, body).await;
        assert_eq!(r.status, 201, "{oid}: {}", r.body);
    }
    let patient = app.patient_token(&subject);
    for (i, pain) in [2, 3, 5, 6, 7].iter().enumerate() {
        let r = app
            .post_epro(
                &patient,
                &subject,
                &format!("diary-{i}"),
                &diary_entry(24 * (i as i64 + 1), *pain),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    subject
}

#[tokio::test]
async fn a_csv_export_holds_every_item_value_and_diary_entry_and_is_audited() {
    let app = spawn_pipeline(&[]).await;
    let subject = subject_with_history(&app, "BOS-0950").await;
    let staff = app.staff();
    let id = request(&app, &staff, &subject, "csv").await;
    let done = app
        .wait_for_export(&id, &staff, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "DONE", "{done}");
    let total = done["progress"]["rowsTotal"].as_u64().expect("counted");
    assert_eq!(done["progress"]["rowsDone"], total, "{done}");
    let (bytes, disposition) = download(&done).await;
    assert_eq!(done["sizeBytes"], bytes.len(), "{done}");
    // The link asks S3 to answer with the export's file name (moto ignores the parameter; S3 does
    // not): a subject's export never saves as a bare object key.
    let url = reqwest::Url::parse(done["download"]["url"].as_str().unwrap()).unwrap();
    let asked = url
        .query_pairs()
        .find(|(k, _)| k == "response-content-disposition")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    assert!(
        asked.starts_with("attachment;")
            && asked.contains(&format!("{subject}-"))
            && asked.ends_with(".csv\""),
        "saved under the export's file name: {asked}"
    );
    assert!(
        disposition.is_empty() || disposition == asked,
        "{disposition}"
    );
    let text = String::from_utf8(bytes).expect("UTF-8");
    assert!(!text.contains("BOS-0950"), "no subject key in an export");
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        &header[..4],
        ["record_type", "subject_id", "trial_id", "site_id"]
    );
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as u64, total, "one row per counted value");
    let epro: Vec<&csv::StringRecord> = records.iter().filter(|r| &r[0] == "EPRO").collect();
    assert_eq!(epro.len(), 5);
    let mut pains: Vec<&str> = epro.iter().map(|r| &r[col("pain_score")]).collect();
    pains.sort();
    assert_eq!(pains, ["2", "3", "5", "6", "7"]);
    // VS: date, systolic, diastolic, pulse; AE: 2 groups of 5 items; LB: 2 groups of 6.
    let edc: Vec<&csv::StringRecord> = records.iter().filter(|r| &r[0] == "EDC").collect();
    assert_eq!(edc.len(), 4 + 10 + 12, "{text}");
    // The formula-shaped term is written inert (a leading '), the rest as entered.
    let terms: Vec<&str> = edc
        .iter()
        .filter(|r| &r[col("item_oid")] == "AETERM")
        .map(|r| &r[col("value")])
        .collect();
    assert_eq!(terms, ["Pneumonia", "'=HYPERLINK(\"http://x\")"]);
    assert!(edc
        .iter()
        .any(|r| &r[col("item_oid")] == "SYSBP" && &r[col("value")] == "128"));
    assert!(records.iter().all(|r| &r[1] == subject.as_str()));
    // The request and the link handed out are reads of the subject's data, on its trail.
    let trail = actions(&app.subject_audit(&subject).await);
    assert!(trail.contains(&"subject.export".to_owned()), "{trail:?}");
    assert!(
        trail.contains(&"subject.export.download".to_owned()),
        "{trail:?}"
    );
    // The list shows it, without a link.
    let list = app.get(&exports_path(&subject), &staff).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["exports"][0]["exportId"], id.as_str());
    assert!(list.body["exports"][0].get("download").is_none());
}

#[tokio::test]
async fn a_pdf_export_carries_the_reports_risk_score_and_page_numbers() {
    let app = spawn_pipeline(&[]).await;
    let subject = subject_with_history(&app, "BOS-0951").await;
    let monitor = app.token("monitor", &[BOS]);
    let report = app
        .get(&format!("/v1/subjects/{subject}/report"), &monitor)
        .await;
    assert_eq!(report.status, 200, "{}", report.body);
    let (level, score) = (
        report.body["risk"]["level"].as_str().unwrap().to_owned(),
        report.body["risk"]["score"].as_u64().unwrap(),
    );
    // A monitor of the subject's site may export too.
    let id = request(&app, &monitor, &subject, "pdf").await;
    let done = app
        .wait_for_export(&id, &monitor, Duration::from_secs(90))
        .await;
    assert_eq!(done["status"], "DONE", "{done}");
    let (bytes, _) = download(&done).await;
    assert!(bytes.starts_with(b"%PDF-"));
    let dir = std::env::temp_dir().join(format!("export-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let pdf = dir.join("export.pdf");
    std::fs::write(&pdf, &bytes).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", pdf.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (poppler-utils, scripts/setup.sh)");
    assert!(out.status.success(), "poppler reads the PDF");
    let text = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.contains(&subject), "{text}");
    assert!(!text.contains("BOS-0951"), "no subject key: {text}");
    assert!(
        text.contains(&format!("Risk {level}, score {score}")),
        "the report's score ({level} {score}) in: {text}"
    );
    assert!(text.contains("Pneumonia"), "{text}");
    assert!(text.contains("ALT"), "the lab out of range: {text}");
    assert!(text.contains("Page 1 of"), "{text}");
    assert!(text.contains(&id), "the export's id on its pages");
}

#[tokio::test]
async fn exports_are_scoped_like_their_subject_and_bad_requests_write_nothing() {
    let app = spawn_pipeline(&[]).await;
    let staff = app.staff();
    let id = request(&app, &staff, "SUBJ-0001", "csv").await;
    let done = app
        .wait_for_export(&id, &staff, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "DONE", "{done}");
    let counted = ["ExportsTable", "AuditTable"];
    let mut before = Vec::new();
    for t in counted {
        before.push(app.item_count(t).await);
    }
    let outsiders = [
        (
            "staff of another site",
            app.token_in("site_staff", &[LYN], &[TRIAL]),
        ),
        (
            "monitor of another trial",
            app.token_in("monitor", &[BOS], &["CLIN-OTHER-02"]),
        ),
        (
            "sponsor admin of another trial",
            app.token_in("sponsor_admin", &[], &["CLIN-OTHER-02"]),
        ),
    ];
    for (who, token) in &outsiders {
        for r in [
            app.get(&format!("/v1/exports/{id}"), token).await,
            app.get(&exports_path("SUBJ-0001"), token).await,
            app.post(&exports_path("SUBJ-0001"), token, &json!({"format": "pdf"}))
                .await,
        ] {
            assert_eq!(r.status, 404, "{who}: {}", r.body);
            assert_eq!(r.body["type"], "/problems/not-found", "{who}");
        }
    }
    let patient = app.patient_token("SUBJ-0001");
    for r in [
        app.get(&format!("/v1/exports/{id}"), &patient).await,
        app.post(
            &exports_path("SUBJ-0001"),
            &patient,
            &json!({"format": "pdf"}),
        )
        .await,
    ] {
        assert_eq!(r.status, 403, "patient: {}", r.body);
    }
    for (body, status, slug) in [
        (json!({"format": "xlsx"}), 422, "/problems/invalid-export"),
        (
            json!({"format": "pdf", "subjectKey": "BOS-0001"}),
            422,
            "/problems/invalid-export",
        ),
        (json!({}), 422, "/problems/invalid-export"),
        (json!(["pdf"]), 422, "/problems/invalid-export"),
    ] {
        let r = app.post(&exports_path("SUBJ-0001"), &staff, &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.body["type"], slug, "{body}");
    }
    let r = app
        .send_with(
            reqwest::Method::POST,
            &exports_path("SUBJ-0001"),
            Some(&staff),
            &[("content-type", "text/plain")],
            None,
        )
        .await;
    assert_eq!(r.status, 415, "{}", r.body);
    let mut after = Vec::new();
    for t in counted {
        after.push(app.item_count(t).await);
    }
    assert_eq!(
        after, before,
        "refused requests wrote nothing to {counted:?}"
    );
    assert!(
        app.drain_queue("ExportsQueue", 1).await.is_empty(),
        "and queued nothing"
    );
}

#[tokio::test]
async fn an_export_the_dead_letter_queue_receives_ends_failed_once() {
    let app = spawn_pipeline(&[]).await;
    // An export no worker ever ran (as if every attempt had crashed).
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    app.stack
        .clients
        .dynamodb
        .put_item()
        .table_name(app.table("ExportsTable"))
        .item("exportId", s(&id))
        .item("subjectId", s("SUBJ-0001"))
        .item("trialId", s(TRIAL))
        .item("siteId", s(BOS))
        .item("format", s("pdf"))
        .item("status", s("QUEUED"))
        .item(
            "rowsDone",
            aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
        )
        .item("requestedBy", s("tester"))
        .item("requestedAt", s(&now))
        .item("updatedAt", s(&now))
        .send()
        .await
        .unwrap();
    let dlq = app
        .stack
        .queue("ExportsDeadLetterQueue")
        .unwrap()
        .url
        .clone();
    let body = json!({"exportId": id}).to_string();
    app.stack
        .clients
        .sqs
        .send_message()
        .queue_url(&dlq)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    let staff = app.staff();
    let failed = app
        .wait_for_export(&id, &staff, Duration::from_secs(60))
        .await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(
        failed["reason"], "the export did not finish after repeated attempts",
        "{failed}"
    );
    assert!(
        failed.get("download").is_none(),
        "a FAILED export has no link"
    );
    // Delivered again: terminal stays terminal.
    app.stack
        .clients
        .sqs
        .send_message()
        .queue_url(&dlq)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = app.get(&format!("/v1/exports/{id}"), &staff).await;
    assert_eq!(again.body["status"], "FAILED");
    assert_eq!(again.body["updatedAt"], failed["updatedAt"], "unchanged");
    assert!(
        app.drain_queue("ExportsDeadLetterQueue", 1)
            .await
            .is_empty(),
        "both deliveries consumed"
    );
}

/// An exports-queue batch of one message naming `export_id`, as the event source mapping delivers
/// it (`receives`: its ApproximateReceiveCount).
fn queued_batch(app: &TestApp, export_id: &str, message_id: &str, receives: u32) -> Value {
    let queue = app.stack.queue("ExportsQueue").unwrap();
    json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": format!("{message_id}-{receives}"),
        "body": json!({"exportId": export_id}).to_string(),
        "attributes": {"ApproximateReceiveCount": receives.to_string(),
                       "SentTimestamp": "1795773602000", "SenderId": "exports",
                       "ApproximateFirstReceiveTimestamp": "1795773602010"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.arn,
        "awsRegion": "us-east-1"
    }]})
}

#[tokio::test]
async fn one_message_delivered_three_times_at_once_renders_one_file() {
    // No pollers: the test is the event source mapping, and delivers the message itself.
    let app = spawn_app().await;
    let staff = app.staff();
    let id = request(&app, &staff, "SUBJ-0001", "csv").await;
    let client = lambda_client(&app).await;
    let invoke = |batch: Value| {
        let client = client.clone();
        async move {
            let out = client
                .invoke()
                .function_name("ExportWorkerFunction")
                .payload(aws_sdk_lambda::primitives::Blob::new(batch.to_string()))
                .send()
                .await
                .unwrap();
            assert_eq!(out.function_error(), None);
            let payload: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
            payload["batchItemFailures"].as_array().unwrap().len()
        }
    };
    // The same message three times at once (a visibility timeout that ran out, a redrive, a
    // duplicate delivery): one attempt holds the export, the others find it held and hand the
    // message back.
    let (a, b, c) = tokio::join!(
        invoke(queued_batch(&app, &id, "m-1", 1)),
        invoke(queued_batch(&app, &id, "m-1", 2)),
        invoke(queued_batch(&app, &id, "m-1", 3)),
    );
    let handed_back = a + b + c;
    assert!(handed_back <= 2, "at least one delivery rendered it");
    let done = app
        .wait_for_export(&id, &staff, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "DONE", "{done}");
    // Delivered again after it finished: nothing happens, nothing handed back.
    assert_eq!(invoke(queued_batch(&app, &id, "m-1", 4)).await, 0);
    let again = app.get(&format!("/v1/exports/{id}"), &staff).await;
    assert_eq!(again.body["updatedAt"], done["updatedAt"]);
    assert_eq!(again.body["sizeBytes"], done["sizeBytes"]);
    // One object, one version: no delivery wrote a second file.
    let bucket = app.stack.bucket("ExportsBucket").unwrap().to_owned();
    let versions = app
        .stack
        .clients
        .s3
        .list_object_versions()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = versions.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(&format!("{id}.csv")));
    let uploads = app
        .stack
        .clients
        .s3
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "no multipart upload left open"
    );
}
