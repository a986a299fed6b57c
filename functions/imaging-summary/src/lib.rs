//! imaging-summary: the imaging-events queue's consumer (template.yaml: ImagingSummaryFunction).
//! Each outcome process-dicom publishes updates the subject's imaging summary
//! ([`shared::store::summary`]) exactly once, whatever the deliveries; one bad message fails alone.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::store::summary::{DynamoImagingSummary, ImagingEvent};
use tracing::Instrument;

pub struct Summarizer {
    summary: DynamoImagingSummary,
}

impl Summarizer {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self {
            summary: DynamoImagingSummary::new(
                clients.dynamodb.clone(),
                env.required("IMAGING_SUMMARY_TABLE")?,
            ),
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
            .instrument(span)
            .await;
            shared::metrics::Metrics::new("imaging-summary")
                .dimension("Result", result)
                .count("Events", 1)
                .emit();
            if result != "APPLIED" {
                response.add_failure(id);
            }
        }
        Ok(response)
    }
}
