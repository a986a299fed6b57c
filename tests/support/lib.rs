//! `spawn_app()`: a fresh local stack per test — its own stack name, so its own tables, queues and
//! bucket — on one emulator per test process (moto on a free loopback port, or `AWS_ENDPOINT_URL`).

pub mod fault_proxy;
pub mod faults;
pub mod openapi;
pub mod reconcile;
pub mod reference;
pub mod sources;

use local_stack::emulator::{repo_root, Emulator};
use local_stack::{LocalStack, Options, DEMO_SUBJECTS};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

static EMULATOR: OnceLock<Emulator> = OnceLock::new();

fn emulator() -> &'static Emulator {
    EMULATOR.get_or_init(|| {
        Emulator::from_env_or_start().expect("start the emulator (make setup installs moto)")
    })
}

/// This test process's emulator as one whose state outlives its process
/// ([`Emulator::kill_and_restart`]): called before anything else starts the emulator, so in a test
/// binary of its own (every test of a binary shares one emulator).
pub fn persistent_emulator() -> &'static Emulator {
    let emulator = EMULATOR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("clinflow-moto-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Emulator::start_moto_persistent(&dir)
            .expect("start the emulator (make setup installs moto)")
    });
    assert!(
        emulator.is_persistent(),
        "this process's emulator was started before, without persistence"
    );
    emulator
}

pub fn endpoint() -> String {
    emulator().endpoint.clone()
}

/// The emulator's administrator (IAM is enforced on an emulator the tests started).
pub fn admin() -> Option<local_stack::emulator::AccessKeys> {
    emulator().admin.clone()
}

pub struct TestApp {
    pub stack: LocalStack,
    pub http: reqwest::Client,
}

/// Demo sites: SUBJ-0001 and SUBJ-0002 at SITE-BOS-01, SUBJ-0101 at SITE-LYN-02.
pub const BOS: &str = "SITE-BOS-01";
pub const LYN: &str = "SITE-LYN-02";
/// The demo trial.
pub const TRIAL: &str = "CLIN-DEMO-01";

/// The API and its resources, without the queue consumers: what upload-url does is observed on the
/// queues themselves.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// A stack whose template parameters are overridden, e.g. a small multipart threshold.
pub async fn spawn_app_with(parameters: &[(&str, &str)]) -> TestApp {
    spawn(parameters, false, &[]).await
}

/// The whole pipeline: API, and the queue consumers polling (presigned PUT → S3 → SQS →
/// process-dicom → imaging events).
pub async fn spawn_pipeline(parameters: &[(&str, &str)]) -> TestApp {
    spawn(parameters, true, &[]).await
}

/// The pipeline up to process-dicom: the imaging-events queue is left for the test to read.
pub async fn spawn_ingest(parameters: &[(&str, &str)]) -> TestApp {
    spawn(parameters, true, &["ImagingSummaryFunction"]).await
}

/// The pipeline up to process-dicom, with these functions (logical id → executable) run as their
/// real binaries under the local Lambda runtime API.
pub async fn spawn_ingest_processes(
    parameters: &[(&str, &str)],
    processes: &[(&str, std::path::PathBuf)],
) -> TestApp {
    spawn_with(parameters, true, &["ImagingSummaryFunction"], processes).await
}

/// A function's binary as `cargo build --workspace --bins` leaves it (`make test` builds them
/// before the tests).
pub fn function_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}

async fn spawn(parameters: &[(&str, &str)], pollers: bool, unpolled: &[&str]) -> TestApp {
    spawn_with(parameters, pollers, unpolled, &[]).await
}

/// The API of a stack built from another template (e.g. template.yaml with a permission removed).
pub async fn spawn_app_from(template: std::path::PathBuf) -> TestApp {
    spawn_from(template, &[], false, &[], &[], None).await
}

async fn spawn_with(
    parameters: &[(&str, &str)],
    pollers: bool,
    unpolled: &[&str],
    processes: &[(&str, std::path::PathBuf)],
) -> TestApp {
    spawn_from(
        repo_root().join("template.yaml"),
        parameters,
        pollers,
        unpolled,
        processes,
        None,
    )
    .await
}

