//! subject-report: `GET /v1/subjects/{subjectId}/report` — a subject's risk report for anyone who
//! may read the subject's site: demographics, EDC, ePRO and imaging read concurrently
//! ([`shared::report::aggregate`]), each under its own timeout and circuit breaker, within the
//! invocation's deadline less a margin to answer; a risk score with its reasons.
//!
//! A function of its own: another job than the clinical routes (reading four sources, some of
//! which may be external systems), its own timeout and a read-only role (GetItem/Query on the
//! tables it reads, PutItem on the audit table for the read's entry).
//!
//! - No token: 401. A role that may not read reports (a patient): 403. A subject that does not
//!   exist, or at a site or trial the caller cannot read: 404, the same answer.
//! - Every report answered is audited first (`read.report` on `subject#<id>`); no entry, no
//!   report (503).
//! - Demographics unavailable (failed, late, or its breaker open): 503. Any other source: 200 with
//!   that section `{"available": false, "reason": ...}` and `"degraded": true`.
//!
//! Configuration (template.yaml): the tables; per source `<SOURCE>_URL` (empty: the DynamoDB
//! adapter; else the HTTP adapter, [`shared::report::http`]) and `<SOURCE>_TIMEOUT_MS`;
//! `ANSWER_MARGIN_MS`, the time kept to answer before the Lambda deadline.

use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use shared::auth::{Caller, Role};
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::domain::SubjectId;
use shared::problem::Problem;
use shared::report::http::HttpSource;
use shared::report::store_sources::{StoreDemographics, StoreEdc, StoreEpro, StoreImaging};
use shared::report::{
    Aggregator, Demographics, EdcSource, EproSource, ImagingSource, Report, SourceConfig,
    SourceName,
};
use shared::resilience::deadline::Deadline;
use shared::store::audit::{subject_entity, AuditLog, DynamoAuditLog};
use shared::store::epro::DynamoEpro;
use shared::store::forms::DynamoForms;
use shared::store::subjects::DynamoSubjects;
use shared::store::summary::DynamoImagingSummary;
use shared::store::AuditEntry;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

const ROUTE: &str = "GET /v1/subjects/{subjectId}/report";

/// Kept to answer before the Lambda deadline, unless `ANSWER_MARGIN_MS` says otherwise.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(500);
/// A source's timeout unless `<SOURCE>_TIMEOUT_MS` says otherwise.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(3);
/// The budget when the request carries no Lambda context (a test calling the handler directly).
const NO_CONTEXT_BUDGET: Duration = Duration::from_secs(10);

pub struct ReportApi {
    aggregator: Aggregator,
    audit: Arc<dyn AuditLog>,
    margin: Duration,
}

fn source_config(env: &impl Source, name: SourceName) -> Result<SourceConfig, ConfigError> {
    let var: &'static str = match name {
        SourceName::Demographics => "DEMOGRAPHICS_TIMEOUT_MS",
        SourceName::Edc => "EDC_TIMEOUT_MS",
        SourceName::Epro => "EPRO_TIMEOUT_MS",
        SourceName::Imaging => "IMAGING_TIMEOUT_MS",
    };
    let ms = env.parsed_or(var, DEFAULT_SOURCE_TIMEOUT.as_millis() as u64)?;
    if ms == 0 {
        return Err(ConfigError::Invalid {
            name: var,
            reason: "must be at least 1 ms".into(),
        });
    }
    Ok(SourceConfig {
        timeout: Duration::from_millis(ms),
    })
}

/// The HTTP adapter when `<SOURCE>_URL` is set.
fn http_source(
    env: &impl Source,
    name: SourceName,
    config: SourceConfig,
) -> Result<Option<HttpSource>, ConfigError> {
    let var: &'static str = match name {
        SourceName::Demographics => "DEMOGRAPHICS_URL",
        SourceName::Edc => "EDC_URL",
        SourceName::Epro => "EPRO_URL",
        SourceName::Imaging => "IMAGING_URL",
    };
    match env.get(var).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(url) => HttpSource::new(name, url.trim(), config.timeout)
            .map(Some)
            .map_err(|reason| ConfigError::Invalid { name: var, reason }),
    }
}

