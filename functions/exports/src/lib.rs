//! exports: a subject's history as a file, built off the request path.
//! - `POST /v1/subjects/{subjectId}/exports` `{"format": "pdf" | "csv"}` → 202 `{exportId, status}`
//!   and `Location: /v1/exports/{exportId}`. The export is written `QUEUED` with its audit entry
//!   (`subject.export`: a read of the subject's data, 21 CFR Part 11 §11.10(e)) in one
//!   transaction, then the exports queue gets `{exportId}`; if the queue refuses it, the export
//!   ends `FAILED` at once (never a `QUEUED` nobody will run) and the answer is 503.
//! - `GET /v1/exports/{exportId}` → status, progress (`rowsDone` of `rowsTotal`), and when `DONE` a
//!   presigned GET that expires within 15 minutes (handing it out is itself an audited read).
//! - `GET /v1/subjects/{subjectId}/exports` → the subject's exports, newest first.
//!
//! Site-scoped like every subject route: a subject (or an export of one) at a site or trial the
//! caller cannot read answers 404 exactly as a missing one. Patients may not export.

use chrono::{DateTime, Utc};
use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use serde::Serialize;
use shared::auth::Caller;
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::domain::SubjectId;
use shared::exports::{
    ExportFormat, ExportId, ExportJob, ExportRequested, ExportStatus, DOWNLOAD_URL_TTL, FILE_DAYS,
};
use shared::problem::Problem;
use shared::request::{json_body, RequestMeta};
use shared::store::audit::{subject_entity, AuditLog, DynamoAuditLog};
use shared::store::dynamodb::DynamoSubjects;
use shared::store::export_jobs::DynamoExports;
use shared::store::export_objects::S3Exports;
use shared::store::exports::{ExportJobs, ExportObjects, FailedBy};
use shared::store::s3::Encryption;
use shared::store::sqs::SqsPublisher;
use shared::store::{AuditEntry, EventPublisher, StoreError, Subject, SubjectDirectory};
use std::sync::Arc;
use tracing::Instrument;

/// Exports listed per subject.
pub const LIST_LIMIT: usize = 50;
/// The longest the request waits for the queue (the function's timeout is 10 s).
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// A request body larger than this is refused.
const MAX_BODY: usize = 1024;

