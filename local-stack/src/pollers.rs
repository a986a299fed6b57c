//! SQS event-source mappings and schedules, as Lambda runs them, for the local stack.
//!
//! A mapping polls its queue with up to `MaximumConcurrency` pollers; each receives up to `BatchSize`
//! messages, hands them to the function as one `SqsEvent` with a deadline of the function's timeout,
//! and then:
//! - with `ReportBatchItemFailures`: deletes every message but the ones the response names (a
//!   response naming an id that is not in the batch fails the whole batch, as Lambda does);
//! - without it: deletes all on success;
//! - on an error or a timeout: deletes none.
//!
//! Messages not deleted come back after the queue's visibility timeout; SQS itself moves a message to
//! the dead-letter queue after `maxReceiveCount` receives (the queue's redrive policy).

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;

/// A function triggered by an SQS queue (the signature `lambda_runtime::run` gives it in AWS).
#[async_trait]
pub trait SqsFunction: Send + Sync {
    async fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error>;
}

/// A function triggered by an EventBridge schedule.
#[async_trait]
pub trait ScheduledFunction: Send + Sync {
    async fn invoke(&self, event: LambdaEvent<Value>) -> Result<(), lambda_runtime::Error>;
}

#[derive(Debug, Clone)]
pub struct EventSourceMapping {
    pub function_name: String,
    pub function_arn: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// 1 to 10 (one ReceiveMessage call; the local stack uses no batching window).
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: concurrent pollers (and invocations) for this mapping.
    pub maximum_concurrency: usize,
    pub function_timeout: Duration,
    /// Long-poll wait; short locally so a stopping stack does not hang.
    pub wait_seconds: i32,
}

/// What happened to one batch (the tests read these through the log, the stack ignores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    Empty,
    Done { deleted: usize, kept: usize },
}

pub fn spawn(
    mapping: EventSourceMapping,
    function: Arc<dyn SqsFunction>,
    sqs: aws_sdk_sqs::Client,
) -> Vec<JoinHandle<()>> {
    let mapping = Arc::new(mapping);
    (0..mapping.maximum_concurrency.max(1))
        .map(|_| {
            let (mapping, function, sqs) = (Arc::clone(&mapping), Arc::clone(&function), sqs.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = poll_once(&mapping, function.as_ref(), &sqs).await {
                        tracing::warn!(function = %mapping.function_name, error = %e, "poller error; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            })
        })
        .collect()
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Receives one batch, invokes the function, deletes what succeeded.
pub async fn poll_once(
    mapping: &EventSourceMapping,
    function: &dyn SqsFunction,
    sqs: &aws_sdk_sqs::Client,
) -> Result<BatchOutcome, String> {
    let received = sqs
        .receive_message()
        .queue_url(&mapping.queue_url)
        .max_number_of_messages(mapping.batch_size.clamp(1, 10))
        .wait_time_seconds(mapping.wait_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(BatchOutcome::Empty);
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({
                            "stringValue": v.string_value(),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": v.data_type(),
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_arn,
                "awsRegion": mapping.region,
            })
        })
        .collect();
    let event: SqsEvent =
        serde_json::from_value(json!({ "Records": records })).map_err(|e| e.to_string())?;
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = now_millis() + mapping.function_timeout.as_millis() as u64;
    context.invoked_function_arn = mapping.function_arn.clone();

    let result = tokio::time::timeout(
        mapping.function_timeout,
        function.invoke(LambdaEvent::new(event, context)),
    )
    .await;
    let ids: HashSet<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
    let failed: Option<HashSet<String>> = match result {
        Ok(Ok(response)) if mapping.report_batch_item_failures => {
            let named: HashSet<String> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            if named.iter().all(|id| ids.contains(id.as_str())) {
                Some(named)
            } else {
                tracing::warn!(function = %mapping.function_name, "batch response names unknown ids: the whole batch fails");
                None
            }
        }
        Ok(Ok(_)) => Some(HashSet::new()),
        Ok(Err(e)) => {
            tracing::warn!(function = %mapping.function_name, error = %e, "invocation failed: the whole batch returns to the queue");
            None
        }
        Err(_) => {
            tracing::warn!(function = %mapping.function_name, "invocation timed out: the whole batch returns to the queue");
            None
        }
    };
    let Some(failed) = failed else {
        return Ok(BatchOutcome::Done {
            deleted: 0,
            kept: messages.len(),
        });
    };
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .filter(|m| m.message_id().is_some_and(|id| !failed.contains(id)))
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                .build()
                .ok()
        })
        .collect();
    let deleted = entries.len();
    if !entries.is_empty() {
        sqs.delete_message_batch()
            .queue_url(&mapping.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
    }
    Ok(BatchOutcome::Done {
        deleted,
        kept: messages.len() - deleted,
    })
}

/// `rate(N unit)` as a period; `cron(...)` schedules are not run locally.
pub fn parse_rate(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86400,
        _ => return None,
    };
    Some(Duration::from_secs(n * seconds))
}

/// Fires a scheduled function every period (the first time one period after start: the stack
/// fires it once as it starts, [`fire_schedule`]), with the EventBridge "Scheduled Event" shape.
pub fn spawn_schedule(
    function_name: String,
    rule_arn: String,
    account: String,
    region: String,
    period: Duration,
    timeout: Duration,
    function: Arc<dyn ScheduledFunction>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticker.tick().await;
            fire_schedule(
                &function_name,
                &rule_arn,
                &account,
                &region,
                timeout,
                function.as_ref(),
            )
            .await;
        }
    })
}

/// One scheduled invocation, as EventBridge makes it; failures are logged (as Lambda would record
/// them), never raised.
pub async fn fire_schedule(
    function_name: &str,
    rule_arn: &str,
    account: &str,
    region: &str,
    timeout: Duration,
    function: &dyn ScheduledFunction,
) {
    let event = json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    });
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = now_millis() + timeout.as_millis() as u64;
    match tokio::time::timeout(timeout, function.invoke(LambdaEvent::new(event, context))).await {
        Ok(Ok(())) => tracing::info!(function = %function_name, "schedule fired"),
        Ok(Err(e)) => {
            tracing::warn!(function = %function_name, error = %e, "scheduled invocation failed")
        }
        Err(_) => {
            tracing::warn!(function = %function_name, "scheduled invocation timed out")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rate;
    use std::time::Duration;

    #[test]
    fn rates() {
        assert_eq!(
            parse_rate("rate(5 minutes)"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_rate("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_rate("rate(0 minutes)"), None);
        assert_eq!(parse_rate("cron(0 12 * * ? *)"), None);
    }
}