/// The whole pipeline, the functions' own SDK calls going through `function_endpoint` (a
/// [`fault_proxy::FaultProxy`] in front of the emulator).
pub async fn spawn_pipeline_through(
    function_endpoint: &str,
    parameters: &[(&str, &str)],
) -> TestApp {
    spawn_from(
        repo_root().join("template.yaml"),
        parameters,
        true,
        &[],
        &[],
        Some(function_endpoint),
    )
    .await
}

async fn spawn_from(
    template: std::path::PathBuf,
    parameters: &[(&str, &str)],
    pollers: bool,
    unpolled: &[&str],
    processes: &[(&str, std::path::PathBuf)],
    function_endpoint: Option<&str>,
) -> TestApp {
    // What the functions warn about shows in a failing test's output (RUST_LOG for more).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let stack_name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let options = Options {
        stack_name,
        region: "us-east-1".into(),
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        lambda_addr: "127.0.0.1:0".parse().expect("addr"),
        template,
        parameters: parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>(),
        jwt_secret: "test-secret".into(),
        pollers,
        unpolled: unpolled.iter().map(|s| (*s).to_owned()).collect(),
        processes: processes
            .iter()
            .map(|(id, exe)| ((*id).to_owned(), exe.clone()))
            .collect(),
        admin: admin(),
        // The curated rows: a few hundred, quick to write for every test's stack.
        reference_data: local_stack::reference::ReferenceSeed::Curated,
        function_endpoint: function_endpoint.map(str::to_owned),
    };
    let stack = LocalStack::start(&endpoint(), options)
        .await
        .expect("local stack");
    stack.seed_subjects(DEMO_SUBJECTS).await.expect("seed");
    TestApp {
        stack,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("http client"),
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with this status and returns its `type`.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string());
        self.body["type"].as_str().expect("type").to_owned()
    }
}

