//! What every HTTP function needs from an API Gateway v2 request: its ids (for the logs, the
//! records and the audit trail) and its path as the API defines it (for routing).

use crate::problem::Problem;
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

/// The request's id: API Gateway's, else the Lambda invocation's, else a fresh one (a request
/// built by hand). Every log line of the request carries it.
pub fn request_id(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .or_else(|| {
        request
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .filter(|id| !id.is_empty())
    })
    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

pub const CORRELATION_HEADER: &str = "x-correlation-id";

pub struct RequestMeta {
    pub request_id: String,
    /// From the client's `x-correlation-id` when it is well formed, else the request id. It goes
    /// into the records and audit entries the request writes, so every later stage logs it too.
    pub correlation_id: String,
}

impl RequestMeta {
    pub fn of(request: &Request) -> Self {
        let request_id = request_id(request);
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

/// The request's path as the API defines it: the path of the route API Gateway matched (its
/// `routeKey`, e.g. `GET /v1/uploads/{uploadId}`) with the path parameters it extracted. A named
/// stage (`/prod/v1/...`) or a custom domain's base path (`/imaging/v1/...`) is in the raw path
/// but not in the route, so the handler routes the same behind any of them. Without a route key
/// (or with `$default`), the raw path.
pub fn api_path(request: &Request) -> String {
    let route_key = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.as_deref(),
        _ => None,
    };
    let Some((_method, template)) = route_key.and_then(|k| k.split_once(' ')) else {
        return request.raw_http_path().to_owned();
    };
    let parameters = request.path_parameters();
    let segments: Option<Vec<&str>> = template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => parameters.first(name.trim_end_matches('+')),
                None => Some(segment),
            },
        )
        .collect();
    // A parameter the route names but the event lacks: nothing to route by.
    segments.map_or_else(String::new, |s| s.join("/"))
}

/// The bytes of a JSON body: `application/json` (else 415), at most `max_bytes` (else 413).
pub fn json_bytes(request: &Request, max_bytes: usize) -> Result<&[u8], Problem> {
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
    if body.len() > max_bytes {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
        )
        .detail(format!("The request body is limited to {max_bytes} bytes.")));
    }
    Ok(body)
}

/// A JSON body: `application/json`, at most `max_bytes`, any JSON value (each route parses it
/// into its type and reports every invalid field at once).
pub fn json_body(request: &Request, max_bytes: usize) -> Result<Value, Problem> {
    let body = json_bytes(request, max_bytes)?;
    serde_json::from_slice(body).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
        )
        .detail("The request body is not valid JSON.")
    })
}
