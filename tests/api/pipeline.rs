//! The whole ingest pipeline on the local stack: presigned PUT → S3 → ingest queue → process-dicom
//! → accepted or quarantined, recorded, published to the imaging-events queue.

use clinflow_tests::*;
use local_stack::functions::{self, LocalFunction};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn declared(bytes: &[u8]) -> Value {
    declaration("SUBJ-0001", bytes)
}

#[tokio::test]
async fn a_real_dicom_file_is_verified_scanned_parsed_accepted_and_published() {
    let app = spawn_ingest(&[]).await;
    let file = dicom_file("CT_small.dcm");
    let created = app.upload(&declared(&file), &file).await;
    let id = created["uploadId"].as_str().unwrap();
    let record = app.wait_processed(id).await;
    assert_eq!(record["status"], "PROCESSED", "{record}");
    let p = &record["processing"];
    assert_eq!(p["scan"], "clean");
    assert_eq!(p["sha256"], hex::encode(Sha256::digest(&file)));
    assert_eq!(p["sizeBytes"], file.len());
    assert_eq!(p["instance"], "new");
    assert_eq!(p["dicom"]["modality"], "CT");
    assert_eq!(p["dicom"]["rows"], 128);
    assert_eq!(p["dicom"]["transferSyntax"], "1.2.840.10008.1.2.1");
    assert_eq!(p["dicom"]["pixelData"]["length"], 32768);

    // Moved: accepted/ holds it, tagged; incoming/ no longer shows it (its version is kept).
    let accepted = p["objectKey"].as_str().unwrap();
    assert!(
        accepted.starts_with("accepted/CLIN-DEMO-01/SITE-BOS-01/SUBJ-0001/"),
        "{accepted}"
    );
    assert_eq!(
        app.object_digest(accepted).await.1,
        <[u8; 32]>::from(Sha256::digest(&file))
    );
    assert_eq!(app.object_tags(accepted).await["clinflow-scan"], "clean");
    assert!(
        !app.object_exists(created["objectKey"].as_str().unwrap())
            .await
    );

    // Indexed by SOP Instance UID and by study.
    let sop = p["dicom"]["sopInstanceUid"].as_str().unwrap();
    let study = p["dicom"]["studyInstanceUid"].as_str().unwrap();
    let by_study = app
        .stack
        .clients
        .dynamodb
        .query()
        .table_name(app.table("InstancesTable"))
        .index_name("ByStudy")
        .key_condition_expression("studyInstanceUid = :s")
        .expression_attribute_values(
            ":s",
            aws_sdk_dynamodb::types::AttributeValue::S(study.into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_study.count, 1);
    assert_eq!(
        by_study.items.unwrap()[0]["sopInstanceUid"].as_s().unwrap(),
        sop
    );

    // Published: processing and processed (a standard queue keeps no order), with the
    // correlation id of the upload.
    let events = app.drain_queue("ImagingEventsQueue", 5).await;
    let mut kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        vec!["upload.processed", "upload.processing"],
        "{events:?}"
    );
    let processed = events
        .iter()
        .find(|e| e["type"] == "upload.processed")
        .unwrap();
    assert_eq!(processed["studyInstanceUid"], study);
    assert_eq!(processed["modality"], "CT");
    assert_eq!(processed["correlationId"], record["correlationId"]);
    assert!(processed.get("patientId").is_none());

    // Audited, in order, each change once.
    let trail: Vec<(String, String)> = app
        .audit_trail(id)
        .await
        .iter()
        .map(|i| {
            (
                i["new"].as_s().unwrap().clone(),
                i["actor"].as_s().unwrap().clone(),
            )
        })
        .collect();
    assert_eq!(trail.first().unwrap().0, "AWAITING_UPLOAD");
    let tail: Vec<&str> = trail
        .iter()
        .rev()
        .take(2)
        .map(|(s, _)| s.as_str())
        .collect();
    assert_eq!(tail, vec!["PROCESSED", "PROCESSING"]);
    assert_eq!(trail.last().unwrap().1, "system:process-dicom");
}

