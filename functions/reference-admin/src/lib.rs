//! reference-admin: the source of truth of the reference data, for sponsor admins only.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/reference/{kind}/{code}` | the entry as the source holds it, `ETag: "<version>"` |
//! | `PUT /v1/reference/{kind}/{code}` | create (`If-None-Match: *`) or change (`If-Match: "<version>"`); 428 without either, 412 when stale; a change needs `reasonForChange` |
//!
//! Every write carries its audit entry (old → new value, who, when, why) in the same transaction.
//! Readers see a change once refresh-cache has published it and their cache has revalidated.
//!
//! A function of its own, not a route of metadata: the read path then holds no write permission
//! on the reference table at all.

use chrono::Utc;
use http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION};
use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use shared::auth::{Caller, Role};
use shared::aws::AwsClients;
use shared::clinical::forms::{etag, version_of_etag};
use shared::config::{ConfigError, Source};
use shared::problem::Problem;
use shared::reference::{ReferenceEntry, ReferenceKind, ReferenceValue};
use shared::store::reference::{reference_entity, DynamoReference, ReferenceAdmin};
use shared::store::{AuditEntry, StoreError};
use std::sync::Arc;
use tracing::Instrument;

const FUNCTION: &str = "reference-admin";
const MAX_REASON: usize = 500;

pub struct ReferenceAdminApi {
    store: Arc<dyn ReferenceAdmin>,
}

