//! The web console (web/) on the local stack's HttpApi origin, and the dev sign-in it uses there.
//!
//! - `GET`/`HEAD` of any path outside `/v1/` serves a file of `web/` (`/` is `index.html`); a
//!   path that names no file answers API Gateway's 404, as before.
//! - `GET /config.json`: how the console signs in here — `{"auth": {"mode": "dev"}}`. A deployment
//!   serves its own config.json beside the static files (README, "Web console").
//! - `POST /dev/token` `{"role": "...", "sites": [...], "trials": [...]}`: a dev token for the
//!   role/site picker, signed with the local stack's dev key. Local only: the route is not in
//!   template.yaml, and nothing deployed answers it.

use crate::jwt;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::json;
use std::path::{Path, PathBuf};

/// How long a dev token lasts (a working day at a site).
const DEV_TOKEN_SECONDS: i64 = 8 * 3600;

pub struct Console {
    pub root: PathBuf,
    pub jwt_secret: String,
    pub issuer: String,
    pub audience: String,
}

/// The roles the picker offers (shared::auth knows these).
const ROLES: &[&str] = &["site_staff", "monitor", "sponsor_admin"];

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({ "type": "/problems/malformed-request", "title": title, "status": status.as_u16(), "detail": detail })
            .to_string(),
    )
        .into_response()
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "wasm" => "application/wasm",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file of `root` a request path names, if it is a plain relative path to a file there (no
/// `..`, no hidden files, nothing outside `root`, never `node_modules/`).
pub fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let relative = request_path.trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_owned()
    };
    let safe = relative.split('/').all(|segment| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    });
    if !safe || relative.starts_with("node_modules/") {
        return None;
    }
    let path = root.join(&relative);
    path.is_file().then_some(path)
}

impl Console {
    /// The console's answer to a request outside the API's routes, if it has one.
    pub async fn answer(&self, method: &Method, path: &str, body: &[u8]) -> Option<Response> {
        if path == "/dev/token" {
            return Some(if method == Method::POST {
                self.dev_token(body)
            } else {
                StatusCode::METHOD_NOT_ALLOWED.into_response()
            });
        }
        if (method != Method::GET && method != Method::HEAD) || path.starts_with("/v1/") {
            return None;
        }
        if path == "/config.json" {
            return Some(
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    json!({ "apiBase": "", "auth": { "mode": "dev", "roles": ROLES } }).to_string(),
                )
                    .into_response(),
            );
        }
        let file = resolve(&self.root, path)?;
        let bytes = tokio::fs::read(&file).await.ok()?;
        let mut response = if method == Method::HEAD {
            Response::new(axum::body::Body::empty())
        } else {
            Response::new(axum::body::Body::from(bytes))
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&file)),
        );
        // Local development: always the files as they are on disk.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        // As CloudFront's response headers policy sets it (template.yaml): scripts and workers of
        // this origin only (hash-wasm compiles its WebAssembly from its own bytes), API and S3 calls
        // anywhere the API's presigned URLs point.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; \
                 connect-src 'self' http: https:; img-src 'self' data:; style-src 'self'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
        Some(response)
    }

    fn dev_token(&self, body: &[u8]) -> Response {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ask {
            role: String,
            #[serde(default)]
            sites: Vec<String>,
            #[serde(default)]
            trials: Vec<String>,
            #[serde(default)]
            user: Option<String>,
        }
        let Ok(ask) = serde_json::from_slice::<Ask>(body) else {
            return problem(
                StatusCode::BAD_REQUEST,
                "Malformed request",
                "Send {\"role\": ..., \"sites\": [...]} as JSON.",
            );
        };
        if !ROLES.contains(&ask.role.as_str()) {
            return problem(
                StatusCode::BAD_REQUEST,
                "Unknown role",
                "The role must be site_staff, monitor or sponsor_admin.",
            );
        }
        let clean = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let (sites, trials) = (clean(ask.sites), clean(ask.trials));
        let user = ask
            .user
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| format!("dev-{}", ask.role));
        let token = jwt::mint(
            &self.jwt_secret,
            &jwt::TokenSpec {
                subject: &user,
                role: &ask.role,
                sites: &sites,
                trials: &trials,
                issuer: &self.issuer,
                audience: &self.audience,
                ttl_seconds: DEV_TOKEN_SECONDS,
            },
        );
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            json!({
                "token": token,
                "expiresAt": (chrono::Utc::now() + chrono::Duration::seconds(DEV_TOKEN_SECONDS)).to_rfc3339(),
                "role": ask.role,
                "sites": sites,
                "trials": trials,
                "user": user,
            })
            .to_string(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn serves_only_plain_paths_inside_the_root() {
        let root = crate::emulator::repo_root().join("web");
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, "/js/main.js"), Some(root.join("js/main.js")));
        for bad in [
            "/../Cargo.toml",
            "/js/../../Cargo.toml",
            "/.gitignore",
            "/node_modules/hash-wasm/package.json",
            "/js//main.js",
            "/missing.js",
            "/js/main.js%00",
        ] {
            assert_eq!(resolve(&root, bad), None, "{bad}");
        }
    }
}
