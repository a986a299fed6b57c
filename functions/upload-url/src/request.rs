//! What every route needs from a request: ids for the logs, the JSON body, and the mapping of
//! store failures to problems.

use lambda_http::request::RequestContext;
use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use shared::problem::Problem;
use shared::store::StoreError;

/// The largest JSON body any route takes.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub(crate) const CORRELATION_HEADER: &str = "x-correlation-id";

pub(crate) struct RequestMeta {
    pub request_id: String,
    /// From the client's `x-correlation-id` when it is well formed, else the request id. It goes
    /// into the upload record, so the processing stages log it too.
    pub correlation_id: String,
}

impl RequestMeta {
    pub fn of(request: &Request) -> Self {
        let request_id = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
            _ => None,
        }
        .or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let correlation_id = request
            .headers()
            .get(CORRELATION_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                (1..=128).contains(&v.len())
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
            })
            .map(str::to_owned)
            .unwrap_or_else(|| request_id.clone());
        Self {
            request_id,
            correlation_id,
        }
    }

    pub fn stamp(&self, mut response: Response<Body>) -> Response<Body> {
        if let Ok(v) = self.correlation_id.parse() {
            response.headers_mut().insert(CORRELATION_HEADER, v);
        }
        response
    }
}

/// Parses a JSON body: `application/json`, at most 64 KiB, exactly the fields `T` names.
pub(crate) fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, Problem> {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail("The request body must be application/json."));
    }
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
        )
        .detail(format!(
            "The request body is limited to {MAX_BODY_BYTES} bytes."
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
        )
        .detail(format!("The body is not the JSON this route takes: {e}"))
    })
}

/// A store failure, as the client sees it (the cause was logged where it happened).
pub(crate) fn store(e: StoreError) -> Problem {
    match e {
        StoreError::Unavailable(_) => Problem::unavailable(),
        StoreError::Conflict(_) => Problem::new(
            StatusCode::CONFLICT,
            "concurrent-change",
            "Concurrent change",
        )
        .detail("The upload changed while this request was handled; read it again."),
        StoreError::Corrupt(what) => {
            tracing::error!(what = %what, "stored item malformed");
            Problem::internal()
        }
        StoreError::Failed(_) => Problem::internal(),
    }
}

pub(crate) fn conflict(slug: &str, title: &str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::CONFLICT, slug, title).detail(detail)
}
