//! upload-url: presigned DICOM uploads. The API never carries the bytes: it hands out presigned S3
//! requests (one PUT, or one per part of a multipart upload), records what was declared, and tells
//! the uploader where the upload stands.
//!
//! | route | handler |
//! |---|---|
//! | `POST /v1/uploads` | [`create::create_upload`] |
//! | `GET /v1/uploads?subjectId=` | [`list::list_uploads`] |
//! | `GET /v1/uploads/{uploadId}` | [`status::get_upload`] |
//! | `DELETE /v1/uploads/{uploadId}` | [`status::abort_upload`] |
//! | `GET /v1/uploads/{uploadId}/parts` | [`multipart::list_parts`] |
//! | `POST /v1/uploads/{uploadId}/complete` | [`multipart::complete_upload`] |
//! | `POST /v1/uploads/{uploadId}/reprocess` | [`reprocess::reprocess_upload`] |

mod config;
mod create;
mod list;
mod multipart;
mod reprocess;
mod request;
mod status;
mod view;

pub use config::Config;

use lambda_http::{http::Method, Body, Request, RequestExt, Response};
use request::RequestMeta;
use shared::aws::AwsClients;
use shared::domain::UploadId;
use shared::problem::Problem;
use shared::store::dynamodb::{DynamoSubjects, DynamoUploads};
use shared::store::s3::S3Uploads;
use shared::store::sqs::SqsPublisher;
use shared::store::upload_listing::DynamoUploadListing;
use shared::store::{EventPublisher, SubjectDirectory, UploadListing, UploadObjects, UploadStore};
use std::sync::Arc;
use tracing::Instrument;

/// The upload API: its configuration and the ports it talks to.
pub struct UploadApi {
    pub(crate) config: Config,
    pub(crate) subjects: Arc<dyn SubjectDirectory>,
    pub(crate) uploads: Arc<dyn UploadStore>,
    pub(crate) objects: Arc<dyn UploadObjects>,
    /// A subject's uploads, newest first.
    pub(crate) listing: Arc<dyn UploadListing>,
    /// The ingest queue, for reprocessing (none: reprocess answers 503).
    pub(crate) ingest: Option<Arc<dyn EventPublisher>>,
}

enum Route {
    Create,
    List,
    Get(String),
    Abort(String),
    Parts(String),
    Complete(String),
    Reprocess(String),
}

fn route(method: &Method, path: &str) -> Result<Route, Problem> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let route = match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "uploads"]) => Route::Create,
        (&Method::GET, ["v1", "uploads"]) => Route::List,
        (&Method::GET, ["v1", "uploads", id]) => Route::Get((*id).to_owned()),
        (&Method::DELETE, ["v1", "uploads", id]) => Route::Abort((*id).to_owned()),
        (&Method::GET, ["v1", "uploads", id, "parts"]) => Route::Parts((*id).to_owned()),
        (&Method::POST, ["v1", "uploads", id, "complete"]) => Route::Complete((*id).to_owned()),
        (&Method::POST, ["v1", "uploads", id, "reprocess"]) => Route::Reprocess((*id).to_owned()),
        _ => {
            return Err(Problem::not_found("No such route."));
        }
    };
    Ok(route)
}

impl Route {
    /// The route as template.yaml and openapi.yaml name it (logs, metrics).
    fn label(&self) -> &'static str {
        match self {
            Self::Create => "POST /v1/uploads",
            Self::List => "GET /v1/uploads",
            Self::Get(_) => "GET /v1/uploads/{uploadId}",
            Self::Abort(_) => "DELETE /v1/uploads/{uploadId}",
            Self::Parts(_) => "GET /v1/uploads/{uploadId}/parts",
            Self::Complete(_) => "POST /v1/uploads/{uploadId}/complete",
            Self::Reprocess(_) => "POST /v1/uploads/{uploadId}/reprocess",
        }
    }
}

/// The route a request names, for metrics (`unknown` for none).
fn route_label(method: &Method, path: &str) -> &'static str {
    route(method, path).map_or("unknown", |r| r.label())
}

