//! Multipart uploads: `GET /v1/uploads/{id}/parts` (resume: what S3 holds, fresh URLs for the rest)
//! and `POST /v1/uploads/{id}/complete` (assemble the parts, checked against the plan).

use crate::request::{self, conflict, json_body, RequestMeta};
use crate::status::{transition, writable_upload};
use crate::view::{self, ApiCall, PartUrl, PartsView, UploadView};
use crate::UploadApi;
use chrono::Utc;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::auth::Caller;
use shared::domain::{part_length, Upload, UploadId, UploadMode, UploadStatus};
use shared::problem::Problem;
use shared::store::StoredPart;
use std::collections::BTreeMap;

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
) -> Result<Response<Body>, Problem> {
    let upload = writable_upload(api, caller, id).await?;
    let plan = plan(&upload)?;
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
    let mut missing = Vec::new();
    for part_number in (1..=plan.part_count).filter(|n| !good.contains_key(n)) {
        let size = part_length(upload.size_bytes, plan.part_size, part_number);
        let request = api
            .objects
            .presign_part(
                &upload.key,
                plan.s3_upload_id,
                part_number,
                size,
                api.config.url_ttl,
            )
            .await
            .map_err(request::store)?;
        missing.push(PartUrl {
            part_number,
            size,
            request,
        });
    }
    view::json(
        StatusCode::OK,
        &PartsView {
            upload_id: upload.id.to_string(),
            status: upload.status.as_str(),
            part_size: plan.part_size,
            part_count: plan.part_count,
            received: good.into_values().cloned().collect(),
            missing,
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
    if upload.status == UploadStatus::Received {
        // Completed already (a retried request): the answer is the record.
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

    let stored = api
        .objects
        .list_parts(&upload.key, plan.s3_upload_id)
        .await
        .map_err(request::store)?;
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

    api.objects
        .complete_multipart(&upload.key, plan.s3_upload_id, &assemble)
        .await
        .map_err(request::store)?;
    let upload = transition(
        api,
        upload,
        UploadStatus::Received,
        &caller.user,
        "multipart upload completed",
        &meta.correlation_id,
    )
    .await?;
    view::json(StatusCode::OK, &UploadView::for_caller(&upload, caller))
}
