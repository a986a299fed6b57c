//! `GET /v1/uploads?subjectId=&status=&limit=&cursor=`: a subject's uploads, newest first, a page at
//! a time (an upload id lost on a page refresh is found again).
//!
//! - `subjectId` (required): a subject of the caller's sites; any other answers 404, as a subject
//!   that does not exist (existence does not leak).
//! - `status` (optional): only uploads in that status.
//! - `limit`: 1 to 100, default 20.
//! - `cursor`: the `nextCursor` of the previous page, as given. It is opaque to clients: base64url
//!   of the position the page ended at (an upload of the subject and its `createdAt`), bound to the
//!   subject and filter it was issued for. Anything else — edited, another subject's, another
//!   filter's, a position that is no upload of the subject — is refused with 400. (A cursor carries
//!   only a position in a list the caller is authorised for on every request; it needs no secret.)
//!
//! Each record is shown exactly as `GET /v1/uploads/{uploadId}` shows it ([`UploadView`]); reading
//! changes nothing.

use crate::request;
use crate::view::{self, UploadView};
use crate::UploadApi;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use shared::auth::Caller;
use shared::domain::{SubjectId, UploadId, UploadStatus};
use shared::problem::Problem;
use shared::store::UploadPosition;

pub(crate) const DEFAULT_LIMIT: usize = 20;
pub(crate) const MAX_LIMIT: usize = 100;
const PARAMETERS: [&str; 4] = ["subjectId", "status", "limit", "cursor"];

/// What the query string asks for, validated.
#[derive(Debug, PartialEq)]
pub(crate) struct ListQuery {
    pub subject: SubjectId,
    pub status: Option<UploadStatus>,
    pub limit: usize,
    pub after: Option<UploadPosition>,
}

/// The cursor's content (base64url JSON, no padding). Versioned, so its shape can change.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Cursor {
    v: u8,
    subject_id: String,
    status: Option<String>,
    upload_id: String,
    created_at: String,
}

const CURSOR_VERSION: u8 = 1;
const BAD_CURSOR: &str = "not a cursor this list issued for this subject and status";

fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn encode_cursor(
    subject: &SubjectId,
    status: Option<UploadStatus>,
    p: &UploadPosition,
) -> String {
    let cursor = Cursor {
        v: CURSOR_VERSION,
        subject_id: subject.to_string(),
        status: status.map(|s| s.as_str().to_owned()),
        upload_id: p.upload.to_string(),
        created_at: timestamp(&p.created_at),
    };
    let json = serde_json::to_vec(&cursor).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The position a cursor names, if it is one this route issued for this subject and filter.
fn decode_cursor(
    raw: &str,
    subject: &SubjectId,
    status: Option<UploadStatus>,
) -> Option<UploadPosition> {
    if raw.len() > 1024 {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    let cursor: Cursor = serde_json::from_slice(&json).ok()?;
    let created_at = DateTime::parse_from_rfc3339(&cursor.created_at)
        .ok()?
        .with_timezone(&Utc);
    let same_scope = cursor.v == CURSOR_VERSION
        && cursor.subject_id == subject.as_str()
        && cursor.status.as_deref() == status.map(UploadStatus::as_str)
        // Canonical, as issued: re-encoding gives the same text.
        && timestamp(&created_at) == cursor.created_at;
    if !same_scope {
        return None;
    }
    Some(UploadPosition {
        upload: UploadId::parse(&cursor.upload_id).ok()?,
        created_at,
    })
}

fn invalid(errors: Vec<(String, String)>) -> Problem {
    let count = errors.len();
    let errors: Vec<serde_json::Value> = errors
        .into_iter()
        .map(|(field, detail)| serde_json::json!({ "field": field, "detail": detail }))
        .collect();
    Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query")
        .detail(format!(
            "{count} query parameter(s) are invalid; nothing was read."
        ))
        .extension("errors", errors)
}

/// The query string's problems, one entry per parameter.
#[derive(Default)]
struct Errors(Vec<(String, String)>);

impl Errors {
    fn add(&mut self, field: &str, detail: impl Into<String>) {
        if !self.0.iter().any(|(f, _)| f == field) {
            self.0.push((field.to_owned(), detail.into()));
        }
    }

    fn names(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }
}

/// A parameter given at most once.
fn single(params: &QueryMap, name: &str, errors: &mut Errors) -> Option<String> {
    match params.all(name) {
        Some(values) if values.len() > 1 => {
            errors.add(name, "given more than once");
            None
        }
        Some(values) => values.first().map(|v| (*v).to_owned()),
        None => None,
    }
}

/// Validates the query string: every error at once, one entry per parameter.
pub(crate) fn parse_query(request: &Request) -> Result<ListQuery, Problem> {
    let params = request.query_string_parameters();
    let mut errors = Errors::default();
    for (name, _) in params.iter() {
        if !PARAMETERS.contains(&name) {
            errors.add(name, "not a parameter of this route");
        }
    }
    let subject = match single(&params, "subjectId", &mut errors) {
        None => {
            errors.add("subjectId", "required");
            None
        }
        Some(raw) => match SubjectId::parse(&raw) {
            Ok(s) => Some(s),
            Err(e) => {
                errors.add("subjectId", e);
                None
            }
        },
    };
    let status = single(&params, "status", &mut errors).and_then(|raw| {
        let parsed = UploadStatus::parse(&raw);
        if parsed.is_none() {
            errors.add("status", "not an upload status");
        }
        parsed
    });
    let limit = match single(&params, "limit", &mut errors) {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) && !raw.starts_with('+') => n,
            _ => {
                errors.add("limit", format!("an integer from 1 to {MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        },
    };
    let cursor = single(&params, "cursor", &mut errors);
    let after = match (&cursor, &subject) {
        (Some(raw), Some(subject)) if !errors.names("status") => {
            let position = decode_cursor(raw, subject, status);
            if position.is_none() {
                errors.add("cursor", BAD_CURSOR);
            }
            position
        }
        _ => None,
    };
    match subject {
        Some(subject) if errors.0.is_empty() => Ok(ListQuery {
            subject,
            status,
            limit,
            after,
        }),
        _ => Err(invalid(errors.0)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UploadList {
    subject_id: String,
    items: Vec<UploadView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub(crate) async fn list_uploads(
    api: &UploadApi,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    let query = parse_query(request)?;
    let subject = api
        .subjects
        .subject(&query.subject)
        .await
        .map_err(request::store)?
        .filter(|s| caller.can_read(&s.trial, &s.site))
        .ok_or_else(|| Problem::not_found("No such subject at your sites."))?;
    if let Some(position) = &query.after {
        // The position must be an upload of this subject, created exactly then (as issued).
        let names_an_upload = api
            .uploads
            .get(&position.upload)
            .await
            .map_err(request::store)?
            .is_some_and(|u| u.subject == subject.id && u.created_at == position.created_at);
        if !names_an_upload {
            return Err(invalid(vec![("cursor".to_owned(), BAD_CURSOR.to_owned())]));
        }
    }
    let page = api
        .listing
        .list(&subject.id, query.status, query.limit, query.after.as_ref())
        .await
        .map_err(request::store)?;
    let items = page
        .uploads
        .iter()
        // Every record is the subject's, so at its site; checked again all the same.
        .filter(|u| u.subject == subject.id && caller.can_read(&u.trial, &u.site))
        .map(|u| UploadView::for_caller(u, caller))
        .collect();
    view::json(
        StatusCode::OK,
        &UploadList {
            subject_id: subject.id.to_string(),
            items,
            next_cursor: page
                .next
                .as_ref()
                .map(|p| encode_cursor(&subject.id, query.status, p)),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn request(query: &str) -> Request {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.entry(k.into()).or_default().push(v.into());
        }
        Request::default().with_query_string_parameters(params)
    }

    fn subject() -> SubjectId {
        SubjectId::parse("SUBJ-0001").unwrap()
    }

    fn fields(p: &Problem) -> Vec<String> {
        p.extensions["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn defaults_and_bounds() {
        let q = parse_query(&request("subjectId=SUBJ-0001")).unwrap();
        assert_eq!((q.limit, q.status, q.after), (DEFAULT_LIMIT, None, None));
        let q = parse_query(&request("subjectId=SUBJ-0001&limit=100&status=PROCESSED")).unwrap();
        assert_eq!((q.limit, q.status), (100, Some(UploadStatus::Processed)));
        for bad in ["0", "101", "-1", "ten", "", "+5", "1.5"] {
            let p = parse_query(&request(&format!("subjectId=SUBJ-0001&limit={bad}"))).unwrap_err();
            assert_eq!(p.status, 400);
            assert_eq!(fields(&p), ["limit"], "{bad}");
        }
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let p = parse_query(&request("status=DONE&limit=0&color=red")).unwrap_err();
        assert_eq!(p.kind, "/problems/invalid-query");
        let mut f = fields(&p);
        f.sort();
        assert_eq!(f, ["color", "limit", "status", "subjectId"]);
        let p = parse_query(&request("subjectId=A&subjectId=B")).unwrap_err();
        assert_eq!(fields(&p), ["subjectId"]);
        let p = parse_query(&request("subjectId=..%2F")).unwrap_err();
        assert_eq!(fields(&p), ["subjectId"]);
    }

    #[test]
    fn cursors_round_trip_and_are_bound_to_subject_and_filter() {
        let position = UploadPosition {
            upload: UploadId::generate(),
            created_at: DateTime::parse_from_rfc3339("2026-11-27T10:00:00.123Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let s = subject();
        let c = encode_cursor(&s, Some(UploadStatus::Processed), &position);
        assert_eq!(
            decode_cursor(&c, &s, Some(UploadStatus::Processed)),
            Some(position.clone())
        );
        // Another filter, another subject.
        assert_eq!(decode_cursor(&c, &s, None), None);
        let other = SubjectId::parse("SUBJ-0101").unwrap();
        assert_eq!(
            decode_cursor(&c, &other, Some(UploadStatus::Processed)),
            None
        );
        // A cursor edited to name another subject, or damaged, or not a cursor at all.
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&c)
            .unwrap();
        let edited = String::from_utf8(json)
            .unwrap()
            .replace("SUBJ-0001", "SUBJ-0101");
        let edited = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(edited);
        assert_eq!(
            decode_cursor(&edited, &s, Some(UploadStatus::Processed)),
            None
        );
        let mut damaged = c.clone();
        damaged.pop();
        for bad in [
            damaged.as_str(),
            "",
            "e30",
            "not a cursor",
            &"A".repeat(2000),
        ] {
            assert_eq!(
                decode_cursor(bad, &s, Some(UploadStatus::Processed)),
                None,
                "{bad}"
            );
        }
        let q = parse_query(&request(&format!(
            "subjectId=SUBJ-0001&status=PROCESSED&cursor={c}"
        )))
        .unwrap();
        assert_eq!(q.after, Some(position));
        let p = parse_query(&request(&format!("subjectId=SUBJ-0001&cursor={c}"))).unwrap_err();
        assert_eq!(fields(&p), ["cursor"]);
    }
}
