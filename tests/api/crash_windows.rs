//! The processor's crash windows: each test fails a call at a named point (a wrapped port), then
//! delivers the message again and checks the end state.

use clinflow_tests::faults::{FaultyEvents, FaultyIdempotency, FaultyObjects, FaultyUploads, Trip};
use clinflow_tests::*;
use process_dicom::Processor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn event(
    bodies: &[&Value],
) -> lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent> {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{i}"), "body": b.to_string(), "eventSource": "aws:sqs"}))
        .collect();
    let mut context = lambda_runtime::Context::default();
    context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 120_000;
    lambda_runtime::LambdaEvent::new(
        serde_json::from_value(json!({ "Records": records })).unwrap(),
        context,
    )
}

/// Uploads `bytes` for SUBJ-0001 (consumers off) and takes its S3 event off the ingest queue.
async fn staged(app: &TestApp, bytes: &[u8]) -> (String, String, Value) {
    let created = app.upload(&declaration("SUBJ-0001", bytes), bytes).await;
    let notification = app
        .drain_queue("IngestQueue", 5)
        .await
        .into_iter()
        .find(|m| m.get("Records").is_some())
        .expect("the S3 event");
    (
        created["uploadId"].as_str().unwrap().to_owned(),
        created["objectKey"].as_str().unwrap().to_owned(),
        notification,
    )
}

async fn deliver(processor: &Processor, bodies: &[&Value]) -> usize {
    processor
        .handle(event(bodies))
        .await
        .unwrap()
        .batch_item_failures
        .len()
}

async fn record(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/uploads/{id}"), &app.staff())
        .await
        .body
}

#[tokio::test]
async fn a_retry_after_the_index_write_is_not_a_duplicate_of_itself() {
    let app = spawn_app().await;
    let file = synthetic_dicom(11, 2048, 5);
    let (id, _, notification) = staged(&app, &file).await;
    // Crash after the instance index write, before the record's update.
    let crashing = app.processor_with(&[], |mut ports| {
        ports.uploads = Arc::new(FaultyUploads {
            fail_finish: Trip::times(1),
            ..FaultyUploads::new(ports.uploads)
        });
        ports
    });
    assert_eq!(deliver(&crashing, &[&notification]).await, 1);
    assert_eq!(record(&app, &id).await["status"], "PROCESSING");
    assert_eq!(
        app.item_count("InstancesTable").await,
        1,
        "indexed before the crash"
    );

    assert_eq!(
        deliver(&app.processor_with(&[], |p| p), &[&notification]).await,
        0
    );
    let done = record(&app, &id).await;
    assert_eq!(done["status"], "PROCESSED", "{done}");
    assert_eq!(
        done["processing"]["instance"], "new",
        "its own index entry, not a duplicate"
    );
    assert_eq!(app.item_count("InstancesTable").await, 1);
    // The summary counts the instance (a duplicate would be skipped for ever).
    let events = app.drain_queue("ImagingEventsQueue", 2).await;
    let processed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "upload.processed")
        .collect();
    assert_eq!(processed.len(), 1, "{events:?}");
    assert_eq!(processed[0]["instance"], "new");
}

/// The outcome recorded, then the claim's completion fails (found by the lost-answer faults): the
/// claim is freed, so the redelivery concludes at once instead of finding the version "being
/// processed" until the failed attempt's deadline (~10 minutes).
#[tokio::test]
async fn a_failed_completion_frees_the_claim_for_the_next_delivery() {
    let app = spawn_app().await;
    let file = synthetic_dicom(12, 2048, 6);
    let (id, _, notification) = staged(&app, &file).await;
    let failing = app.processor_with(&[], |mut ports| {
        ports.idempotency = Arc::new(FaultyIdempotency {
            fail_complete: Trip::times(1),
            ..FaultyIdempotency::new(ports.idempotency)
        });
        ports
    });
    assert_eq!(deliver(&failing, &[&notification]).await, 1);
    assert_eq!(record(&app, &id).await["status"], "PROCESSED");
    // The next delivery is not refused as busy: it completes the claim.
    assert_eq!(
        deliver(&app.processor_with(&[], |p| p), &[&notification]).await,
        0
    );
    // And the one after that finds it done.
    assert_eq!(
        deliver(&app.processor_with(&[], |p| p), &[&notification]).await,
        0
    );
    assert_eq!(record(&app, &id).await["status"], "PROCESSED");
    assert_eq!(app.item_count("InstancesTable").await, 1);
}

