//! The processor's server-side copy (shared/src/store/s3.rs): above S3's 5 GiB CopyObject limit it
//! copies part by part, which starts a new object; it must still carry the source's Content-Type,
//! metadata and encryption, and the tags it is given. Limits lowered so a few MiB take that path.

use clinflow_tests::*;
use sha2::{Digest, Sha256};
use shared::store::s3::S3Ingest;
use shared::store::IngestObjects;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_multipart_copy_keeps_content_type_metadata_encryption_and_tags() {
    let app = spawn_app().await;
    let s3 = &app.stack.clients.s3;
    let bucket = app.bucket();
    let bytes: Vec<u8> = (0..12 * MIB).map(|i| (i * 31 % 251) as u8).collect();
    let from = "incoming/CLIN-DEMO-01/SITE-BOS-01/SUBJ-0001/copy-source.dcm";
    let put = s3
        .put_object()
        .bucket(&bucket)
        .key(from)
        .content_type("application/dicom")
        .metadata("clinflow-upload", "copy-source")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(bytes.clone().into())
        .send()
        .await
        .unwrap();
    let version = put.version_id().map(str::to_owned);

    // 5 MiB parts: three UploadPartCopy ranges (5, 5 and 2 MiB).
    let ingest =
        S3Ingest::new(s3.clone(), &bucket).with_copy_limits(5 * MIB as u64, 5 * MIB as u64);
    let to = "accepted/CLIN-DEMO-01/SITE-BOS-01/SUBJ-0001/copy-source.dcm";
    ingest
        .copy(
            from,
            version.as_deref(),
            bytes.len() as u64,
            to,
            &[("clinflow-scan", "clean"), ("clinflow-reason", "a b:c")],
        )
        .await
        .unwrap();

    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(to)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/dicom"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("clinflow-upload"))
            .map(String::as_str),
        Some("copy-source")
    );
    assert_eq!(
        head.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256)
    );
    assert_eq!(head.content_length(), Some(bytes.len() as i64));
    let tags = app.object_tags(to).await;
    assert_eq!(tags.get("clinflow-scan").map(String::as_str), Some("clean"));
    assert_eq!(
        tags.get("clinflow-reason").map(String::as_str),
        Some("a b:c")
    );
    let (len, digest) = app.object_digest(to).await;
    assert_eq!(len, bytes.len());
    assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&bytes)));
    assert_eq!(
        app.multipart_upload_count().await,
        0,
        "the copy's multipart upload is complete"
    );
}
