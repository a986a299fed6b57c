//! `GET /v1/subjects/{subjectId}/audit?limit=&cursor=`: the subject's audit trail, oldest first —
//! every change (enrolment, forms with their item-level old → new values, diary entries) and every
//! user's read of the subject's data. Monitors and sponsor admins who may read the subject's site;
//! site staff and patients 403. Reading the trail is itself an audited read.

use crate::request::{self, RequestMeta};
use crate::{cursor, ClinicalApi};
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde_json::{json, Value};
use shared::auth::{Caller, Role};
use shared::problem::Problem;
use shared::store::audit::subject_entity;

pub(crate) async fn trail(
    api: &ClinicalApi,
    meta: &RequestMeta,
    caller: &Caller,
    raw_subject: &str,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    if !matches!(caller.role, Role::Monitor | Role::SponsorAdmin) {
        return Err(Problem::forbidden(
            "The audit trail is for monitors and sponsor admins.",
        ));
    }
    let subject = api
        .visible_subject(raw_subject, |s| caller.can_read(&s.trial, &s.site))
        .await?;
    let params = request::query(request, &["limit", "cursor"])?;
    let mut errors = Vec::new();
    let limit = request::limit(&params, 100, 500, &mut errors);
    let entity = subject_entity(&subject.id);
    let after = match params.get("cursor") {
        None => None,
        Some(raw) => match cursor::decode(raw, &entity) {
            Some(position) => Some(position),
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
        .audit
        .trail(&entity, limit, after.as_deref())
        .await
        .map_err(request::store)?;
    api.audit_read(meta, caller, &subject.id, "audit").await?;
    let entries: Vec<Value> = page
        .records
        .iter()
        .map(|r| {
            let e = &r.entry;
            json!({
                "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "actor": e.actor,
                "action": e.action,
                "old": e.old,
                "new": e.new,
                "reason": e.reason,
                "correlationId": e.correlation_id,
            })
        })
        .collect();
    request::json(
        StatusCode::OK,
        &json!({
            "subjectId": subject.id,
            "entries": entries,
            "nextCursor": page.next.map(|p| cursor::encode(&entity, &p)),
        }),
    )
}