#[tokio::test]
async fn a_retry_after_the_outcome_was_recorded_retires_the_incoming_object() {
    let app = spawn_app().await;
    let clean = dicom_file("CT_small.dcm");
    let cases: [(&[u8], &str); 2] = [(&clean, "PROCESSED"), (EICAR, "QUARANTINED")];
    for (bytes, status) in cases {
        let (id, key, notification) = staged(&app, bytes).await;
        // Crash after the record's update, before the object leaves incoming/.
        let crashing = app.processor_with(&[], |mut ports| {
            ports.objects = Arc::new(FaultyObjects {
                fail_retire: Trip::times(1),
                ..FaultyObjects::new(ports.objects)
            });
            ports
        });
        assert_eq!(deliver(&crashing, &[&notification]).await, 1);
        assert_eq!(record(&app, &id).await["status"], status);
        assert!(
            app.object_exists(&key).await,
            "still in incoming/ after the crash"
        );

        // The retry takes the "already concluded" branch: it retires the object and republishes.
        assert_eq!(
            deliver(&app.processor_with(&[], |p| p), &[&notification]).await,
            0
        );
        assert!(
            !app.object_exists(&key).await,
            "{status}: gone from incoming/"
        );
        let versions = app.versions_under(&key).await;
        if status == "QUARANTINED" {
            // Not even a noncurrent version: nothing infected is readable outside quarantine/.
            assert!(
                versions.iter().all(|(_, _, marker)| *marker),
                "{versions:?}"
            );
            let versions_of_bytes = versions.iter().filter(|(_, _, m)| !m).count();
            assert_eq!(versions_of_bytes, 0);
            let quarantined = record(&app, &id).await["processing"]["objectKey"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(quarantined.starts_with("quarantine/"));
            assert_eq!(app.versions_under(&quarantined).await.len(), 1);
        } else {
            // The accepted original stays 30 days as a noncurrent version, behind a delete marker.
            assert!(
                versions.iter().any(|(_, _, marker)| *marker),
                "{versions:?}"
            );
        }
        let events = app.drain_queue("ImagingEventsQueue", 2).await;
        let kind = format!("upload.{}", status.to_lowercase());
        assert!(
            events.iter().any(|e| e["type"] == kind.as_str()),
            "published again: {events:?}"
        );
    }
}

#[tokio::test]
async fn a_retry_after_the_object_was_retired_publishes_the_outcome_it_missed() {
    // The crash the emulator's restart test found (tests/restart): after the outcome was recorded
    // and the object retired — a quarantined upload's version deleted for good — and before its
    // outcome was published. The redelivered S3 event names the version (S3's do, and the local
    // stack's moto now too: before, its events named none, the processor looked the version up by
    // ETag, found none left, and took the event for a second version — a stray copy of bytes
    // that no longer exist, failing to the dead-letter queue, the summary never told).
    let app = spawn_app().await;
    let clean = dicom_file("CT_small.dcm");
    let cases: [(&[u8], &str); 2] = [(&clean, "PROCESSED"), (EICAR, "QUARANTINED")];
    for (bytes, status) in cases {
        let (id, key, notification) = staged(&app, bytes).await;
        assert!(
            notification["Records"][0]["s3"]["object"]["versionId"].is_string(),
            "the event names its version, as S3's do: {notification}"
        );
        let crashing = app.processor_with(&[], |mut ports| {
            ports.events = Arc::new(FaultyEvents {
                inner: ports.events,
                fail_outcome: Trip::times(1),
            });
            ports
        });
        assert_eq!(deliver(&crashing, &[&notification]).await, 1);
        assert_eq!(record(&app, &id).await["status"], status);
        assert!(!app.object_exists(&key).await, "retired before the crash");
        let first = app.drain_queue("ImagingEventsQueue", 2).await;
        let kind = format!("upload.{}", status.to_lowercase());
        assert!(
            first.iter().all(|e| e["type"] != kind.as_str()),
            "{first:?}"
        );

        assert_eq!(
            deliver(&app.processor_with(&[], |p| p), &[&notification]).await,
            0,
            "{status}: the retry concludes"
        );
        let events = app.drain_queue("ImagingEventsQueue", 2).await;
        assert!(
            events.iter().any(|e| e["type"] == kind.as_str()),
            "{status}: the outcome published on the retry: {events:?}"
        );
        let strays = app.versions_under("quarantine/stray/").await;
        assert!(
            strays.iter().all(|(k, _, _)| !k.contains(&id)),
            "{status}: not a stray: {strays:?}"
        );
        assert_eq!(record(&app, &id).await["status"], status);
    }
}

#[tokio::test]
async fn a_quarantined_upload_leaves_no_readable_version_in_incoming() {
    let app = spawn_app().await;
    let (id, key, notification) = staged(&app, EICAR).await;
    assert_eq!(
        deliver(&app.processor_with(&[], |p| p), &[&notification]).await,
        0
    );
    assert_eq!(record(&app, &id).await["status"], "QUARANTINED");
    let left: Vec<_> = app
        .versions_under(&key)
        .await
        .into_iter()
        .filter(|(_, _, marker)| !marker)
        .collect();
    assert!(
        left.is_empty(),
        "no version of the infected bytes under incoming/: {left:?}"
    );
}

#[tokio::test]
async fn a_stalled_body_fails_only_its_own_message() {
    let app = spawn_app().await;
    let (stalled_id, stalled_key, stalled) = staged(&app, &dicom_file("CT_small.dcm")).await;
    let (good_id, _, good) = staged(&app, &dicom_file("MR_small.dcm")).await;
    let processor = app.processor_with(&[("READ_TIMEOUT_SECONDS", "1")], |mut ports| {
        ports.objects = Arc::new(FaultyObjects {
            stall_key: Some(stalled_key.clone()),
            ..FaultyObjects::new(ports.objects)
        });
        ports
    });
    let started = Instant::now();
    let response = processor.handle(event(&[&stalled, &good])).await.unwrap();
    let ids: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(ids, vec!["m0"], "only the stalled message fails");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(record(&app, &good_id).await["status"], "PROCESSED");
    // Its claim is released: the next delivery, with a body that flows, finishes it.
    assert_eq!(
        deliver(&app.processor_with(&[], |p| p), &[&stalled]).await,
        0
    );
    assert_eq!(record(&app, &stalled_id).await["status"], "PROCESSED");
}

#[tokio::test]
async fn two_versions_of_one_upload_are_never_processed_at_once() {
    let app = spawn_app().await;
    let first = dicom_file("CT_small.dcm");
    let second = dicom_file("MR_small.dcm");
    for round in 0..6 {
        // Two PUTs to one presigned URL: two versions of the upload's key (the emulator does
        // not check the signed checksum; real S3 would refuse the second body).
        let created = app
            .post(
                "/v1/uploads",
                &app.staff(),
                &declaration("SUBJ-0001", &first),
            )
            .await;
        let id = created.body["uploadId"].as_str().unwrap().to_owned();
        let key = created.body["objectKey"].as_str().unwrap().to_owned();
        for bytes in [&first, &second] {
            let r = app
                .send_presigned(&created.body["upload"], bytes.clone())
                .await;
            assert_eq!(r.status(), 200);
        }
        let versions: Vec<(String, String, bool)> = app.versions_under(&key).await;
        assert_eq!(versions.len(), 2, "{versions:?}");
        let notifications: Vec<Value> = versions
            .iter()
            .map(|(_, v, _)| object_created_body(&app.bucket(), &key, first.len(), Some(v)))
            .collect();
        let processor = app.processor_with(&[], |p| p);
        // Both at the same moment, then again until neither is handed back.
        let (one, other) = ([&notifications[0]], [&notifications[1]]);
        let (a, b) = tokio::join!(deliver(&processor, &one), deliver(&processor, &other));
        let mut pending = a + b;
        let deadline = Instant::now() + Duration::from_secs(60);
        while pending > 0 {
            assert!(Instant::now() < deadline, "round {round}: not settled");
            tokio::time::sleep(Duration::from_millis(100)).await;
            pending = deliver(&processor, &[&notifications[0]]).await
                + deliver(&processor, &[&notifications[1]]).await;
        }
        let done = record(&app, &id).await;
        let concluded = app
            .audit_trail(&id)
            .await
            .iter()
            .filter(|i| ["PROCESSED", "QUARANTINED"].contains(&i["new"].as_s().unwrap().as_str()))
            .count();
        assert_eq!(concluded, 1, "round {round}: one outcome");
        // What the record says is what lies where it says: the version it names, whole.
        let at = done["processing"]["objectKey"].as_str().unwrap();
        if done["status"] == "PROCESSED" {
            let (_, digest) = app.object_digest(at).await;
            assert_eq!(
                hex::encode(digest),
                done["processing"]["sha256"],
                "round {round}"
            );
            assert_eq!(
                done["processing"]["sha256"],
                hex::encode(Sha256::digest(&first))
            );
        }
        // The other version went to quarantine/stray/, and nothing is left in incoming/.
        let strays = app.versions_under("quarantine/stray/").await;
        assert!(
            strays.iter().any(|(k, _, _)| k.contains(&id)),
            "round {round}: {strays:?}"
        );
        let left: Vec<_> = app
            .versions_under(&key)
            .await
            .into_iter()
            .filter(|(_, _, marker)| !marker)
            .collect();
        assert!(left.len() <= 1, "round {round}: {left:?}");
    }
}

#[tokio::test]
async fn the_last_study_date_survives_a_failure_after_the_summary_write() {
    use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
    use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
    use shared::store::summary::{Applied, DynamoImagingSummary, ImagingEvent};

    /// Every UpdateItem call fails (a write after the summary's transaction).
    #[derive(Debug)]
    struct UpdateItemFails;
    impl Intercept for UpdateItemFails {
        fn name(&self) -> &'static str {
            "UpdateItemFails"
        }
        fn read_before_execution(
            &self,
            context: &BeforeSerializationInterceptorContextRef<'_>,
            _cfg: &mut ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            if context
                .input()
                .downcast_ref::<aws_sdk_dynamodb::operation::update_item::UpdateItemInput>()
                .is_some()
            {
                return Err("injected: UpdateItem fails".into());
            }
            Ok(())
        }
    }

    let app = spawn_app().await;
    let table = app.table("ImagingSummaryTable");
    let client = &app.stack.clients.dynamodb;
    let failing = aws_sdk_dynamodb::Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(UpdateItemFails)
            .build(),
    );
    let event: ImagingEvent = serde_json::from_value(json!({
        "eventId": "u1:upload.processed", "type": "upload.processed", "uploadId": "u1",
        "subjectId": "SUBJ-0001", "trialId": "CLIN-DEMO-01", "siteId": "SITE-BOS-01",
        "correlationId": "c", "at": "2026-11-27T10:00:00Z", "instance": "new",
        "modality": "CT", "studyInstanceUid": "1.2", "seriesInstanceUid": "1.2.3",
        "studyDate": "20240102"}))
    .unwrap();
    // Applied with the failing client; if it fails, the message is redelivered to a healthy one.
    let first = DynamoImagingSummary::new(failing, &table)
        .apply(&event)
        .await;
    let healthy = DynamoImagingSummary::new(client.clone(), &table);
    if first.is_err() {
        healthy.apply(&event).await.unwrap();
    }
    let summary = healthy.get("SUBJ-0001").await.unwrap().unwrap();
    assert_eq!(summary["lastStudyDate"], "20240102", "{summary}");
    assert_eq!(summary["instances"], 1);
    // Older and newer dates, in any order, redelivered: the latest wins, each counted once.
    for (upload, date) in [("u2", "20230101"), ("u3", "20250505"), ("u2", "20230101")] {
        let mut e = event.clone();
        e.upload_id = upload.into();
        e.event_id = format!("{upload}:upload.processed");
        e.study_date = Some(date.into());
        healthy.apply(&e).await.unwrap();
    }
    let summary = healthy.get("SUBJ-0001").await.unwrap().unwrap();
    assert_eq!(summary["lastStudyDate"], "20250505");
    assert_eq!(summary["instances"], 3);
    assert_eq!(
        healthy.apply(&event).await.unwrap(),
        Applied::AlreadyApplied
    );
}
