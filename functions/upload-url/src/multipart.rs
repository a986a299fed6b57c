//! Multipart uploads: `GET /v1/uploads/{id}/parts` (resume: what S3 holds, fresh URLs for the rest,
//! a batch at a time) and `POST /v1/uploads/{id}/complete` (assemble the parts, checked against the
//! plan; a retry of a completion that succeeded answers success).

use crate::request::{self, conflict, json_body, RequestMeta};
use crate::status::{transition, writable_upload};
use crate::view::{self, ApiCall, PartUrl, PartsView, UploadView};
use crate::UploadApi;
use chrono::Utc;
use lambda_http::{http::StatusCode, Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use shared::auth::Caller;
use shared::domain::{part_length, ObjectKey, Upload, UploadId, UploadMode, UploadStatus};
use shared::problem::Problem;
use shared::store::{StoreError, StoredPart};
use std::collections::BTreeMap;

/// Presigned part URLs in one response. A URL signed in Lambda carries the role's session token
/// (~2 KB each): the 10,000 parts S3 allows would be ~20 MB, past Lambda's 6 MB response limit.
/// 100 keep every plan and every `/parts` page near 200 KB, whatever the settings; the rest are
/// handed out by `GET /v1/uploads/{id}/parts?from=<part>`.
pub(crate) const PART_URLS_PER_RESPONSE: usize = 100;

/// Presigns the parts numbered `numbers` (a batch).
pub(crate) async fn presign_parts(
    api: &UploadApi,
    key: &ObjectKey,
    s3_upload_id: &str,
    size_bytes: u64,
    part_size: u64,
    numbers: &[u32],
) -> Result<Vec<PartUrl>, StoreError> {
    let mut parts = Vec::with_capacity(numbers.len());
    for &part_number in numbers {
        let size = part_length(size_bytes, part_size, part_number);
        let request = api
            .objects
            .presign_part(key, s3_upload_id, part_number, size, api.config.url_ttl)
            .await?;
        parts.push(PartUrl {
            part_number,
            size,
            request,
        });
    }
    Ok(parts)
}

/// Where the next batch of part URLs is: `GET /v1/uploads/{id}/parts?from=<part>`.
pub(crate) fn next_parts(id: &UploadId, from: u32) -> ApiCall {
    ApiCall {
        method: "GET",
        path: format!("/v1/uploads/{id}/parts?from={from}"),
    }
}

/// `?from=<part>` of `GET /parts`: the first part number a page of missing parts may start at.
fn parts_from(request: &Request, part_count: u32) -> Result<u32, Problem> {
    let query = request.query_string_parameters();
    let Some(raw) = query.first("from") else {
        return Ok(1);
    };
    raw.parse::<u32>()
        .ok()
        .filter(|n| (1..=part_count).contains(n))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "Malformed request",
            )
            .detail(format!("from: a part number from 1 to {part_count}."))
        })
}

struct Plan<'a> {
    s3_upload_id: &'a str,
    part_size: u64,
    part_count: u32,
}

fn plan(upload: &Upload) -> Result<Plan<'_>, Problem> {
    match &upload.mode {
        UploadMode::Multipart {
            s3_upload_id,
            part_size,
            part_count,
        } => Ok(Plan {
            s3_upload_id,
            part_size: *part_size,
            part_count: *part_count,
        }),
        UploadMode::Single => Err(conflict(
            "not-multipart",
            "Not a multipart upload",
            "This upload is a single PUT; it has no parts.",
        )),
    }
}

fn ensure_open(upload: &Upload) -> Result<(), Problem> {
    if upload.status == UploadStatus::AwaitingUpload {
        Ok(())
    } else {
        Err(conflict(
            "upload-not-open",
            "Upload no longer open",
            format!("The upload is {}.", upload.status),
        ))
    }
}

