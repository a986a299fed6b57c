//! The SQS side: each record of the exports queue names one export ([`ExportRequested`]); each
//! record of the exports dead-letter queue names one the queue gave up on, which ends `FAILED`
//! (one binary for both, as ingest's consumer and its DLQ consumer are not: here the DLQ handling
//! is one conditional write on the same table with the same role, so a second function would only
//! add a deployable). Partial batch failures: a record that should come back (another attempt
//! holds the export, the store was unavailable) is reported, the others are deleted.

use crate::export::{DrugNames, Exporter, Outcome, Ports, ReportRisk};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::exports::ExportId;
use shared::exports::ExportRequested;
use shared::metrics::Metrics;
use shared::reference::cache::ReferenceCache;
use shared::report::store_sources::{StoreEpro, StoreImaging};
use shared::store::epro::DynamoEpro;
use shared::store::export_jobs::{DynamoDiaryCount, DynamoExports};
use shared::store::export_objects::S3Exports;
use shared::store::exports::{ExportJobs, FailedBy};
use shared::store::forms::DynamoForms;
use shared::store::s3::Encryption;
use shared::store::snapshots::S3Snapshots;
use shared::store::subjects::DynamoSubjects;
use shared::store::summary::DynamoImagingSummary;
use shared::store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// What an attempt keeps of its invocation's time to abort its upload and record the failure.
const CLEAN_UP: Duration = Duration::from_secs(20);

/// The reason an export the dead-letter queue received ends with.
pub const GAVE_UP: &str = "the export did not finish after repeated attempts";

pub struct ExportWorker {
    exporter: Exporter,
    jobs: Arc<dyn ExportJobs>,
    /// The ARN of the exports dead-letter queue: its records are ended `FAILED`.
    dead_letter_arn: String,
}

impl ExportWorker {
    pub fn new(exporter: Exporter, jobs: Arc<dyn ExportJobs>, dead_letter_arn: String) -> Self {
        Self {
            exporter,
            jobs,
            dead_letter_arn,
        }
    }

    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        let audit = env.required("AUDIT_TABLE")?;
        let jobs: Arc<dyn ExportJobs> = Arc::new(DynamoExports::new(
            clients.dynamodb.clone(),
            env.required("EXPORTS_TABLE")?,
            audit.clone(),
        ));
        let encryption =
            Encryption::parse(&env.required("EXPORTS_BUCKET_ENCRYPTION")?).map_err(|reason| {
                ConfigError::Invalid {
                    name: "EXPORTS_BUCKET_ENCRYPTION",
                    reason,
                }
            })?;
        let epro = env.required("EPRO_TABLE")?;
        let drugs: Arc<dyn DrugNames> = Arc::new(ReferenceCache::new(
            Arc::new(S3Snapshots::new(
                clients.s3.clone(),
                env.required("REFERENCE_BUCKET")?,
                env.required("REFERENCE_SNAPSHOT_KEY")?,
            )),
            Duration::from_secs(env.parsed_or("REFERENCE_REVALIDATE_SECONDS", 60u64)?),
        ));
        let lease = Duration::from_secs(env.parsed_or("EXPORT_LEASE_SECONDS", 960u64)?);
        let exporter = Exporter::new(
            Ports {
                jobs: jobs.clone(),
                objects: Arc::new(S3Exports::new(
                    clients.s3.clone(),
                    env.required("EXPORTS_BUCKET")?,
                    encryption,
                )),
                subjects: Arc::new(DynamoSubjects::new(
                    clients.dynamodb.clone(),
                    env.required("SUBJECTS_TABLE")?,
                )),
                forms: Arc::new(DynamoForms::new(
                    clients.dynamodb.clone(),
                    env.required("FORMS_TABLE")?,
                    audit,
                )),
                diary: Arc::new(DynamoEpro::new(clients.dynamodb.clone(), epro.clone())),
                diary_count: Arc::new(DynamoDiaryCount::new(
                    clients.dynamodb.clone(),
                    epro.clone(),
                )),
                drugs,
                risk: Arc::new(ReportRisk {
                    diary: Arc::new(StoreEpro(Arc::new(DynamoEpro::new(
                        clients.dynamodb.clone(),
                        epro.clone(),
                    )))),
                    imaging: Arc::new(StoreImaging(Arc::new(DynamoImagingSummary::new(
                        clients.dynamodb.clone(),
                        env.required("IMAGING_SUMMARY_TABLE")?,
                    )))),
                }),
            },
            lease,
        );
        Ok(Self::new(exporter, jobs, env.required("EXPORTS_DLQ_ARN")?))
    }

    /// An export the queue gave up on ends `FAILED`, unless it is terminal already (nothing to do)
    /// or a live attempt holds it (`BUSY`: the message comes back; by then the attempt ended it or
    /// its lease ran out).
    async fn end_dead_lettered(&self, id: &ExportId) -> Result<&'static str, StoreError> {
        if self
            .jobs
            .fail(id, FailedBy::NoAttempt, GAVE_UP, chrono::Utc::now())
            .await?
        {
            return Ok("DEAD_LETTERED");
        }
        Ok(match self.jobs.get(id).await? {
            Some(job) if !job.status.is_terminal() => "BUSY",
            _ => "ALREADY_FINISHED",
        })
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let mut response = SqsBatchResponse::default();
        // Stop an attempt this long before Lambda would kill it: time to abort the upload and
        // end the export FAILED (one batch holds one export: BatchSize 1).
        let left = event
            .context
            .deadline
            .saturating_sub(chrono::Utc::now().timestamp_millis().max(0) as u64);
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(left).saturating_sub(CLEAN_UP);
        for record in event.payload.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!(
                "export",
                request_id = %event.context.request_id,
                message_id = %message_id,
                export = tracing::field::Empty,
            );
            let Some(request) = record
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<ExportRequested>(b).ok())
            else {
                // Nothing names an export: no state to end; the message is dropped, loudly.
                tracing::error!(parent: &span, "exports message names no export; dropped");
                count("UNRECOGNISED");
                continue;
            };
            span.record("export", request.export_id.as_str());
            let dead_lettered =
                record.event_source_arn.as_deref() == Some(self.dead_letter_arn.as_str());
            let result = if dead_lettered {
                self.end_dead_lettered(&request.export_id)
                    .instrument(span.clone())
                    .await
            } else {
                let receives = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .cloned()
                    .unwrap_or_default();
                let attempt = format!("{message_id}#{receives}");
                self.exporter
                    .run_until(&request.export_id, &attempt, Some(deadline))
                    .instrument(span.clone())
                    .await
                    .map(|outcome| match outcome {
                        Outcome::Done { .. } => "DONE",
                        Outcome::AlreadyFinished => "ALREADY_FINISHED",
                        Outcome::Busy => "BUSY",
                        Outcome::Failed(_) => "FAILED",
                    })
            };
            let result = result.unwrap_or_else(|e| {
                tracing::warn!(parent: &span, error = %e, "export not settled; the message returns to the queue");
                "RETRY"
            });
            count(result);
            if result == "RETRY" || result == "BUSY" {
                response.add_failure(message_id);
            }
        }
        Ok(response)
    }
}

fn count(result: &str) {
    Metrics::new("export-worker")
        .dimension("Result", result)
        .count("Exports", 1)
        .emit();
}