impl UploadApi {
    pub fn new(config: Config, clients: &AwsClients) -> Self {
        Self {
            subjects: Arc::new(DynamoSubjects::new(
                clients.dynamodb.clone(),
                &config.subjects_table,
            )),
            uploads: Arc::new(DynamoUploads::new(
                clients.dynamodb.clone(),
                &config.uploads_table,
                &config.audit_table,
            )),
            objects: Arc::new(S3Uploads::new(
                clients.s3.clone(),
                &config.bucket,
                config.encryption,
            )),
            listing: Arc::new(DynamoUploadListing::new(
                clients.dynamodb.clone(),
                &config.uploads_table,
            )),
            ingest: config.ingest_queue_url.as_ref().map(|url| {
                // Delayed, so the record's move back to RECEIVED lands before the processor looks.
                Arc::new(SqsPublisher::new(clients.sqs.clone(), url).delayed(5))
                    as Arc<dyn EventPublisher>
            }),
            config,
        }
    }

    /// Builds the API over other ports (fault injection in tests). The list route answers 503
    /// until [`Self::with_listing`] gives it its port.
    pub fn with_ports(
        config: Config,
        subjects: Arc<dyn SubjectDirectory>,
        uploads: Arc<dyn UploadStore>,
        objects: Arc<dyn UploadObjects>,
    ) -> Self {
        Self {
            config,
            subjects,
            uploads,
            objects,
            listing: Arc::new(NoListing),
            ingest: None,
        }
    }

    /// The port the list route reads a subject's uploads through.
    pub fn with_listing(mut self, listing: Arc<dyn UploadListing>) -> Self {
        self.listing = listing;
        self
    }

    /// Answers one request. Every failure becomes an RFC 9457 problem; nothing here panics on input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let meta = RequestMeta::of(&request);
        let span = tracing::info_span!(
            "request",
            request_id = %meta.request_id,
            correlation_id = %meta.correlation_id,
            method = %request.method(),
            route = tracing::field::Empty,
            upload = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        async {
            let response = match self.dispatch(&meta, &request).await {
                Ok(response) => response,
                Err(problem) => {
                    if problem.status >= 500 {
                        tracing::error!(problem = %problem.kind, "request failed");
                    } else {
                        tracing::info!(problem = %problem.kind, "request refused");
                    }
                    problem
                        .instance(request.raw_http_path().to_owned())
                        .into_response()
                }
            };
            tracing::Span::current().record("status", response.status().as_u16());
            shared::metrics::Metrics::new("upload-url")
                .dimension(
                    "Route",
                    route_label(request.method(), request.raw_http_path()),
                )
                .dimension(
                    "StatusClass",
                    format!("{}xx", response.status().as_u16() / 100),
                )
                .count("Requests", 1)
                .millis("Latency", started.elapsed())
                .emit();
            meta.stamp(response)
        }
        .instrument(span)
        .await
    }

    async fn dispatch(
        &self,
        meta: &RequestMeta,
        request: &Request,
    ) -> Result<Response<Body>, Problem> {
        let path = request.raw_http_path();
        let route = route(request.method(), path)?;
        tracing::Span::current().record("route", route.label());
        let caller = shared::auth::Caller::from_request(request)?;
        match route {
            Route::Create => create::create_upload(self, meta, &caller, request).await,
            Route::List => list::list_uploads(self, &caller, request).await,
            Route::Get(id) => status::get_upload(self, &caller, &parse_id(&id)?).await,
            Route::Abort(id) => status::abort_upload(self, meta, &caller, &parse_id(&id)?).await,
            Route::Parts(id) => multipart::list_parts(self, &caller, &parse_id(&id)?).await,
            Route::Complete(id) => {
                multipart::complete_upload(self, meta, &caller, &parse_id(&id)?, request).await
            }
            Route::Reprocess(id) => {
                reprocess::reprocess_upload(self, meta, &caller, &parse_id(&id)?).await
            }
        }
    }
}

/// An id that is not a canonical upload id names no upload: 404, as for any unknown upload.
fn parse_id(raw: &str) -> Result<UploadId, Problem> {
    UploadId::parse(raw).map_err(|_| Problem::not_found("No such upload."))
}

/// No listing port (an API built by [`UploadApi::with_ports`] alone): the list route is unavailable.
struct NoListing;

#[async_trait::async_trait]
impl UploadListing for NoListing {
    async fn list(
        &self,
        _: &shared::domain::SubjectId,
        _: Option<shared::domain::UploadStatus>,
        _: usize,
        _: Option<&shared::store::UploadPosition>,
    ) -> Result<shared::store::UploadPage, shared::store::StoreError> {
        Err(shared::store::StoreError::Unavailable(
            "no upload listing configured".into(),
        ))
    }
}
