//! `POST /v1/uploads`: parse the declaration, check the caller may upload for the subject, plan the
//! upload (single PUT or multipart), presign, and record it. Bad input writes nothing.

use crate::multipart::{next_parts, presign_parts, PART_URLS_PER_RESPONSE};
use crate::request::{self, json_body, RequestMeta};
use crate::view::{self, ApiCall, CreatedUpload, PartUrl, UploadInstructions, UploadView};
use crate::UploadApi;
use chrono::Utc;
use lambda_http::{http::StatusCode, Body, Request, Response};
use serde::{Deserialize, Serialize};
use shared::auth::{Caller, Role};
use shared::domain::{
    ObjectKey, Sha256Digest, SubjectId, Upload, UploadId, UploadMode, UploadStatus,
};
use shared::problem::Problem;
use shared::store::dynamodb::upload_entity;
use shared::store::{AuditEntry, PresignedHttp};

pub(crate) const DICOM_CONTENT_TYPE: &str = "application/dicom";
const MAX_FILE_NAME_CHARS: usize = 255;

/// The body of `POST /v1/uploads`. Unknown fields are refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateUpload {
    subject_id: String,
    file_name: String,
    content_type: String,
    size_bytes: u64,
    sha256: String,
}

#[derive(Serialize)]
struct FieldError {
    field: &'static str,
    detail: String,
}

/// A declaration whose every field is valid.
#[derive(Debug)]
struct Declared {
    subject: SubjectId,
    file_name: String,
    size_bytes: u64,
    sha256: Sha256Digest,
}

fn validate(body: CreateUpload, max_upload: u64) -> Result<Declared, Problem> {
    let mut errors = Vec::new();
    let subject = SubjectId::parse(&body.subject_id)
        .map_err(|detail| {
            errors.push(FieldError {
                field: "subjectId",
                detail,
            })
        })
        .ok();
    let name = body.file_name.trim();
    if name.is_empty() || name.chars().count() > MAX_FILE_NAME_CHARS {
        errors.push(FieldError {
            field: "fileName",
            detail: format!("1 to {MAX_FILE_NAME_CHARS} characters"),
        });
    } else if name
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        errors.push(FieldError {
            field: "fileName",
            detail: "a file name, without path separators or control characters".into(),
        });
    }
    let essence = body.content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(DICOM_CONTENT_TYPE) {
        errors.push(FieldError {
            field: "contentType",
            detail: format!("only DICOM is accepted: {DICOM_CONTENT_TYPE}"),
        });
    }
    if body.size_bytes == 0 || body.size_bytes > max_upload {
        errors.push(FieldError {
            field: "sizeBytes",
            detail: format!("between 1 and {max_upload} bytes"),
        });
    }
    let sha256 = Sha256Digest::parse(&body.sha256)
        .map_err(|detail| {
            errors.push(FieldError {
                field: "sha256",
                detail,
            })
        })
        .ok();
    match (subject, sha256) {
        (Some(subject), Some(sha256)) if errors.is_empty() => Ok(Declared {
            subject,
            file_name: name.to_owned(),
            size_bytes: body.size_bytes,
            sha256,
        }),
        _ => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-upload",
            "Invalid upload declaration",
        )
        .detail(format!("{} field(s) are invalid.", errors.len()))
        .extension("errors", errors)),
    }
}

