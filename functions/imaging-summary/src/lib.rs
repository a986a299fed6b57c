//! imaging-summary: the imaging-events queue's consumer (template.yaml: ImagingSummaryFunction).
//! Each outcome process-dicom publishes updates the subject's imaging summary
//! ([`shared::store::summary`]) exactly once, whatever the deliveries; one bad message fails alone.
//! A failed message comes back after an exponential backoff set with ChangeMessageVisibility
//! (`RETRY_BASE_SECONDS`, doubling per receive up to `RETRY_MAX_SECONDS`), not after the queue's
//! whole visibility timeout: a throttled burst is applied within seconds, and a long outage still
//! has the queue's `maxReceiveCount` receives spread over many minutes before the DLQ.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::resilience::backoff;
use shared::store::sqs::SqsVisibility;
use shared::store::summary::{DynamoImagingSummary, ImagingEvent};
use shared::store::MessageVisibility;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

pub struct Summarizer {
    summary: DynamoImagingSummary,
    visibility: Arc<dyn MessageVisibility>,
    retry_base: Duration,
    retry_max: Duration,
}

impl Summarizer {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self {
            summary: DynamoImagingSummary::new(
                clients.dynamodb.clone(),
                env.required("IMAGING_SUMMARY_TABLE")?,
            ),
            visibility: Arc::new(SqsVisibility::new(
                clients.sqs.clone(),
                env.required("IMAGING_EVENTS_QUEUE_URL")?,
            )),
            retry_base: Duration::from_secs(env.parsed_or("RETRY_BASE_SECONDS", 5)?),
            retry_max: Duration::from_secs(env.parsed_or("RETRY_MAX_SECONDS", 180)?),
        })
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let mut response = SqsBatchResponse::default();
        for record in event.payload.records {
            let id = record.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!("message", request_id = %event.context.request_id, message_id = %id);
            let result = async {
                let parsed: Result<ImagingEvent, _> =
                    serde_json::from_str(record.body.as_deref().unwrap_or(""));
                match parsed {
                    Err(e) => {
                        tracing::warn!(error = %e, "not an imaging event; it will end in the DLQ");
                        "MALFORMED"
                    }
                    Ok(imaging) => match self.summary.apply(&imaging).await {
                        Ok(applied) => {
                            tracing::info!(kind = %imaging.kind, applied = ?applied, "imaging event");
                            "APPLIED"
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "summary not updated; the message returns to the queue");
                            "RETRY"
                        }
                    },
                }
            }
            .instrument(span.clone())
            .await;
            shared::metrics::Metrics::new("imaging-summary")
                .dimension("Result", result)
                .count("Events", 1)
                .emit();
            if result != "APPLIED" {
                let delay = self
                    .retry_delay(&record, result == "MALFORMED")
                    .instrument(span)
                    .await;
                tracing::debug!(retry_in_seconds = delay, "message returned");
                response.add_failure(id);
            }
        }
        Ok(response)
    }

    /// Sets a failed message's visibility to its backoff (a malformed one: at once, on its way to
    /// the DLQ); the delay, or -1 when it could not be set (the queue's visibility timeout applies).
    async fn retry_delay(&self, record: &SqsMessage, malformed: bool) -> i32 {
        let delay = if malformed {
            0
        } else {
            backoff::exponential(
                self.retry_base,
                self.retry_max,
                backoff::receive_count(&record.attributes),
                backoff::jitter(record.message_id.as_deref().unwrap_or("")),
            )
        };
        let Some(handle) = record.receipt_handle.as_deref() else {
            return -1;
        };
        match self.visibility.delay(handle, delay).await {
            Ok(()) => delay,
            Err(e) => {
                tracing::warn!(error = %e, "retry delay not set; the queue's visibility timeout applies");
                -1
            }
        }
    }
}
