//! process-dicom: the ingest queue's consumer (template.yaml: ProcessDicomFunction).
//!
//! Each SQS message carries an S3 notification ([`notification`]). For each object created under
//! the upload prefix, [`process::Processor::object`] claims it (idempotency: one outcome per object
//! version however often it is delivered), streams it once through SHA-256, the malware scanner
//! and the DICOM header parser ([`shared::inspect`]), then accepts it (copied to the accepted area,
//! indexed by study / series / instance) or quarantines it with a reason, records the outcome on the
//! upload, and publishes it to the imaging-events queue. A message that cannot finish before the
//! Lambda deadline goes back to the queue as a batch item failure; one bad message never fails the
//! others.

mod config;
pub mod notification;
mod patient;
mod process;
pub mod signatures;

pub use config::{Config, ScannerChoice};
pub use process::Processor;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use tracing::Instrument;

impl Processor {
    /// One invocation: a batch of messages, each processed on its own; failures are reported per
    /// message (`ReportBatchItemFailures`).
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let deadline = process::Deadline::from_context(&event.context, self.config.deadline_margin);
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
            if deadline.too_close() {
                tracing::warn!(parent: &span, "deadline near: message handed back unprocessed");
                response.add_failure(message_id);
                continue;
            }
            let body = record.body.as_deref().unwrap_or("");
            if let Err(e) = self.message(body, &deadline).instrument(span.clone()).await {
                tracing::warn!(parent: &span, reason = %e, "message failed; it returns to the queue");
                response.add_failure(message_id);
            }
        }
        Ok(response)
    }
}
