//! EDC forms with optimistic concurrency: the form's version is its `ETag`.
//!
//! - `PUT /v1/subjects/{subjectId}/forms/{formOid}` `{"itemGroups": [...], "reasonForChange": ".."}`:
//!   site staff of the subject's site. `If-None-Match: *` creates (412 if the form exists);
//!   `If-Match: "<version>"` changes that version (412 if it is not the stored one); neither: 428.
//!   A reason for change is required on every change after the first. One audit entry per
//!   accepted write, in its transaction, holding the item-level old → new values (a form may
//!   change more items than a DynamoDB transaction could carry entries for). Writing the data
//!   already stored changes nothing and writes nothing (200 with the stored form).
//! - `GET .../forms/{formOid}`: the form with its `ETag` (404 if never written); `GET .../forms`:
//!   every form of the subject. Both audited reads.

use crate::request::{self, RequestMeta};
use crate::ClinicalApi;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Map, Value};
use shared::auth::{Caller, Role};
use shared::clinical::forms::{version_of_etag, Form, FormData, FormOid, ItemChange};
use shared::clinical::FieldError;
use shared::problem::Problem;
use shared::store::audit::subject_entity;
use shared::store::{AuditEntry, StoreError};

/// A lab form of 1,000 results is about 200 KB of JSON.
const MAX_BODY_BYTES: usize = 512 * 1024;
/// A DynamoDB item holds at most 400 KB (names and values): the form's item holds its JSON, and its
/// audit entry the changed items' old and new values; each stays under this, leaving room for the
/// item's other attributes. (A body within `MAX_BODY_BYTES` can exceed it: 500 adverse events of
/// 200 four-byte characters each.)
const MAX_STORED_BYTES: usize = 350 * 1024;
const MAX_REASON_CHARS: usize = 500;

/// The JSON of a stored form.
pub(crate) fn view(form: &Form) -> Value {
    let mut v = form.data.to_json();
    if let Some(fields) = v.as_object_mut() {
        let mut head = Map::new();
        head.insert("subjectId".into(), json!(form.subject));
        head.insert("formOid".into(), json!(form.oid().as_str()));
        head.insert("title".into(), json!(form.oid().title()));
        head.insert("version".into(), json!(form.version));
        head.insert(
            "updatedAt".into(),
            json!(form
                .updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        head.insert("updatedBy".into(), json!(form.updated_by));
        head.extend(std::mem::take(fields));
        return Value::Object(head);
    }
    v
}

fn with_etag(mut response: Response<Body>, form: &Form) -> Response<Body> {
    if let Ok(v) = form.etag().parse() {
        response.headers_mut().insert(http::header::ETAG, v);
    }
    response
}

fn parse_oid(raw: &str) -> Result<FormOid, Problem> {
    FormOid::parse(raw).ok_or_else(|| {
        Problem::not_found(format!(
            "No such form; the forms are {}.",
            FormOid::ALL.map(FormOid::as_str).join(", ")
        ))
    })
}

fn precondition_failed(detail: &str) -> Problem {
    Problem::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
        "Precondition failed",
    )
    .detail(detail.to_owned())
}

/// What the write is conditioned on.
enum Precondition {
    /// `If-None-Match: *`: only if no version exists.
    Create,
    /// `If-Match: "<version>"`: only if this version is the stored one.
    Change(u64),
}

fn precondition(request: &Request) -> Result<Precondition, Problem> {
    let header = |name: http::header::HeaderName| {
        request
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("").trim().to_owned())
    };
    match (
        header(http::header::IF_MATCH),
        header(http::header::IF_NONE_MATCH),
    ) {
        (None, Some(star)) if star == "*" => Ok(Precondition::Create),
        (Some(tag), None) => version_of_etag(&tag)
            .map(Precondition::Change)
            // A tag that names no version of ours matches none (RFC 9110 §13.1.1).
            .ok_or_else(|| precondition_failed("If-Match names no version of this form.")),
        (None, None) => Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition-required",
            "Precondition required",
        )
        .detail(
            "Send If-None-Match: * to create the form, or If-Match with the ETag you read to change it.",
        )),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
        )
        .detail("Send either If-None-Match: * (create) or If-Match: \"<version>\" (change).")),
    }
}

/// `{item: value}` of one side of the changes, for the audit entry.
fn side(
    form: FormOid,
    version: u64,
    changes: &[ItemChange],
    pick: impl Fn(&ItemChange) -> Option<&String>,
) -> String {
    let items: Map<String, Value> = changes
        .iter()
        .filter_map(|c| pick(c).map(|v| (c.item.clone(), json!(v))))
        .collect();
    json!({"form": form.as_str(), "version": version, "items": items}).to_string()
}

