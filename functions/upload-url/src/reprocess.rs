//! `POST /v1/uploads/{id}/reprocess`: a sponsor admin sends a FAILED upload back into processing
//! (after fixing what made it fail: a missing signature database, an outage).
//!
//! The object's S3 event is sent to the ingest queue again (delayed a few seconds), then the record
//! moves FAILED → RECEIVED, audited with who asked. The processor's guarantees are those of any
//! delivery: one lock per upload, one outcome per object version (a FAILED upload's version was
//! never recorded as done). Asked again while the upload is RECEIVED or PROCESSING, it answers the
//! record and sends the event again (harmless: the claim makes it a no-op once processed), which
//! also heals a crash between the two steps; any other status is a conflict.

use crate::request::{self, conflict, RequestMeta};
use crate::status::{transition, visible_upload};
use crate::view::{self, UploadView};
use crate::UploadApi;
use lambda_http::{http::StatusCode, Body, Response};
use shared::auth::{Caller, Role};
use shared::domain::{Upload, UploadId, UploadStatus};
use shared::problem::Problem;
use std::sync::Arc;

pub(crate) async fn reprocess_upload(
    api: &UploadApi,
    meta: &RequestMeta,
    caller: &Caller,
    id: &UploadId,
) -> Result<Response<Body>, Problem> {
    let upload = visible_upload(api, caller, id).await?;
    if caller.role != Role::SponsorAdmin {
        return Err(Problem::forbidden(
            "Only a sponsor admin reprocesses an upload.",
        ));
    }
    match upload.status {
        UploadStatus::Failed => {}
        UploadStatus::Received | UploadStatus::Processing => {
            if upload.status == UploadStatus::Received {
                ingest_event(api, &upload)
                    .await?
                    .send(&upload.correlation_id)
                    .await?;
            }
            return view::json(
                StatusCode::ACCEPTED,
                &UploadView::for_caller(&upload, caller),
            );
        }
        other => {
            return Err(conflict(
                "upload-not-failed",
                "Upload not failed",
                format!("The upload is {other}: only a FAILED upload is reprocessed."),
            ))
        }
    }
    // The record first, then the event: an event that reached the processor before the record
    // left FAILED would be dropped there, leaving the upload RECEIVED with nothing to move it. If
    // the send fails now, the upload is RECEIVED and a retry of this request sends it again.
    let event = ingest_event(api, &upload).await?;
    let upload = match transition(
        api,
        upload,
        UploadStatus::Received,
        &caller.user,
        "reprocess requested",
        &meta.correlation_id,
    )
    .await
    {
        Ok(u) => u,
        // A concurrent request moved it first: show where it stands.
        Err(p) if p.status == 409 => {
            return view::json(
                StatusCode::ACCEPTED,
                &UploadView::for_caller(&visible_upload(api, caller, id).await?, caller),
            )
        }
        Err(p) => return Err(p),
    };
    event.send(&upload.correlation_id).await?;
    view::json(
        StatusCode::ACCEPTED,
        &UploadView::for_caller(&upload, caller),
    )
}

/// Sends the object's S3 event (its current version) to the ingest queue.
/// The ObjectCreated event that sends an upload's object to the ingest queue again, ready to send;
/// refused (nothing written) when there is no queue or no object.
async fn ingest_event(api: &UploadApi, upload: &Upload) -> Result<IngestEvent, Problem> {
    let Some(ingest) = &api.ingest else {
        tracing::error!("no ingest queue configured (INGEST_QUEUE_URL): cannot reprocess");
        return Err(Problem::unavailable());
    };
    let Some(head) = api
        .objects
        .head(&upload.key)
        .await
        .map_err(request::store)?
    else {
        return Err(conflict(
            "upload-not-failed",
            "Nothing to reprocess",
            "The upload's object is not in the upload area.",
        ));
    };
    let mut object = serde_json::json!({
        "key": upload.key.as_str().replace('/', "%2F"),
        "size": head.size,
    });
    if let Some(version) = &head.version_id {
        object["versionId"] = serde_json::Value::String(version.clone());
    }
    let event = serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "clinflow:reprocess",
        "eventName": "ObjectCreated:Reprocess",
        "s3": {"bucket": {"name": api.objects.bucket()}, "object": object},
    }]});
    Ok(IngestEvent {
        queue: Arc::clone(ingest),
        body: event.to_string(),
    })
}

struct IngestEvent {
    queue: Arc<dyn shared::store::EventPublisher>,
    body: String,
}

impl IngestEvent {
    async fn send(&self, correlation_id: &str) -> Result<(), Problem> {
        self.queue
            .publish(&self.body, correlation_id)
            .await
            .map_err(request::store)
    }
}
