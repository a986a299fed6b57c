//! AWS failing as it does — throttling, server errors, connections closed without an answer before
//! the call reaches the emulator, and answers lost after it executed the call (a committed write
//! the SDK sends again) — injected by a proxy between every function and the emulator
//! (`fault_proxy`), while a client uploads clean, infected and non-DICOM files at once. Nothing is
//! lost: every upload ends with the outcome its bytes call for, and S3, the records, the index and
//! the summary reconcile. (The faults stop for the final reconciliation, so the summary's last
//! events may be applied without them.)

use clinflow_tests::fault_proxy::{FaultPlan, FaultProxy};
use clinflow_tests::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test]
async fn uploads_through_throttling_server_errors_resets_and_lost_answers_lose_nothing_and_reconcile(
) {
    let proxy = FaultProxy::start(
        &endpoint(),
        FaultPlan {
            seed: 0x5EED_0013,
            throttle_per_mille: 40,
            server_error_per_mille: 25,
            reset_per_mille: 15,
            lost_answer_per_mille: 20,
            ..FaultPlan::default()
        },
    )
    .await;
    // Redelivery of a failed ingest message after 1 s, not the template's 10.
    let app = spawn_pipeline_through(&proxy.endpoint, &[("IngestRetryBaseSeconds", "1")]).await;
    // 16 distinct clean instances, 4 infected, 4 not DICOM: what each must end as.
    let files = mixed_files(16, 1000, 4, 4);
    let started = Instant::now();
    let ids: Vec<String> =
        futures::future::join_all(files.iter().map(|(bytes, _)| app.upload_retrying(bytes))).await;
    // Every upload reaches its outcome (the record polled directly: the API is faulted too).
    app.wait_outcomes(&ids, &files).await;
    let took = started.elapsed();
    // The summary's consumer may still be applying the last outcomes: wait for its counts. An
    // event whose update failed all its SDK attempts returns after imaging-summary's backoff (5 s
    // doubling per receive), or after the queue's 180 s visibility timeout if even setting that
    // failed, so the wait is longer than that.
    proxy.enabled.store(false, Ordering::SeqCst);
    let reconciled = app
        .reconcile_within("SUBJ-0001", Duration::from_secs(200))
        .await;
    println!(
        "injected faults: {}; {}; {} uploads terminal in {took:?}",
        proxy.stats.summary(),
        reconciled.summary(),
        ids.len()
    );
    assert!(reconciled.problems.is_empty(), "{:#?}", reconciled.problems);
    assert_eq!(reconciled.processed, 16);
    assert_eq!(reconciled.quarantined, 8);
    assert_eq!(reconciled.failed, 0);
    // Every upload the client made is among the records listed.
    for id in &ids {
        assert!(reconciled.records.contains_key(id), "{id} not listed");
    }
    // The faults really struck, every kind of them, on the functions' calls.
    assert!(proxy.stats.throttled.load(Ordering::SeqCst) > 0);
    assert!(proxy.stats.server_errors.load(Ordering::SeqCst) > 0);
    assert!(proxy.stats.resets.load(Ordering::SeqCst) > 0);
    assert!(proxy.stats.lost_answers.load(Ordering::SeqCst) > 0);
    // The reconciliation has teeth: an accepted object altered, another deleted, and a summary
    // counter moved are each found and named.
    let (lost_id, lost) = reconciled
        .records
        .iter()
        .find(|(_, r)| r["status"] == "PROCESSED")
        .unwrap();
    let key = lost["processing"]["objectKey"].as_str().unwrap();
    app.stack
        .clients
        .s3
        .put_object()
        .bucket(app.bucket())
        .key(key)
        .body(b"altered".to_vec().into())
        .send()
        .await
        .unwrap();
    let (gone_id, gone) = reconciled
        .records
        .iter()
        .rfind(|(_, r)| r["status"] == "PROCESSED")
        .unwrap();
    let gone_key = gone["processing"]["objectKey"].as_str().unwrap();
    app.stack
        .clients
        .s3
        .delete_object()
        .bucket(app.bucket())
        .key(gone_key)
        .send()
        .await
        .unwrap();
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    app.stack
        .clients
        .dynamodb
        .update_item()
        .table_name(app.table("ImagingSummaryTable"))
        .key("subjectId", s("SUBJ-0001"))
        .key("item", s("SUMMARY"))
        .update_expression("ADD quarantined :one")
        .expression_attribute_values(
            ":one",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .send()
        .await
        .unwrap();
    let after = app.reconcile("SUBJ-0001").await;
    assert_eq!(after.problems.len(), 3, "{:#?}", after.problems);
    assert!(after.problems.contains(&format!(
        "{lost_id}: accepted bytes at {key} differ from the record"
    )));
    assert!(after.problems.contains(&format!(
        "{gone_id}: accepted bytes at {gone_key} are missing"
    )));
    assert!(
        after.problems[2].starts_with("summary quarantined = 9 but the records add up to 8"),
        "{:#?}",
        after.problems
    );
}

/// A client's call retried as a phone or a browser retries it: on 5xx, a dropped connection and
/// 429 (after its `Retry-After`, capped), the same request each time (the same `Idempotency-Key`,
/// the same `If-Match`). The first answer that is none of those.
async fn retried(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&serde_json::Value>,
) -> Reply {
    let mut pause = Duration::from_millis(100);
    for _ in 0..12 {
        let mut request = app
            .http
            .request(method.clone(), app.url(path))
            .bearer_auth(token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        if let Ok(response) = request.send().await {
            let reply = checked_reply(method.as_str(), path, response).await;
            if reply.status < 500 && reply.status != 429 {
                return reply;
            }
            if let Some(after) = reply
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            {
                pause = pause.max(Duration::from_secs(after.min(2)));
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    panic!("{method} {path}: no answer after 12 tries");
}

/// The whole stack behind a fault proxy with `plan`, the ePRO rate limit raised so that the
/// clients' retries are not refused, and a site staff token of BOS.
async fn clinical_through(plan: FaultPlan) -> (FaultProxy, TestApp, String) {
    let proxy = FaultProxy::start(&endpoint(), plan).await;
    let app = spawn_pipeline_through(
        &proxy.endpoint,
        &[
            ("EproRateLimitPerSecond", "50"),
            ("EproRateLimitBurst", "100"),
        ],
    )
    .await;
    let staff = app.token("site_staff", &[BOS]);
    (proxy, app, staff)
}

/// Enrolments, forms and diary entries written while AWS fails under the clinical function —
/// including answers lost after the write was committed, which the SDK then sends again — and
/// each request retried by its client, some twice over: every subject enrolled once, every form
/// stored at its version, every diary entry stored once under its key, and the audit trail holding
/// exactly one entry per change (a retried committed write is neither refused nor written twice).
#[tokio::test]
async fn clinical_writes_retried_through_lost_answers_are_stored_and_audited_once() {
    let (proxy, app, staff) = clinical_through(FaultPlan {
        seed: 0xC11_0013,
        throttle_per_mille: 30,
        server_error_per_mille: 20,
        reset_per_mille: 10,
        lost_answer_per_mille: 60,
        ..FaultPlan::default()
    })
    .await;
    const SUBJECTS: usize = 6;
    const ENTRIES: usize = 5;
    let subjects = futures::future::join_all((0..SUBJECTS).map(|i| {
        let (app, staff) = (&app, &staff);
        async move {
            let key = format!("LOST-{i:03}");
            let body = enrolment(TRIAL, BOS, &key);
            let first = retried(
                app,
                reqwest::Method::POST,
                "/v1/subjects",
                staff,
                &[],
                Some(&body),
            )
            .await;
            // 201, or 200 when an earlier attempt of this client had enrolled it.
            assert!(
                matches!(first.status, 200 | 201),
                "{}: {}",
                first.status,
                first.body
            );
            let id = first.body["subjectId"].as_str().unwrap().to_owned();
            // A double click: the same subject.
            let again = retried(
                app,
                reqwest::Method::POST,
                "/v1/subjects",
                staff,
                &[],
                Some(&body),
            )
            .await;
            assert_eq!(again.status, 200, "{}", again.body);
            assert_eq!(again.body["subjectId"], id.as_str());
            // A vital-signs form, created once (If-None-Match: *).
            let form = vital_signs(120 + i as i64, 80);
            let path = format!("/v1/subjects/{id}/forms/VS");
            let created = retried(
                app,
                reqwest::Method::PUT,
                &path,
                staff,
                &[("if-none-match", "*")],
                Some(&form),
            )
            .await;
            // 412 only if an earlier attempt of this request had stored it: then it is ours.
            assert!(
                matches!(created.status, 201 | 412),
                "{}: {}",
                created.status,
                created.body
            );
            let stored = retried(app, reqwest::Method::GET, &path, staff, &[], None).await;
            assert_eq!(stored.status, 200, "{}", stored.body);
            assert_eq!(stored.headers["etag"], "\"1\"");
            assert_eq!(
                stored.body["itemGroups"][0]["items"]["SYSBP"],
                120 + i as i64
            );
            // The patient's diary: each entry under its own key, then every one sent again.
            let patient = app.patient_token(&id);
            let epro = format!("/v1/subjects/{id}/epro");
            let mut answers = Vec::new();
            for e in 0..ENTRIES {
                let key = format!("{id}-entry-{e}");
                let entry = diary_entry(e as i64 + 1, e as i64);
                let r = retried(
                    app,
                    reqwest::Method::POST,
                    &epro,
                    &patient,
                    &[("idempotency-key", &key)],
                    Some(&entry),
                )
                .await;
                assert_eq!(r.status, 201, "{}", r.body);
                answers.push((key, entry, r.body));
            }
            for (key, entry, first) in &answers {
                let r = retried(
                    app,
                    reqwest::Method::POST,
                    &epro,
                    &patient,
                    &[("idempotency-key", key)],
                    Some(entry),
                )
                .await;
                assert_eq!(r.status, 201, "{}", r.body);
                assert_eq!(&r.body, first, "the first answer again");
            }
            id
        }
    }))
    .await;
    proxy.enabled.store(false, Ordering::SeqCst);
    println!("clinical writes under faults: {}", proxy.stats.summary());
    assert!(proxy.stats.lost_answers.load(Ordering::SeqCst) > 0);
    // One subject per key, nothing else enrolled at the site by this test.
    let listed = app
        .get(&format!("/v1/subjects?siteId={BOS}&limit=100"), &staff)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let keys: Vec<String> = listed.body["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["subjectKey"].as_str())
        .filter(|k| k.starts_with("LOST-"))
        .map(str::to_owned)
        .collect();
    assert_eq!(keys.len(), SUBJECTS, "{keys:?}");
    for id in &subjects {
        let diary = app.get(&format!("/v1/subjects/{id}/epro"), &staff).await;
        assert_eq!(
            diary.body["entries"].as_array().unwrap().len(),
            ENTRIES,
            "{id}"
        );
        let mut changes = app.subject_changes(id).await;
        changes.sort();
        let mut expected = vec!["subject.enrol".to_owned(), "form.create".to_owned()];
        expected.extend((0..ENTRIES).map(|_| "epro.submit".to_owned()));
        expected.sort();
        assert_eq!(changes, expected, "{id}: one audit entry per change");
    }
}

/// Every DynamoDB write's first answer lost after the emulator executed it, deterministically: the
/// SDK's retry (the same request) meets the write already done. Each is recognised as its own —
/// the enrolment and the form creation answer 201 (not "already enrolled" 200, nor 412 for the
/// client's own form), an audited read answers 200 with one audit entry (not 500), the diary
/// entry 201, an upload's processing claim is its own (not "being processed" until its deadline):
/// the upload ends PROCESSED in seconds, and an export's claim and finish are the worker's own:
/// DONE in seconds. Each of these failed before its fix (DynamoDB's ClientRequestToken in the
/// local emulator, the audit append, the processing claim, the rate limiter, the export claim).
#[tokio::test]
async fn every_committed_write_whose_answer_was_lost_is_recognised_when_retried() {
    let (proxy, app, staff) = clinical_through(FaultPlan {
        lose_first_answer_of: &[
            "DynamoDB_20120810.PutItem",
            "DynamoDB_20120810.UpdateItem",
            "DynamoDB_20120810.TransactWriteItems",
        ],
        ..FaultPlan::default()
    })
    .await;
    let enrolled = app
        .enrol(&staff, &enrolment(TRIAL, BOS, "LOST-FIRST"))
        .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    let id = enrolled.body["subjectId"].as_str().unwrap().to_owned();
    let form = app
        .put_form(&staff, &id, "VS", None, &vital_signs(131, 86))
        .await;
    assert_eq!(form.status, 201, "{}", form.body);
    let read = app
        .get(&format!("/v1/subjects/{id}/forms/VS"), &staff)
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    let patient = app.patient_token(&id);
    let entry = app
        .post_epro(&patient, &id, "lost-first-1", &diary_entry(2, 5))
        .await;
    assert_eq!(entry.status, 201, "{}", entry.body);
    let bytes = synthetic_dicom(4242, 4096, 42);
    let created = app.upload(&declaration("SUBJ-0001", &bytes), &bytes).await;
    let upload_id = created["uploadId"].as_str().unwrap();
    let record = app
        .wait_status(upload_id, &["PROCESSED", "QUARANTINED", "FAILED"], 60)
        .await;
    assert_eq!(record["status"], "PROCESSED", "{record}");
    // The summary's writes lost their first answers too: it still counts the upload once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let reconciled = loop {
        let r = app.reconcile("SUBJ-0001").await;
        if r.problems.is_empty() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(reconciled.problems.is_empty(), "{:#?}", reconciled.problems);
    assert_eq!(reconciled.processed, 1);
    // An export of the subject's data: the worker's claim and its finish lose their first answers
    // too, and are its own (before, the claim was "busy" and the export waited out the queue's
    // 90-minute visibility timeout in RUNNING).
    let requested = app
        .post(
            &format!("/v1/subjects/{id}/exports"),
            &staff,
            &serde_json::json!({"format": "csv"}),
        )
        .await;
    assert_eq!(requested.status, 202, "{}", requested.body);
    let export_id = requested.body["exportId"].as_str().unwrap().to_owned();
    let done = app
        .wait_for_export(&export_id, &staff, Duration::from_secs(60))
        .await;
    assert_eq!(done["status"], "DONE", "{done}");
    proxy.enabled.store(false, Ordering::SeqCst);
    println!("first answers lost: {}", proxy.stats.summary());
    assert!(proxy.stats.lost_answers.load(Ordering::SeqCst) >= 6);
    // One audit entry per change, and one for the read.
    let mut changes = app.subject_changes(&id).await;
    changes.sort();
    assert_eq!(
        changes,
        [
            "epro.submit",
            "form.create",
            "subject.enrol",
            "subject.export",
            "subject.export.download"
        ]
    );
    let reads = app.subject_actors(&id, "read.form.VS").await.len();
    assert_eq!(reads, 1, "one audited read");
}
