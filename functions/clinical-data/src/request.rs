//! What every route needs from a request: ids for the logs and the audit trail, the JSON body, the
//! query, JSON answers, and the mapping of store failures to problems.

use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::Value;
use shared::clinical::FieldError;
use shared::problem::Problem;
use shared::store::StoreError;

pub(crate) use shared::request::{json_body, RequestMeta};

/// 422 with every invalid field (`errors: [{pointer, detail}]`, JSON pointers into the body).
pub(crate) fn invalid(slug: &str, title: &str, errors: Vec<FieldError>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, slug, title)
        .detail(format!(
            "{} field{} of the request {} invalid; nothing was written.",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            if errors.len() == 1 { "is" } else { "are" }
        ))
        .extension("errors", errors)
}

/// 400 for query parameters: `errors: [{field, detail}]`, as the upload lists answer.
pub(crate) fn invalid_query(errors: Vec<(String, String)>) -> Problem {
    let errors: Vec<Value> = errors
        .into_iter()
        .map(|(field, detail)| serde_json::json!({"field": field, "detail": detail}))
        .collect();
    Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query")
        .detail("The query parameters are invalid.")
        .extension("errors", errors)
}

/// The query parameters, each at most once and only those the route knows.
pub(crate) fn query(
    request: &Request,
    known: &[&str],
) -> Result<std::collections::BTreeMap<String, String>, Problem> {
    let params = request.query_string_parameters();
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in params.iter() {
        seen.entry(name.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    let mut out = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for (name, mut values) in seen {
        if !known.contains(&name.as_str()) {
            errors.push((name, "is not a parameter of this route".to_owned()));
        } else if values.len() != 1 {
            errors.push((name, "must be given once".to_owned()));
        } else if let Some(one) = values.pop() {
            out.insert(name, one);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort();
        Err(invalid_query(errors))
    }
}

/// `limit`: 1 to `max`, `default` when absent.
pub(crate) fn limit(
    params: &std::collections::BTreeMap<String, String>,
    default: usize,
    max: usize,
    errors: &mut Vec<(String, String)>,
) -> usize {
    match params.get("limit") {
        None => default,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors.push((
                    "limit".into(),
                    format!("must be a whole number from 1 to {max}"),
                ));
                default
            }
        },
    }
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, body: &impl Serialize) -> Result<Response<Body>, Problem> {
    let body = serde_json::to_string(body).map_err(|_| Problem::internal())?;
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .map_err(|_| Problem::internal())
}

/// A store failure, as the client sees it (the cause was logged where it happened).
pub(crate) fn store(e: StoreError) -> Problem {
    match e {
        StoreError::Unavailable(_) => Problem::unavailable(),
        StoreError::Corrupt(what) => {
            tracing::error!(what = %what, "stored item malformed");
            Problem::internal()
        }
        StoreError::Conflict(_) | StoreError::Failed(_) => Problem::internal(),
    }
}
