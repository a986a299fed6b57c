//! The HttpApi on loopback: routes from template.yaml, the authorizer's JWT check, CORS as the
//! template configures it, and each request handed to its function as an API Gateway v2 payload
//! (the same JSON lambda_http deserializes in AWS).

use crate::functions::HttpFunction;
use crate::jwt::JwtCheck;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// API Gateway's payload limit.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

pub struct RouteBinding {
    pub method: Method,
    /// The template's path, e.g. `/v1/uploads/{uploadId}`.
    pub path: String,
    pub function: Arc<dyn HttpFunction>,
    pub timeout: Duration,
    /// False for routes with `Auth: {Authorizer: NONE}`.
    pub authorized: bool,
}

#[derive(Clone, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
}

impl Cors {
    fn allows(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|o| o == "*" || o == origin)
    }
}

/// API Gateway's default route throttling: a token bucket per route (`ThrottlingRateLimit` tokens a
/// second, `ThrottlingBurstLimit` at most). Past it: 429 before the authorizer or the function.
pub struct Throttle {
    rate: f64,
    burst: f64,
    buckets: std::sync::Mutex<HashMap<String, (f64, std::time::Instant)>>,
}

impl Throttle {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn admit(&self, route: &str) -> bool {
        let now = std::time::Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        let (tokens, last) = buckets.entry(route.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub struct ApiState {
    pub routes: Vec<RouteBinding>,
    pub throttle: Throttle,
    pub jwt: JwtCheck,
    pub cors: Cors,
    pub account: String,
    /// The web console's files and dev sign-in, for requests no route of the template takes.
    pub console: Option<crate::console::Console>,
}

fn gateway_message(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// Matches a template path against a request path; returns the path parameters.
fn match_path(pattern: &str, path: &str) -> Option<HashMap<String, String>> {
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut params = HashMap::new();
    for (i, seg) in p.iter().enumerate() {
        if let Some(name) = seg.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            if let Some(greedy) = name.strip_suffix('+') {
                let rest = s.get(i..)?.join("/");
                params.insert(greedy.to_owned(), rest);
                return Some(params);
            }
            let value = s.get(i).filter(|v| !v.is_empty())?;
            params.insert(name.to_owned(), (*value).to_owned());
        } else if s.get(i) != Some(seg) {
            return None;
        }
    }
    (p.len() == s.len()).then_some(params)
}

pub async fn handle(
    State(state): State<Arc<ApiState>>,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let origin = parts
        .headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = route(&state, parts, body).await;
    if let Some(origin) = origin.filter(|o| state.cors.allows(o)) {
        let h = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        if let Ok(v) = HeaderValue::from_str(&state.cors.expose_headers.join(",")) {
            h.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        h.insert(http::header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

async fn route(state: &ApiState, parts: http::request::Parts, body: axum::body::Body) -> Response {
    let path = parts.uri.path().to_owned();
    // CORS preflight is answered by API Gateway itself, before any authorizer.
    if parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        for (name, values) in [
            (
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                state.cors.allow_methods.join(","),
            ),
            (
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                state.cors.allow_headers.join(","),
            ),
        ] {
            if let Ok(v) = HeaderValue::from_str(&values) {
                h.insert(name, v);
            }
        }
        if let Some(age) = state.cors.max_age {
            h.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        return response;
    }
    let Some((binding, params)) = state
        .routes
        .iter()
        .filter(|r| r.method == parts.method)
        .find_map(|r| match_path(&r.path, &path).map(|p| (r, p)))
    else {
        if let Some(console) = &state.console {
            let body = axum::body::to_bytes(body, 64 * 1024)
                .await
                .unwrap_or_default();
            if let Some(answer) = console.answer(&parts.method, &path, &body).await {
                return answer;
            }
        }
        return gateway_message(StatusCode::NOT_FOUND, "Not Found");
    };
    if !state
        .throttle
        .admit(&format!("{} {}", binding.method, binding.path))
    {
        return gateway_message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    }
    let claims = if binding.authorized {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match header.and_then(|h| state.jwt.verify(h)) {
            Some(claims) => Some(claims),
            None => {
                let mut r = gateway_message(StatusCode::UNAUTHORIZED, "Unauthorized");
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer"),
                );
                return r;
            }
        }
    } else {
        None
    };
    let body: Bytes = match axum::body::to_bytes(body, MAX_PAYLOAD).await {
        Ok(b) => b,
        Err(_) => {
            return gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
        }
    };
    let payload = gateway_payload(state, binding, &parts, &params, claims, &body);
    let request = match lambda_http::request::from_str(&payload.to_string()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "could not build the lambda_http request");
            return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    // The Lambda context the runtime hands every invocation: its own request id, and the deadline
    // the function's timeout sets (functions carve their calls' budgets from it).
    let mut context = lambda_http::Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = crate::pollers::now_millis() + binding.timeout.as_millis() as u64;
    let request = lambda_http::RequestExt::with_lambda_context(request, context);
    let function = Arc::clone(&binding.function);
    let invocation = tokio::spawn(async move { function.invoke(request).await });
    match tokio::time::timeout(binding.timeout, invocation).await {
        Ok(Ok(response)) => lambda_to_axum(response),
        // A panic in the handler: Lambda reports an error, API Gateway answers 500.
        Ok(Err(_)) => gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        // The function ran past its timeout.
        Err(_) => gateway_message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
    }
}

fn gateway_payload(
    state: &ApiState,
    binding: &RouteBinding,
    parts: &http::request::Parts,
    params: &HashMap<String, String>,
    claims: Option<HashMap<String, String>>,
    body: &[u8],
) -> serde_json::Value {
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(|c| c.trim().to_owned()));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let query = parts.uri.query().unwrap_or("");
    let mut query_params: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query_params
            .entry(k.to_owned())
            .and_modify(|e| {
                e.push(',');
                e.push_str(v);
            })
            .or_insert_with(|| v.to_owned());
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (serde_json::Value::Null, false),
        Ok(text) => (json!(text), false),
        Err(_) => (
            json!(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    };
    let now = chrono::Utc::now();
    let route_key = format!("{} {}", binding.method, binding.path);
    let request_id = uuid::Uuid::new_v4().to_string();
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".into());
    json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": query,
        "cookies": if cookies.is_empty() { serde_json::Value::Null } else { json!(cookies) },
        "headers": headers,
        "queryStringParameters": if query_params.is_empty() { serde_json::Value::Null } else { json!(query_params) },
        "pathParameters": if params.is_empty() { serde_json::Value::Null } else { json!(params) },
        "requestContext": {
            "accountId": state.account,
            "apiId": "local",
            "authorizer": claims.map(|c| json!({ "jwt": { "claims": c, "scopes": null } })),
            "domainName": host,
            "domainPrefix": "local",
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

fn lambda_to_axum(response: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    let mut out = Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = parts.status;
    let headers: &mut HeaderMap = out.headers_mut();
    for (k, v) in parts.headers.iter() {
        headers.append(k, v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{match_path, Throttle};

    #[test]
    fn throttling_admits_the_burst_then_the_rate() {
        let t = Throttle::new(1.0, 3.0);
        assert!((0..3).all(|_| t.admit("GET /a")));
        assert!(!t.admit("GET /a"));
        assert!(t.admit("GET /b"), "buckets are per route");
    }

    #[test]
    fn matches_template_paths() {
        assert!(match_path("/v1/uploads", "/v1/uploads").unwrap().is_empty());
        assert_eq!(
            match_path("/v1/uploads/{uploadId}", "/v1/uploads/abc").unwrap()["uploadId"],
            "abc"
        );
        assert!(match_path("/v1/uploads/{uploadId}", "/v1/uploads/abc/parts").is_none());
        assert!(match_path("/v1/uploads/{uploadId}", "/v1/uploads/").is_none());
        assert_eq!(
            match_path("/files/{proxy+}", "/files/a/b").unwrap()["proxy"],
            "a/b"
        );
    }
}
