//! clinical-data: the clinical data of trial subjects, written consistently and read audited.
//!
//! | route | handler | who |
//! |---|---|---|
//! | `POST /v1/subjects` | [`subjects::enrol`] | site staff of the site |
//! | `GET /v1/subjects?siteId=` | [`subjects::list`] | anyone who may read the site |
//! | `GET /v1/subjects/{subjectId}` | [`subjects::get`] | anyone who may read the subject's site |
//! | `GET /v1/subjects/{subjectId}/forms` | [`forms::list`] | idem |
//! | `GET /v1/subjects/{subjectId}/forms/{formOid}` | [`forms::get`] | idem |
//! | `PUT /v1/subjects/{subjectId}/forms/{formOid}` | [`forms::put`] | site staff of the subject's site |
//! | `POST /v1/subjects/{subjectId}/epro` | [`epro::submit`] | site staff of the site, the patient |
//! | `GET /v1/subjects/{subjectId}/epro` | [`epro::list`] | who may read the site, the patient |
//! | `GET /v1/subjects/{subjectId}/audit` | [`audit::trail`] | monitors and sponsor admins |
//!
//! Every change writes its record and its audit entry in one transaction (the store adapters);
//! every answer that carries patient data is preceded by an audit entry of the read (fail closed:
//! no entry, no data). A subject outside the caller's sites or trials answers 404, exactly as a
//! missing one.

mod audit;
mod cursor;
mod epro;
mod forms;
mod request;
mod subjects;

use lambda_http::{http::Method, Body, Request, RequestExt, Response};
use request::RequestMeta;
use shared::auth::Caller;
use shared::aws::AwsClients;
use shared::clinical::subject::SubjectRecord;
use shared::config::{ConfigError, Source};
use shared::domain::SubjectId;
use shared::problem::Problem;
use shared::resilience::token_limit::{SystemClock, TokenLimit};
use shared::store::audit::{subject_entity, AuditLog, DynamoAuditLog};
use shared::store::clinical::{EproDiary, EproSubmissions, Forms, SubjectRecords};
use shared::store::epro::DynamoEpro;
use shared::store::forms::DynamoForms;
use shared::store::rate_limits::{DynamoRateLimiter, RateLimiter};
use shared::store::subjects::DynamoSubjects;
use shared::store::AuditEntry;
use std::sync::Arc;
use tracing::Instrument;

/// How long the rate limiter decides in-process after its table failed, before trying it again.
pub const RATE_LIMIT_COOLDOWN_MS: i64 = 1000;

/// The clinical API's ports.
pub struct ClinicalApi {
    pub(crate) subjects: Arc<dyn SubjectRecords>,
    pub(crate) forms: Arc<dyn Forms>,
    pub(crate) diary: Arc<dyn EproDiary>,
    pub(crate) submissions: Arc<dyn EproSubmissions>,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) epro_limiter: Arc<dyn RateLimiter>,
}

/// The ports a [`ClinicalApi`] is built from (tests swap any of them).
pub struct Ports {
    pub subjects: Arc<dyn SubjectRecords>,
    pub forms: Arc<dyn Forms>,
    pub diary: Arc<dyn EproDiary>,
    pub submissions: Arc<dyn EproSubmissions>,
    pub audit: Arc<dyn AuditLog>,
    pub epro_limiter: Arc<dyn RateLimiter>,
}

impl Ports {
    /// The DynamoDB adapters, tables named by the environment the template gives the function.
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        let db = &clients.dynamodb;
        let audit_table = env.required("AUDIT_TABLE")?;
        let epro = Arc::new(
            DynamoEpro::new(db.clone(), env.required("EPRO_TABLE")?)
                .with_writes(env.required("EPRO_REQUESTS_TABLE")?, &audit_table),
        );
        let rate: u32 = env.parsed_or("EPRO_RATE_LIMIT_PER_SECOND", 1)?;
        let burst: u32 = env.parsed_or("EPRO_RATE_LIMIT_BURST", 10)?;
        let limit = TokenLimit::new(rate, burst).map_err(|reason| ConfigError::Invalid {
            name: "EPRO_RATE_LIMIT_PER_SECOND",
            reason,
        })?;
        Ok(Self {
            subjects: Arc::new(
                DynamoSubjects::new(db.clone(), env.required("SUBJECTS_TABLE")?)
                    .with_enrolment(env.required("SUBJECT_KEYS_TABLE")?, &audit_table),
            ),
            forms: Arc::new(DynamoForms::new(
                db.clone(),
                env.required("FORMS_TABLE")?,
                &audit_table,
            )),
            diary: epro.clone(),
            submissions: epro,
            audit: Arc::new(DynamoAuditLog::new(db.clone(), &audit_table)),
            epro_limiter: Arc::new(DynamoRateLimiter::new(
                db.clone(),
                env.required("RATE_LIMITS_TABLE")?,
                "epro",
                limit,
                Arc::new(SystemClock),
                env.parsed_or("RATE_LIMIT_COOLDOWN_MS", RATE_LIMIT_COOLDOWN_MS)?,
            )),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Enrol,
    List,
    Get(String),
    Forms(String),
    GetForm(String, String),
    PutForm(String, String),
    SubmitEpro(String),
    ListEpro(String),
    Audit(String),
}

fn route(method: &Method, path: &str) -> Result<Route, Problem> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let s = |v: &&str| (*v).to_owned();
    Ok(match (method, segments.as_slice()) {
        (&Method::POST, ["v1", "subjects"]) => Route::Enrol,
        (&Method::GET, ["v1", "subjects"]) => Route::List,
        (&Method::GET, ["v1", "subjects", id]) => Route::Get(s(id)),
        (&Method::GET, ["v1", "subjects", id, "forms"]) => Route::Forms(s(id)),
        (&Method::GET, ["v1", "subjects", id, "forms", oid]) => Route::GetForm(s(id), s(oid)),
        (&Method::PUT, ["v1", "subjects", id, "forms", oid]) => Route::PutForm(s(id), s(oid)),
        (&Method::POST, ["v1", "subjects", id, "epro"]) => Route::SubmitEpro(s(id)),
        (&Method::GET, ["v1", "subjects", id, "epro"]) => Route::ListEpro(s(id)),
        (&Method::GET, ["v1", "subjects", id, "audit"]) => Route::Audit(s(id)),
        _ => return Err(Problem::not_found("No such route.")),
    })
}

impl Route {
    /// The route as template.yaml and openapi.yaml name it (logs, metrics).
    fn label(&self) -> &'static str {
        match self {
            Self::Enrol => "POST /v1/subjects",
            Self::List => "GET /v1/subjects",
            Self::Get(_) => "GET /v1/subjects/{subjectId}",
            Self::Forms(_) => "GET /v1/subjects/{subjectId}/forms",
            Self::GetForm(..) => "GET /v1/subjects/{subjectId}/forms/{formOid}",
            Self::PutForm(..) => "PUT /v1/subjects/{subjectId}/forms/{formOid}",
            Self::SubmitEpro(_) => "POST /v1/subjects/{subjectId}/epro",
            Self::ListEpro(_) => "GET /v1/subjects/{subjectId}/epro",
            Self::Audit(_) => "GET /v1/subjects/{subjectId}/audit",
        }
    }
}

