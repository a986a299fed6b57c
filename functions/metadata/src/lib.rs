//! metadata: reference data for every authenticated role, read through the shared
//! [`ReferenceCache`] — no table read per request, no lock: a lookup in the snapshot the cache holds,
//! revalidated against S3 at most every `REFERENCE_REVALIDATE_SECONDS`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/metadata/{kind}/{code}` | 200 `{kind, code, <value fields>, version, asOf, stale}`; 404 problem |
//! | `GET /v1/metadata?key=<kind>_<code>` | the same, for clients of the old API (its 404 also carries `"error": "metadata not found"`) |
//!
//! Headers: `ETag` (of the entry: unchanged entries keep their tag across snapshots),
//! `Cache-Control: private, max-age=<revalidation period>`, `Age` (seconds since the source last
//! answered); `If-None-Match` → 304. No snapshot at all yet (cold start with S3 down) → 503.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use sha2::{Digest, Sha256};
use shared::auth::Caller;
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::metrics::{Metrics, Unit};
use shared::problem::Problem;
use shared::reference::cache::{ReferenceCache, SnapshotSource};
use shared::reference::{parse_legacy_key, ReferenceKind};
use shared::store::snapshots::S3Snapshots;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

const FUNCTION: &str = "metadata";

pub struct MetadataApi {
    cache: ReferenceCache,
    max_age: Duration,
}

enum Route {
    /// `/v1/metadata/{kind}/{code}`
    Entry { kind: String, code: String },
    /// `/v1/metadata?key=`
    Legacy { key: Option<String> },
}

impl Route {
    fn label(&self) -> &'static str {
        match self {
            Self::Entry { .. } => "GET /v1/metadata/{kind}/{code}",
            Self::Legacy { .. } => "GET /v1/metadata",
        }
    }
}

impl MetadataApi {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        let every = Duration::from_secs(env.parsed_or("REFERENCE_REVALIDATE_SECONDS", 60u64)?);
        Ok(Self::new(
            Arc::new(S3Snapshots::new(
                clients.s3.clone(),
                env.required("REFERENCE_BUCKET")?,
                env.required("REFERENCE_SNAPSHOT_KEY")?,
            )),
            every,
        ))
    }

    pub fn new(source: Arc<dyn SnapshotSource>, every: Duration) -> Self {
        Self {
            cache: ReferenceCache::new(source, every),
            max_age: every,
        }
    }

    /// Loads the snapshot (cold start), so the first request does not pay for it.
    pub async fn warm(&self) {
        self.revalidate().await;
    }

    async fn revalidate(&self) {
        if let Some(f) = self.cache.revalidate_if_due().await {
            Metrics::new(FUNCTION)
                .dimension("Stale", if f.stale { "true" } else { "false" })
                .value(
                    "ReferenceAgeSeconds",
                    Unit::Count,
                    f.age.as_secs_f64().floor(),
                )
                .count("Revalidations", 1)
                .emit();
        }
    }

    /// Answers one request. Every failure becomes an RFC 9457 problem; nothing here panics on input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let request_id = shared::request::request_id(&request);
        let route = route(&request);
        let label = route.as_ref().map_or("unknown", Route::label);
        let span = tracing::info_span!("request", request_id = %request_id, route = label, status = tracing::field::Empty);
        let started = std::time::Instant::now();
        async {
            let result = match route {
                Some(route) => self.answer(&request, route).await,
                None => Err(Problem::not_found("No such route.")),
            };
            shared::problem::answer(FUNCTION, label, request.raw_http_path(), started, result)
        }
        .instrument(span)
        .await
    }

    async fn answer(&self, request: &Request, route: Route) -> Result<Response<Body>, Problem> {
        // Any authenticated role may read reference data.
        Caller::from_request(request)?;
        let legacy = matches!(route, Route::Legacy { .. });
        let (kind, code) = match &route {
            Route::Entry { kind, code } => (ReferenceKind::parse(kind), code.as_str()),
            Route::Legacy { key: Some(key) } => match parse_legacy_key(key) {
                Some((kind, code)) => (Some(kind), code),
                None => (None, key.as_str()),
            },
            Route::Legacy { key: None } => {
                return Err(
                    Problem::new(StatusCode::BAD_REQUEST, "missing-key", "Missing key")
                        .detail("The query parameter key is required, e.g. key=drug_code_N02BE01."),
                )
            }
        };
        let not_found = || {
            let p = Problem::not_found("No such entry in the reference data.");
            if legacy {
                p.extension("error", "metadata not found")
            } else {
                p
            }
        };
        let kind = kind.ok_or_else(not_found)?;
        if !kind.accepts_code(code) {
            return Err(not_found());
        }
        self.revalidate().await;
        let freshness = self.cache.freshness();
        // Everything below reads one snapshot, borrowed (lock-free; no copy of the entry).
        self.cache.read(|loaded| {
            let Some(loaded) = loaded else {
                return Err(Problem::unavailable());
            };
            let value = loaded.snapshot.get(kind, code).ok_or_else(not_found)?;
            let fields = value.fields();
            let etag = entry_etag(kind, code, &fields);
            let matches = request
                .headers()
                .get(IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
            let builder = Response::builder()
                .header(ETAG, &etag)
                .header(
                    CACHE_CONTROL,
                    format!("private, max-age={}", self.max_age.as_secs()),
                )
                .header("age", freshness.age.as_secs().to_string());
            if matches {
                return builder
                    .status(StatusCode::NOT_MODIFIED)
                    .body(Body::Empty)
                    .map_err(|_| Problem::internal());
            }
            let mut body = serde_json::Map::new();
            body.insert("kind".into(), kind.as_str().into());
            body.insert("code".into(), code.into());
            body.extend(fields);
            body.insert("version".into(), loaded.snapshot.version.clone().into());
            body.insert(
                "asOf".into(),
                loaded
                    .snapshot
                    .built_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .into(),
            );
            // Stale: the last revalidation failed, so the source may hold something newer.
            body.insert("stale".into(), freshness.stale.into());
            let body = serde_json::to_string(&body).map_err(|_| Problem::internal())?;
            builder
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "application/json")
                .body(Body::Text(body))
                .map_err(|_| Problem::internal())
        })
    }
}

/// The entry's strong tag: a hash of what the answer says about it (not of the whole snapshot, so
/// a client's cached copy stays valid while other entries change).
fn entry_etag(
    kind: ReferenceKind,
    code: &str,
    fields: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str());
    h.update([0]);
    h.update(code);
    h.update([0]);
    h.update(serde_json::to_vec(fields).unwrap_or_default());
    format!("\"{}\"", &hex::encode(h.finalize())[..20])
}

fn route(request: &Request) -> Option<Route> {
    if request.method() != http::Method::GET {
        return None;
    }
    let params = request.path_parameters_ref();
    let kind = params.and_then(|p| p.first("kind"));
    let code = params.and_then(|p| p.first("code"));
    match (kind, code) {
        (Some(kind), Some(code)) => Some(Route::Entry {
            kind: kind.to_owned(),
            code: code.to_owned(),
        }),
        _ => {
            let path = request.raw_http_path();
            if path.trim_end_matches('/').ends_with("/v1/metadata") {
                Some(Route::Legacy {
                    key: request
                        .query_string_parameters_ref()
                        .and_then(|q| q.first("key"))
                        .map(str::to_owned),
                })
            } else {
                None
            }
        }
    }
}
