//! The Lambda Invoke API (`sam local start-lambda`'s contract) with the SDK's Lambda client: every
//! file in events/ goes through it to its function's real handler, and each does its job; errors
//! come back as Lambda sends them.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use clinflow_tests::*;
use local_stack::emulator::repo_root;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What an invocation answered: the payload, and the function error Lambda reports, if any.
struct Invoked {
    payload: Value,
    function_error: Option<String>,
}

async fn invoke(client: &aws_sdk_lambda::Client, function: &str, payload: &Value) -> Invoked {
    let out = client
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "invoke {function}: {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        });
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    Invoked {
        payload: out
            .payload()
            .map(|p| serde_json::from_slice(p.as_ref()).expect("JSON payload"))
            .unwrap_or(Value::Null),
        function_error: out.function_error().map(str::to_owned),
    }
}

/// An HTTP function's answer to an API Gateway v2 `event`, as API Gateway would render it:
/// (status, JSON body), checked against openapi.yaml like every other API response.
async fn http(client: &aws_sdk_lambda::Client, function: &str, event: &Value) -> (u64, Value) {
    let invoked = invoke(client, function, event).await;
    assert_eq!(invoked.function_error, None, "{}", invoked.payload);
    let status = invoked.payload["statusCode"].as_u64().expect("statusCode");
    assert_eq!(invoked.payload["isBase64Encoded"], false);
    let body: Value = serde_json::from_str(invoked.payload["body"].as_str().unwrap_or("null"))
        .expect("JSON body");
    let content_type = invoked.payload["headers"]["content-type"]
        .as_str()
        .unwrap_or("");
    let method = event["requestContext"]["http"]["method"].as_str().unwrap();
    let path = event["rawPath"].as_str().unwrap();
    if let Err(e) =
        clinflow_tests::openapi::spec().check(method, path, status as u16, content_type, &body)
    {
        panic!("{e}");
    }
    (status, body)
}

fn events() -> BTreeMap<String, Value> {
    std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The template's function (logical id) whose binary an events/ file is named after.
fn function_of(app: &TestApp, file: &str) -> String {
    app.stack
        .functions
        .iter()
        .filter(|(_, f)| file.starts_with(&format!("{}-", f.binary)))
        .max_by_key(|(_, f)| f.binary.len())
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("events/{file} names no function's binary"))
}

fn with_upload_id(event: &Value, id: &str) -> Value {
    let sample = event["pathParameters"]["uploadId"].as_str().unwrap();
    serde_json::from_str(&event.to_string().replace(sample, id)).unwrap()
}

fn batch_failures(invoked: &Invoked) -> Value {
    assert_eq!(invoked.function_error, None, "{}", invoked.payload);
    invoked.payload["batchItemFailures"].clone()
}