#[tokio::test]
async fn every_defect_is_quarantined_with_its_reason() {
    let app = spawn_ingest(&[]).await;
    let ct = dicom_file("CT_small.dcm");
    let with_eicar = with_eicar(&ct);
    let noise: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut cases: Vec<(&str, Value, Vec<u8>, &str)> = vec![
        ("not DICOM", declared(&noise), noise.clone(), "not_dicom"),
        ("EICAR alone", declared(EICAR), EICAR.to_vec(), "malware: "),
        (
            "EICAR in a DICOM",
            declared(&with_eicar),
            with_eicar.clone(),
            "malware: Clinflow.Test.Eicar-Embedded",
        ),
        (
            "checksum mismatch",
            declared(&ct),
            {
                let mut b = ct.clone();
                b[2000] ^= 1;
                b
            },
            "checksum_mismatch",
        ),
        (
            "size mismatch",
            {
                let mut d = declared(&ct);
                d["sizeBytes"] = json!(ct.len() + 10);
                d
            },
            ct.clone(),
            "size_mismatch",
        ),
    ];
    for cut in [100usize, 135, 600, ct.len() - 7] {
        let truncated = ct[..cut].to_vec();
        cases.push((
            "truncated",
            declared(&truncated),
            truncated,
            if cut < 132 {
                "not_dicom"
            } else {
                "malformed: "
            },
        ));
    }
    let mut uploads = Vec::new();
    for (name, declaration, bytes, _) in &cases {
        let created = app.upload(declaration, bytes).await;
        uploads.push((name, created));
    }
    for ((name, created), (_, _, _, reason)) in uploads.iter().zip(&cases) {
        let id = created["uploadId"].as_str().unwrap();
        let record = app.wait_processed(id).await;
        assert_eq!(record["status"], "QUARANTINED", "{name}: {record}");
        let why = record["statusReason"].as_str().unwrap();
        assert!(why.starts_with(reason), "{name}: {why}");
        let key = record["processing"]["objectKey"].as_str().unwrap();
        assert!(key.starts_with("quarantine/"), "{name}: {key}");
        // There, and not readable through the normal path (the bucket policy denies it).
        let listed = app
            .stack
            .clients
            .s3
            .list_objects_v2()
            .bucket(app.bucket())
            .prefix(key)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.key_count(), Some(1), "{name}");
        let read = app
            .stack
            .clients
            .s3
            .get_object()
            .bucket(app.bucket())
            .key(key)
            .send()
            .await;
        let status = read
            .err()
            .and_then(|e| e.raw_response().map(|r| r.status().as_u16()));
        assert_eq!(status, Some(403), "{name}: quarantine must not be readable");
        if reason.starts_with("malware") {
            assert!(record["processing"]["scan"]
                .as_str()
                .unwrap()
                .starts_with("infected: "));
        }
        let accepted = key.replacen("quarantine/", "accepted/", 1);
        assert!(!app.object_exists(&accepted).await, "{name}");
    }
    let events = app.drain_queue("ImagingEventsQueue", 5).await;
    let quarantined = events
        .iter()
        .filter(|e| e["type"] == "upload.quarantined")
        .count();
    assert_eq!(quarantined, cases.len());
}

/// The S3 notification waiting on the ingest queue (consumers off), taken off the queue.
async fn take_notification(app: &TestApp) -> Value {
    let messages = app.drain_queue("IngestQueue", 5).await;
    messages
        .iter()
        .find(|m| m.get("Records").is_some())
        .cloned()
        .unwrap_or_else(|| panic!("the S3 event: {messages:?}"))
}

/// An upload of a real DICOM file, PUT, its S3 notification taken off the ingest queue (consumers
/// off): (upload id, notification).
async fn staged(app: &TestApp, name: &str) -> (String, Value) {
    let file = dicom_file(name);
    let created = app.upload(&declared(&file), &file).await;
    let id = created["uploadId"].as_str().unwrap().to_owned();
    (id, take_notification(app).await)
}

