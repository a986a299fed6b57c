//! Every file in events/ deserializes into the type its function takes, and the function's handler
//! runs on it against the emulator.

use clinflow_tests::*;
use local_stack::emulator::repo_root;
use local_stack::functions::{self, LocalFunction, BINARIES};
use serde_json::Value;
use std::collections::BTreeMap;

fn events() -> BTreeMap<String, Value> {
    std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

fn binary_of(file: &str) -> &'static str {
    BINARIES
        .iter()
        .copied()
        .filter(|b| file.starts_with(&format!("{b}-")))
        .max_by_key(|b| b.len())
        .unwrap_or_else(|| panic!("events/{file} does not start with a function's binary name"))
}

async fn invoke(app: &TestApp, binary: &str, event: &Value) -> (u16, Value) {
    let (id, info) = app
        .stack
        .functions
        .iter()
        .find(|(_, f)| f.binary == binary)
        .expect("function in template");
    let clients = app.stack.function_clients(id).await;
    match functions::build(binary, &info.environment, &clients).unwrap() {
        LocalFunction::Http(handler) => {
            // The exact AWS type first, then what lambda_http builds from it.
            let _: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
                serde_json::from_value(event.clone()).expect("API Gateway v2 HTTP event");
            let request =
                lambda_http::request::from_str(&event.to_string()).expect("lambda_http request");
            let response = handler.invoke(request).await;
            let status = response.status().as_u16();
            let body: &[u8] = response.body().as_ref();
            (status, serde_json::from_slice(body).unwrap_or(Value::Null))
        }
        LocalFunction::Sqs(handler) => {
            let event: aws_lambda_events::event::sqs::SqsEvent =
                serde_json::from_value(event.clone()).expect("SQS event");
            let mut context = lambda_runtime::Context::default();
            context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 30_000;
            match handler
                .invoke(lambda_runtime::LambdaEvent::new(event, context))
                .await
            {
                Ok(response) => (200, serde_json::to_value(response).unwrap()),
                Err(e) => (500, Value::String(e.to_string())),
            }
        }
        LocalFunction::Scheduled(handler) => {
            let mut context = lambda_runtime::Context::default();
            context.deadline = chrono::Utc::now().timestamp_millis() as u64 + 30_000;
            match handler
                .invoke(lambda_runtime::LambdaEvent::new(event.clone(), context))
                .await
            {
                Ok(()) => (200, Value::Null),
                Err(e) => (500, Value::String(e.to_string())),
            }
        }
    }
}