pub struct ExportsApi {
    subjects: Arc<dyn SubjectDirectory>,
    jobs: Arc<dyn ExportJobs>,
    objects: Arc<dyn ExportObjects>,
    queue: Arc<dyn EventPublisher>,
    audit: Arc<dyn AuditLog>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    rows_done: u64,
    rows_total: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Download {
    url: String,
    expires_at: DateTime<Utc>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportView {
    export_id: String,
    subject_id: String,
    format: ExportFormat,
    status: ExportStatus,
    progress: Progress,
    requested_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// When the bucket deletes the file (`DONE` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    file_expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    download: Option<Download>,
}

impl ExportView {
    fn of(job: &ExportJob, download: Option<Download>) -> Self {
        Self {
            export_id: job.id.to_string(),
            subject_id: job.subject.to_string(),
            format: job.format,
            status: job.status,
            progress: Progress {
                rows_done: job.rows_done,
                rows_total: job.rows_total,
            },
            requested_at: job.requested_at,
            updated_at: job.updated_at,
            size_bytes: job.size_bytes,
            reason: job.reason.clone(),
            file_expires_at: file_expires_at(job),
            download,
        }
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Result<Response<Body>, Problem> {
    let body = serde_json::to_string(body).map_err(|_| Problem::internal())?;
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Body::Text(body))
        .map_err(|_| Problem::internal())
}

impl ExportsApi {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        let encryption =
            Encryption::parse(&env.required("EXPORTS_BUCKET_ENCRYPTION")?).map_err(|reason| {
                ConfigError::Invalid {
                    name: "EXPORTS_BUCKET_ENCRYPTION",
                    reason,
                }
            })?;
        let audit = env.required("AUDIT_TABLE")?;
        Ok(Self::with_ports(
            Arc::new(DynamoSubjects::new(
                clients.dynamodb.clone(),
                env.required("SUBJECTS_TABLE")?,
            )),
            Arc::new(DynamoExports::new(
                clients.dynamodb.clone(),
                env.required("EXPORTS_TABLE")?,
                audit.clone(),
            )),
            Arc::new(S3Exports::new(
                clients.s3.clone(),
                env.required("EXPORTS_BUCKET")?,
                encryption,
            )),
            Arc::new(SqsPublisher::new(
                clients.sqs.clone(),
                env.required("EXPORTS_QUEUE_URL")?,
            )),
            Arc::new(DynamoAuditLog::new(clients.dynamodb.clone(), audit)),
        ))
    }

    pub fn with_ports(
        subjects: Arc<dyn SubjectDirectory>,
        jobs: Arc<dyn ExportJobs>,
        objects: Arc<dyn ExportObjects>,
        queue: Arc<dyn EventPublisher>,
        audit: Arc<dyn AuditLog>,
    ) -> Self {
        Self {
            subjects,
            jobs,
            objects,
            queue,
            audit,
        }
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        let meta = RequestMeta::of(&request);
        let route = route_of(&request);
        let span = tracing::info_span!("request", request_id = %meta.request_id, route = route, status = tracing::field::Empty);
        let started = std::time::Instant::now();
        async {
            let result = self.answer(&request, route, &meta.correlation_id).await;
            meta.stamp(shared::problem::answer(
                "exports",
                route,
                request.raw_http_path(),
                started,
                result,
            ))
        }
        .instrument(span)
        .await
    }

    async fn answer(
        &self,
        request: &Request,
        route: &'static str,
        correlation_id: &str,
    ) -> Result<Response<Body>, Problem> {
        let params = request.path_parameters();
        if route != UNKNOWN {
            Caller::from_request(request)?.not_a_patient()?;
        }
        match route {
            POST_EXPORT | LIST_EXPORTS => {
                let caller = Caller::from_request(request)?;
                let subject = self
                    .visible_subject(&caller, params.first("subjectId").unwrap_or(""))
                    .await?;
                if route == POST_EXPORT {
                    self.create(request, &caller, &subject, correlation_id)
                        .await
                } else {
                    let jobs = self
                        .jobs
                        .of_subject(&subject.id, LIST_LIMIT)
                        .await
                        .map_err(Problem::from)?;
                    let exports: Vec<ExportView> =
                        jobs.iter().map(|j| ExportView::of(j, None)).collect();
                    json(
                        StatusCode::OK,
                        &serde_json::json!({"subjectId": subject.id, "exports": exports}),
                    )
                }
            }
            GET_EXPORT => {
                let caller = Caller::from_request(request)?;
                self.status(
                    &caller,
                    params.first("exportId").unwrap_or(""),
                    correlation_id,
                )
                .await
            }
            _ => Err(Problem::not_found("No such route.")),
        }
    }

    async fn visible_subject(&self, caller: &Caller, raw: &str) -> Result<Subject, Problem> {
        let not_found = || Problem::not_found("No such subject at your sites.");
        let id = SubjectId::parse(raw).map_err(|_| not_found())?;
        self.subjects
            .subject(&id)
            .await
            .map_err(Problem::from)?
            .filter(|s| caller.can_read(&s.trial, &s.site))
            .ok_or_else(not_found)
    }

    async fn create(
        &self,
        request: &Request,
        caller: &Caller,
        subject: &Subject,
        correlation_id: &str,
    ) -> Result<Response<Body>, Problem> {
        let invalid = |detail: &str| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-export",
                "Invalid export request",
            )
            .detail(format!("{detail} Nothing was written."))
        };
        let value = json_body(request, MAX_BODY)?;
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("The body must be a JSON object."))?;
        if obj.keys().any(|k| k != "format") {
            return Err(invalid("Only \"format\" may be given."));
        }
        let format = obj
            .get("format")
            .and_then(|f| f.as_str())
            .and_then(ExportFormat::parse)
            .ok_or_else(|| invalid("\"format\" must be \"pdf\" or \"csv\"."))?;
        let now = Utc::now();
        let job = ExportJob::queued(ExportId::generate(), subject, format, &caller.user, now);
        let entry = AuditEntry {
            entity: subject_entity(&subject.id),
            actor: caller.user.clone(),
            at: now,
            action: "subject.export".into(),
            old: None,
            new: Some(format!("export {} ({})", job.id, format.as_str())),
            reason: "subject history exported".into(),
            correlation_id: correlation_id.to_owned(),
        };
        self.jobs
            .create(&job, &entry)
            .await
            .map_err(Problem::from)?;
        let message = serde_json::to_string(&ExportRequested {
            export_id: job.id.clone(),
        })
        .map_err(|_| Problem::internal())?;
        // Bounded: the record is written; a publish still pending when Lambda's timeout kills the
        // function would leave it QUEUED with no message. Past the bound it ends FAILED instead.
        let published = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            self.queue.publish(&message, correlation_id),
        )
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("SendMessage timed out".into())));
        if let Err(e) = published {
            tracing::error!(error = %e, "export not queued; ending it FAILED");
            if let Err(e) = self
                .jobs
                .fail(
                    &job.id,
                    FailedBy::NoAttempt,
                    "the export could not be queued",
                    Utc::now(),
                )
                .await
            {
                tracing::error!(error = %e, "ending the unqueued export FAILED failed");
            }
            return Err(Problem::unavailable());
        }
        let mut response = json(
            StatusCode::ACCEPTED,
            &serde_json::json!({"exportId": job.id, "status": job.status, "format": format}),
        )?;
        let location = format!("/v1/exports/{}", job.id);
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            response.headers_mut().insert(http::header::LOCATION, v);
        }
        Ok(response)
    }

    async fn status(
        &self,
        caller: &Caller,
        raw: &str,
        correlation_id: &str,
    ) -> Result<Response<Body>, Problem> {
        let not_found = || Problem::not_found("No such export of a subject at your sites.");
        let id = ExportId::parse(raw).map_err(|_| not_found())?;
        let job = self
            .jobs
            .get(&id)
            .await
            .map_err(Problem::from)?
            .filter(|j| caller.can_read(&j.trial, &j.site))
            .ok_or_else(not_found)?;
        let now = Utc::now();
        let download = match (&job.status, &job.object_key) {
            // Past its lifecycle the file is gone: no link, and no read to audit.
            (ExportStatus::Done, Some(_)) if file_expires_at(&job).is_some_and(|t| t <= now) => {
                None
            }
            (ExportStatus::Done, Some(key)) => {
                // Handing out the file is a read of the subject's data: audited first, fail closed.
                self.audit
                    .append(&AuditEntry {
                        entity: subject_entity(&job.subject),
                        actor: caller.user.clone(),
                        at: now,
                        action: "subject.export.download".into(),
                        old: None,
                        new: Some(format!("export {}", job.id)),
                        reason: "download link issued".into(),
                        correlation_id: correlation_id.to_owned(),
                    })
                    .await
                    .map_err(Problem::from)?;
                let url = self
                    .objects
                    .download_url(key, &job.file_name(), DOWNLOAD_URL_TTL)
                    .await
                    .map_err(Problem::from)?;
                Some(Download {
                    url,
                    expires_at: now
                        + chrono::Duration::from_std(DOWNLOAD_URL_TTL)
                            .unwrap_or(chrono::Duration::minutes(10)),
                })
            }
            _ => None,
        };
        json(StatusCode::OK, &ExportView::of(&job, download))
    }
}