/// The processor as the template builds it, to deliver messages by hand.
async fn processor(app: &TestApp) -> std::sync::Arc<dyn local_stack::pollers::SqsFunction> {
    let (id, info) = app
        .stack
        .functions
        .iter()
        .find(|(_, f)| f.binary == "process-dicom")
        .unwrap();
    let clients = app.stack.function_clients(id).await;
    match functions::build("process-dicom", &info.environment, &clients).unwrap() {
        LocalFunction::Sqs(f) => f,
        _ => unreachable!(),
    }
}

fn sqs_event(
    bodies: &[&Value],
) -> lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent> {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{i}"), "body": b.to_string(), "eventSource": "aws:sqs"}))
        .collect();
    let mut context = lambda_runtime::Context::default();
    context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 60_000;
    lambda_runtime::LambdaEvent::new(
        serde_json::from_value(json!({ "Records": records })).unwrap(),
        context,
    )
}

#[tokio::test]
async fn duplicate_and_concurrent_deliveries_yield_one_record_and_one_transition() {
    // Consumers off: this test is the consumer.
    let app = spawn_app().await;
    let (id, notification) = staged(&app, "MR_small.dcm").await;
    let id = id.as_str();
    let f = processor(&app).await;

    // Twice at the same moment, in two invocations.
    let (a, b) = tokio::join!(
        f.invoke(sqs_event(&[&notification])),
        f.invoke(sqs_event(&[&notification]))
    );
    let failures = a.unwrap().batch_item_failures.len() + b.unwrap().batch_item_failures.len();
    assert!(
        failures <= 1,
        "at most the loser of the claim is handed back"
    );
    // Then again, and twice in one batch.
    let again = f
        .invoke(sqs_event(&[&notification, &notification]))
        .await
        .unwrap();
    assert!(again.batch_item_failures.is_empty());

    let record = app.wait_processed(id).await;
    assert_eq!(record["status"], "PROCESSED");
    let processed = app
        .audit_trail(id)
        .await
        .iter()
        .filter(|i| i["new"].as_s().unwrap() == "PROCESSED")
        .count();
    assert_eq!(processed, 1, "one transition");
    assert_eq!(
        app.item_count("InstancesTable").await,
        1,
        "one instance record"
    );
    let events = app.drain_queue("ImagingEventsQueue", 2).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "upload.processed")
            .count(),
        1
    );
}