pub(crate) async fn create_upload(
    api: &UploadApi,
    meta: &RequestMeta,
    caller: &Caller,
    request: &Request,
) -> Result<Response<Body>, Problem> {
    if caller.role != Role::SiteStaff {
        return Err(Problem::forbidden("Only site staff upload imaging."));
    }
    let declared = validate(json_body(request)?, api.config.max_upload)?;
    let subject = api
        .subjects
        .subject(&declared.subject)
        .await
        .map_err(request::store)?
        .filter(|s| caller.can_upload(&s.trial, &s.site))
        .ok_or_else(|| Problem::not_found("No such subject at your sites."))?;

    let now = Utc::now();
    let expires_at = now + api.config.url_ttl;
    let id = UploadId::generate();
    tracing::Span::current().record("upload", tracing::field::display(&id));
    let key = ObjectKey::for_upload(
        &api.config.prefix,
        &subject.trial,
        &subject.site,
        &subject.id,
        &id,
    );
    let objects = &api.objects;

    let (mode, instructions) = if declared.size_bytes > api.config.multipart_threshold {
        let part_size = api.config.part_size_for(declared.size_bytes);
        let part_count = u32::try_from(declared.size_bytes.div_ceil(part_size))
            .map_err(|_| Problem::internal())?;
        let s3_upload_id = objects
            .create_multipart(&key, DICOM_CONTENT_TYPE)
            .await
            .map_err(request::store)?;
        // The first batch of part URLs; `next` hands out the rest (Lambda's 6 MB response limit).
        let batch = part_count.min(PART_URLS_PER_RESPONSE as u32);
        let numbers: Vec<u32> = (1..=batch).collect();
        let parts = match presign_parts(
            api,
            &key,
            &s3_upload_id,
            declared.size_bytes,
            part_size,
            &numbers,
        )
        .await
        {
            Ok(parts) => parts,
            Err(e) => {
                let _ = objects.abort_multipart(&key, &s3_upload_id).await;
                return Err(request::store(e));
            }
        };
        let next = (part_count > batch).then(|| next_parts(&id, batch + 1));
        (
            UploadMode::Multipart {
                s3_upload_id,
                part_size,
                part_count,
            },
            Instructions::Multipart(parts, next),
        )
    } else {
        let put: PresignedHttp = objects
            .presign_put(
                &key,
                declared.size_bytes,
                DICOM_CONTENT_TYPE,
                &declared.sha256.to_base64(),
                api.config.url_ttl,
            )
            .await
            .map_err(request::store)?;
        (UploadMode::Single, Instructions::Single(put))
    };

    let upload = Upload {
        id: id.clone(),
        subject: subject.id,
        trial: subject.trial,
        site: subject.site,
        file_name: declared.file_name,
        content_type: DICOM_CONTENT_TYPE.to_owned(),
        size_bytes: declared.size_bytes,
        sha256: declared.sha256,
        bucket: objects.bucket().to_owned(),
        key,
        mode,
        status: UploadStatus::AwaitingUpload,
        status_reason: None,
        created_by: caller.user.clone(),
        created_at: now,
        updated_at: now,
        expires_at,
        correlation_id: meta.correlation_id.clone(),
        processing: None,
    };
    let audit = AuditEntry {
        entity: upload_entity(&id),
        actor: caller.user.clone(),
        at: now,
        action: "upload.create".into(),
        old: None,
        new: Some(UploadStatus::AwaitingUpload.as_str().into()),
        reason: "upload declared".into(),
        correlation_id: meta.correlation_id.clone(),
    };
    if let Err(e) = api.uploads.create(&upload, &audit).await {
        if let UploadMode::Multipart { s3_upload_id, .. } = &upload.mode {
            let _ = objects.abort_multipart(&upload.key, s3_upload_id).await;
        }
        return Err(request::store(e));
    }
    tracing::info!(
        mode = upload.mode.as_str(),
        size_bytes = upload.size_bytes,
        "upload planned"
    );

    let upload_instructions = match instructions {
        Instructions::Single(put) => UploadInstructions::single(put, &expires_at),
        Instructions::Multipart(parts, next) => {
            UploadInstructions::multipart(&upload, parts, next, &expires_at)
        }
    };
    let mut response = view::json(
        StatusCode::CREATED,
        &CreatedUpload {
            record: UploadView::for_caller(&upload, caller),
            upload: upload_instructions,
        },
    )?;
    if let Ok(location) = format!("/v1/uploads/{id}").parse() {
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    Ok(response)
}

enum Instructions {
    Single(PresignedHttp),
    /// The first batch of parts, and where the next batch is.
    Multipart(Vec<PartUrl>, Option<ApiCall>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(subject: &str, name: &str, ct: &str, size: u64, sha: &str) -> CreateUpload {
        CreateUpload {
            subject_id: subject.into(),
            file_name: name.into(),
            content_type: ct.into(),
            size_bytes: size,
            sha256: sha.into(),
        }
    }

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn fields(p: &Problem) -> Vec<String> {
        p.extensions["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn accepts_a_good_declaration() {
        let d = validate(body("SUBJ-1", "ct.dcm", "application/dicom", 10, SHA), 100).unwrap();
        assert_eq!(d.size_bytes, 10);
    }

    #[test]
    fn names_every_invalid_field() {
        let p = validate(body("../x", "", "image/png", 0, "abc"), 100).unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(
            fields(&p),
            [
                "subjectId",
                "fileName",
                "contentType",
                "sizeBytes",
                "sha256"
            ]
        );
        let p = validate(body("S", "a/b.dcm", "application/dicom", 101, SHA), 100).unwrap_err();
        assert_eq!(fields(&p), ["fileName", "sizeBytes"]);
    }
}