/// The HttpApi routes template.yaml wires: (METHOD, path template), sorted.
pub fn template_routes() -> Vec<(String, String)> {
    let template: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(local_stack::emulator::repo_root().join("template.yaml"))
            .expect("template.yaml"),
    )
    .expect("template.yaml is YAML");
    let mut routes = Vec::new();
    for (_, resource) in template["Resources"].as_mapping().into_iter().flatten() {
        for (_, event) in resource["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if event["Type"] == "HttpApi" {
                routes.push((
                    event["Properties"]["Method"]
                        .as_str()
                        .unwrap_or_default()
                        .to_uppercase(),
                    event["Properties"]["Path"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
        }
    }
    routes.sort();
    routes
}

/// The SDK's Lambda client for the stack's Lambda Invoke API (`aws lambda invoke --endpoint-url`).
pub async fn lambda_client(app: &TestApp) -> aws_sdk_lambda::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&app.stack.lambda_url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_lambda::Client::new(&config)
}

/// Reads a response of the API to `method path` and checks it against openapi.yaml
/// ([`openapi`]): an undocumented status, content type or body fails the test.
pub async fn checked_reply(method: &str, path: &str, r: reqwest::Response) -> Reply {
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let reply = reply(r).await;
    if let Err(e) = openapi::spec().check(method, path, reply.status, &content_type, &reply.body) {
        panic!("{e}");
    }
    reply
}

async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

impl TestApp {
    pub fn token(&self, role: &str, sites: &[&str]) -> String {
        self.stack.token("tester", role, sites, &[])
    }

    /// A token with a `trials` claim (a sponsor admin sees only its trials).
    pub fn token_in(&self, role: &str, sites: &[&str], trials: &[&str]) -> String {
        self.stack.token("tester", role, sites, trials)
    }

    pub fn staff(&self) -> String {
        self.token("site_staff", &[BOS])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.stack.api_url, path)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        checked_reply(method.as_str(), path, req.send().await.expect("request")).await
    }

    /// Invokes a function of the stack (by logical id) through its Lambda Invoke API, as
    /// `aws lambda invoke` would: the payload it answered and the function error, if any.
    pub async fn invoke(&self, function: &str, payload: &Value) -> (Value, Option<String>) {
        let out = lambda_client(self)
            .await
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload.to_string()))
            .send()
            .await
            .expect("invoke");
        let answered = out
            .payload()
            .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
            .unwrap_or(Value::Null);
        (answered, out.function_error().map(str::to_owned))
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// Declares an upload of `bytes` for `subject` as site staff at BOS.
    pub async fn create_upload(&self, subject: &str, bytes: &[u8]) -> Reply {
        self.post("/v1/uploads", &self.staff(), &declaration(subject, bytes))
            .await
    }

    /// Sends a presigned request exactly as the API described it (method, URL, headers).
    pub async fn send_presigned(&self, request: &Value, body: Vec<u8>) -> reqwest::Response {
        let method: reqwest::Method = request["method"]
            .as_str()
            .expect("method")
            .parse()
            .expect("method");
        let mut req = self
            .http
            .request(method, request["url"].as_str().expect("url"));
        for (k, v) in request["headers"].as_object().expect("headers") {
            // The body sets its own length (a test may send another length than was signed, which
            // real S3 refuses and the emulator does not check).
            if k != "content-length" {
                req = req.header(k.as_str(), v.as_str().expect("header value"));
            }
        }
        // A part of 64 MiB into the emulator on a loaded 2-core machine took over a minute (a
        // clean-clone CI run failed so): the bytes' own timeout, not the API calls' 60 s.
        req.body(body)
            .timeout(std::time::Duration::from_secs(600))
            .send()
            .await
            .expect("presigned request")
    }

    pub fn table(&self, logical_id: &str) -> String {
        self.stack.table(logical_id).expect("table").to_owned()
    }

    pub fn bucket(&self) -> String {
        self.stack
            .bucket("UploadBucket")
            .expect("bucket")
            .to_owned()
    }

    pub async fn item_count(&self, logical_id: &str) -> usize {
        self.stack
            .clients
            .dynamodb
            .scan()
            .table_name(self.table(logical_id))
            .send()
            .await
            .expect("scan")
            .items
            .unwrap_or_default()
            .len()
    }

    /// Object versions in the upload, accepted and quarantine areas (not the scanner's signatures).
    pub async fn object_count(&self) -> usize {
        self.stack
            .clients
            .s3
            .list_object_versions()
            .bucket(self.bucket())
            .send()
            .await
            .expect("list")
            .versions
            .unwrap_or_default()
            .iter()
            .filter(|v| !v.key().unwrap_or_default().starts_with("scanner/"))
            .count()
    }

    pub async fn multipart_upload_count(&self) -> usize {
        self.stack
            .clients
            .s3
            .list_multipart_uploads()
            .bucket(self.bucket())
            .send()
            .await
            .expect("list uploads")
            .uploads
            .unwrap_or_default()
            .len()
    }

    /// Streams an object from the upload bucket: (length, SHA-256).
    pub async fn object_digest(&self, key: &str) -> (usize, [u8; 32]) {
        let (len, digest) = self.digest_if_present(key).await.expect("get object");
        let digest: [u8; 32] = hex::decode(digest)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        (len, digest)
    }

    /// The audit trail of an upload, oldest first.
    pub async fn audit_trail(
        &self,
        upload_id: &str,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        shared::store::dynamodb::DynamoUploads::new(
            self.stack.clients.dynamodb.clone(),
            self.table("UploadsTable"),
            self.table("AuditTable"),
        )
        .audit_trail(&format!("upload#{upload_id}"))
        .await
        .expect("audit trail")
    }

    /// The audit trail of any entity (`reference#drug_code#N02BE01`), oldest first.
    pub async fn audit_of(
        &self,
        entity: &str,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        shared::store::dynamodb::DynamoUploads::new(
            self.stack.clients.dynamodb.clone(),
            self.table("UploadsTable"),
            self.table("AuditTable"),
        )
        .audit_trail(entity)
        .await
        .expect("audit trail")
    }

    /// A stack with 5 MiB parts and an upload of `size` bytes declared on it: (app, upload id).
    pub async fn with_multipart_upload(size: usize) -> (TestApp, String) {
        let app = spawn_app_with(&[
            ("MultipartThresholdBytes", "5242880"),
            ("MultipartPartSizeBytes", "5242880"),
        ])
        .await;
        let mut declared = declaration("SUBJ-0001", b"x");
        declared["sizeBytes"] = serde_json::json!(size);
        let created = app.post("/v1/uploads", &app.staff(), &declared).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["uploadId"].as_str().expect("id").to_owned();
        (app, id)
    }

    /// Asserts that nothing was written: no upload record, no audit entry, no object, no multipart upload.
    pub async fn assert_nothing_written(&self) {
        assert_eq!(self.item_count("UploadsTable").await, 0, "upload records");
        assert_eq!(self.item_count("AuditTable").await, 0, "audit entries");
        assert_eq!(self.object_count().await, 0, "objects");
        assert_eq!(self.multipart_upload_count().await, 0, "multipart uploads");
    }

    /// Receives every message now on a queue (by logical id), waiting up to `seconds` for the first.
    pub async fn drain_queue(&self, logical_id: &str, seconds: i32) -> Vec<Value> {
        let url = self.stack.queue(logical_id).expect("queue").url.clone();
        self.drain(&url, seconds)
            .await
            .iter()
            .map(|b| serde_json::from_str(b).unwrap_or(Value::Null))
            .collect()
    }

    /// The raw bodies of every message now on a queue (by URL).
    pub async fn drain_queue_url(&self, url: &str) -> Vec<String> {
        self.drain(url, 1).await
    }

    async fn drain(&self, url: &str, seconds: i32) -> Vec<String> {
        let url = url.to_owned();
        let mut out = Vec::new();
        let mut wait = seconds;
        loop {
            let got = self
                .stack
                .clients
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait)
                .send()
                .await
                .expect("receive");
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(m.body().unwrap_or_default().to_owned());
                if let Some(h) = m.receipt_handle() {
                    let _ = self
                        .stack
                        .clients
                        .sqs
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(h)
                        .send()
                        .await;
                }
            }
            wait = 1;
        }
    }
}