#[tokio::test]
async fn the_same_sop_instance_again_is_a_duplicate_or_a_flagged_new_version() {
    let app = spawn_pipeline(&[]).await;
    let file = synthetic_dicom(7, 4096, 1);
    let first = app.upload(&declared(&file), &file).await;
    let again = app.upload(&declared(&file), &file).await;
    let changed = synthetic_dicom(7, 4096, 2);
    let other = app.upload(&declared(&changed), &changed).await;
    let mut outcomes = Vec::new();
    for u in [&first, &again, &other] {
        let record = app.wait_processed(u["uploadId"].as_str().unwrap()).await;
        assert_eq!(record["status"], "PROCESSED", "{record}");
        outcomes.push(
            record["processing"]["instance"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The pollers may take the three in any order: whichever digest comes first is new, the same
    // digest again a duplicate, the other digest a new version.
    outcomes.sort();
    assert_eq!(outcomes, vec!["duplicate", "new", "new_version"]);
    assert_eq!(app.item_count("InstancesTable").await, 2);
}

#[tokio::test]
async fn a_multipart_upload_is_processed_once_despite_its_two_events() {
    let app = spawn_ingest(&[
        ("MultipartThresholdBytes", "5242880"),
        ("MultipartPartSizeBytes", "5242880"),
    ])
    .await;
    let file = synthetic_dicom(9, 11 * 1024 * 1024, 3);
    let created = app.upload(&declared(&file), &file).await;
    assert_eq!(created["upload"]["mode"], "multipart");
    let record = app
        .wait_processed(created["uploadId"].as_str().unwrap())
        .await;
    assert_eq!(record["status"], "PROCESSED", "{record}");
    assert_eq!(
        record["processing"]["dicom"]["pixelData"]["length"],
        11 * 1024 * 1024
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let events = app.drain_queue("ImagingEventsQueue", 2).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "upload.processed")
            .count(),
        1,
        "{events:?}"
    );
}

#[tokio::test]
async fn a_message_that_cannot_finish_before_the_deadline_goes_back_untouched() {
    let app = spawn_app().await;
    let (id, notification) = staged(&app, "CT_small.dcm").await;
    let id = id.as_str();
    let mut event = sqs_event(&[&notification, &notification]);
    // 5 s left: less than the margin the template keeps (20 s).
    event.context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 5_000;
    let response = processor(&app).await.invoke(event).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 2, "both handed back");
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(
        record.body["status"], "AWAITING_UPLOAD",
        "nothing half-done"
    );
    let claims = app
        .stack
        .clients
        .dynamodb
        .scan()
        .table_name(app.table("IdempotencyTable"))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert!(
        claims.iter().all(|c| !c.contains_key("lockOwner")),
        "no lock left behind: {claims:?}"
    );
    // With time, the same message is processed.
    let done = processor(&app)
        .await
        .invoke(sqs_event(&[&notification]))
        .await
        .unwrap();
    assert!(done.batch_item_failures.is_empty());
    assert_eq!(app.wait_processed(id).await["status"], "PROCESSED");
}

#[tokio::test]
async fn the_subject_summary_counts_each_outcome_once() {
    let app = spawn_pipeline(&[]).await;
    let ct = dicom_file("CT_small.dcm");
    let mr = dicom_file("MR_small.dcm");
    let mut ids = Vec::new();
    for bytes in [&ct, &mr, &EICAR.to_vec()] {
        ids.push(
            app.upload(&declared(bytes), bytes).await["uploadId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // CT_small and MR_small are two patients: whichever is linked second is flagged, and the
    // summary lists what the records say.
    let mut flagged = Vec::new();
    for id in &ids {
        if app.wait_processed(id).await["processing"]
            .get("patientMismatch")
            .is_some()
        {
            flagged.push(id.clone());
        }
    }
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    let store = shared::store::summary::DynamoImagingSummary::new(
        app.stack.clients.dynamodb.clone(),
        app.table("ImagingSummaryTable"),
    );
    let expected = json!({
        "subjectId": "SUBJ-0001", "studies": 2, "series": 2, "instances": 2,
        "instancesByModality": {"CT": 1, "MR": 1}, "lastStudyDate": "20040826",
        "pending": 0, "quarantined": 1, "failed": 0,
        "patientMismatches": 1, "patientMismatchUploads": flagged,
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut summary = Value::Null;
    while std::time::Instant::now() < deadline {
        summary = store.get("SUBJ-0001").await.unwrap().unwrap_or(Value::Null);
        if summary == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(summary, expected);
    // A redelivered outcome changes nothing.
    let again = json!({"eventId": format!("{}:upload.processed", ids[0]),
        "correlationId": "c", "at": "2026-11-27T10:00:00Z",
        "type": "upload.processed", "uploadId": ids[0], "subjectId": "SUBJ-0001",
        "trialId": "CLIN-DEMO-01", "siteId": "SITE-BOS-01", "instance": "new", "modality": "CT",
        "studyInstanceUid": "x", "seriesInstanceUid": "y", "studyDate": "20991231"});
    let applied = store
        .apply(&serde_json::from_value(again).unwrap())
        .await
        .unwrap();
    assert_eq!(applied, shared::store::summary::Applied::AlreadyApplied);
    assert_eq!(store.get("SUBJ-0001").await.unwrap().unwrap(), expected);
}