/// ETags as S3 returns them are quoted; clients may send them either way.
fn normalize_etag(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

pub(crate) async fn list_parts(
    api: &UploadApi,
    caller: &Caller,
    id: &UploadId,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    let upload = writable_upload(api, caller, id).await?;
    let plan = plan(&upload)?;
    let from = parts_from(request, plan.part_count)?;
    ensure_open(&upload)?;
    let stored = api
        .objects
        .list_parts(&upload.key, plan.s3_upload_id)
        .await
        .map_err(request::store)?;
    let good: BTreeMap<u32, &StoredPart> = stored
        .iter()
        .filter(|p| p.size == part_length(upload.size_bytes, plan.part_size, p.part_number))
        .map(|p| (p.part_number, p))
        .collect();
    let expires_at = Utc::now() + api.config.url_ttl;
    let missing: Vec<u32> = (1..=plan.part_count)
        .filter(|n| !good.contains_key(n))
        .collect();
    // This page: the first missing parts from `from` on; the next page starts at the one after.
    let mut page: Vec<u32> = missing
        .iter()
        .copied()
        .filter(|n| *n >= from)
        .take(PART_URLS_PER_RESPONSE + 1)
        .collect();
    let next = (page.len() > PART_URLS_PER_RESPONSE)
        .then(|| page.pop())
        .flatten()
        .map(|after| next_parts(&upload.id, after));
    let urls = presign_parts(
        api,
        &upload.key,
        plan.s3_upload_id,
        upload.size_bytes,
        plan.part_size,
        &page,
    )
    .await
    .map_err(request::store)?;
    view::json(
        StatusCode::OK,
        &PartsView {
            upload_id: upload.id.to_string(),
            status: upload.status.as_str(),
            part_size: plan.part_size,
            part_count: plan.part_count,
            received: good.into_values().cloned().collect(),
            missing_count: missing.len(),
            missing: urls,
            next,
            complete: ApiCall {
                method: "POST",
                path: format!("/v1/uploads/{}/complete", upload.id),
            },
            expires_at: PartsView::expires(&expires_at),
        },
    )
}

/// The body of `POST /v1/uploads/{id}/complete`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CompleteUpload {
    parts: Vec<ClientPart>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClientPart {
    part_number: u32,
    etag: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartProblem {
    part_number: u32,
    detail: &'static str,
}

pub(crate) async fn complete_upload(
    api: &UploadApi,
    meta: &RequestMeta,
    caller: &Caller,
    id: &UploadId,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    let body: CompleteUpload = json_body(request)?;
    let upload = writable_upload(api, caller, id).await?;
    let plan = plan(&upload)?;
    if assembled(&upload) {
        // Completed already (a retry after a timeout; processing may have begun): the record.
        return view::json(StatusCode::OK, &UploadView::for_caller(&upload, caller));
    }
    ensure_open(&upload)?;

    let mut declared: BTreeMap<u32, &str> = BTreeMap::new();
    for p in &body.parts {
        if p.part_number == 0 || p.part_number > plan.part_count {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-parts",
                "Invalid parts",
            )
            .detail(format!("Part numbers run from 1 to {}.", plan.part_count)));
        }
        if declared
            .insert(p.part_number, normalize_etag(&p.etag))
            .is_some()
        {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-parts",
                "Invalid parts",
            )
            .detail(format!("Part {} is listed twice.", p.part_number)));
        }
    }

    let stored = match api.objects.list_parts(&upload.key, plan.s3_upload_id).await {
        Ok(stored) => stored,
        // S3 no longer knows the multipart upload: assembled by an earlier try whose record
        // update did not happen, or aborted.
        Err(StoreError::Conflict(_)) => return settle(api, meta, caller, upload).await,
        Err(e) => return Err(request::store(e)),
    };
    let stored: BTreeMap<u32, &StoredPart> = stored.iter().map(|p| (p.part_number, p)).collect();
    let mut problems = Vec::new();
    let mut assemble = Vec::with_capacity(plan.part_count as usize);
    for part_number in 1..=plan.part_count {
        let expected = part_length(upload.size_bytes, plan.part_size, part_number);
        match (declared.get(&part_number), stored.get(&part_number)) {
            (None, _) => problems.push(PartProblem {
                part_number,
                detail: "not listed in the request",
            }),
            (Some(_), None) => problems.push(PartProblem {
                part_number,
                detail: "not received by storage",
            }),
            (Some(etag), Some(s)) if *etag != normalize_etag(&s.etag) => {
                problems.push(PartProblem {
                    part_number,
                    detail: "ETag differs from the part storage holds",
                })
            }
            (Some(_), Some(s)) if s.size != expected => problems.push(PartProblem {
                part_number,
                detail: "size differs from the plan",
            }),
            (Some(_), Some(s)) => assemble.push((*s).clone()),
        }
    }
    if !problems.is_empty() {
        return Err(conflict(
            "parts-incomplete",
            "Parts incomplete",
            format!(
                "{} of {} parts cannot be assembled; GET /v1/uploads/{}/parts gives fresh URLs for the missing ones.",
                problems.len(),
                plan.part_count,
                upload.id
            ),
        )
        .extension("parts", problems));
    }

    match api
        .objects
        .complete_multipart(&upload.key, plan.s3_upload_id, &assemble)
        .await
    {
        Ok(()) => record_received(api, meta, caller, upload).await,
        // A concurrent completion assembled it between the listing and now.
        Err(StoreError::Conflict(_)) => settle(api, meta, caller, upload).await,
        Err(e) => Err(request::store(e)),
    }
}

/// Assembled already: the record says the bytes arrived (processing may have begun or ended).
fn assembled(upload: &Upload) -> bool {
    matches!(
        upload.status,
        UploadStatus::Received
            | UploadStatus::Processing
            | UploadStatus::Processed
            | UploadStatus::Quarantined
            | UploadStatus::Failed
    )
}

/// S3 no longer knows the multipart upload of a record still open. If the object is there, whole,
/// an earlier completion assembled it and did not get to record it (a timeout, a crash): record
/// it now. Otherwise the multipart upload was aborted or expired, and the bytes are gone.
async fn settle(
    api: &UploadApi,
    meta: &RequestMeta,
    caller: &Caller,
    upload: Upload,
) -> Result<Response<Body>, Problem> {
    match api.objects.head(&upload.key).await.map_err(request::store)? {
        Some(head) if head.size == upload.size_bytes => {
            record_received(api, meta, caller, upload).await
        }
        _ => Err(conflict(
            "upload-not-open",
            "Upload no longer open",
            "Storage no longer holds this multipart upload (aborted or expired); declare the upload again.",
        )),
    }
}

/// AWAITING_UPLOAD → RECEIVED, audited. If someone else moved the record first (a concurrent
/// completion, the processor), their record is the answer once it says the bytes arrived.
async fn record_received(
    api: &UploadApi,
    meta: &RequestMeta,
    caller: &Caller,
    upload: Upload,
) -> Result<Response<Body>, Problem> {
    let id = upload.id.clone();
    match transition(
        api,
        upload,
        UploadStatus::Received,
        &caller.user,
        "multipart upload completed",
        &meta.correlation_id,
    )
    .await
    {
        Ok(upload) => view::json(StatusCode::OK, &UploadView::for_caller(&upload, caller)),
        Err(p) if p.status == 409 => {
            let now = writable_upload(api, caller, &id).await?;
            if assembled(&now) {
                view::json(StatusCode::OK, &UploadView::for_caller(&now, caller))
            } else {
                Err(p)
            }
        }
        Err(p) => Err(p),
    }
}
