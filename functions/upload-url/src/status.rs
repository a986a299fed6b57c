//! `GET /v1/uploads/{id}` (where the upload stands) and `DELETE /v1/uploads/{id}` (give it up).

use crate::request::{self, conflict, RequestMeta};
use crate::view::{self, UploadView};
use crate::UploadApi;
use chrono::Utc;
use lambda_http::{http::StatusCode, Body, Response};
use shared::auth::Caller;
use shared::domain::{Upload, UploadId, UploadMode, UploadStatus};
use shared::problem::Problem;
use shared::store::dynamodb::upload_entity;
use shared::store::AuditEntry;

/// The upload, if it exists and the caller may read its site; 404 otherwise (existence does not leak).
pub(crate) async fn visible_upload(
    api: &UploadApi,
    caller: &Caller,
    id: &UploadId,
) -> Result<Upload, Problem> {
    api.uploads
        .get(id)
        .await
        .map_err(request::store)?
        .filter(|u| caller.can_read(&u.trial, &u.site))
        .ok_or_else(|| Problem::not_found("No such upload at your sites."))
}

/// The upload, if the caller may also write it (site staff of its site): 403 for a reader, 404 for
/// anyone who cannot see it.
pub(crate) async fn writable_upload(
    api: &UploadApi,
    caller: &Caller,
    id: &UploadId,
) -> Result<Upload, Problem> {
    let upload = visible_upload(api, caller, id).await?;
    if !caller.can_upload(&upload.trial, &upload.site) {
        return Err(Problem::forbidden(
            "Only site staff of the subject's site change an upload.",
        ));
    }
    Ok(upload)
}

/// Moves an upload to `to` with its audit entry, and returns the record as it now stands.
pub(crate) async fn transition(
    api: &UploadApi,
    mut upload: Upload,
    to: UploadStatus,
    actor: &str,
    reason: &str,
    correlation_id: &str,
) -> Result<Upload, Problem> {
    let now = Utc::now();
    let audit = AuditEntry {
        entity: upload_entity(&upload.id),
        actor: actor.to_owned(),
        at: now,
        action: "upload.status".into(),
        old: Some(upload.status.as_str().into()),
        new: Some(to.as_str().into()),
        reason: reason.to_owned(),
        correlation_id: correlation_id.to_owned(),
    };
    api.uploads
        .transition(&upload.id, upload.status, to, None, &audit)
        .await
        .map_err(request::store)?;
    tracing::info!(from = %upload.status, to = %to, "upload status changed");
    upload.status = to;
    upload.updated_at = now;
    Ok(upload)
}

pub(crate) async fn get_upload(
    api: &UploadApi,
    caller: &Caller,
    id: &UploadId,
) -> Result<Response<Body>, Problem> {
    // A read is only a read: the arrival of the bytes is recorded by the S3 event's path
    // (process-dicom), never by a GET racing it.
    let upload = visible_upload(api, caller, id).await?;
    view::json(StatusCode::OK, &UploadView::for_caller(&upload, caller))
}

pub(crate) async fn abort_upload(
    api: &UploadApi,
    meta: &RequestMeta,
    caller: &Caller,
    id: &UploadId,
) -> Result<Response<Body>, Problem> {
    let upload = writable_upload(api, caller, id).await?;
    if upload.status == UploadStatus::Aborted {
        return view::json(StatusCode::OK, &UploadView::for_caller(&upload, caller));
    }
    if upload.status != UploadStatus::AwaitingUpload {
        return Err(conflict(
            "upload-not-open",
            "Upload no longer open",
            format!(
                "The upload is {} and can no longer be aborted.",
                upload.status
            ),
        ));
    }
    match &upload.mode {
        UploadMode::Multipart { s3_upload_id, .. } => {
            api.objects
                .abort_multipart(&upload.key, s3_upload_id)
                .await
                .map_err(request::store)?;
        }
        // The PUT may already have landed: then it is on its way to processing, not abortable
        // (nothing is lost). The S3 event records its arrival; this refusal writes nothing.
        UploadMode::Single => {
            if api
                .objects
                .head(&upload.key)
                .await
                .map_err(request::store)?
                .is_some()
            {
                return Err(conflict(
                    "upload-not-open",
                    "Upload no longer open",
                    "The file has already been received and can no longer be aborted.",
                ));
            }
        }
    }
    let upload = transition(
        api,
        upload,
        UploadStatus::Aborted,
        &caller.user,
        "aborted by the uploader",
        &meta.correlation_id,
    )
    .await?;
    view::json(StatusCode::OK, &UploadView::for_caller(&upload, caller))
}
