//! Races a client can provoke from outside, run many times.
//!
//! The race seen by a new user (a client polling `GET /v1/uploads/{id}` every second right after
//! its PUT; a truncated DICOM stayed non-terminal for more than 120 s, its message waiting out the
//! 5,400 s visibility timeout) had two causes. The read wrote: the first GET after a single PUT
//! recorded RECEIVED, racing the processor's own transition. And moto did not isolate the two
//! transactions: its TransactWriteItems checks its conditions, then writes, with no lock, so the
//! read's AWAITING_UPLOAD → RECEIVED and the processor's AWAITING_UPLOAD → PROCESSING both passed
//! their conditions, and the processor's final PROCESSING → QUARANTINED was refused. Real DynamoDB
//! isolates transactional writes. Now a read writes nothing, and the local stack's moto serialises
//! DynamoDB requests (local-stack/moto_server.py).

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use clinflow_tests::*;

/// Real DynamoDB: of concurrent transactions conditioned on the same state, exactly one applies.
#[tokio::test]
async fn concurrent_conditional_transactions_on_one_item_apply_once() {
    let app = spawn_app().await;
    let table = app.table("UploadsTable");
    let db = app.stack.clients.dynamodb.clone();
    for round in 0..40 {
        let id = format!("race-{round}");
        db.put_item()
            .table_name(&table)
            .item("uploadId", AttributeValue::S(id.clone()))
            .item("status", AttributeValue::S("A".into()))
            .send()
            .await
            .unwrap();
        let attempts = (0..8).map(|writer| {
            let (db, table, id) = (db.clone(), table.clone(), id.clone());
            tokio::spawn(async move {
                let update = Update::builder()
                    .table_name(table)
                    .key("uploadId", AttributeValue::S(id))
                    .condition_expression("#s = :from")
                    .update_expression("SET #s = :to")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(":from", AttributeValue::S("A".into()))
                    .expression_attribute_values(":to", AttributeValue::S(format!("B{writer}")))
                    .build()
                    .unwrap();
                db.transact_write_items()
                    .transact_items(TransactWriteItem::builder().update(update).build())
                    .send()
                    .await
                    .is_ok()
            })
        });
        let mut applied = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            applied += usize::from(attempt.await.unwrap());
        }
        assert_eq!(applied, 1, "round {round}: one transaction applies");
    }
}

