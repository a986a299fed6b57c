//! Every upload ends in a terminal state: a message process-dicom cannot finish is retried after
//! a backoff (not the queue's 90-minute visibility timeout), dead-lettered after maxReceiveCount,
//! and ingest-failures ends its upload FAILED with its reason, audited, published, counted.

use clinflow_tests::faults::FaultyUploads;
use clinflow_tests::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fast retries: a message comes back after ~1 s and reaches the DLQ after 5 receives.
const FAST_RETRIES: &[(&str, &str)] = &[
    ("IngestVisibilityTimeoutSeconds", "2"),
    ("IngestRetryBaseSeconds", "1"),
    ("IngestRetryMaxSeconds", "1"),
];

async fn send_to(app: &TestApp, queue: &str, body: &Value) {
    let url = app.stack.queue(queue).unwrap().url.clone();
    app.stack
        .clients
        .sqs
        .send_message()
        .queue_url(url)
        .message_body(body.to_string())
        .send()
        .await
        .unwrap();
}

async fn visible(app: &TestApp, queue: &str) -> usize {
    let url = app.stack.queue(queue).unwrap().url.clone();
    let attrs = app
        .stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attrs
        .values()
        .map(|v| v.parse::<usize>().unwrap_or(0))
        .sum()
}

/// (new status, old status, actor, reason) of each audit entry, oldest first.
async fn trail(app: &TestApp, id: &str) -> Vec<(String, String, String, String)> {
    app.audit_trail(id)
        .await
        .iter()
        .map(|i| {
            let get = |k: &str| {
                i.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            (get("new"), get("old"), get("actor"), get("reason"))
        })
        .collect()
}

#[tokio::test]
async fn an_object_that_always_fails_after_processing_started_ends_its_upload_failed() {
    let app = spawn_pipeline(FAST_RETRIES).await;
    // Declared, and its S3 event names a version that does not exist: processing starts, then
    // cannot read the object, at every delivery.
    let file = dicom_file("CT_small.dcm");
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let key = created.body["objectKey"].as_str().unwrap();
    send_to(
        &app,
        "IngestQueue",
        &object_created_body(&app.bucket(), key, file.len(), Some("no-such-version")),
    )
    .await;

    let started = Instant::now();
    let record = app.wait_status(&id, &["FAILED"], 120).await;
    let took = started.elapsed();
    let reason = record["statusReason"].as_str().unwrap();
    assert!(reason.starts_with("processing_failed: "), "{reason}");
    assert!(reason.contains("receive count"), "{reason}");
    assert!(reason.contains("last error: dependency"), "{reason}");

    // Audited: PROCESSING by process-dicom, then FAILED by ingest-failures, with the reason.
    let trail = trail(&app, &id).await;
    let last = trail.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str(), last.2.as_str()),
        ("FAILED", "PROCESSING", "system:ingest-failures"),
        "{trail:?}"
    );
    assert_eq!(last.3, reason);
    assert_eq!(trail.iter().filter(|t| t.0 == "FAILED").count(), 1);

    // The summary counts it failed, not pending.
    let expected = json!({
        "subjectId": "SUBJ-0001", "studies": 0, "series": 0, "instances": 0,
        "instancesByModality": {}, "lastStudyDate": null,
        "pending": 0, "quarantined": 0, "failed": 1,
        "patientMismatches": 0, "patientMismatchUploads": [],
    });
    assert_eq!(app.summary_once("SUBJ-0001", &expected).await, expected);
    // Nothing left on the ingest queue or its DLQ.
    let deadline = Instant::now() + Duration::from_secs(20);
    while visible(&app, "IngestDeadLetterQueue").await + visible(&app, "IngestQueue").await > 0 {
        assert!(Instant::now() < deadline, "queues not drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Five deliveries a second or two apart: seconds, not 5 x 90 minutes.
    assert!(took < Duration::from_secs(90), "{took:?}");
}

/// A fresh deployment: no signature database in the bucket.
async fn remove_signatures(app: &TestApp) {
    let signatures = app
        .stack
        .clients
        .s3
        .list_objects_v2()
        .bucket(app.bucket())
        .prefix("scanner/signatures/")
        .send()
        .await
        .unwrap();
    for o in signatures.contents() {
        app.stack
            .clients
            .s3
            .delete_object()
            .bucket(app.bucket())
            .key(o.key().unwrap())
            .send()
            .await
            .unwrap();
    }
}

/// The operator publishes the databases (the repo's test set).
async fn publish_signatures(app: &TestApp) {
    for entry in std::fs::read_dir(local_stack::emulator::repo_root().join("signatures")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if [".hdb", ".hsb", ".ndb"].iter().any(|e| name.ends_with(e)) {
            app.stack
                .clients
                .s3
                .put_object()
                .bucket(app.bucket())
                .key(format!("scanner/signatures/{name}"))
                .body(std::fs::read(&path).unwrap().into())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn without_a_scanner_nothing_starts_and_the_upload_ends_failed_from_received() {
    let app = spawn_pipeline(FAST_RETRIES).await;
    remove_signatures(&app).await;
    let file = dicom_file("CT_small.dcm");
    let created = app.upload(&declaration("SUBJ-0001", &file), &file).await;
    let id = created["uploadId"].as_str().unwrap();
    let record = app.wait_status(id, &["FAILED"], 120).await;
    let reason = record["statusReason"].as_str().unwrap();
    assert!(reason.contains("scanner unavailable"), "{reason}");
    assert!(reason.contains("no signatures"), "{reason}");

    // Never PROCESSING: FAILED straight from where the upload stood.
    let trail = trail(&app, id).await;
    assert!(trail.iter().all(|t| t.0 != "PROCESSING"), "{trail:?}");
    let last = trail.last().unwrap();
    assert_eq!(last.0, "FAILED");
    assert!(["AWAITING_UPLOAD", "RECEIVED"].contains(&last.1.as_str()));
    // The bytes are kept where they arrived, for a reprocess.
    assert!(
        app.object_exists(created["objectKey"].as_str().unwrap())
            .await
    );
    let expected = json!({
        "subjectId": "SUBJ-0001", "studies": 0, "series": 0, "instances": 0,
        "instancesByModality": {}, "lastStudyDate": null,
        "pending": 0, "quarantined": 0, "failed": 1,
        "patientMismatches": 0, "patientMismatchUploads": [],
    });
    assert_eq!(app.summary_once("SUBJ-0001", &expected).await, expected);
}

#[tokio::test]
async fn a_redelivered_dead_letter_changes_nothing_more() {
    let app = spawn_app().await;
    let file = dicom_file("CT_small.dcm");
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let key = created.body["objectKey"].as_str().unwrap();
    let info = app
        .stack
        .functions
        .values()
        .find(|f| f.binary == "ingest-failures")
        .unwrap();
    let config = ingest_failures::Config::from_source(&info.environment).unwrap();
    let failures = ingest_failures::IngestFailures::new(config, &app.stack.clients);
    let body = object_created_body(&app.bucket(), key, file.len(), Some("v1"));
    let record = json!({"messageId": "m0", "body": body.to_string(), "eventSource": "aws:sqs",
        "attributes": {"ApproximateReceiveCount": "6"}});
    for _ in 0..3 {
        let event = lambda_runtime::LambdaEvent::new(
            serde_json::from_value(json!({"Records": [record.clone()]})).unwrap(),
            lambda_runtime::Context::default(),
        );
        let response = failures.handle(event).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "FAILED");
    assert!(record.body["statusReason"]
        .as_str()
        .unwrap()
        .contains("(receive count 6); last error: none recorded"));
    let trail = trail(&app, &id).await;
    assert_eq!(
        trail.iter().filter(|t| t.0 == "FAILED").count(),
        1,
        "{trail:?}"
    );
    // upload.failed each time, with one event id: the summary counts it once.
    let events = app.drain_queue("ImagingEventsQueue", 2).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["type"] == "upload.failed" && e["eventId"] == format!("{id}:upload.failed")));
}

#[tokio::test]
async fn a_transient_failure_comes_back_after_its_backoff_not_the_visibility_timeout() {
    // The template's 5,400 s visibility; consumers off: this test receives and delivers.
    let app = spawn_app().await;
    let file = dicom_file("CT_small.dcm");
    let created = app.upload(&declaration("SUBJ-0001", &file), &file).await;
    let id = created["uploadId"].as_str().unwrap();
    let url = app.stack.queue("IngestQueue").unwrap().url.clone();
    let sqs = &app.stack.clients.sqs;
    let receive = || async {
        sqs.receive_message()
            .queue_url(&url)
            .wait_time_seconds(1)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.body().unwrap_or("").contains("ObjectCreated"))
    };
    let mut message = None;
    for _ in 0..5 {
        message = receive().await;
        if message.is_some() {
            break;
        }
    }
    let message = message.expect("the S3 event");
    let processor = app.processor_with(
        &[("RETRY_BASE_SECONDS", "2"), ("RETRY_MAX_SECONDS", "2")],
        |mut ports| {
            let uploads = FaultyUploads {
                fail_finish: faults::Trip::times(1),
                ..FaultyUploads::new(ports.uploads)
            };
            ports.uploads = Arc::new(uploads);
            ports
        },
    );
    let record = json!({
        "messageId": message.message_id(), "receiptHandle": message.receipt_handle(),
        "body": message.body(), "eventSource": "aws:sqs",
        "attributes": {"ApproximateReceiveCount": "1"},
    });
    let event = || {
        let mut context = lambda_runtime::Context::default();
        context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 60_000;
        lambda_runtime::LambdaEvent::new(
            serde_json::from_value(json!({"Records": [record.clone()]})).unwrap(),
            context,
        )
    };
    let failed_at = Instant::now();
    let response = processor.handle(event()).await.unwrap();
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "the injected failure"
    );
    // Back within its backoff (1 to 2 s), not after 5,400 s.
    let mut again = None;
    while failed_at.elapsed() < Duration::from_secs(15) {
        again = receive().await;
        if again.is_some() {
            break;
        }
    }
    let again = again.expect("redelivered after its backoff");
    assert!(failed_at.elapsed() >= Duration::from_secs(1));
    let count = again
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .cloned();
    assert_eq!(count.as_deref(), Some("2"));
    // The retry finishes the work the first delivery left.
    let response = processor.handle(event()).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "PROCESSED", "{}", record.body);
    assert_eq!(record.body["processing"]["instance"], "new");
}