/// When the exports bucket deletes a `DONE` export's file.
fn file_expires_at(job: &ExportJob) -> Option<DateTime<Utc>> {
    (job.status == ExportStatus::Done).then(|| job.updated_at + chrono::Duration::days(FILE_DAYS))
}

const POST_EXPORT: &str = "POST /v1/subjects/{subjectId}/exports";
const LIST_EXPORTS: &str = "GET /v1/subjects/{subjectId}/exports";
const GET_EXPORT: &str = "GET /v1/exports/{exportId}";
const UNKNOWN: &str = "unknown";

/// The route, by method and path parameters (a stage or base path does not change it).
fn route_of(request: &Request) -> &'static str {
    let params = request.path_parameters();
    let method = request.method();
    if params.first("exportId").is_some() && method == http::Method::GET {
        GET_EXPORT
    } else if params.first("subjectId").is_some() && method == http::Method::POST {
        POST_EXPORT
    } else if params.first("subjectId").is_some() && method == http::Method::GET {
        LIST_EXPORTS
    } else {
        UNKNOWN
    }
}

#[cfg(test)]
mod tests {
    //! The routes over in-memory doubles of their ports: the auth matrix, what a request stores
    //! and queues, the queue refusing, the audited download link. (The adapters run against the
    //! emulator in tests/api.)
    use super::*;
    use async_trait::async_trait;
    use shared::domain::{SiteId, TrialId};
    use shared::store::audit::AuditPage;
    use shared::store::exports::{Claimed, UploadedPart};
    use shared::store::StoreError;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    const SUBJECT: &str = "SUBJ-0001";