#[tokio::test]
async fn every_sample_event_runs_through_its_handler() {
    let app = spawn_app().await;
    let events = events();
    for binary in BINARIES {
        assert!(
            events.keys().any(|f| binary_of(f) == *binary),
            "no sample event for {binary} in events/"
        );
    }

    let (status, created) = invoke(&app, "upload-url", &events["upload-url-create.json"]).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["upload"]["mode"], "single");
    assert_eq!(created["correlationId"], "sample-event-1");
    let (status, multipart) = invoke(
        &app,
        "upload-url",
        &events["upload-url-create-multipart.json"],
    )
    .await;
    assert_eq!(status, 201, "{multipart}");
    assert_eq!(multipart["upload"]["partCount"], 19);
    let real_id = multipart["uploadId"].as_str().unwrap();

    // The id-bearing events name an upload that does not exist here (404), and, pointed at the
    // multipart upload just created, do their job.
    for (file, expected) in [
        ("upload-url-get.json", 200),
        ("upload-url-parts.json", 200),
        ("upload-url-complete.json", 409),
        ("upload-url-abort.json", 200),
    ] {
        let event = &events[file];
        let (status, body) = invoke(&app, binary_of(file), event).await;
        assert_eq!(status, 404, "{file}: {body}");
        assert_eq!(body["type"], "/problems/not-found");

        let sample_id = event["pathParameters"]["uploadId"].as_str().unwrap();
        let pointed: Value =
            serde_json::from_str(&event.to_string().replace(sample_id, real_id)).unwrap();
        let (status, body) = invoke(&app, binary_of(file), &pointed).await;
        assert_eq!(status, expected, "{file}: {body}");
    }
    for file in events.keys() {
        binary_of(file);
    }

    // imaging-summary: the sample outcome counts once, however often it comes.
    for _ in 0..2 {
        let (status, response) = invoke(
            &app,
            "imaging-summary",
            &events["imaging-summary-upload-processed.json"],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([]),
            "{response}"
        );
    }
    let summary = shared::store::summary::DynamoImagingSummary::new(
        app.stack.clients.dynamodb.clone(),
        app.table("ImagingSummaryTable"),
    )
    .get("SUBJ-0001")
    .await
    .unwrap()
    .unwrap();
    assert_eq!(summary["instances"], 1, "{summary}");

    // process-dicom: the S3 test event is skipped; the sample names another bucket: skipped too.
    for file in [
        "process-dicom-s3-test-event.json",
        "process-dicom-object-created.json",
    ] {
        let (status, response) = invoke(&app, "process-dicom", &events[file]).await;
        assert_eq!(status, 200, "{file}: {response}");
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([]),
            "{file}"
        );
    }
    // Pointed at a real upload, the sample event processes it.
    let file = dicom_file("CT_small.dcm");
    let created = app.create_upload("SUBJ-0001", &file).await;
    assert_eq!(
        app.send_presigned(&created.body["upload"], file.clone())
            .await
            .status(),
        200
    );
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
    let mut event = events["process-dicom-object-created.json"].clone();
    let mut body: Value =
        serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
    let object = &mut body["Records"][0]["s3"];
    object["bucket"]["name"] = Value::String(app.bucket());
    object["object"]["key"] = Value::String(key.replace('/', "%2F"));
    object["object"]["size"] = Value::from(file.len());
    object["object"]["versionId"] = Value::String(head.version_id().unwrap_or_default().to_owned());
    event["Records"][0]["body"] = Value::String(body.to_string());
    let (status, response) = invoke(&app, "process-dicom", &event).await;
    assert_eq!(status, 200);
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );
    let id = created.body["uploadId"].as_str().unwrap();
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "PROCESSED", "{}", record.body);

    // ingest-failures: the sample names another bucket (nothing to mark); pointed at an upload
    // that never finished, it ends it FAILED.
    let (status, response) = invoke(
        &app,
        "ingest-failures",
        &events["ingest-failures-dead-lettered.json"],
    )
    .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    let waiting = app.create_upload("SUBJ-0001", &file).await;
    let mut event = events["ingest-failures-dead-lettered.json"].clone();
    let mut body: Value =
        serde_json::from_str(event["Records"][0]["body"].as_str().unwrap()).unwrap();
    let object = &mut body["Records"][0]["s3"];
    object["bucket"]["name"] = Value::String(app.bucket());
    object["object"]["key"] = Value::String(
        waiting.body["objectKey"]
            .as_str()
            .unwrap()
            .replace('/', "%2F"),
    );
    event["Records"][0]["body"] = Value::String(body.to_string());
    let (status, response) = invoke(&app, "ingest-failures", &event).await;
    assert_eq!(status, 200);
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    let id = waiting.body["uploadId"].as_str().unwrap();
    let record = app.get(&format!("/v1/uploads/{id}"), &app.staff()).await;
    assert_eq!(record.body["status"], "FAILED", "{}", record.body);

    // clinical-data: each write does its job once; sent again, the first answer (enrolment,
    // ePRO) or 412 (the form exists); the monitor's trail shows them.
    for (file, first, again) in [
        ("clinical-data-enrol.json", 201, 200),
        ("clinical-data-put-form.json", 201, 412),
        ("clinical-data-submit-epro.json", 201, 201),
    ] {
        let (status, body) = invoke(&app, "clinical-data", &events[file]).await;
        assert_eq!(status, first, "{file}: {body}");
        let (status, body) = invoke(&app, "clinical-data", &events[file]).await;
        assert_eq!(status, again, "{file}: {body}");
    }
    assert_eq!(app.item_count("FormsTable").await, 1);
    assert_eq!(app.item_count("EproTable").await, 1);
    let (status, trail) = invoke(&app, "clinical-data", &events["clinical-data-audit.json"]).await;
    assert_eq!(status, 200, "{trail}");
    let actions: Vec<&str> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["form.create", "epro.submit"], "{trail}");
}
