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
            let result = self.dispatch(&meta, &request).await;
            let route = route_label(request.method(), &shared::request::api_path(&request));
            let response = shared::problem::answer(
                "upload-url",
                route,
                request.raw_http_path(),
                started,
                result,
            );
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
        let route = route(request.method(), &shared::request::api_path(request))?;
        tracing::Span::current().record("route", route.label());
        let caller = shared::auth::Caller::from_request(request)?;
        caller.not_a_patient()?;
        match route {
            Route::Create => create::create_upload(self, meta, &caller, request).await,
            Route::List => list::list_uploads(self, &caller, request).await,
            Route::Get(id) => status::get_upload(self, &caller, &parse_id(&id)?).await,
            Route::Abort(id) => status::abort_upload(self, meta, &caller, &parse_id(&id)?).await,
            Route::Parts(id) => {
                multipart::list_parts(self, &caller, &parse_id(&id)?, request).await
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f9c2a1e-8b7d-4c3a-9e2f-1a2b3c4d5e6f";

    /// An HttpApi (payload 2.0) event for `route_key`, reaching the function under `raw_path`.
    fn event(route_key: &str, raw_path: &str, stage: &str, id: Option<&str>) -> Request {
        let (method, _) = route_key.split_once(' ').unwrap();
        let mut event = serde_json::json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": "",
            "headers": {"host": "api.example.org"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "a1b2c3d4e5",
                "domainName": "api.example.org",
                "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.10", "userAgent": "test"},
                "requestId": "r1",
                "routeKey": route_key,
                "stage": stage,
                "time": "27/Nov/2026:10:00:00 +0000",
                "timeEpoch": 1795773600000u64
            },
            "isBase64Encoded": false
        });
        if let Some(id) = id {
            event["pathParameters"] = serde_json::json!({ "uploadId": id });
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn routed(request: &Request) -> Option<&'static str> {
        route(request.method(), &shared::request::api_path(request))
            .ok()
            .map(|r| r.label())
    }

    #[test]
    fn routes_by_route_key_behind_a_named_stage_or_a_base_path() {
        let cases = [
            ("POST /v1/uploads", "/v1/uploads".to_owned(), None),
            (
                "GET /v1/uploads/{uploadId}",
                format!("/v1/uploads/{ID}"),
                Some(ID),
            ),
            (
                "DELETE /v1/uploads/{uploadId}",
                format!("/v1/uploads/{ID}"),
                Some(ID),
            ),
            (
                "GET /v1/uploads/{uploadId}/parts",
                format!("/v1/uploads/{ID}/parts"),
                Some(ID),
            ),
            (
                "POST /v1/uploads/{uploadId}/complete",
                format!("/v1/uploads/{ID}/complete"),
                Some(ID),
            ),
        ];
        for (route_key, path, id) in cases {
            for (prefix, stage) in [
                ("", "$default"),
                ("/prod", "prod"),
                ("/imaging", "$default"),
            ] {
                let request = event(route_key, &format!("{prefix}{path}"), stage, id);
                assert_eq!(routed(&request), Some(route_key), "{prefix}{path}");
                assert_eq!(shared::request::api_path(&request), path, "{prefix}{path}");
            }
        }
        // The raw path alone would not have routed behind the stage.
        let staged = event(
            "GET /v1/uploads/{uploadId}",
            &format!("/prod/v1/uploads/{ID}"),
            "prod",
            Some(ID),
        );
        assert!(route(staged.method(), staged.raw_http_path()).is_err());
        match route(staged.method(), &shared::request::api_path(&staged)) {
            Ok(Route::Get(id)) => assert_eq!(id, ID),
            _ => panic!("GET by route key"),
        }
    }

    #[test]
    fn without_a_route_key_the_raw_path_routes_and_a_missing_parameter_routes_nowhere() {
        let mut bare = event(
            "GET /v1/uploads/{uploadId}",
            &format!("/v1/uploads/{ID}"),
            "$default",
            Some(ID),
        );
        if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) = bare
            .extensions_mut()
            .get_mut::<lambda_http::request::RequestContext>()
        {
            ctx.route_key = None;
        }
        assert_eq!(routed(&bare), Some("GET /v1/uploads/{uploadId}"));
        let missing = event(
            "GET /v1/uploads/{uploadId}",
            &format!("/v1/uploads/{ID}"),
            "$default",
            None,
        );
        assert_eq!(routed(&missing), None);
    }
}
