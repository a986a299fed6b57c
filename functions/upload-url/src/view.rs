//! The JSON the upload routes answer with.

use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::{http::StatusCode, Body, Response};
use serde::Serialize;
use shared::auth::Caller;
use shared::domain::{Upload, UploadMode};
use shared::problem::Problem;
use shared::store::{PresignedHttp, StoredPart};

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An upload record as clients see it. Patient identifiers never appear: the DICOM header holds
/// none (only which identifying attributes the file has), and the client's file name, which may
/// hold a patient's name, is shown only to site staff of the upload's site, who chose it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadView {
    upload_id: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_reason: Option<String>,
    subject_id: String,
    trial_id: String,
    site_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    content_type: String,
    size_bytes: u64,
    sha256: String,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    part_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part_count: Option<u32>,
    object_key: String,
    created_by: String,
    created_at: String,
    updated_at: String,
    expires_at: String,
    correlation_id: String,
    /// What processing found (where the object is now, digest, scan verdict, DICOM header).
    #[serde(skip_serializing_if = "Option::is_none")]
    processing: Option<shared::domain::ProcessingResult>,
}

impl UploadView {
    /// The record as `caller` may see it.
    pub(crate) fn for_caller(u: &Upload, caller: &Caller) -> Self {
        let (mode, part_size, part_count) = match &u.mode {
            UploadMode::Single => ("single", None, None),
            UploadMode::Multipart {
                part_size,
                part_count,
                ..
            } => ("multipart", Some(*part_size), Some(*part_count)),
        };
        Self {
            upload_id: u.id.to_string(),
            status: u.status.as_str(),
            status_reason: u.status_reason.clone(),
            subject_id: u.subject.to_string(),
            trial_id: u.trial.to_string(),
            site_id: u.site.to_string(),
            file_name: caller
                .can_upload(&u.trial, &u.site)
                .then(|| u.file_name.clone()),
            content_type: u.content_type.clone(),
            size_bytes: u.size_bytes,
            sha256: u.sha256.to_hex(),
            mode,
            part_size,
            part_count,
            object_key: u.key.to_string(),
            created_by: u.created_by.clone(),
            created_at: rfc3339(&u.created_at),
            updated_at: rfc3339(&u.updated_at),
            expires_at: rfc3339(&u.expires_at),
            correlation_id: u.correlation_id.clone(),
            processing: u.processing.clone(),
        }
    }
}

/// One presigned part of a multipart plan.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartUrl {
    pub part_number: u32,
    pub size: u64,
    #[serde(flatten)]
    pub request: PresignedHttp,
}

/// A relative request against this API (completing, resuming).
#[derive(Serialize)]
pub(crate) struct ApiCall {
    pub method: &'static str,
    pub path: String,
}

/// How the client sends the bytes.
#[derive(Serialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub(crate) enum UploadInstructions {
    /// Send the whole file in one request, exactly as given (method, URL, every header).
    #[serde(rename = "single")]
    Single {
        #[serde(flatten)]
        request: PresignedHttp,
        #[serde(rename = "expiresAt")]
        expires_at: String,
    },
    /// Send each part to its URL, keep each response's ETag, then call `complete`. If interrupted,
    /// `resume` says which parts S3 holds and gives fresh URLs for the rest.
    #[serde(rename = "multipart", rename_all = "camelCase")]
    Multipart {
        part_size: u64,
        part_count: u32,
        /// The first parts' URLs (a batch: [`crate::multipart::PART_URLS_PER_RESPONSE`]).
        parts: Vec<PartUrl>,
        /// Where the next batch is, when the plan has more parts than this one.
        #[serde(skip_serializing_if = "Option::is_none")]
        next: Option<ApiCall>,
        complete: ApiCall,
        resume: ApiCall,
        abort: ApiCall,
        expires_at: String,
    },
}

impl UploadInstructions {
    pub fn single(request: PresignedHttp, expires_at: &DateTime<Utc>) -> Self {
        Self::Single {
            request,
            expires_at: rfc3339(expires_at),
        }
    }

    pub fn multipart(
        upload: &Upload,
        parts: Vec<PartUrl>,
        next: Option<ApiCall>,
        expires_at: &DateTime<Utc>,
    ) -> Self {
        let (part_size, part_count) = match &upload.mode {
            UploadMode::Multipart {
                part_size,
                part_count,
                ..
            } => (*part_size, *part_count),
            UploadMode::Single => (upload.size_bytes, 1),
        };
        Self::Multipart {
            part_size,
            part_count,
            parts,
            next,
            complete: ApiCall {
                method: "POST",
                path: format!("/v1/uploads/{}/complete", upload.id),
            },
            resume: ApiCall {
                method: "GET",
                path: format!("/v1/uploads/{}/parts", upload.id),
            },
            abort: ApiCall {
                method: "DELETE",
                path: format!("/v1/uploads/{}", upload.id),
            },
            expires_at: rfc3339(expires_at),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct CreatedUpload {
    #[serde(flatten)]
    pub record: UploadView,
    pub upload: UploadInstructions,
}

/// `GET /v1/uploads/{id}/parts`: what S3 holds and fresh URLs for what it lacks.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PartsView {
    pub upload_id: String,
    pub status: &'static str,
    pub part_size: u64,
    pub part_count: u32,
    pub received: Vec<StoredPart>,
    /// Parts storage lacks (or holds at a size the plan does not give), in all.
    pub missing_count: usize,
    /// URLs for a page of them: from `?from=` on, at most a batch.
    pub missing: Vec<PartUrl>,
    /// The next page, when more parts are missing after this one's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<ApiCall>,
    pub complete: ApiCall,
    pub expires_at: String,
}

impl PartsView {
    pub fn expires(t: &DateTime<Utc>) -> String {
        rfc3339(t)
    }
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, Problem> {
    let body = serde_json::to_string(value).map_err(|_| Problem::internal())?;
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .map_err(|_| Problem::internal())
}
