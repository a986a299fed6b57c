//! Enrolment and the subject record.
//!
//! - `POST /v1/subjects` `{trialId, siteId, subjectKey, sex, birthYear, enrolledOn}`: site staff of
//!   that site. The subject key is unique per trial (claimed in the enrolment's transaction): the
//!   same enrolment again (a retry, a double click) answers 200 with the subject enrolled first;
//!   the key with other data answers 409 and writes nothing. New: 201 with `Location`.
//! - `GET /v1/subjects?siteId=&limit=&cursor=`: the site's subjects the caller may read, in subject
//!   id order; each one shown is an audited read.
//! - `GET /v1/subjects/{subjectId}`: the record (audited read).

use crate::request::{self, RequestMeta};
use crate::{cursor, ClinicalApi};
use futures::future::try_join_all;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::json;
use shared::auth::{Caller, Role};
use shared::clinical::subject::{Enrolment, SubjectRecord};
use shared::domain::{SiteId, SubjectId};
use shared::problem::Problem;
use shared::store::audit::subject_entity;
use shared::store::clinical::Enrolled;
use shared::store::AuditEntry;

const MAX_BODY_BYTES: usize = 16 * 1024;

/// A new subject's id: server-chosen, never derived from the subject key.
fn new_subject_id() -> SubjectId {
    let raw = format!(
        "SUBJ-{}",
        uuid::Uuid::new_v4().simple().to_string().to_uppercase()
    );
    // 37 characters of [A-Z0-9-]: always a valid id.
    SubjectId::parse(&raw).unwrap_or_else(|_| unreachable!("a generated subject id is valid"))
}

pub(crate) async fn enrol(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    if caller.role != Role::SiteStaff {
        return Err(Problem::forbidden("Only site staff enrol subjects."));
    }
    let body = request::json_body(request, MAX_BODY_BYTES)?;
    // To the millisecond, as stored: the first answer and a later read agree.
    let now = chrono::Utc::now();
    let now = chrono::DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let enrolment = Enrolment::parse(&body, now.date_naive())
        .map_err(|errors| request::invalid("invalid-subject", "Invalid enrolment", errors))?;
    if !caller.can_enter_data(&enrolment.trial, &enrolment.site) {
        return Err(Problem::forbidden(
            "You may enrol subjects only at your own sites and trials.",
        ));
    }
    let record = SubjectRecord::enrol(new_subject_id(), &enrolment, &caller.user, now);
    let audit = AuditEntry {
        entity: subject_entity(&record.id),
        actor: caller.user.clone(),
        at: now,
        action: "subject.enrol".into(),
        old: None,
        new: Some(
            json!({"subjectKey": record.subject_key, "trialId": record.trial,
                   "siteId": record.site, "sex": record.sex.as_str(),
                   "birthYear": record.birth_year, "enrolledOn": record.enrolled_on})
            .to_string(),
        ),
        reason: "enrolment".into(),
        correlation_id: meta.correlation_id.clone(),
    };
    match api
        .subjects
        .enrol(&record, &audit)
        .await
        .map_err(request::store)?
    {
        Enrolled::New => {
            let mut response = request::json(StatusCode::CREATED, &record)?;
            if let Ok(v) = format!("/v1/subjects/{}", record.id).parse() {
                response.headers_mut().insert(http::header::LOCATION, v);
            }
            Ok(response)
        }
        Enrolled::Existing(existing) if existing.is_same_enrolment(&enrolment) => {
            api.audit_read(meta, caller, &existing.id, "subject")
                .await?;
            let mut response = request::json(StatusCode::OK, &existing)?;
            if let Ok(v) = format!("/v1/subjects/{}", existing.id).parse() {
                response.headers_mut().insert(http::header::LOCATION, v);
            }
            Ok(response)
        }
        Enrolled::Existing(_) => Err(Problem::new(
            StatusCode::CONFLICT,
            "subject-key-taken",
            "Subject key taken",
        )
        .detail("Another subject of this trial has this subject key; nothing was written.")),
    }
}

pub(crate) async fn list(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    if caller.role == Role::Patient {
        return Err(Problem::forbidden("Patients do not list subjects."));
    }
    let params = request::query(request, &["siteId", "limit", "cursor"])?;
    let mut errors = Vec::new();
    let limit = request::limit(&params, 20, 100, &mut errors);
    let site = match params.get("siteId").map(|s| SiteId::parse(s)) {
        Some(Ok(site)) => Some(site),
        Some(Err(e)) => {
            errors.push(("siteId".into(), e));
            None
        }
        None => {
            errors.push(("siteId".into(), "is required".into()));
            None
        }
    };
    let scope = site
        .as_ref()
        .map(|s| format!("site#{s}"))
        .unwrap_or_default();
    let after = match params.get("cursor") {
        None => None,
        Some(raw) => match cursor::decode(raw, &scope).map(|a| SubjectId::parse(&a)) {
            Some(Ok(id)) => Some(id),
            _ => {
                errors.push(("cursor".into(), cursor::BAD_CURSOR.into()));
                None
            }
        },
    };
    let Some(site) = site.filter(|_| errors.is_empty()) else {
        return Err(request::invalid_query(errors));
    };
    // Site roles see their own sites; a sponsor admin every site of its trials.
    if matches!(caller.role, Role::SiteStaff | Role::Monitor) && !caller.sites.contains(&site) {
        return Err(Problem::forbidden(
            "You may list subjects only at your own sites.",
        ));
    }
    let page = api
        .subjects
        .list_site(&site, limit, after.as_ref())
        .await
        .map_err(request::store)?;
    let subjects: Vec<SubjectRecord> = page
        .subjects
        .into_iter()
        .filter(|s| caller.can_read(&s.trial, &s.site))
        .collect();
    // Each subject shown is a read of its data: audited first, all or nothing.
    try_join_all(
        subjects
            .iter()
            .map(|s| api.audit_read(meta, caller, &s.id, "subject")),
    )
    .await?;
    let next_cursor = page.next.map(|id| cursor::encode(&scope, id.as_str()));
    request::json(
        StatusCode::OK,
        &json!({"subjects": subjects, "nextCursor": next_cursor}),
    )
}

pub(crate) async fn get(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    raw: &str,
) -> Result<Response<Body>, Problem> {
    if caller.role == Role::Patient {
        return Err(Problem::forbidden("Patients read their own diary only."));
    }
    let subject = api
        .visible_subject(raw, |s| caller.can_read(&s.trial, &s.site))
        .await?;
    api.audit_read(meta, caller, &subject.id, "subject").await?;
    request::json(StatusCode::OK, &subject)
}