#[tokio::test]
async fn a_refused_outcome_write_is_reread_and_resolved_in_the_same_delivery() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let file = dicom_file("CT_small.dcm");
        let created = app.upload(&declaration("SUBJ-0001", &file), &file).await;
        let id = created["uploadId"].as_str().unwrap();
        let notification = app
            .drain_queue("IngestQueue", 5)
            .await
            .into_iter()
            .find(|m| m.get("Records").is_some())
            .unwrap();
        let (client, table) = (
            app.stack.clients.dynamodb.clone(),
            app.table("UploadsTable"),
        );
        let processor = app.processor_with(&[], |mut ports| {
            let uploads = FaultyUploads {
                regress_before_finish: Some((faults::Trip::times(1), client, table)),
                ..FaultyUploads::new(ports.uploads)
            };
            ports.uploads = Arc::new(uploads);
            ports
        });
        let mut context = lambda_runtime::Context::default();
        context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 60_000;
        let event = lambda_runtime::LambdaEvent::new(
            serde_json::from_value(json!({"Records": [{"messageId": "m0",
                "body": notification.to_string(), "eventSource": "aws:sqs"}]}))
            .unwrap(),
            context,
        );
        let response = processor.handle(event).await.unwrap();
        assert!(
            response.batch_item_failures.is_empty(),
            "resolved at once, not handed to the visibility timeout"
        );
        let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
        assert_eq!(record.body["status"], "PROCESSED", "{}", record.body);
    }
}

