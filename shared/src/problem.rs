//! RFC 9457 problem details: the one shape every error takes on the wire.
//!
//! The `detail` is written for the client that sent the request; it never goes to a log line (it may
//! quote the client's own input). Logs carry the problem's `type` and status only.

use lambda_http::{http::StatusCode, Body, Response};
use serde::Serialize;
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem response. Boxed, so `Result<_, Problem>` stays small on the happy path; its fields are
/// read through `Deref` (`problem.status`, `problem.kind`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(transparent)]
pub struct Problem(Box<ProblemDetails>);

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProblemDetails {
    /// A URI reference naming the kind of problem, `/problems/<slug>`; documented in openapi.yaml.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension members (RFC 9457 §3.2), e.g. `errors` with one entry per invalid field.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;
    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, title: &str) -> Self {
        Self(Box::new(ProblemDetails {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            extensions: Map::new(),
        }))
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.0.instance = Some(instance.into());
        self
    }

    pub fn extension(mut self, name: &str, value: impl Serialize) -> Self {
        self.0.extensions.insert(
            name.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .detail("A valid bearer token is required.")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail(detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
        )
        .detail("The request could not be completed; it is safe to retry. Nothing was changed unless the response said so.")
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
        )
        .detail("A dependency is unavailable; retry later.")
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status_code();
        let body = serde_json::to_string(&self).unwrap_or_else(|_| "{}".to_owned());
        let mut response = Response::new(Body::Text(body));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(CONTENT_TYPE),
        );
        response
    }
}

/// The answer to one API request, as every HTTP function gives it: a problem becomes its RFC 9457
/// response (logged as an error when it is the service's fault, as a refusal otherwise, never with
/// the request's data), and the request is counted and timed as CloudWatch EMF by `function`,
/// `route` and status class (never an identifier).
pub fn answer(
    function: &str,
    route: &str,
    path: &str,
    started: std::time::Instant,
    result: Result<Response<Body>, Problem>,
) -> Response<Body> {
    let response = match result {
        Ok(response) => response,
        Err(problem) => {
            if problem.status >= 500 {
                tracing::error!(problem = %problem.kind, "request failed");
            } else {
                tracing::info!(problem = %problem.kind, "request refused");
            }
            problem.instance(path.to_owned()).into_response()
        }
    };
    tracing::Span::current().record("status", response.status().as_u16());
    crate::metrics::Metrics::new(function)
        .dimension("Route", route)
        .dimension(
            "StatusClass",
            format!("{}xx", response.status().as_u16() / 100),
        )
        .count("Requests", 1)
        .millis("Latency", started.elapsed())
        .emit();
    response
}

/// A store failure, as the client sees it (the cause was logged where it happened): unavailable →
/// 503, anything else → 500. A route that expects a `Conflict` maps it itself first.
impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Unavailable(_) => Problem::unavailable(),
            StoreError::Corrupt(what) => {
                tracing::error!(what = %what, "stored item malformed");
                Problem::internal()
            }
            StoreError::Conflict(_) | StoreError::Failed(_) => Problem::internal(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_rfc9457_with_extensions() {
        let p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-upload",
            "Invalid upload",
        )
        .detail("2 fields are invalid")
        .extension("errors", vec![serde_json::json!({"field": "sizeBytes"})]);
        let v: Value = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "/problems/invalid-upload");
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"][0]["field"], "sizeBytes");
        let r = p.into_response();
        assert_eq!(r.status(), 422);
        assert_eq!(r.headers()["content-type"], CONTENT_TYPE);
    }
}
