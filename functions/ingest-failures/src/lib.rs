//! ingest-failures: the ingest dead-letter queue's consumer (template.yaml: IngestFailuresFunction).
//!
//! A message lands here when process-dicom failed it `maxReceiveCount` times (each retry after
//! an exponential backoff). Its object's upload is not left waiting for ever: it ends `FAILED`,
//! with a reason saying what is known (how often it was received, the last error process-dicom
//! recorded on its claim), audited in the same transaction, and `upload.failed` is published so
//! the imaging summary stops counting it as pending.
//!
//! - From `PROCESSING`, and also from `AWAITING_UPLOAD` / `RECEIVED`: the object arrived (the
//!   message is its S3 event) but processing never started — e.g. no scanner could be loaded.
//! - Already `FAILED`: `upload.failed` is published again (a crash between the two, or a
//!   redelivery; consumers recognise the event id), nothing else.
//! - `PROCESSED`, `QUARANTINED`, `ABORTED`: ended otherwise; nothing to do.
//! - A delivery still holds the upload's lock (a duplicate event dead-lettered while another is
//!   being processed): not failed; the message is handed back and looked at again later.
//!
//! The object stays where it is (`incoming/`): nothing uploaded is lost, and an operator can
//! reprocess it. A body that is not an S3 notification names no upload: it is kept on the
//! dead-letter queue (a failure reported every time), where the queue-depth alarm shows it.

mod config;
mod failure;

pub use config::Config;
pub use failure::{Ended, IngestFailures, Ports, ACTOR};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use shared::metrics::Metrics;
use shared::notification::{self, Notification};
use tracing::Instrument;

impl IngestFailures {
    /// One invocation: each message on its own; what could not be recorded stays on the queue.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let mut response = SqsBatchResponse::default();
        for record in event.payload.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!(
                "dead_letter",
                request_id = %event.context.request_id,
                message_id = %message_id,
                upload = tracing::field::Empty,
                correlation_id = tracing::field::Empty,
            );
            let receive_count: u32 = record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let body = record.body.as_deref().unwrap_or("");
            let results: Vec<&'static str> = match notification::parse(body) {
                Err(e) => {
                    tracing::error!(parent: &span, error = %e, "dead-lettered message names no upload: kept on the queue for an operator");
                    vec!["UNRECOGNISED"]
                }
                Ok(Notification::Test) => vec!["IGNORED"],
                Ok(Notification::Created(objects)) => {
                    let mut results = Vec::new();
                    for created in &objects {
                        let ended = self
                            .object(created, receive_count)
                            .instrument(span.clone())
                            .await;
                        results.push(match ended {
                            Ok(ended) => ended.metric(),
                            Err(e) => {
                                tracing::warn!(parent: &span, error = %e, "FAILED not recorded; the message returns to the queue");
                                "RETRY"
                            }
                        });
                    }
                    results
                }
            };
            for result in &results {
                Metrics::new("ingest-failures")
                    .dimension("Result", *result)
                    .count("Uploads", 1)
                    .emit();
            }
            if results
                .iter()
                .any(|r| ["UNRECOGNISED", "RETRY", "STILL_PROCESSING"].contains(r))
            {
                response.add_failure(message_id);
            }
        }
        Ok(response)
    }
}