#[tokio::test]
async fn a_sponsor_admin_reprocesses_a_failed_upload_once_the_cause_is_fixed() {
    let app = spawn_pipeline(FAST_RETRIES).await;
    remove_signatures(&app).await;
    let file = dicom_file("CT_small.dcm");
    let created = app.upload(&declaration("SUBJ-0001", &file), &file).await;
    let id = created["uploadId"].as_str().unwrap();
    app.wait_status(id, &["FAILED"], 120).await;
    let path = format!("/v1/uploads/{id}/reprocess");
    let empty = json!({});

    // Only a sponsor admin; a reader outside the site does not even see it.
    let staff = app.post(&path, &app.staff(), &empty).await;
    assert_eq!(staff.problem(403), "/problems/forbidden");
    let monitor = app.post(&path, &app.token("monitor", &[BOS]), &empty).await;
    assert_eq!(monitor.problem(403), "/problems/forbidden");
    let elsewhere = app.post(&path, &app.token("monitor", &[LYN]), &empty).await;
    assert_eq!(elsewhere.problem(404), "/problems/not-found");
    assert_eq!(
        trail(&app, id).await.last().unwrap().0,
        "FAILED",
        "nothing written"
    );

    publish_signatures(&app).await;
    let admin = app.token_in("sponsor_admin", &[], &[TRIAL]);
    let accepted = app.post(&path, &admin, &empty).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "RECEIVED");
    // Asked twice: the same answer, one move.
    let again = app.post(&path, &admin, &empty).await;
    assert!([202, 409].contains(&again.status), "{}", again.body);

    let record = app
        .wait_status(id, &["PROCESSED", "QUARANTINED"], 120)
        .await;
    assert_eq!(record["status"], "PROCESSED", "{record}");
    let trail = trail(&app, id).await;
    let moves: Vec<(&str, &str, &str)> = trail
        .iter()
        .map(|t| (t.1.as_str(), t.0.as_str(), t.2.as_str()))
        .collect();
    assert_eq!(
        moves
            .iter()
            .filter(|m| m.0 == "FAILED" && m.1 == "RECEIVED")
            .count(),
        1,
        "{moves:?}"
    );
    assert!(
        moves.contains(&("FAILED", "RECEIVED", "tester")),
        "audited with who asked"
    );
    assert_eq!(moves.last().unwrap().1, "PROCESSED");
    assert_eq!(trail.iter().filter(|t| t.0 == "PROCESSED").count(), 1);

    // Not FAILED any more: a conflict, nothing written.
    let done = app.post(&path, &admin, &empty).await;
    assert_eq!(done.problem(409), "/problems/upload-not-failed");
    // The summary: failed no more, the instance counted once.
    let summary = app
        .summary_once(
            "SUBJ-0001",
            &json!({"subjectId": "SUBJ-0001", "studies": 1, "series": 1, "instances": 1,
                "instancesByModality": {"CT": 1}, "lastStudyDate": record["processing"]["dicom"]["studyDate"],
                "pending": 0, "quarantined": 0, "failed": 0}),
        )
        .await;
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["instances"], 1, "{summary}");
    assert_eq!(summary["pending"], 0, "{summary}");
}