impl ClinicalApi {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self::with_ports(Ports::from_env(env, clients)?))
    }

    pub fn with_ports(ports: Ports) -> Self {
        Self {
            subjects: ports.subjects,
            forms: ports.forms,
            diary: ports.diary,
            submissions: ports.submissions,
            audit: ports.audit,
            epro_limiter: ports.epro_limiter,
        }
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
            status = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        async {
            let path = shared::request::api_path(&request);
            let result = self.dispatch(&meta, &request, &path).await;
            let label = route(request.method(), &path).map_or("unknown", |r| r.label());
            let response = shared::problem::answer(
                "clinical-data",
                label,
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
        path: &str,
    ) -> Result<Response<Body>, Problem> {
        let route = route(request.method(), path)?;
        tracing::Span::current().record("route", route.label());
        let caller = Caller::from_request(request)?;
        match route {
            Route::Enrol => subjects::enrol(self, meta, &caller, request).await,
            Route::List => subjects::list(self, meta, &caller, request).await,
            Route::Get(id) => subjects::get(self, meta, &caller, &id).await,
            Route::Forms(id) => forms::list(self, meta, &caller, &id).await,
            Route::GetForm(id, oid) => forms::get(self, meta, &caller, &id, &oid).await,
            Route::PutForm(id, oid) => forms::put(self, meta, &caller, &id, &oid, request).await,
            Route::SubmitEpro(id) => epro::submit(self, meta, &caller, &id, request).await,
            Route::ListEpro(id) => epro::list(self, meta, &caller, &id, request).await,
            Route::Audit(id) => audit::trail(self, meta, &caller, &id, request).await,
        }
    }

    /// The subject `raw` names, if the caller may see it (`visible`); otherwise 404, whether it
    /// does not exist or is outside the caller's sites or trials.
    pub(crate) async fn visible_subject(
        &self,
        raw: &str,
        visible: impl Fn(&SubjectRecord) -> bool,
    ) -> Result<SubjectRecord, Problem> {
        let not_found = || Problem::not_found("No such subject at your sites.");
        let id = SubjectId::parse(raw).map_err(|_| not_found())?;
        self.subjects
            .get(&id)
            .await
            .map_err(request::store)?
            .filter(|s| visible(s))
            .ok_or_else(not_found)
    }

    /// Records a user's read of a subject's data before it is answered: no entry, no data (503).
    pub(crate) async fn audit_read(
        &self,
        meta: &RequestMeta,
        caller: &Caller,
        subject: &SubjectId,
        what: &str,
    ) -> Result<(), Problem> {
        let entry = AuditEntry {
            entity: subject_entity(subject),
            actor: caller.user.clone(),
            at: chrono::Utc::now(),
            action: format!("read.{what}"),
            old: None,
            new: None,
            reason: format!("{} read by {}", what, caller.role.as_str()),
            correlation_id: meta.correlation_id.clone(),
        };
        self.audit.append(&entry).await.map_err(|e| {
            tracing::error!(error = %e, "the read could not be audited: no data answered");
            Problem::unavailable()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(&Method::POST, "/v1/subjects").unwrap(), Route::Enrol);
        assert_eq!(
            route(&Method::PUT, "/v1/subjects/S1/forms/VS").unwrap(),
            Route::PutForm("S1".into(), "VS".into())
        );
        assert_eq!(
            route(&Method::GET, "/v1/subjects/S1/audit").unwrap(),
            Route::Audit("S1".into())
        );
        assert!(route(&Method::DELETE, "/v1/subjects/S1").is_err());
        assert!(route(&Method::GET, "/v1/subjects/S1/imaging").is_err());
    }
}