#[tokio::test]
async fn every_sample_event_runs_through_the_invoke_api() {
    let app = spawn_app().await;
    let client = lambda_client(&app).await;
    let events = events();
    let mut checked = Vec::new();
    let mut run = |file: &str| {
        checked.push(file.to_owned());
        (function_of(&app, file), events[file].clone())
    };

    // upload-url: declarations do their job (records written), the sample ids answer 404 problems
    // and, pointed at a real upload, their route's answer.
    let (f, e) = run("upload-url-create.json");
    assert_eq!(f, "UploadUrlFunction");
    let (status, single) = http(&client, &f, &e).await;
    assert_eq!(status, 201, "{single}");
    assert_eq!(single["upload"]["mode"], "single");
    assert_eq!(single["correlationId"], "sample-event-1");
    let (f, e) = run("upload-url-create-multipart.json");
    let (status, multipart) = http(&client, &f, &e).await;
    assert_eq!(status, 201, "{multipart}");
    assert_eq!(multipart["upload"]["partCount"], 19);
    assert_eq!(app.item_count("UploadsTable").await, 2);
    let real = multipart["uploadId"].as_str().unwrap();
    for (file, expected) in [
        ("upload-url-get.json", 200),
        ("upload-url-parts.json", 200),
        ("upload-url-complete.json", 409),
        ("upload-url-abort.json", 200),
    ] {
        let (f, e) = run(file);
        let (status, body) = http(&client, &f, &e).await;
        assert_eq!(status, 404, "{file}: {body}");
        assert_eq!(body["type"], "/problems/not-found", "{file}");
        let (status, body) = http(&client, &f, &with_upload_id(&e, real)).await;
        assert_eq!(status, expected, "{file}: {body}");
    }
    let record = app.get(&format!("/v1/uploads/{real}"), &app.staff()).await;
    assert_eq!(
        record.body["status"], "ABORTED",
        "the abort event aborted it"
    );
    let (f, e) = run("upload-url-list.json");
    let (status, list) = http(&client, &f, &e).await;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["uploadId"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{list}");
    assert!(listed.contains(&real) && listed.contains(&single["uploadId"].as_str().unwrap()));

    // imaging-summary: the sample outcome counts once, however often it comes.
    let (f, e) = run("imaging-summary-upload-processed.json");
    assert_eq!(f, "ImagingSummaryFunction");
    for _ in 0..2 {
        assert_eq!(batch_failures(&invoke(&client, &f, &e).await), json!([]));
    }
    // ingest-failures: the sample dead letter names another bucket's object: skipped, nothing
    // written.
    let (f, e) = run("ingest-failures-dead-lettered.json");
    assert_eq!(f, "IngestFailuresFunction");
    let audit_before = app.item_count("AuditTable").await;
    assert_eq!(batch_failures(&invoke(&client, &f, &e).await), json!([]));
    assert_eq!(app.item_count("AuditTable").await, audit_before);
    // subject-imaging: the summary it counted, for the monitor the sample event names.
    let (f, e) = run("subject-imaging-get.json");
    assert_eq!(f, "SubjectImagingFunction");
    let (status, imaging) = http(&client, &f, &e).await;
    assert_eq!(status, 200, "{imaging}");
    assert_eq!(imaging["subjectId"], "SUBJ-0001");
    assert_eq!(imaging["summary"]["instances"], 1, "{imaging}");
    assert_eq!(imaging["summary"]["lastStudyDate"], "20040119");
    // subject-report: the same subject's report, its imaging section from the same summary, its
    // read audited.
    let (f, e) = run("subject-report-get.json");
    assert_eq!(f, "SubjectReportFunction");
    let audit_before = app.item_count("AuditTable").await;
    let (status, report) = http(&client, &f, &e).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["subjectId"], "SUBJ-0001");
    assert_eq!(report["degraded"], false, "{report}");
    assert_eq!(report["imaging"]["instances"], 1, "{report}");
    assert_eq!(app.item_count("AuditTable").await, audit_before + 1);

    // refresh-cache: publishes the seeded reference data; metadata then reads it, by path and by the
    // old API's key; reference-admin creates the sample's entry (once: again, it is 412).
    let (f, e) = run("refresh-cache-scheduled.json");
    assert_eq!(f, "RefreshCacheFunction");
    let invoked = invoke(&client, &f, &e).await;
    assert_eq!(invoked.function_error, None, "{}", invoked.payload);
    for file in ["metadata-get.json", "metadata-legacy-get.json"] {
        let (f, e) = run(file);
        assert_eq!(f, "MetadataFunction");
        let (status, entry) = http(&client, &f, &e).await;
        assert_eq!(status, 200, "{file}: {entry}");
        assert_eq!(entry["name"], "paracetamol", "{file}");
    }
    let (f, e) = run("reference-admin-put.json");
    assert_eq!(f, "ReferenceAdminFunction");
    let (status, created) = http(&client, &f, &e).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    let (status, again) = http(&client, &f, &e).await;
    assert_eq!(status, 412, "{again}");
    // clinical-data: the enrolment, the form and the diary entry are written once each, whatever
    // the retries; the monitor's trail lists the two changes to SUBJ-0001.
    for (file, first, again) in [
        ("clinical-data-enrol.json", 201, 200),
        ("clinical-data-put-form.json", 201, 412),
        ("clinical-data-submit-epro.json", 201, 201),
    ] {
        let (f, e) = run(file);
        assert_eq!(f, "ClinicalDataFunction");
        let (status, body) = http(&client, &f, &e).await;
        assert_eq!(status, first, "{file}: {body}");
        let (status, body) = http(&client, &f, &e).await;
        assert_eq!(status, again, "{file}: {body}");
    }
    assert_eq!(app.item_count("FormsTable").await, 1);
    assert_eq!(app.item_count("EproTable").await, 1);
    let (f, e) = run("clinical-data-audit.json");
    let (status, trail) = http(&client, &f, &e).await;
    assert_eq!(status, 200, "{trail}");
    // The two changes, and the report's read above (reads are on the trail too).
    let actions: Vec<&str> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["read.report", "form.create", "epro.submit"],
        "{trail}"
    );

    // exports: the request is recorded QUEUED (audited) and queued once; the worker's sample batch
    // names no export (nothing happens) and, pointed at the queued export, renders it (again: no
    // change); the sample status event answers 404 for its made-up id and, pointed at the real
    // export, its download link (audited), which serves the PDF.
    let (f, e) = run("exports-request.json");
    assert_eq!(f, "ExportsFunction");
    let audit_before = app.item_count("AuditTable").await;
    let (status, accepted) = http(&client, &f, &e).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["format"], "pdf");
    assert_eq!(app.item_count("AuditTable").await, audit_before + 1);
    let export_id = accepted["exportId"].as_str().unwrap().to_owned();
    let queued = app.drain_queue("ExportsQueue", 5).await;
    assert_eq!(queued, [json!({"exportId": export_id})]);
    let (worker, e) = run("export-worker-queued.json");
    assert_eq!(worker, "ExportWorkerFunction");
    assert_eq!(
        batch_failures(&invoke(&client, &worker, &e).await),
        json!([])
    );
    let sample = e["Records"][0]["body"].as_str().unwrap();
    let sample = serde_json::from_str::<Value>(sample).unwrap()["exportId"]
        .as_str()
        .unwrap()
        .to_owned();
    let real_message: Value =
        serde_json::from_str(&e.to_string().replace(&sample, &export_id)).unwrap();
    assert_eq!(
        batch_failures(&invoke(&client, &worker, &real_message).await),
        json!([])
    );
    let (f, e) = run("exports-get.json");
    assert_eq!(f, "ExportsFunction");
    let (status, body) = http(&client, &f, &e).await;
    assert_eq!(status, 404, "{body}");
    let real_get: Value =
        serde_json::from_str(&e.to_string().replace(&sample, &export_id)).unwrap();
    let audit_before = app.item_count("AuditTable").await;
    let (status, done) = http(&client, &f, &real_get).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "DONE", "{done}");
    assert_eq!(
        app.item_count("AuditTable").await,
        audit_before + 1,
        "the link is audited"
    );
    let pdf = reqwest::get(done["download"]["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    assert_eq!(
        batch_failures(&invoke(&client, &worker, &real_message).await),
        json!([])
    );
    let (_, again) = http(&client, "ExportsFunction", &real_get).await;
    assert_eq!(
        again["updatedAt"], done["updatedAt"],
        "delivered again: nothing changed"
    );

    // process-dicom: the S3 test event and the sample (another bucket) are skipped; pointed at a
    // real upload, the sample event processes it.
    let (f, e) = run("process-dicom-s3-test-event.json");
    assert_eq!(f, "ProcessDicomFunction");
    assert_eq!(batch_failures(&invoke(&client, &f, &e).await), json!([]));
    let (f, e) = run("process-dicom-object-created.json");
    assert_eq!(batch_failures(&invoke(&client, &f, &e).await), json!([]));
    let file = dicom_file("CT_small.dcm");
    let created = app.create_upload("SUBJ-0001", &file).await;
    let put = app
        .send_presigned(&created.body["upload"], file.clone())
        .await;
    assert_eq!(put.status(), 200);
    let key = created.body["objectKey"].as_str().unwrap();
    let head = app
        .stack
        .clients
        .s3
        .head_object()
        .bucket(app.bucket())
        .key(key)
        .send()
        .await
        .unwrap();
    let mut event = e.clone();
    let mut body: Value =
        serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
    let s3 = &mut body["Records"][0]["s3"];
    s3["bucket"]["name"] = Value::String(app.bucket());
    s3["object"]["key"] = Value::String(key.replace('/', "%2F"));
    s3["object"]["size"] = Value::from(file.len());
    s3["object"]["versionId"] = Value::String(head.version_id().unwrap_or_default().to_owned());
    event["Records"][0]["body"] = Value::String(body.to_string());
    assert_eq!(
        batch_failures(&invoke(&client, &f, &event).await),
        json!([])
    );
    let id = created.body["uploadId"].as_str().unwrap();
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "PROCESSED", "{}", record.body);

    // Every file in events/ was driven here, and checked.
    checked.sort();
    assert_eq!(
        checked,
        events.keys().cloned().collect::<Vec<_>>(),
        "a file in events/ without an expectation here"
    );
}