    struct Subjects;
    #[async_trait]
    impl SubjectDirectory for Subjects {
        async fn subject(&self, id: &SubjectId) -> Result<Option<Subject>, StoreError> {
            Ok((id.as_str() == SUBJECT).then(|| Subject {
                id: id.clone(),
                trial: TrialId::parse("TRIAL-1").unwrap(),
                site: SiteId::parse("SITE-1").unwrap(),
            }))
        }
    }

    #[derive(Default)]
    struct Jobs {
        jobs: Mutex<BTreeMap<String, ExportJob>>,
        audits: Mutex<Vec<AuditEntry>>,
    }
    #[async_trait]
    impl ExportJobs for Jobs {
        async fn create(&self, job: &ExportJob, audit: &AuditEntry) -> Result<(), StoreError> {
            self.jobs
                .lock()
                .unwrap()
                .insert(job.id.to_string(), job.clone());
            self.audits.lock().unwrap().push(audit.clone());
            Ok(())
        }
        async fn get(&self, id: &ExportId) -> Result<Option<ExportJob>, StoreError> {
            Ok(self.jobs.lock().unwrap().get(id.as_str()).cloned())
        }
        async fn of_subject(&self, s: &SubjectId, _: usize) -> Result<Vec<ExportJob>, StoreError> {
            Ok(self
                .jobs
                .lock()
                .unwrap()
                .values()
                .filter(|j| j.subject == *s)
                .cloned()
                .collect())
        }
        async fn claim(
            &self,
            _: &ExportId,
            _: &str,
            _: DateTime<Utc>,
            _: Duration,
        ) -> Result<Claimed, StoreError> {
            unreachable!()
        }
        async fn progress(
            &self,
            _: &ExportId,
            _: &str,
            _: u64,
            _: u64,
            _: DateTime<Utc>,
            _: Duration,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn finish(
            &self,
            _: &ExportId,
            _: &str,
            _: &str,
            _: u64,
            _: u64,
            _: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn fail(
            &self,
            id: &ExportId,
            _: FailedBy<'_>,
            reason: &str,
            _: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            let mut jobs = self.jobs.lock().unwrap();
            let job = jobs.get_mut(id.as_str()).unwrap();
            job.status = ExportStatus::Failed;
            job.reason = Some(reason.into());
            Ok(true)
        }
    }

    struct Objects;
    #[async_trait]
    impl ExportObjects for Objects {
        async fn start(&self, _: &str, _: &str) -> Result<String, StoreError> {
            unreachable!()
        }
        async fn part(
            &self,
            _: &str,
            _: &str,
            _: i32,
            _: Vec<u8>,
        ) -> Result<UploadedPart, StoreError> {
            unreachable!()
        }
        async fn complete(&self, _: &str, _: &str, _: &[UploadedPart]) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn abort(&self, _: &str, _: &str) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn download_url(
            &self,
            key: &str,
            name: &str,
            ttl: Duration,
        ) -> Result<String, StoreError> {
            assert!(ttl <= Duration::from_secs(15 * 60));
            Ok(format!(
                "https://exports.example/{key}?name={name}&X-Amz-Expires={}",
                ttl.as_secs()
            ))
        }
    }

    #[derive(Default)]
    struct Queue {
        refuse: bool,
        sent: Mutex<Vec<String>>,
    }
    #[async_trait]
    impl EventPublisher for Queue {
        async fn publish(&self, body: &str, _: &str) -> Result<(), StoreError> {
            if self.refuse {
                return Err(StoreError::Unavailable("SendMessage".into()));
            }
            self.sent.lock().unwrap().push(body.into());
            Ok(())
        }
    }

    #[derive(Default)]
    struct Audit {
        refuse: bool,
        entries: Mutex<Vec<AuditEntry>>,
    }
    #[async_trait]
    impl AuditLog for Audit {
        async fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
            if self.refuse {
                return Err(StoreError::Unavailable("PutItem audit".into()));
            }
            self.entries.lock().unwrap().push(entry.clone());
            Ok(())
        }
        async fn trail(&self, _: &str, _: usize, _: Option<&str>) -> Result<AuditPage, StoreError> {
            unreachable!()
        }
    }

