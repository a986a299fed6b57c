//! process-dicom: the ingest queue's consumer (template.yaml: ProcessDicomFunction).
//!
//! Each SQS message carries an S3 notification ([`shared::notification`]). For each object created
//! under the upload prefix, [`process::Processor`] claims its upload (one lock per upload, one
//! outcome per object version however often it is delivered), loads the scanner, streams the
//! object once through SHA-256, the malware scanner and the DICOM header parser
//! ([`shared::inspect`]), then accepts it (copied to the accepted area, indexed by study / series /
//! instance) or quarantines it with a reason ([`decide`]), records the outcome on the upload, and
//! publishes it to the imaging-events queue ([`shared::events`]).
//!
//! Each message has its own deadline and a read timeout: one that cannot finish, or whose body
//! stalls, goes back to the queue alone, as a batch item failure, after its visibility is set to
//! an exponential backoff ([`backoff`]); the ingest queue dead-letters it after `maxReceiveCount`,
//! and ingest-failures ends its upload FAILED.

mod backoff;
mod config;
mod deadline;
mod decide;
mod metrics;
mod outcome;
mod patient;
mod process;
pub mod signatures;
mod tags;

pub use backoff::Backoff;
pub use config::{Config, ScannerChoice};
pub use deadline::Deadline;
pub use outcome::{Outcome, Retry, StrayReason};
pub use process::{Ports, Processor, ACTOR};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

impl Processor {
    /// One invocation: a batch of messages, each processed on its own with its own deadline;
    /// failures are reported per message (`ReportBatchItemFailures`), each after its retry delay
    /// is set.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let invocation = Deadline::from_context(&event.context, self.config.deadline_margin);
        let mut response = SqsBatchResponse::default();
        for record in event.payload.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!(
                "message",
                request_id = %event.context.request_id,
                message_id = %message_id,
                upload = tracing::field::Empty,
                correlation_id = tracing::field::Empty,
            );
            let deadline = invocation.for_message(self.config.message_timeout);
            let result = if deadline.too_close() {
                metrics::refused(&Retry::Deadline);
                Err(Retry::Deadline)
            } else {
                let body = record.body.as_deref().unwrap_or("");
                self.message(body, &deadline).instrument(span.clone()).await
            };
            if let Err(e) = result {
                if matches!(e, Retry::NotANotification(_)) {
                    metrics::refused(&e);
                }
                let delay = self.retry_delay(&record, &e).instrument(span.clone()).await;
                tracing::warn!(parent: &span, reason = %e, retry_in_seconds = delay, "message failed; it returns to the queue");
                response.add_failure(message_id);
            }
        }
        Ok(response)
    }

    /// Sets the failed message's visibility to its backoff; returns the delay (or -1 when it could
    /// not be set: the queue's visibility timeout applies).
    async fn retry_delay(&self, record: &SqsMessage, why: &Retry) -> i32 {
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let backoff = Backoff {
            base: self.config.retry_base,
            max: self.config.retry_max,
        };
        let id = record.message_id.as_deref().unwrap_or("");
        let delay = backoff.delay(why, receive_count, backoff::jitter(id));
        let Some(handle) = record.receipt_handle.as_deref() else {
            return -1;
        };
        match self.ports.visibility.delay(handle, delay).await {
            Ok(()) => delay,
            Err(e) => {
                tracing::warn!(error = %e, "retry delay not set");
                -1
            }
        }
    }
}