impl ReportApi {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        let db = || clients.dynamodb.clone();
        let config = |n| source_config(env, n);
        let (dc, ec, pc, ic) = (
            config(SourceName::Demographics)?,
            config(SourceName::Edc)?,
            config(SourceName::Epro)?,
            config(SourceName::Imaging)?,
        );
        let demographics: Arc<dyn Demographics> =
            match http_source(env, SourceName::Demographics, dc)? {
                Some(http) => Arc::new(http),
                None => Arc::new(StoreDemographics(Arc::new(DynamoSubjects::new(
                    db(),
                    env.required("SUBJECTS_TABLE")?,
                )))),
            };
        let audit_table = env.required("AUDIT_TABLE")?;
        let edc: Arc<dyn EdcSource> = match http_source(env, SourceName::Edc, ec)? {
            Some(http) => Arc::new(http),
            None => Arc::new(StoreEdc(Arc::new(DynamoForms::new(
                db(),
                env.required("FORMS_TABLE")?,
                audit_table.clone(),
            )))),
        };
        let epro: Arc<dyn EproSource> = match http_source(env, SourceName::Epro, pc)? {
            Some(http) => Arc::new(http),
            None => Arc::new(StoreEpro(Arc::new(DynamoEpro::new(
                db(),
                env.required("EPRO_TABLE")?,
            )))),
        };
        let imaging: Arc<dyn ImagingSource> = match http_source(env, SourceName::Imaging, ic)? {
            Some(http) => Arc::new(http),
            None => Arc::new(StoreImaging(Arc::new(DynamoImagingSummary::new(
                db(),
                env.required("IMAGING_SUMMARY_TABLE")?,
            )))),
        };
        let margin = Duration::from_millis(
            env.parsed_or("ANSWER_MARGIN_MS", DEFAULT_MARGIN.as_millis() as u64)?,
        );
        Ok(Self::with_ports(
            Aggregator::new((demographics, dc), (edc, ec), (epro, pc), (imaging, ic)),
            Arc::new(DynamoAuditLog::new(db(), audit_table)),
            margin,
        ))
    }

    pub fn with_ports(aggregator: Aggregator, audit: Arc<dyn AuditLog>, margin: Duration) -> Self {
        Self {
            aggregator,
            audit,
            margin,
        }
    }

    /// The sources and their breakers (held for the life of the execution environment).
    pub fn aggregator(&self) -> &Aggregator {
        &self.aggregator
    }

    /// Answers one request. Every failure becomes an RFC 9457 problem; nothing here panics on input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let request_id = shared::request::request_id(&request);
        let span = tracing::info_span!("request", request_id = %request_id, route = ROUTE, status = tracing::field::Empty);
        let started = std::time::Instant::now();
        async {
            let result = self.answer(&request, &request_id).await;
            shared::problem::answer(
                "subject-report",
                ROUTE,
                request.raw_http_path(),
                started,
                result,
            )
        }
        .instrument(span)
        .await
    }

    /// The invocation's deadline less the margin (without a Lambda context: a fixed budget).
    fn deadline(&self, request: &Request) -> Deadline {
        match request.lambda_context_ref().filter(|c| c.deadline > 0) {
            Some(c) => Deadline::from_epoch_millis(c.deadline, self.margin),
            None => Deadline::after(NO_CONTEXT_BUDGET),
        }
    }

    async fn answer(&self, request: &Request, request_id: &str) -> Result<Response<Body>, Problem> {
        let raw = request
            .path_parameters_ref()
            .and_then(|p| p.first("subjectId"));
        let (Some(raw), &http::Method::GET) = (raw, request.method()) else {
            return Err(Problem::not_found("No such route."));
        };
        let caller = Caller::from_request(request)?;
        if caller.role == Role::Patient {
            return Err(Problem::forbidden(
                "Your role does not allow reading reports.",
            ));
        }
        let not_found = || Problem::not_found("No such subject at your sites.");
        let id = SubjectId::parse(raw).map_err(|_| not_found())?;
        let deadline = self.deadline(request);
        let now = chrono::Utc::now();
        let gathered = self
            .aggregator
            .gather(&id, deadline, now, |found| async {
                let subject = found
                    .filter(|s| caller.can_read(&s.trial, &s.site))
                    .ok_or_else(not_found)?;
                // No entry, no report: the read is recorded before anything is answered.
                let entry = AuditEntry {
                    entity: subject_entity(&subject.id),
                    actor: caller.user.clone(),
                    at: now,
                    action: "read.report".into(),
                    old: None,
                    new: None,
                    reason: format!("report read by {}", caller.role.as_str()),
                    correlation_id: request_id.to_owned(),
                };
                self.audit.append(&entry).await.map_err(|e| {
                    tracing::error!(error = %e, "the read could not be audited: no report answered");
                    Problem::unavailable()
                })?;
                Ok(subject)
            })
            .await?;
        let report = Report::build(gathered, now);
        if report.degraded {
            tracing::warn!(
                edc = report.edc_available(),
                epro = report.epro_available(),
                imaging = report.imaging_available(),
                "report answered degraded"
            );
        }
        let body = serde_json::to_string(&report).map_err(|_| Problem::internal())?;
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(Body::Text(body))
            .map_err(|_| Problem::internal())
    }
}