#[tokio::test]
async fn errors_come_back_as_lambda_sends_them() {
    let app = spawn_app().await;
    let client = lambda_client(&app).await;

    // An unknown function: 404 ResourceNotFoundException.
    let err = client
        .invoke()
        .function_name("NoSuchFunction")
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{}",
        aws_sdk_lambda::error::DisplayErrorContext(&err)
    );
    // A payload that is not JSON: 400 InvalidRequestContentException.
    let err = client
        .invoke()
        .function_name("ProcessDicomFunction")
        .payload(Blob::new("{not json"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_request_content_exception()),
        "{}",
        aws_sdk_lambda::error::DisplayErrorContext(&err)
    );
    // A payload the function cannot take: a function error (200, X-Amz-Function-Error: Unhandled).
    for function in [
        "ProcessDicomFunction",
        "UploadUrlFunction",
        "ImagingSummaryFunction",
    ] {
        let invoked = invoke(&client, function, &json!({"Records": "not a list"})).await;
        assert_eq!(
            invoked.function_error.as_deref(),
            Some("Unhandled"),
            "{function}"
        );
        assert!(
            invoked.payload["errorMessage"].is_string(),
            "{function}: {}",
            invoked.payload
        );
        assert!(invoked.payload["errorType"].is_string());
    }
    // The deployed name and the ARN name the same function as the logical id.
    let test_event = &events()["process-dicom-s3-test-event.json"];
    let stack = app
        .table("UploadsTable")
        .trim_end_matches("-uploads")
        .to_owned();
    let account = local_stack::emulator::MOTO_ACCOUNT;
    for function in [
        format!("{stack}-ProcessDicomFunction"),
        format!("arn:aws:lambda:us-east-1:{account}:function:{stack}-ProcessDicomFunction"),
    ] {
        let invoked = invoke(&client, &function, test_event).await;
        assert_eq!(batch_failures(&invoked), json!([]), "{function}");
    }
    // Event: accepted (202), run in the background — here, a declaration that lands in the table.
    let out = client
        .invoke()
        .function_name("UploadUrlFunction")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(events()["upload-url-create.json"].to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.item_count("UploadsTable").await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the Event invocation never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // DryRun: 204, nothing run.
    let out = client
        .invoke()
        .function_name("UploadUrlFunction")
        .invocation_type(InvocationType::DryRun)
        .payload(Blob::new(events()["upload-url-create.json"].to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 204);
    assert_eq!(app.item_count("UploadsTable").await, 1);
}

#[tokio::test]
async fn a_function_run_as_its_binary_is_invoked_through_the_runtime_api() {
    let app = spawn_ingest_processes(
        &[],
        &[("ProcessDicomFunction", function_binary("process-dicom"))],
    )
    .await;
    let client = lambda_client(&app).await;
    let process = &app.stack.processes["ProcessDicomFunction"];
    let before = process.output().len();
    let invoked = invoke(
        &client,
        "ProcessDicomFunction",
        &events()["process-dicom-s3-test-event.json"],
    )
    .await;
    assert_eq!(batch_failures(&invoked), json!([]));
    // The child process handled it (its log stream grew).
    assert!(process.output().len() > before);
    // Its runtime's error report comes back as the function error.
    let invoked = invoke(&client, "ProcessDicomFunction", &json!({"Records": 7})).await;
    assert_eq!(invoked.function_error.as_deref(), Some("Unhandled"));
    assert!(
        invoked.payload["errorMessage"].is_string(),
        "{}",
        invoked.payload
    );
}