impl ReferenceAdminApi {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self::new(Arc::new(DynamoReference::new(
            clients.dynamodb.clone(),
            env.required("REFERENCE_TABLE")?,
            env.required("AUDIT_TABLE")?,
        ))))
    }

    pub fn new(store: Arc<dyn ReferenceAdmin>) -> Self {
        Self { store }
    }

    /// Answers one request. Every failure becomes an RFC 9457 problem; nothing here panics on input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let request_id = shared::request::request_id(&request);
        let label = match *request.method() {
            http::Method::GET => "GET /v1/reference/{kind}/{code}",
            http::Method::PUT => "PUT /v1/reference/{kind}/{code}",
            _ => "unknown",
        };
        let span = tracing::info_span!("request", request_id = %request_id, route = label, status = tracing::field::Empty);
        let started = std::time::Instant::now();
        async {
            let result = self.answer(&request, &request_id).await;
            shared::problem::answer(FUNCTION, label, request.raw_http_path(), started, result)
        }
        .instrument(span)
        .await
    }

    async fn answer(&self, request: &Request, request_id: &str) -> Result<Response<Body>, Problem> {
        let params = request.path_parameters_ref();
        let (Some(kind), Some(code)) = (
            params.and_then(|p| p.first("kind")),
            params.and_then(|p| p.first("code")),
        ) else {
            return Err(Problem::not_found("No such route."));
        };
        let caller = Caller::from_request(request)?;
        if caller.role != Role::SponsorAdmin {
            return Err(Problem::forbidden(
                "Only sponsor admins may read or change the reference data's source.",
            ));
        }
        let not_found = || Problem::not_found("No such entry in the reference data.");
        let kind = ReferenceKind::parse(kind).ok_or_else(not_found)?;
        if !kind.accepts_code(code) {
            return Err(match *request.method() {
                http::Method::PUT => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-code",
                    "Invalid code",
                )
                .detail(format!("{code:?} is not a {kind} code.")),
                _ => not_found(),
            });
        }
        match *request.method() {
            http::Method::GET => {
                let entry = self
                    .store
                    .get(kind, code)
                    .await
                    .map_err(Problem::from)?
                    .ok_or_else(not_found)?;
                respond(StatusCode::OK, &entry)
            }
            http::Method::PUT => self.put(request, &caller, kind, code, request_id).await,
            _ => Err(Problem::not_found("No such route.")),
        }
    }

    async fn put(
        &self,
        request: &Request,
        caller: &Caller,
        kind: ReferenceKind,
        code: &str,
        request_id: &str,
    ) -> Result<Response<Body>, Problem> {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::trim)
        };
        // What the client expects to replace: nothing (create) or one version (change).
        let expected: Option<u64> = match (header(IF_MATCH), header(IF_NONE_MATCH)) {
            (Some(tag), _) => Some(version_of_etag(tag).ok_or_else(|| {
                Problem::new(StatusCode::PRECONDITION_FAILED, "precondition-failed", "Precondition failed")
                    .detail("If-Match must name a version this route gave out, e.g. \"3\".")
            })?),
            (None, Some("*")) => None,
            _ => {
                return Err(Problem::new(
                    StatusCode::PRECONDITION_REQUIRED,
                    "precondition-required",
                    "Precondition required",
                )
                .detail("Send If-Match with the entry's ETag to change it, or If-None-Match: * to create it."))
            }
        };
        let body: serde_json::Value = match request.body() {
            Body::Text(t) => serde_json::from_str(t),
            Body::Binary(b) => serde_json::from_slice(b),
            Body::Empty => serde_json::from_str("null"),
            _ => serde_json::from_str("null"),
        }
        .map_err(|_| invalid(vec![("".into(), "the body must be JSON".into())]))?;
        let mut fields = body.clone();
        let reason = match fields
            .as_object_mut()
            .and_then(|o| o.remove("reasonForChange"))
        {
            None => None,
            Some(serde_json::Value::String(r))
                if !r.trim().is_empty() && r.chars().count() <= MAX_REASON =>
            {
                Some(r.trim().to_owned())
            }
            Some(_) => {
                return Err(invalid(vec![(
                    "/reasonForChange".into(),
                    format!("must be text of 1 to {MAX_REASON} characters"),
                )]))
            }
        };
        let value = ReferenceValue::parse(kind, &fields).map_err(|errors| {
            invalid(errors.into_iter().map(|e| (e.pointer, e.detail)).collect())
        })?;
        if expected.is_some() && reason.is_none() {
            return Err(invalid(vec![(
                "/reasonForChange".into(),
                "is required to change an existing entry".into(),
            )]));
        }
        let current = self.store.get(kind, code).await.map_err(Problem::from)?;
        let stale = || {
            Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            )
            .detail("The entry changed since you read it; read it again.")
        };
        match (&current, expected) {
            (None, None) => {}
            (Some(c), Some(v)) if c.version == v => {}
            _ => return Err(stale()),
        }
        let entry = ReferenceEntry {
            kind,
            code: code.to_owned(),
            value,
            version: expected.unwrap_or(0) + 1,
        };
        let now = Utc::now();
        let audit = AuditEntry {
            entity: reference_entity(kind, code),
            actor: caller.user.clone(),
            at: now,
            action: if current.is_some() {
                "reference.change"
            } else {
                "reference.create"
            }
            .into(),
            old: current
                .as_ref()
                .and_then(|c| serde_json::to_string(&c.value).ok()),
            new: serde_json::to_string(&entry.value).ok(),
            reason: reason.unwrap_or_else(|| "created".into()),
            correlation_id: request_id.to_owned(),
        };
        match self.store.put(&entry, &caller.user, now, &audit).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(stale()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(kind = %kind, version = entry.version, "reference entry written");
        let mut response = respond(
            if current.is_some() {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            },
            &entry,
        )?;
        if current.is_none() {
            if let Ok(v) = format!("/v1/reference/{kind}/{code}").parse() {
                response.headers_mut().insert(LOCATION, v);
            }
        }
        Ok(response)
    }
}

fn respond(status: StatusCode, entry: &ReferenceEntry) -> Result<Response<Body>, Problem> {
    let mut body = serde_json::Map::new();
    body.insert("kind".into(), entry.kind.as_str().into());
    body.insert("code".into(), entry.code.clone().into());
    body.extend(entry.value.fields());
    body.insert("version".into(), entry.version.into());
    let body = serde_json::to_string(&body).map_err(|_| Problem::internal())?;
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(ETAG, etag(entry.version))
        .body(Body::Text(body))
        .map_err(|_| Problem::internal())
}

fn invalid(errors: Vec<(String, String)>) -> Problem {
    let errors: Vec<serde_json::Value> = errors
        .into_iter()
        .map(|(pointer, detail)| {
            // The field as the other routes name it: the JSON pointer without its leading slash.
            let field = pointer.strip_prefix('/').unwrap_or(&pointer).to_owned();
            serde_json::json!({"field": field, "detail": detail})
        })
        .collect();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-reference-entry",
        "Invalid reference entry",
    )
    .detail("The entry was not written; see errors.")
    .extension("errors", errors)
}
