//! Faults the emulator cannot produce, injected through scripted ports: a dependency that is down
//! //! answers 503 and leaves nothing behind (a started multipart upload is aborted). What the handler
//! logs is checked in `logs.rs`, a process of its own.

mod ports;

use ports::*;

#[tokio::test]
async fn a_store_that_is_down_answers_503_and_leaves_no_multipart_upload_behind() {
    let objects = Arc::new(Objects::default());
    let api = UploadApi::with_ports(
        config(),
        Arc::new(Subjects { down: false }),
        Arc::new(Uploads { down: true }),
        objects.clone(),
    );
    let response = api
        .handle(create_request(declaration(300 * 1024 * 1024, "ct.dcm")))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(body_json(&response)["type"], "/problems/unavailable");
    assert_eq!(
        *objects.calls.lock().unwrap(),
        vec![
            "create_multipart".to_owned(),
            "abort_multipart mpu-1".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_subject_directory_that_is_down_answers_503_before_anything_is_presigned() {
    let objects = Arc::new(Objects::default());
    let api = UploadApi::with_ports(
        config(),
        Arc::new(Subjects { down: true }),
        Arc::new(Uploads { down: false }),
        objects.clone(),
    );
    let response = api
        .handle(create_request(declaration(1000, "ct.dcm")))
        .await;
    assert_eq!(response.status(), 503);
    assert!(objects.calls.lock().unwrap().is_empty());
}