/// A well-formed declaration of `bytes`.
pub fn declaration(subject: &str, bytes: &[u8]) -> Value {
    serde_json::json!({
        "subjectId": subject,
        "fileName": "CT_small.dcm",
        "contentType": "application/dicom",
        "sizeBytes": bytes.len(),
        "sha256": hex::encode(Sha256::digest(bytes)),
    })
}

/// A real DICOM file from pydicom's test data (installed in .venv by scripts/setup.sh).
pub fn dicom_file(name: &str) -> Vec<u8> {
    let dir = repo_root().join(".venv/lib");
    let found = std::fs::read_dir(&dir)
        .expect(".venv/lib (run make setup)")
        .filter_map(Result::ok)
        .map(|d| {
            d.path()
                .join("site-packages/pydicom/data/test_files")
                .join(name)
        })
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found under {}", dir.display()));
    std::fs::read(found).expect("read DICOM file")
}

/// S3 event records of the ObjectCreated kind in queue messages, as (decoded key, size).
pub fn object_created(messages: &[Value]) -> Vec<(String, u64)> {
    messages
        .iter()
        .flat_map(|m| m["Records"].as_array().cloned().unwrap_or_default())
        .filter(|r| {
            r["eventName"]
                .as_str()
                .is_some_and(|e| e.starts_with("ObjectCreated"))
        })
        .map(|r| {
            let raw = r["s3"]["object"]["key"]
                .as_str()
                .unwrap_or("")
                .replace('+', " ");
            let key = percent_decode(&raw);
            (key, r["s3"]["object"]["size"].as_u64().unwrap_or(0))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A synthetic DICOM file (explicit VR little endian, MR) whose pixel data is `pixel_bytes` long,
/// filled with a pattern that depends on `seed`; its SOP Instance UID ends with `instance`.
pub fn synthetic_dicom(instance: u32, pixel_bytes: usize, seed: u8) -> Vec<u8> {
    let mut out = synthetic_dicom_header(instance, pixel_bytes as u64);
    out.extend((0..pixel_bytes).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    out
}

/// Everything of [`synthetic_dicom`] up to and including the Pixel Data element header.
pub fn synthetic_dicom_header(instance: u32, pixel_bytes: u64) -> Vec<u8> {
    shared::dicom::synthetic::header(instance, pixel_bytes)
}

pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A mixed batch and what each file must end as: `clean` distinct synthetic instances (numbered
/// from `first_instance`, PROCESSED), `infected` copies of a real CT with EICAR in its pixels and
/// `not_dicom` distinct noise files (both QUARANTINED).
pub fn mixed_files(
    clean: u32,
    first_instance: u32,
    infected: usize,
    not_dicom: u8,
) -> Vec<(Vec<u8>, &'static str)> {
    let with_eicar = with_eicar(&dicom_file("CT_small.dcm"));
    let noise: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut files: Vec<(Vec<u8>, &str)> = (0..clean)
        .map(|i| {
            (
                synthetic_dicom(first_instance + i, 4096, i as u8),
                "PROCESSED",
            )
        })
        .collect();
    files.extend((0..infected).map(|_| (with_eicar.clone(), "QUARANTINED")));
    files.extend((0..not_dicom).map(|i| {
        let mut n = noise.clone();
        n[0] = i;
        (n, "QUARANTINED")
    }));
    files
}

/// `dicom` with the EICAR test string written over bytes 1,000 before its end (inside the pixels).
pub fn with_eicar(dicom: &[u8]) -> Vec<u8> {
    let mut infected = dicom.to_vec();
    let at = dicom.len() - 1000;
    infected[at..at + EICAR.len()].copy_from_slice(EICAR);
    infected
}

impl TestApp {
    /// Polls the record until processing ended (PROCESSED, QUARANTINED or FAILED).
    pub async fn wait_processed(&self, upload_id: &str) -> Value {
        // Generous: a loaded CI machine runs every test at once, the corpus test 244 uploads.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
        loop {
            let r = self
                .get(&format!("/v1/uploads/{upload_id}"), &self.staff())
                .await;
            let status = r.body["status"].as_str().unwrap_or("").to_owned();
            if ["PROCESSED", "QUARANTINED", "FAILED"].contains(&status.as_str()) {
                return r.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still {status}: {}",
                r.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Declares `declared` (a declaration body), PUTs `bytes` to its presigned URL(s); returns the
    /// created upload.
    pub async fn upload(&self, declared: &Value, bytes: &[u8]) -> Value {
        let created = self.post("/v1/uploads", &self.staff(), declared).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let plan = &created.body["upload"];
        if plan["mode"] == "single" {
            assert_eq!(
                self.send_presigned(plan, bytes.to_vec()).await.status(),
                200
            );
        } else {
            let part_size = plan["partSize"].as_u64().unwrap() as usize;
            let mut parts = Vec::new();
            for p in plan["parts"].as_array().unwrap() {
                let n = p["partNumber"].as_u64().unwrap() as usize;
                let start = (n - 1) * part_size;
                let end = (start + part_size).min(bytes.len());
                let r = self.send_presigned(p, bytes[start..end].to_vec()).await;
                assert_eq!(r.status(), 200);
                parts.push(serde_json::json!({"partNumber": n, "etag": r.headers()["etag"].to_str().unwrap()}));
            }
            let id = created.body["uploadId"].as_str().unwrap();
            let done = self
                .post(
                    &format!("/v1/uploads/{id}/complete"),
                    &self.staff(),
                    &serde_json::json!({ "parts": parts }),
                )
                .await;
            assert_eq!(done.status, 200, "{}", done.body);
        }
        created.body
    }

    pub async fn object_tags(&self, key: &str) -> BTreeMap<String, String> {
        self.stack
            .clients
            .s3
            .get_object_tagging()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map(|t| {
                t.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect()
            })
            .unwrap_or_else(|e| {
                panic!(
                    "tags of {key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            })
    }

    pub async fn object_exists(&self, key: &str) -> bool {
        self.stack
            .clients
            .s3
            .head_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .is_ok()
    }
}

impl TestApp {
    /// process-dicom as the template configures it, with `env` overriding its environment and
    /// `wrap` replacing any of its ports (to inject a fault); messages are delivered by hand.
    pub fn processor_with(
        &self,
        env: &[(&str, &str)],
        wrap: impl FnOnce(process_dicom::Ports) -> process_dicom::Ports,
    ) -> std::sync::Arc<process_dicom::Processor> {
        let info = self
            .stack
            .functions
            .values()
            .find(|f| f.binary == "process-dicom")
            .expect("process-dicom in the template");
        let mut environment = info.environment.clone();
        for (k, v) in env {
            environment.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = process_dicom::Config::from_source(&environment).expect("config");
        let ports = process_dicom::Ports::aws(&config, &self.stack.clients);
        std::sync::Arc::new(process_dicom::Processor::with_ports(config, wrap(ports)))
    }

    /// Every version and delete marker under `prefix` in the upload bucket: (key, version id,
    /// is a delete marker).
    pub async fn versions_under(&self, prefix: &str) -> Vec<(String, String, bool)> {
        let out = self
            .stack
            .clients
            .s3
            .list_object_versions()
            .bucket(self.bucket())
            .prefix(prefix)
            .send()
            .await
            .expect("list versions");
        let mut all: Vec<(String, String, bool)> = out
            .versions()
            .iter()
            .map(|v| {
                (
                    v.key().unwrap_or_default().to_owned(),
                    v.version_id().unwrap_or_default().to_owned(),
                    false,
                )
            })
            .collect();
        all.extend(out.delete_markers().iter().map(|m| {
            (
                m.key().unwrap_or_default().to_owned(),
                m.version_id().unwrap_or_default().to_owned(),
                true,
            )
        }));
        all
    }

    /// The subject's imaging summary, once it equals `expected` (polled, bounded), or the last
    /// one read.
    pub async fn summary_once(&self, subject: &str, expected: &Value) -> Value {
        let store = shared::store::summary::DynamoImagingSummary::new(
            self.stack.clients.dynamodb.clone(),
            self.table("ImagingSummaryTable"),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let summary = store
                .get(subject)
                .await
                .expect("summary")
                .unwrap_or(Value::Null);
            if &summary == expected || std::time::Instant::now() > deadline {
                return summary;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Polls the record through the API until its status is one of
    /// `statuses`, for at most `seconds`.
    /// Polls `GET /v1/exports/{id}` as `token` until the export is `DONE` or `FAILED` (its
    /// answer, with the download link when done: that last read is audited).
    pub async fn wait_for_export(
        &self,
        export_id: &str,
        token: &str,
        within: std::time::Duration,
    ) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let r = self.get(&format!("/v1/exports/{export_id}"), token).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let status = r.body["status"].as_str().unwrap_or("").to_owned();
            if ["DONE", "FAILED"].contains(&status.as_str()) {
                return r.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "export still {status} after {within:?}: {}",
                r.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_status(&self, upload_id: &str, statuses: &[&str], seconds: u64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let r = self
                .get(&format!("/v1/uploads/{upload_id}"), &self.staff())
                .await;
            let status = r.body["status"].as_str().unwrap_or("").to_owned();
            if statuses.contains(&status.as_str()) {
                return r.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still {status} after {seconds} s: {}",
                r.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// An S3 `ObjectCreated:Put` notification body for `key` (URL-encoded as S3 sends it).
pub fn object_created_body(bucket: &str, key: &str, size: usize, version: Option<&str>) -> Value {
    let mut object = serde_json::json!({"key": key.replace('/', "%2F"), "size": size});
    if let Some(v) = version {
        object["versionId"] = Value::String(v.to_owned());
    }
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": object},
    }]})
}

/// The clinical data routes, through the API (the report's tests build their subjects with these).
impl TestApp {
    /// A patient's token: role `patient`, its `subject` claim naming `subject`.
    pub fn patient_token(&self, subject: &str) -> String {
        self.stack
            .patient_token(&format!("patient-{subject}"), subject)
    }

    /// Any request with extra headers (If-Match, Idempotency-Key ...), checked against openapi.yaml.
    pub async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        checked_reply(method.as_str(), path, req.send().await.expect("request")).await
    }

    /// `POST /v1/subjects` as `token`.
    pub async fn enrol(&self, token: &str, body: &Value) -> Reply {
        self.post("/v1/subjects", token, body).await
    }

    /// Enrols a subject at `site` of the demo trial as its site staff; the new subject id.
    pub async fn enrol_subject(&self, site: &str, subject_key: &str) -> String {
        let r = self
            .enrol(
                &self.token("site_staff", &[site]),
                &enrolment(TRIAL, site, subject_key),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["subjectId"].as_str().expect("subjectId").to_owned()
    }

    /// `PUT /v1/subjects/{subject}/forms/{oid}`: `If-Match: "<version>"` when `version` is given,
    /// else `If-None-Match: *` (create).
    pub async fn put_form(
        &self,
        token: &str,
        subject: &str,
        oid: &str,
        version: Option<u64>,
        body: &Value,
    ) -> Reply {
        let tag = version.map(|v| format!("\"{v}\""));
        let header = match &tag {
            Some(t) => ("if-match", t.as_str()),
            None => ("if-none-match", "*"),
        };
        self.send_with(
            reqwest::Method::PUT,
            &format!("/v1/subjects/{subject}/forms/{oid}"),
            Some(token),
            &[header],
            Some(body),
        )
        .await
    }

    /// `POST /v1/subjects/{subject}/epro` with this `Idempotency-Key`.
    pub async fn post_epro(&self, token: &str, subject: &str, key: &str, body: &Value) -> Reply {
        self.send_with(
            reqwest::Method::POST,
            &format!("/v1/subjects/{subject}/epro"),
            Some(token),
            &[("idempotency-key", key)],
            Some(body),
        )
        .await
    }

    /// The stored audit entries of a subject's clinical data (entity `subject#<id>`), oldest first.
    pub async fn subject_audit(
        &self,
        subject: &str,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .stack
                .clients
                .dynamodb
                .query()
                .table_name(self.table("AuditTable"))
                .key_condition_expression("entity = :e")
                .expression_attribute_values(
                    ":e",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("subject#{subject}")),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("query audit");
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return out;
            }
        }
    }

    /// Who wrote the subject's stored audit entries of `action`, oldest first.
    pub async fn subject_actors(&self, subject: &str, action: &str) -> Vec<String> {
        self.subject_audit(subject)
            .await
            .iter()
            .filter(|i| {
                i.get("action")
                    .and_then(|a| a.as_s().ok())
                    .map(String::as_str)
                    == Some(action)
            })
            .filter_map(|i| i.get("actor").and_then(|a| a.as_s().ok()).cloned())
            .collect()
    }

    /// The actions of a subject's stored audit entries, oldest first, reads left out.
    pub async fn subject_changes(&self, subject: &str) -> Vec<String> {
        self.subject_audit(subject)
            .await
            .iter()
            .filter_map(|i| i.get("action").and_then(|a| a.as_s().ok()).cloned())
            .filter(|a| !a.starts_with("read."))
            .collect()
    }
}

/// An enrolment body for the demo trial's `site`.
pub fn enrolment(trial: &str, site: &str, subject_key: &str) -> Value {
    serde_json::json!({
        "trialId": trial, "siteId": site, "subjectKey": subject_key,
        "sex": "F", "birthYear": 1961, "enrolledOn": "2026-01-15",
    })
}

/// A vital-signs form of one measurement.
pub fn vital_signs(systolic: i64, diastolic: i64) -> Value {
    serde_json::json!({"itemGroups": [{"itemGroupOid": "IG.VS", "repeatKey": 1, "items": {
        "VSDAT": "2026-11-01", "SYSBP": systolic, "DIABP": diastolic, "PULSE": 72}}]})
}

/// A diary entry recorded `hours_ago` hours ago.
pub fn diary_entry(hours_ago: i64, pain: i64) -> Value {
    let at = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    serde_json::json!({
        "recordedAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "painScore": pain, "symptoms": ["FATIGUE"], "diaryCompleted": true,
    })
}

/// template.yaml without the IAM statement `sid` (a copy in a temporary folder).
pub fn template_without_statement(sid: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.trim() == format!("- Sid: {sid}"))
        .unwrap_or_else(|| panic!("statement {sid} in template.yaml"));
    let indent = |l: &str| l.len() - l.trim_start().len();
    let depth = indent(lines[first]);
    let last = lines[first + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent(l) <= depth)
        .map_or(lines.len(), |i| first + 1 + i);
    let kept: Vec<&str> = lines[..first]
        .iter()
        .chain(&lines[last..])
        .copied()
        .collect();
    let dir = std::env::temp_dir().join(format!("clinflow-iam-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("template.yaml");
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    path
}
