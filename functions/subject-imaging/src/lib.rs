//! subject-imaging: `GET /v1/subjects/{subjectId}/imaging` — a subject's imaging summary (as
//! imaging-summary keeps it) with its studies, series and instances (from the instance index),
//! for anyone who may read the subject's site.
//!
//! A function of its own rather than a route of upload-url: another job (reading what processing
//! indexed, not managing uploads), and a read-only role — it reads the subject, the summary item
//! and one index, and can write nothing, where upload-url writes records and presigns.
//!
//! The route is found by its path parameter (`subjectId`), so a named stage or a custom domain's
//! base path does not change it. A subject that does not exist, or is at a site the caller cannot
//! read, answers 404 (existence does not leak).

mod imaging;

use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use shared::auth::Caller;
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::domain::SubjectId;
use shared::problem::Problem;
use shared::store::dynamodb::DynamoSubjects;
use shared::store::instance_listing::DynamoInstanceListing;
use shared::store::summary::DynamoImagingSummary;
use shared::store::{ImagingSummaries, InstanceListing, SubjectDirectory};
use std::sync::Arc;
use tracing::Instrument;

pub use imaging::MAX_INSTANCES;

const ROUTE: &str = "GET /v1/subjects/{subjectId}/imaging";

/// The route's ports.
pub struct ImagingApi {
    subjects: Arc<dyn SubjectDirectory>,
    summaries: Arc<dyn ImagingSummaries>,
    instances: Arc<dyn InstanceListing>,
}

impl ImagingApi {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self::with_ports(
            Arc::new(DynamoSubjects::new(
                clients.dynamodb.clone(),
                env.required("SUBJECTS_TABLE")?,
            )),
            Arc::new(DynamoImagingSummary::new(
                clients.dynamodb.clone(),
                env.required("IMAGING_SUMMARY_TABLE")?,
            )),
            Arc::new(DynamoInstanceListing::new(
                clients.dynamodb.clone(),
                env.required("INSTANCES_TABLE")?,
            )),
        ))
    }

    pub fn with_ports(
        subjects: Arc<dyn SubjectDirectory>,
        summaries: Arc<dyn ImagingSummaries>,
        instances: Arc<dyn InstanceListing>,
    ) -> Self {
        Self {
            subjects,
            summaries,
            instances,
        }
    }

    /// Answers one request. Every failure becomes an RFC 9457 problem; nothing here panics on input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let request_id = shared::request::request_id(&request);
        let span = tracing::info_span!("request", request_id = %request_id, route = ROUTE, status = tracing::field::Empty);
        let started = std::time::Instant::now();
        async {
            let result = self.answer(&request).await;
            shared::problem::answer(
                "subject-imaging",
                ROUTE,
                request.raw_http_path(),
                started,
                result,
            )
        }
        .instrument(span)
        .await
    }

    async fn answer(&self, request: &Request) -> Result<Response<Body>, Problem> {
        let raw = request
            .path_parameters_ref()
            .and_then(|p| p.first("subjectId"));
        let (Some(raw), &http::Method::GET) = (raw, request.method()) else {
            return Err(Problem::not_found("No such route."));
        };
        let caller = Caller::from_request(request)?;
        caller.not_a_patient()?;
        let not_found = || Problem::not_found("No such subject at your sites.");
        // Not a subject id: names no subject.
        let id = SubjectId::parse(raw).map_err(|_| not_found())?;
        let subject = self
            .subjects
            .subject(&id)
            .await
            .map_err(Problem::from)?
            .filter(|s| caller.can_read(&s.trial, &s.site))
            .ok_or_else(not_found)?;
        let (summary, instances) = tokio::try_join!(
            self.summaries.summary(&subject.id),
            self.instances.of_subject(&subject.id, MAX_INSTANCES),
        )
        .map_err(Problem::from)?;
        let view = imaging::SubjectImaging::build(&subject, &caller, summary, instances);
        let body = serde_json::to_string(&view).map_err(|_| Problem::internal())?;
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::Text(body))
            .map_err(|_| Problem::internal())
    }
}
