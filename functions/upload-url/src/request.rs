//! What every route needs from a request: ids for the logs, the JSON body, and the mapping of
//! store failures to problems.

use lambda_http::{http::StatusCode, Request};
use serde::de::DeserializeOwned;
use shared::problem::Problem;
use shared::store::StoreError;

/// The largest JSON body any route takes.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub(crate) use shared::request::RequestMeta;

/// Parses a JSON body: `application/json`, at most 64 KiB, exactly the fields `T` names.
pub(crate) fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, Problem> {
    let body = shared::request::json_bytes(request, MAX_BODY_BYTES)?;
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