#[tokio::test]
async fn uploads_polled_every_moment_while_processed_end_terminal_in_seconds() {
    // The race, many times over: a client polls GET /v1/uploads/{id} right after its PUT
    // while the processor works (a 700-byte truncated DICOM, quarantined). The template's own
    // 5,400 s visibility: a message left to it would not come back within the test.
    let app = spawn_pipeline(&[]).await;
    let ct = dicom_file("CT_small.dcm");
    let truncated = ct[..700].to_vec();
    for round in 0..12 {
        let created = app
            .upload(&declaration("SUBJ-0001", &truncated), &truncated)
            .await;
        let id = created["uploadId"].as_str().unwrap();
        let started = Instant::now();
        let record = loop {
            let r = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
            if ["PROCESSED", "QUARANTINED", "FAILED"].contains(&r.body["status"].as_str().unwrap())
            {
                break r.body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "round {round}: still {} after 60 s",
                r.body["status"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(record["status"], "QUARANTINED", "round {round}: {record}");
        assert!(record["statusReason"]
            .as_str()
            .unwrap()
            .starts_with("malformed: "));
        let concluded = trail(&app, id)
            .await
            .iter()
            .filter(|t| t.0 == "QUARANTINED")
            .count();
        assert_eq!(concluded, 1, "round {round}");
    }
}

#[tokio::test]
async fn a_dead_letter_whose_upload_is_being_processed_waits() {
    use shared::store::idempotency::DynamoIdempotency;
    use shared::store::{Claim, Idempotency};
    let app = spawn_app().await;
    let file = dicom_file("CT_small.dcm");
    let created = app.create_upload("SUBJ-0001", &file).await;
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let key = created.body["objectKey"].as_str().unwrap();
    // Another delivery holds the upload's lock (a duplicate event dead-lettered meanwhile).
    let claims = DynamoIdempotency::new(
        app.stack.clients.dynamodb.clone(),
        app.table("IdempotencyTable"),
        chrono::Duration::days(1),
    );
    let Claim::Acquired(lease) = claims
        .claim(
            &format!("{}/{key}", app.bucket()),
            "v1",
            chrono::Utc::now() + chrono::Duration::seconds(60),
        )
        .await
        .unwrap()
    else {
        panic!("the lock")
    };
    let info = app
        .stack
        .functions
        .values()
        .find(|f| f.binary == "ingest-failures")
        .unwrap();
    let failures = ingest_failures::IngestFailures::new(
        ingest_failures::Config::from_source(&info.environment).unwrap(),
        &app.stack.clients,
    );
    let body = object_created_body(&app.bucket(), key, file.len(), Some("v2"));
    let deliver = || async {
        let event = lambda_runtime::LambdaEvent::new(
            serde_json::from_value(json!({"Records": [{"messageId": "m0",
                "body": body.to_string(), "eventSource": "aws:sqs",
                "attributes": {"ApproximateReceiveCount": "6"}}]}))
            .unwrap(),
            lambda_runtime::Context::default(),
        );
        failures
            .handle(event)
            .await
            .unwrap()
            .batch_item_failures
            .len()
    };
    assert_eq!(deliver().await, 1, "handed back while the lock is held");
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "AWAITING_UPLOAD");
    // The holder gives up with an error: the next look ends it FAILED, with that error.
    claims
        .release(&lease, "dependency: injected")
        .await
        .unwrap();
    assert_eq!(deliver().await, 0);
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "FAILED");
    assert!(record.body["statusReason"]
        .as_str()
        .unwrap()
        .ends_with("last error: dependency: injected"));
}

/// imaging-summary: an event it could not apply comes back after its own backoff (5 s doubling
/// per receive, jittered), set with ChangeMessageVisibility under its own role, not after the
/// queue's 180 s visibility timeout; a malformed one comes back at once, on its way to the DLQ.
#[tokio::test]
async fn an_imaging_event_that_failed_comes_back_after_its_backoff_not_the_visibility_timeout() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let app = spawn_app().await;
    let queue = app.stack.queue("ImagingEventsQueue").unwrap().url.clone();
    let sqs = &app.stack.clients.sqs;
    let info = app
        .stack
        .functions
        .values()
        .find(|f| f.binary == "imaging-summary")
        .expect("imaging-summary in the template");
    let mut env: std::collections::HashMap<String, String> =
        info.environment.clone().into_iter().collect();
    // A table its role may not write: every update fails (403), as in an outage.
    env.insert("IMAGING_SUMMARY_TABLE".into(), "no-such-table".into());
    let clients = app.stack.function_clients("ImagingSummaryFunction").await;
    let summarizer = imaging_summary::Summarizer::from_env(&env, &clients).unwrap();
    let good = json!({
        "eventId": "u9:upload.processing", "type": "upload.processing", "uploadId": "u9",
        "subjectId": "SUBJ-0001", "trialId": "CLIN-DEMO-01", "siteId": "SITE-BOS-01",
        "correlationId": "c", "at": "2026-11-27T10:00:00Z"})
    .to_string();
    for (body, most_seconds) in [(good, 5.0), ("not an event".to_owned(), 0.0)] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(&body)
            .send()
            .await
            .unwrap();
        let receive = || {
            sqs.receive_message()
                .queue_url(&queue)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .wait_time_seconds(1)
                .send()
        };
        let sent = Instant::now();
        let message = loop {
            if let Some(m) = receive().await.unwrap().messages.and_then(|mut m| m.pop()) {
                break m;
            }
            assert!(sent.elapsed() < Duration::from_secs(30), "never received");
        };
        let record = json!({
            "messageId": message.message_id(), "receiptHandle": message.receipt_handle(),
            "body": message.body(), "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": "1"}});
        let mut context = lambda_runtime::Context::default();
        context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 30_000;
        let event = lambda_runtime::LambdaEvent::new(
            serde_json::from_value(json!({ "Records": [record] })).unwrap(),
            context,
        );
        let response = summarizer.handle(event).await.unwrap();
        // The delay runs from the ChangeMessageVisibility, the handler's last call.
        let failed = Instant::now();
        assert_eq!(response.batch_item_failures.len(), 1, "{body}");
        // Back after its delay (3 to 5 s on a first receive; a malformed one at once), within a
        // loaded emulator's slack, far from 180 s.
        let again = loop {
            if let Some(m) = receive().await.unwrap().messages.and_then(|mut m| m.pop()) {
                break m;
            }
            assert!(
                failed.elapsed() < Duration::from_secs(30),
                "{body}: not back within 30 s"
            );
        };
        assert_eq!(again.body(), Some(body.as_str()));
        let back = failed.elapsed().as_secs_f64();
        assert!(back <= most_seconds + 5.0, "{body}: back after {back:.1} s");
        if most_seconds > 0.0 {
            // Not at once either: the backoff was set, not a zero delay.
            assert!(back >= 2.0, "{body}: back after {back:.1} s");
        }
        sqs.delete_message()
            .queue_url(&queue)
            .receipt_handle(again.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
}