/// Real DynamoDB: TransactWriteItems is idempotent by its ClientRequestToken for 10 minutes (the
/// SDK fills one in per call and keeps it across its retries), so a transaction retried after its
/// answer was lost is answered as the first and writes nothing more; the same token with another
/// request is refused. moto ignores the token; the local stack's moto honours it.
#[tokio::test]
async fn a_transaction_sent_again_with_its_token_is_answered_as_before_and_writes_once() {
    let app = spawn_app().await;
    let table = app.table("UploadsTable");
    let db = app.stack.clients.dynamodb.clone();
    let add = |by: &str| {
        let update = Update::builder()
            .table_name(&table)
            .key("uploadId", AttributeValue::S("token-retry".into()))
            .condition_expression("attribute_not_exists(#n) OR #n < :ten")
            .update_expression("ADD #n :by")
            .expression_attribute_names("#n", "count")
            .expression_attribute_values(":by", AttributeValue::N(by.into()))
            .expression_attribute_values(":ten", AttributeValue::N("10".into()))
            .build()
            .unwrap();
        TransactWriteItem::builder().update(update).build()
    };
    let send = |item: TransactWriteItem, token: &str| {
        db.transact_write_items()
            .transact_items(item)
            .client_request_token(token)
            .send()
    };
    let count = || async {
        let item = db
            .get_item()
            .table_name(&table)
            .key("uploadId", AttributeValue::S("token-retry".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        item["count"].as_n().unwrap().clone()
    };
    // Tokens of this run only (an emulator shared through AWS_ENDPOINT_URL keeps them 10 minutes).
    let (a, b) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    send(add("1"), &a).await.unwrap();
    assert_eq!(count().await, "1");
    // The same call again (a retry after a lost answer): success, nothing written.
    send(add("1"), &a).await.unwrap();
    send(add("1"), &a).await.unwrap();
    assert_eq!(count().await, "1");
    // The same token with another request is refused, and writes nothing.
    let mismatch = send(add("5"), &a).await.unwrap_err();
    assert!(
        mismatch
            .as_service_error()
            .is_some_and(|e| e.is_idempotent_parameter_mismatch_exception()),
        "{mismatch:?}"
    );
    assert_eq!(count().await, "1");
    // A new token is a new call.
    send(add("1"), &b).await.unwrap();
    assert_eq!(count().await, "2");
}

/// Uploads polled from the moment their PUT returns, many at once: every one reaches its terminal
/// state promptly (a refused write left to the visibility timeout would take 90 minutes), and the
/// reads left no trace in the audit trail.
#[tokio::test]
async fn uploads_polled_while_they_are_processed_all_end_promptly() {
    let app = spawn_pipeline(&[]).await;
    let good = dicom_file("CT_small.dcm");
    let truncated = good[..700].to_vec();
    let files: Vec<Vec<u8>> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                truncated.clone()
            } else {
                synthetic_dicom(i, 4096, i as u8)
            }
        })
        .collect();
    let started = std::time::Instant::now();
    let polls = files.iter().map(|bytes| {
        let app = &app;
        async move {
            let created = app.upload(&declaration("SUBJ-0001", bytes), bytes).await;
            let id = created["uploadId"].as_str().unwrap().to_owned();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
            loop {
                let r = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
                let status = r.body["status"].as_str().unwrap_or("").to_owned();
                if ["PROCESSED", "QUARANTINED", "FAILED"].contains(&status.as_str()) {
                    return (id, r.body);
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "still {status} after 90 s: {}",
                    r.body
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    });
    let ends = futures_join_all(polls).await;
    for (i, (id, record)) in ends.iter().enumerate() {
        let want = if i % 2 == 0 {
            "QUARANTINED"
        } else {
            "PROCESSED"
        };
        assert_eq!(record["status"], want, "{record}");
        let trail: Vec<String> = app
            .audit_trail(id)
            .await
            .iter()
            .map(|e| e["new"].as_s().unwrap().clone())
            .collect();
        assert_eq!(
            trail,
            vec!["AWAITING_UPLOAD", "PROCESSING", want],
            "each transition once, none by a read"
        );
    }
    // Every delivery was deleted by the event source mapping (with the function's own role): the
    // ingest queue ends empty, nothing in flight.
    let queue = app.stack.queue("IngestQueue").unwrap().url.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let attributes = app
            .stack
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(&queue)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} ingest messages never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!(
        "12 polled uploads terminal in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// `join_all` without a dependency: the futures run concurrently on this task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, out) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *out = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("ready")).collect()
}

/// Found by the fault-injecting soak: an upload's outcome and its PROCESSING event handled by two
/// invocations at once. The outcome's first step (PROCESSING → final) found no marker; the
/// PROCESSING event then wrote its marker (pending +1); the outcome's second step (a marker where
/// none was) found one, its third (FAILED → final) did not apply either — and the outcome was
/// dropped as a redelivery: pending stayed 1, the quarantine was never counted. Here the
/// interleaving is forced: the outcome's client stops before its second transaction until the
/// PROCESSING event has been applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_racing_its_processing_event_is_counted_once() {
    use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
    use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
    use shared::store::summary::{Applied, DynamoImagingSummary, ImagingEvent};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{mpsc, Arc, Mutex};

    /// Holds the outcome's second TransactWriteItems until told to go.
    #[derive(Debug)]
    struct Pause {
        calls: AtomicU32,
        reached: Mutex<mpsc::Sender<()>>,
        go: Mutex<mpsc::Receiver<()>>,
    }
    impl Intercept for Pause {
        fn name(&self) -> &'static str {
            "Pause"
        }
        fn read_before_transmit(
            &self,
            _: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
                self.reached.lock().unwrap().send(()).unwrap();
                // Off the runtime's worker: its other tasks (the connection pool's) move on.
                tokio::task::block_in_place(|| self.go.lock().unwrap().recv().unwrap());
            }
            Ok(())
        }
    }

    let app = spawn_app().await;
    let table = app.table("ImagingSummaryTable");
    // Under the function's own role: its marker read needs the template's GetItem grant.
    let client = app
        .stack
        .function_clients("ImagingSummaryFunction")
        .await
        .dynamodb;
    let (reached_tx, reached_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let paused = aws_sdk_dynamodb::Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(Pause {
                calls: AtomicU32::new(0),
                reached: Mutex::new(reached_tx),
                go: Mutex::new(go_rx),
            })
            .build(),
    );
    let event = |kind: &str| -> ImagingEvent {
        serde_json::from_value(serde_json::json!({
            "eventId": format!("u1:{kind}"), "type": kind, "uploadId": "u1",
            "subjectId": "SUBJ-0001", "trialId": "CLIN-DEMO-01", "siteId": "SITE-BOS-01",
            "correlationId": "c", "at": "2026-11-27T10:00:00Z",
            "reason": "malware: Clinflow.Test.Eicar"}))
        .unwrap()
    };
    let outcome = Arc::new(DynamoImagingSummary::new(paused, &table));
    let healthy = DynamoImagingSummary::new(client, &table);
    let racing = {
        let (outcome, e) = (Arc::clone(&outcome), event("upload.quarantined"));
        tokio::spawn(async move { outcome.apply(&e).await })
    };
    tokio::task::spawn_blocking(move || reached_rx.recv().unwrap())
        .await
        .unwrap();
    assert_eq!(
        healthy.apply(&event("upload.processing")).await.unwrap(),
        Applied::Counted
    );
    go_tx.send(()).unwrap();
    assert_eq!(racing.await.unwrap().unwrap(), Applied::Counted);
    let summary = healthy.get("SUBJ-0001").await.unwrap().unwrap();
    assert_eq!(summary["quarantined"], 1, "{summary}");
    assert_eq!(summary["pending"], 0, "{summary}");
    // Delivered again, either event: nothing more.
    for kind in ["upload.quarantined", "upload.processing"] {
        assert_eq!(
            healthy.apply(&event(kind)).await.unwrap(),
            Applied::AlreadyApplied
        );
    }
    let again = healthy.get("SUBJ-0001").await.unwrap().unwrap();
    assert_eq!(again, summary);
}
