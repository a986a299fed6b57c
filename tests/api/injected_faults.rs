//! AWS failing as it does — throttling, server errors, connections closed without an answer, each
//! before the call reaches the emulator — injected by a proxy between every function and the
//! emulator (`fault_proxy`), while a client uploads clean, infected and non-DICOM files at once.
//! Nothing is lost: every upload ends with the outcome its bytes call for, and S3, the records, the
//! index and the summary reconcile. (The faults stop for the final reconciliation, so the summary's
//! last events may be applied without them.)

use clinflow_tests::fault_proxy::{FaultPlan, FaultProxy};
use clinflow_tests::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Declares and sends `bytes` as a front-end would, retrying what a front-end retries; the upload
/// id.
async fn upload(app: &TestApp, bytes: &[u8]) -> String {
    let created = app
        .call_retrying(
            "POST",
            "/v1/uploads",
            Some(&declaration("SUBJ-0001", bytes)),
            8,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let plan = &created.body["upload"];
    assert_eq!(plan["mode"], "single", "small files: one PUT");
    let put = app.send_presigned(plan, bytes.to_vec()).await;
    assert_eq!(put.status(), 200);
    created.body["uploadId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn uploads_through_throttling_server_errors_and_resets_lose_nothing_and_reconcile() {
    let proxy = FaultProxy::start(
        &endpoint(),
        FaultPlan {
            seed: 0x5EED_0013,
            throttle_per_mille: 40,
            server_error_per_mille: 25,
            reset_per_mille: 15,
        },
    )
    .await;
    // Redelivery of a failed ingest message after 1 s, not the template's 10.
    let app = spawn_pipeline_through(&proxy.endpoint, &[("IngestRetryBaseSeconds", "1")]).await;
    let ct = dicom_file("CT_small.dcm");
    let with_eicar = with_eicar(&ct);
    let noise: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    // 16 distinct clean instances, 4 infected, 4 not DICOM: what each must end as.
    let mut files: Vec<(Vec<u8>, &str)> = (0..16u32)
        .map(|i| (synthetic_dicom(1000 + i, 4096, i as u8), "PROCESSED"))
        .collect();
    files.extend((0..4).map(|_| (with_eicar.clone(), "QUARANTINED")));
    files.extend((0..4u8).map(|i| {
        let mut n = noise.clone();
        n[0] = i;
        (n, "QUARANTINED")
    }));
    let started = Instant::now();
    let ids: Vec<String> =
        futures::future::join_all(files.iter().map(|(bytes, _)| upload(&app, bytes))).await;
    // Every upload reaches its outcome (the record polled directly: the API is faulted too).
    for (id, (_, expected)) in ids.iter().zip(&files) {
        let record = app
            .wait_status(id, &["PROCESSED", "QUARANTINED", "FAILED"], 240)
            .await;
        assert_eq!(record["status"], *expected, "{id}: {record}");
    }
    let took = started.elapsed();
    // The summary's consumer may still be applying the last outcomes: wait for its counts. An
    // event whose update failed all its SDK attempts returns after the queue's visibility timeout
    // (180 s in template.yaml), so the wait is longer than that.
    let deadline = Instant::now() + Duration::from_secs(200);
    proxy.enabled.store(false, Ordering::SeqCst);
    let reconciled = loop {
        let r = app.reconcile("SUBJ-0001").await;
        if r.problems.is_empty() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
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