    struct Rig {
        api: ExportsApi,
        jobs: Arc<Jobs>,
        queue: Arc<Queue>,
        audit: Arc<Audit>,
    }

    fn rig(refuse_queue: bool, refuse_audit: bool) -> Rig {
        let jobs = Arc::new(Jobs::default());
        let queue = Arc::new(Queue {
            refuse: refuse_queue,
            ..Queue::default()
        });
        let audit = Arc::new(Audit {
            refuse: refuse_audit,
            ..Audit::default()
        });
        Rig {
            api: ExportsApi::with_ports(
                Arc::new(Subjects),
                jobs.clone(),
                Arc::new(Objects),
                queue.clone(),
                audit.clone(),
            ),
            jobs,
            queue,
            audit,
        }
    }

    /// An HttpApi (payload 2.0) event with the authorizer's claims (none: no token).
    fn event(
        route_key: &str,
        path: &str,
        params: serde_json::Value,
        claims: Option<serde_json::Value>,
        body: &str,
    ) -> Request {
        let (method, _) = route_key.split_once(' ').unwrap();
        let mut event = serde_json::json!({
            "version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": "",
            "headers": {"host": "api.example.org", "content-type": "application/json"},
            "pathParameters": params,
            "requestContext": {
                "accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": "api.example.org",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "203.0.113.10", "userAgent": "test"},
                "requestId": "r1", "routeKey": route_key, "stage": "$default",
                "time": "28/Nov/2026:01:00:00 +0000", "timeEpoch": 1795827600000u64
            },
            "body": body,
            "isBase64Encoded": false
        });
        if let Some(claims) = claims {
            event["requestContext"]["authorizer"] =
                serde_json::json!({"jwt": {"claims": claims, "scopes": null}});
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    fn monitor(site: &str) -> Option<serde_json::Value> {
        Some(serde_json::json!({"sub": "monitor-1", "role": "monitor", "sites": site}))
    }

    fn post(claims: Option<serde_json::Value>, subject: &str, body: &str) -> Request {
        event(
            "POST /v1/subjects/{subjectId}/exports",
            &format!("/v1/subjects/{subject}/exports"),
            serde_json::json!({"subjectId": subject}),
            claims,
            body,
        )
    }

    fn body(r: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(r.body().as_ref()).unwrap()
    }

    #[tokio::test]
    async fn a_request_is_stored_queued_audited_and_queued_once() {
        let r = rig(false, false);
        let resp = r
            .api
            .handle(post(monitor("SITE-1"), SUBJECT, r#"{"format":"pdf"}"#))
            .await;
        assert_eq!(resp.status(), 202);
        let b = body(&resp);
        let id = b["exportId"].as_str().unwrap().to_owned();
        assert_eq!(b["status"], "QUEUED");
        assert_eq!(
            resp.headers()["location"],
            format!("/v1/exports/{id}").as_str()
        );
        let job = r.jobs.jobs.lock().unwrap().get(&id).cloned().unwrap();
        assert_eq!(
            (job.status, job.format),
            (ExportStatus::Queued, ExportFormat::Pdf)
        );
        assert_eq!(job.requested_by, "monitor-1");
        let audits = r.jobs.audits.lock().unwrap().clone();
        assert_eq!(audits.len(), 1);
        assert_eq!(audits[0].entity, format!("subject#{SUBJECT}"));
        assert_eq!(audits[0].action, "subject.export");
        assert_eq!(
            *r.queue.sent.lock().unwrap(),
            vec![format!("{{\"exportId\":\"{id}\"}}")]
        );
        // The status, then the list.
        let get = event(
            "GET /v1/exports/{exportId}",
            &format!("/v1/exports/{id}"),
            serde_json::json!({"exportId": id}),
            monitor("SITE-1"),
            "",
        );
        let resp = r.api.handle(get).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(body(&resp)["progress"]["rowsDone"], 0);
        assert!(body(&resp).get("download").is_none());
        let list = event(
            "GET /v1/subjects/{subjectId}/exports",
            &format!("/v1/subjects/{SUBJECT}/exports"),
            serde_json::json!({"subjectId": SUBJECT}),
            monitor("SITE-1"),
            "",
        );
        let resp = r.api.handle(list).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(body(&resp)["exports"][0]["exportId"], id.as_str());
    }

    #[tokio::test]
    async fn the_auth_matrix_no_token_401_patient_403_other_site_or_missing_404() {
        let r = rig(false, false);
        let patient = Some(serde_json::json!({"sub": "p", "role": "patient", "subject": SUBJECT}));
        let cases = [
            (post(None, SUBJECT, r#"{"format":"csv"}"#), 401),
            (post(patient.clone(), SUBJECT, r#"{"format":"csv"}"#), 403),
            (post(monitor("SITE-2"), SUBJECT, r#"{"format":"csv"}"#), 404),
            (
                post(monitor("SITE-1"), "SUBJ-9999", r#"{"format":"csv"}"#),
                404,
            ),
            (post(monitor("SITE-1"), "../x", r#"{"format":"csv"}"#), 404),
            (
                post(
                    Some(
                        serde_json::json!({"sub": "a", "role": "sponsor_admin", "trials": "TRIAL-2"}),
                    ),
                    SUBJECT,
                    r#"{"format":"csv"}"#,
                ),
                404,
            ),
        ];
        for (request, status) in cases {
            assert_eq!(r.api.handle(request).await.status(), status);
        }
        assert!(r.jobs.jobs.lock().unwrap().is_empty(), "nothing stored");
        assert!(r.queue.sent.lock().unwrap().is_empty(), "nothing queued");
        // An export of SITE-1's subject is invisible from SITE-2, exactly like a missing one.
        let ok = r
            .api
            .handle(post(monitor("SITE-1"), SUBJECT, r#"{"format":"csv"}"#))
            .await;
        let id = body(&ok)["exportId"].as_str().unwrap().to_owned();
        for (who, id, status) in [
            (monitor("SITE-2"), id.clone(), 404),
            (monitor("SITE-1"), ExportId::generate().to_string(), 404),
            (None, id.clone(), 401),
            (patient, id.clone(), 403),
        ] {
            let get = event(
                "GET /v1/exports/{exportId}",
                &format!("/v1/exports/{id}"),
                serde_json::json!({"exportId": id}),
                who,
                "",
            );
            assert_eq!(r.api.handle(get).await.status(), status);
        }
    }

    #[tokio::test]
    async fn bad_bodies_are_problems_and_write_nothing() {
        let r = rig(false, false);
        for (b, status) in [
            ("", 400),
            ("[]", 422),
            (r#"{"format":"docx"}"#, 422),
            (r#"{"format":"pdf","name":"Jane"}"#, 422),
            ("{", 400),
        ] {
            let resp = r.api.handle(post(monitor("SITE-1"), SUBJECT, b)).await;
            assert_eq!(resp.status(), status, "{b}");
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
        }
        assert!(r.jobs.jobs.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_export_the_queue_refuses_ends_failed_at_once() {
        let r = rig(true, false);
        let resp = r
            .api
            .handle(post(monitor("SITE-1"), SUBJECT, r#"{"format":"csv"}"#))
            .await;
        assert_eq!(resp.status(), 503);
        let jobs = r.jobs.jobs.lock().unwrap().clone();
        let job = jobs.values().next().unwrap();
        assert_eq!(job.status, ExportStatus::Failed);
        assert_eq!(
            job.reason.as_deref(),
            Some("the export could not be queued")
        );
    }

    #[tokio::test]
    async fn a_done_export_offers_an_audited_short_lived_link_and_none_without_the_audit() {
        for refuse_audit in [false, true] {
            let r = rig(false, refuse_audit);
            let ok = r
                .api
                .handle(post(monitor("SITE-1"), SUBJECT, r#"{"format":"csv"}"#))
                .await;
            let id = body(&ok)["exportId"].as_str().unwrap().to_owned();
            {
                let mut jobs = r.jobs.jobs.lock().unwrap();
                let job = jobs.get_mut(&id).unwrap();
                job.status = ExportStatus::Done;
                job.object_key = Some(job.object_key());
                job.rows_done = 10;
                job.rows_total = Some(10);
            }
            let get = event(
                "GET /v1/exports/{exportId}",
                &format!("/v1/exports/{id}"),
                serde_json::json!({"exportId": id}),
                monitor("SITE-1"),
                "",
            );
            let resp = r.api.handle(get).await;
            if refuse_audit {
                assert_eq!(resp.status(), 503);
                assert!(!String::from_utf8_lossy(resp.body().as_ref()).contains("exports.example"));
                continue;
            }
            assert_eq!(resp.status(), 200);
            let b = body(&resp);
            assert_eq!(b["status"], "DONE");
            let url = b["download"]["url"].as_str().unwrap();
            assert!(
                url.contains(&format!("exports/{SUBJECT}/{id}.csv")),
                "{url}"
            );
            assert!(url.contains("X-Amz-Expires=600"));
            let entries = r.audit.entries.lock().unwrap().clone();
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].action, "subject.export.download");
        }
    }

    #[tokio::test]
    async fn past_the_buckets_lifecycle_a_done_export_offers_no_link_and_audits_nothing() {
        let r = rig(false, false);
        let ok = r
            .api
            .handle(post(monitor("SITE-1"), SUBJECT, r#"{"format":"csv"}"#))
            .await;
        let id = body(&ok)["exportId"].as_str().unwrap().to_owned();
        let finished = Utc::now() - chrono::Duration::days(FILE_DAYS) - chrono::Duration::hours(1);
        {
            let mut jobs = r.jobs.jobs.lock().unwrap();
            let job = jobs.get_mut(&id).unwrap();
            job.status = ExportStatus::Done;
            job.object_key = Some(job.object_key());
            job.updated_at = finished;
        }
        let get = event(
            "GET /v1/exports/{exportId}",
            &format!("/v1/exports/{id}"),
            serde_json::json!({"exportId": id}),
            monitor("SITE-1"),
            "",
        );
        let resp = r.api.handle(get).await;
        assert_eq!(resp.status(), 200);
        let b = body(&resp);
        assert_eq!(b["status"], "DONE");
        assert!(b.get("download").is_none(), "{b}");
        let expired: DateTime<Utc> = b["fileExpiresAt"].as_str().unwrap().parse().unwrap();
        assert!(expired < Utc::now());
        assert!(
            r.audit.entries.lock().unwrap().is_empty(),
            "no read handed out"
        );
    }
}
