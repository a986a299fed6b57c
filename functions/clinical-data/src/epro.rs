//! ePRO diaries.
//!
//! - `POST /v1/subjects/{subjectId}/epro` `{recordedAt, painScore, symptoms, diaryCompleted}`: site
//!   staff of the subject's site, or the patient (a `patient` token whose `subject` claim names
//!   it). Requires an `Idempotency-Key` header (1 to 255 visible ASCII characters; without it, 400
//!   `idempotency-key-required`: a phone on a bad network must be able to retry safely, so a
//!   request that could not be retried safely is refused). The key is the client's (the token's
//!   `sub`): the same key with the same request answers the first answer again (status and body,
//!   `Idempotency-Replayed: true`) and writes nothing; with another request (body or subject),
//!   422 `idempotency-key-reused`. Keys are kept 24 hours. The request key, the entry and its
//!   audit entry are one transaction, so concurrent retries store exactly one entry.
//!   Each client (`sub`) is rate limited by a token bucket shared by every instance
//!   (`EproRateLimitPerSecond`, `EproRateLimitBurst`): past it, 429 with `Retry-After`.
//! - `GET /v1/subjects/{subjectId}/epro?since=&limit=&cursor=`: the diary, oldest first by when it
//!   was recorded (audited read): who may read the subject's site, and the patient.

use crate::request::{self, RequestMeta};
use crate::{cursor, ClinicalApi};
use chrono::{DateTime, Utc};
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use shared::auth::{Caller, Role};
use shared::clinical::epro::{EproEntry, EproSubmission};
use shared::problem::Problem;
use shared::store::audit::subject_entity;
use shared::store::clinical::{EproPosition, StoredAnswer};
use shared::store::AuditEntry;

const MAX_BODY_BYTES: usize = 4 * 1024;
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// How long a key's first answer is kept.
const KEEP_ANSWERS: chrono::Duration = chrono::Duration::hours(24);

fn idempotency_key(request: &Request) -> Result<String, Problem> {
    let problem = |detail: &str| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency-key-required",
            "Idempotency-Key required",
        )
        .detail(detail.to_owned())
    };
    let raw = request
        .headers()
        .get(IDEMPOTENCY_HEADER)
        .ok_or_else(|| {
            problem(
                "Send an Idempotency-Key header (e.g. a UUID per diary entry) so a retry is safe.",
            )
        })?
        .to_str()
        .map_err(|_| problem("The Idempotency-Key must be visible ASCII."))?
        .trim();
    if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(raw.to_owned())
    } else {
        Err(problem(
            "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
        ))
    }
}

fn rate_limited(retry_after: u64) -> Response<Body> {
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
    )
    .detail(format!(
        "Too many diary submissions from this client; retry after {retry_after} s."
    ))
    .into_response();
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, retry_after.into());
    response
}

/// The first answer again, or 422 when the key came with another request.
fn replay(first: StoredAnswer, fingerprint: &str) -> Result<Response<Body>, Problem> {
    if first.fingerprint != fingerprint {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
        )
        .detail(
            "This Idempotency-Key was used for another request; use a new key for a new entry.",
        ));
    }
    Response::builder()
        .status(StatusCode::from_u16(first.status).unwrap_or(StatusCode::CREATED))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("idempotency-replayed", "true")
        .body(Body::Text(first.body))
        .map_err(|_| Problem::internal())
}

pub(crate) async fn submit(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    raw_subject: &str,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    if !matches!(caller.role, Role::SiteStaff | Role::Patient) {
        return Err(Problem::forbidden(
            "Only the patient and site staff submit diary entries.",
        ));
    }
    let decision = api.epro_limiter.allow(&caller.user).await;
    if !decision.allowed {
        return Ok(rate_limited(decision.retry_after_seconds));
    }
    let key = idempotency_key(request)?;
    let subject = api
        .visible_subject(raw_subject, |s| {
            caller.is_patient(&s.id) || caller.can_enter_data(&s.trial, &s.site)
        })
        .await?;
    let body = request::json_body(request, MAX_BODY_BYTES)?;
    let mut digest = Sha256::new();
    digest.update(format!("POST /v1/subjects/{}/epro\n", subject.id).as_bytes());
    digest.update(request.body().as_ref());
    let fingerprint = hex::encode(digest.finalize());
    let request_key = format!("{}#{key}", caller.user);
    if let Some(first) = api
        .submissions
        .answer(&request_key)
        .await
        .map_err(request::store)?
    {
        return replay(first, &fingerprint);
    }
    // Times as stored: to the millisecond, so the first answer and a later read agree.
    let millis =
        |t: DateTime<Utc>| DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
    let now = millis(Utc::now());
    let submission = EproSubmission::parse(&body, now)
        .map_err(|errors| request::invalid("invalid-epro", "Invalid diary entry", errors))?;
    let entry = EproEntry {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        subject: subject.id.clone(),
        recorded_at: millis(submission.recorded_at),
        pain_score: submission.pain_score,
        symptoms: submission.symptoms,
        diary_completed: submission.diary_completed,
        received_at: now,
        submitted_by: caller.user.clone(),
    };
    let answer = StoredAnswer {
        fingerprint: fingerprint.clone(),
        status: StatusCode::CREATED.as_u16(),
        body: serde_json::to_string(&entry).map_err(|_| Problem::internal())?,
    };
    let audit = AuditEntry {
        entity: subject_entity(&subject.id),
        actor: caller.user.clone(),
        at: now,
        action: "epro.submit".into(),
        old: None,
        new: Some(answer.body.clone()),
        reason: format!("diary entry submitted by {}", caller.role.as_str()),
        correlation_id: meta.correlation_id.clone(),
    };
    match api
        .submissions
        .record(&request_key, &answer, now + KEEP_ANSWERS, &entry, &audit)
        .await
        .map_err(request::store)?
    {
        None => Response::builder()
            .status(StatusCode::CREATED)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::Text(answer.body))
            .map_err(|_| Problem::internal()),
        Some(first) => replay(first, &fingerprint),
    }
}

pub(crate) async fn list(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    raw_subject: &str,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    let subject = api
        .visible_subject(raw_subject, |s| {
            caller.is_patient(&s.id) || caller.can_read(&s.trial, &s.site)
        })
        .await?;
    let params = request::query(request, &["since", "limit", "cursor"])?;
    let mut errors = Vec::new();
    let limit = request::limit(&params, 100, 500, &mut errors);
    let since = match params.get("since") {
        None => None,
        Some(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(("since".into(), "must be an RFC 3339 timestamp".into()));
                None
            }
        },
    };
    let scope = format!(
        "epro#{}#{}",
        subject.id,
        since.map(|t| t.timestamp_millis()).unwrap_or_default()
    );
    let after = match params.get("cursor") {
        None => None,
        Some(raw) => match cursor::decode(raw, &scope) {
            Some(position) => Some(EproPosition(position)),
            None => {
                errors.push(("cursor".into(), cursor::BAD_CURSOR.into()));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(request::invalid_query(errors));
    }
    let page = api
        .diary
        .page(&subject.id, since, limit, after.as_ref())
        .await
        .map_err(request::store)?;
    api.audit_read(meta, caller, &subject.id, "epro").await?;
    request::json(
        StatusCode::OK,
        &json!({
            "subjectId": subject.id,
            "entries": page.entries,
            "nextCursor": page.next.map(|p| cursor::encode(&scope, &p.0)),
        }),
    )
}
