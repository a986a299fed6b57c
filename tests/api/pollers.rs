//! The local stack's SQS event-source mapping: batch size, partial batch failures, whole-batch
//! failure on an error, and redrive to the DLQ after maxReceiveCount — against the emulator's SQS.

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use clinflow_tests::*;
use lambda_runtime::LambdaEvent;
use local_stack::pollers::{poll_once, BatchOutcome, EventSourceMapping, SqsFunction};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Consumer {
    /// Bodies this consumer cannot process (reported as batch item failures).
    poison: Vec<String>,
    /// Fail the whole invocation.
    error: bool,
    /// Name an id that is not in the batch.
    bogus: bool,
    batches: Mutex<Vec<Vec<String>>>,
}

#[async_trait]
impl SqsFunction for Consumer {
    async fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        assert!(event.context.deadline > 0);
        let bodies: Vec<String> = event
            .payload
            .records
            .iter()
            .map(|r| r.body.clone().unwrap_or_default())
            .collect();
        self.batches.lock().unwrap().push(bodies);
        if self.error {
            return Err("consumer failed".into());
        }
        let mut response = SqsBatchResponse::default();
        for r in &event.payload.records {
            assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
            if self.poison.contains(r.body.as_ref().unwrap()) {
                response.add_failure(r.message_id.clone().unwrap());
            }
        }
        if self.bogus {
            response.add_failure("not-in-this-batch");
        }
        Ok(response)
    }
}

struct Queues {
    mapping: EventSourceMapping,
    dlq_url: String,
}

async fn queues(app: &TestApp, name: &str, report: bool) -> Queues {
    let sqs = &app.stack.clients.sqs;
    let prefix = &app.stack.template.stack_name;
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{prefix}-{name}-dlq"))
        .send()
        .await
        .unwrap();
    let dlq_url = dlq.queue_url.unwrap();
    let dlq_arn = format!("arn:aws:sqs:us-east-1:123456789012:{prefix}-{name}-dlq");
    let q = sqs
        .create_queue()
        .queue_name(format!("{prefix}-{name}"))
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string(),
        )
        .send()
        .await
        .unwrap();
    Queues {
        mapping: EventSourceMapping {
            function_name: "TestConsumer".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
            queue_url: q.queue_url.unwrap(),
            queue_arn: format!("arn:aws:sqs:us-east-1:123456789012:{prefix}-{name}"),
            region: "us-east-1".into(),
            batch_size: 3,
            report_batch_item_failures: report,
            maximum_concurrency: 1,
            function_timeout: Duration::from_secs(5),
            wait_seconds: 1,
        },
        dlq_url,
    }
}

async fn send(app: &TestApp, url: &str, bodies: &[&str]) {
    for b in bodies {
        app.stack
            .clients
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(*b)
            .send()
            .await
            .unwrap();
    }
}

async fn count(app: &TestApp, url: &str) -> usize {
    let attrs = app
        .stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    attrs.values().map(|v| v.parse::<usize>().unwrap()).sum()
}

#[tokio::test]
async fn partial_batch_failures_come_back_and_end_in_the_dead_letter_queue() {
    let app = spawn_app().await;
    let q = queues(&app, "partial", true).await;
    send(&app, &q.mapping.queue_url, &["a", "b", "poison", "c", "d"]).await;
    let consumer = Consumer {
        poison: vec!["poison".into()],
        ..Default::default()
    };
    let sqs = app.stack.clients.sqs.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&app, &q.dlq_url).await == 0 {
        assert!(Instant::now() < deadline, "poison never reached the DLQ");
        poll_once(&q.mapping, &consumer, &sqs).await.unwrap();
    }
    assert_eq!(
        count(&app, &q.mapping.queue_url).await,
        0,
        "everything else deleted"
    );
    let batches = consumer.batches.lock().unwrap().clone();
    assert!(
        batches.iter().all(|b| b.len() <= 3),
        "batch size: {batches:?}"
    );
    let seen: Vec<&String> = batches.iter().flatten().collect();
    for body in ["a", "b", "c", "d"] {
        assert_eq!(
            seen.iter().filter(|s| s.as_str() == body).count(),
            1,
            "{body} delivered once"
        );
    }
    assert_eq!(
        seen.iter().filter(|s| s.as_str() == "poison").count(),
        2,
        "maxReceiveCount 2"
    );
    let dead = app.drain_queue_url(&q.dlq_url).await;
    assert_eq!(dead, vec!["poison".to_owned()]);
}

#[tokio::test]
async fn an_error_or_a_bogus_response_fails_the_whole_batch() {
    let app = spawn_app().await;
    let sqs = app.stack.clients.sqs.clone();

    let q = queues(&app, "error", true).await;
    send(&app, &q.mapping.queue_url, &["x", "y"]).await;
    let failing = Consumer {
        error: true,
        ..Default::default()
    };
    let mut outcome = BatchOutcome::Empty;
    while outcome == BatchOutcome::Empty {
        outcome = poll_once(&q.mapping, &failing, &sqs).await.unwrap();
    }
    assert!(
        matches!(outcome, BatchOutcome::Done { deleted: 0, .. }),
        "{outcome:?}"
    );
    assert_eq!(count(&app, &q.mapping.queue_url).await, 2);

    let q = queues(&app, "bogus", true).await;
    send(&app, &q.mapping.queue_url, &["x"]).await;
    let bogus = Consumer {
        bogus: true,
        ..Default::default()
    };
    let mut outcome = BatchOutcome::Empty;
    while outcome == BatchOutcome::Empty {
        outcome = poll_once(&q.mapping, &bogus, &sqs).await.unwrap();
    }
    assert_eq!(
        outcome,
        BatchOutcome::Done {
            deleted: 0,
            kept: 1
        }
    );

    // Without ReportBatchItemFailures a successful invocation deletes the whole batch.
    let q = queues(&app, "plain", false).await;
    send(&app, &q.mapping.queue_url, &["x", "poison"]).await;
    let plain = Consumer {
        poison: vec!["poison".into()],
        ..Default::default()
    };
    let mut deleted = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while deleted < 2 && Instant::now() < deadline {
        if let BatchOutcome::Done { deleted: d, .. } =
            poll_once(&q.mapping, &plain, &sqs).await.unwrap()
        {
            deleted += d;
        }
    }
    assert_eq!(deleted, 2);
}