pub(crate) async fn put(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    raw_subject: &str,
    raw_oid: &str,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    if caller.role != Role::SiteStaff {
        return Err(Problem::forbidden("Only site staff enter form data."));
    }
    let subject = api
        .visible_subject(raw_subject, |s| caller.can_enter_data(&s.trial, &s.site))
        .await?;
    let oid = parse_oid(raw_oid)?;
    let condition = precondition(request)?;
    let body = request::json_body(request, MAX_BODY_BYTES)?;
    let now = chrono::Utc::now();
    let mut errors: Vec<FieldError> = Vec::new();
    let Some(fields) = body.as_object() else {
        return Err(request::invalid(
            "invalid-form",
            "Invalid form",
            vec![FieldError::new("", "the body must be a JSON object")],
        ));
    };
    for key in fields.keys() {
        if !["itemGroups", "reasonForChange"].contains(&key.as_str()) {
            errors.push(FieldError::new(format!("/{key}"), "is not a known field"));
        }
    }
    let reason = match fields.get("reasonForChange") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => {
            let r = r.trim();
            if r.is_empty()
                || r.chars().count() > MAX_REASON_CHARS
                || r.chars().any(char::is_control)
            {
                errors.push(FieldError::new(
                    "/reasonForChange",
                    format!("must be 1 to {MAX_REASON_CHARS} characters of text"),
                ));
                None
            } else {
                Some(r.to_owned())
            }
        }
        Some(_) => {
            errors.push(FieldError::new("/reasonForChange", "must be a string"));
            None
        }
    };
    if matches!(condition, Precondition::Change(_))
        && reason.is_none()
        && !errors.iter().any(|e| e.pointer == "/reasonForChange")
    {
        errors.push(FieldError::new(
            "/reasonForChange",
            "is required to change a form",
        ));
    }
    let data = match FormData::parse(oid, &body, now.date_naive()) {
        Ok(data) => Some(data),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    let Some(data) = data.filter(|_| errors.is_empty()) else {
        return Err(request::invalid("invalid-form", "Invalid form", errors));
    };
    let stored = api
        .forms
        .get(&subject.id, oid)
        .await
        .map_err(request::store)?;
    let read = match (&condition, &stored) {
        (Precondition::Create, None) => None,
        (Precondition::Create, Some(_)) => {
            return Err(precondition_failed(
                "The form exists: read it and send If-Match with its ETag to change it.",
            ))
        }
        (Precondition::Change(v), Some(f)) if f.version == *v => Some(f),
        (Precondition::Change(_), _) => {
            return Err(precondition_failed(
                "The form changed since you read it (or does not exist): read it again.",
            ))
        }
    };
    let changes = data.changes_from(read.map(|f| &f.data));
    if let (Some(current), true) = (read, changes.is_empty()) {
        // Nothing changes: nothing written, nothing to audit.
        return Ok(with_etag(
            request::json(StatusCode::OK, &view(current))?,
            current,
        ));
    }
    let version = read.map_or(1, |f| f.version + 1);
    let form = Form {
        subject: subject.id.clone(),
        data,
        version,
        updated_at: now,
        updated_by: caller.user.clone(),
    };
    let audit = AuditEntry {
        entity: subject_entity(&subject.id),
        actor: caller.user.clone(),
        at: now,
        action: if read.is_some() {
            "form.change".into()
        } else {
            "form.create".into()
        },
        old: read.map(|f| side(oid, f.version, &changes, |c| c.old.as_ref())),
        new: Some(side(oid, version, &changes, |c| c.new.as_ref())),
        reason: reason.unwrap_or_else(|| "initial entry".into()),
        correlation_id: meta.correlation_id.clone(),
    };
    let stored_bytes = form.data.to_json().to_string().len();
    let audited_bytes =
        audit.old.as_ref().map_or(0, String::len) + audit.new.as_ref().map_or(0, String::len);
    if stored_bytes.max(audited_bytes) > MAX_STORED_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Form too large to store",
        )
        .detail(format!(
            "The form holds {stored_bytes} bytes and this change {audited_bytes} bytes of audited values; each is limited to {MAX_STORED_BYTES} bytes. Split its entries over more forms; nothing was written."
        )));
    }
    match api.forms.put(&form, std::slice::from_ref(&audit)).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(precondition_failed(
                "Someone changed the form first: read it again; nothing was written.",
            ))
        }
        Err(e) => return Err(request::store(e)),
    }
    let status = if read.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = with_etag(request::json(status, &view(&form))?, &form);
    if status == StatusCode::CREATED {
        if let Ok(v) = format!("/v1/subjects/{}/forms/{}", subject.id, oid.as_str()).parse() {
            response.headers_mut().insert(http::header::LOCATION, v);
        }
    }
    Ok(response)
}

pub(crate) async fn get(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    raw_subject: &str,
    raw_oid: &str,
) -> Result<Response<Body>, Problem> {
    if caller.role == Role::Patient {
        return Err(Problem::forbidden("Patients read their own diary only."));
    }
    let subject = api
        .visible_subject(raw_subject, |s| caller.can_read(&s.trial, &s.site))
        .await?;
    let oid = parse_oid(raw_oid)?;
    let form = api
        .forms
        .get(&subject.id, oid)
        .await
        .map_err(request::store)?
        .ok_or_else(|| Problem::not_found("This form has not been entered for the subject."))?;
    api.audit_read(meta, caller, &subject.id, &format!("form.{}", oid.as_str()))
        .await?;
    Ok(with_etag(
        request::json(StatusCode::OK, &view(&form))?,
        &form,
    ))
}

pub(crate) async fn list(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    raw_subject: &str,
) -> Result<Response<Body>, Problem> {
    if caller.role == Role::Patient {
        return Err(Problem::forbidden("Patients read their own diary only."));
    }
    let subject = api
        .visible_subject(raw_subject, |s| caller.can_read(&s.trial, &s.site))
        .await?;
    let mut forms = api
        .forms
        .of_subject(&subject.id)
        .await
        .map_err(request::store)?;
    forms.sort_by_key(Form::oid);
    api.audit_read(meta, caller, &subject.id, "forms").await?;
    let views: Vec<Value> = forms.iter().map(view).collect();
    request::json(
        StatusCode::OK,
        &json!({"subjectId": subject.id, "forms": views}),
    )
}
