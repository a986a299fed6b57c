//! Our presigned upload URLs against an S3 that enforces SigV4 (issue 13, item 6). The emulator the
//! other tests use (moto) checks no signature, expiry, length or checksum; s3s-fs does. Each test
//! starts its own s3s-fs (scripts/setup.sh installs it) on a free loopback port, with a fresh root
//! directory and its own access keys, and presigns with the exact code upload-url runs
//! ([`S3Uploads::presign_put`], [`S3Uploads::presign_part`], built by [`AwsClients::from_config`] as
//! in production, with the template's URL lifetime and encryption). The requests are then sent over
//! plain HTTP/1.1 as a client sends them: the method, URL and headers the API hands out, and a body.
//!
//! Every refused attempt is followed, on the same URL, by the honest request, which must pass: a
//! refusal cannot come from a URL that never worked. s3s-fs writes a body before it checks its
//! checksum (a rejected body may be left on its disk, unlike real S3), so the refusals are asserted
//! on the status and S3 error code, and the stored bytes are read back after the honest request.

use clinflow_tests::dicom_file;
use sha2::{Digest, Sha256};
use shared::aws::AwsClients;
use shared::domain::{ObjectKey, Sha256Digest};
use shared::store::s3::S3Uploads;
use shared::store::{PresignedHttp, StoredPart, UploadObjects};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "AKIACLINFLOWSIGV4";
const SECRET_KEY: &str = "clinflow-sigv4-secret-key-for-tests";
const BUCKET: &str = "clinflow-uploads";
/// What upload-url declares for every upload (functions/upload-url/src/create.rs).
const DICOM: &str = "application/dicom";
const MIB: usize = 1024 * 1024;

/// upload-url's configuration with the template's defaults for what presigning reads: the URLs'
/// lifetime (`UploadUrlTtlSeconds`) and the bucket's encryption (`BucketEncryption`).
fn upload_url_config() -> upload_url::Config {
    let template: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .expect("template.yaml"),
    )
    .expect("template.yaml parses");
    let default = |name: &str| -> String {
        match &template["Parameters"][name]["Default"] {
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::String(s) => s.clone(),
            other => panic!("{name}: no default ({other:?})"),
        }
    };
    let env: HashMap<String, String> = [
        ("SUBJECTS_TABLE", "subjects".to_owned()),
        ("UPLOADS_TABLE", "uploads".to_owned()),
        ("AUDIT_TABLE", "audit".to_owned()),
        ("UPLOAD_BUCKET", BUCKET.to_owned()),
        ("UPLOAD_PREFIX", "incoming/".to_owned()),
        ("UPLOAD_URL_TTL_SECONDS", default("UploadUrlTtlSeconds")),
        ("BUCKET_ENCRYPTION", default("BucketEncryption")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    upload_url::Config::from_source(&env).expect("upload-url config")
}

/// An s3s-fs server on a free loopback port over a fresh directory; killed and removed on drop.
struct S3sFs {
    _child: tokio::process::Child,
    endpoint: String,
    root: PathBuf,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLINFLOW_S3S_FS") {
        return path.into();
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    cargo_home.join("bin").join("s3s-fs")
}

async fn start_s3s_fs() -> S3sFs {
    let binary = s3s_fs_binary();
    assert!(
        binary.exists(),
        "s3s-fs not found at {}: scripts/setup.sh installs it (or set CLINFLOW_S3S_FS)",
        binary.display()
    );
    let root =
        std::env::temp_dir().join(format!("clinflow-s3s-fs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&root).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(&binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let server = S3sFs {
        _child: child,
        endpoint: format!("http://127.0.0.1:{port}"),
        root,
    };
    let admin = server.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin.create_bucket().bucket(BUCKET).send().await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "s3s-fs did not start on {}: {}",
                    server.endpoint,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    server
}

impl S3sFs {
    /// An S3 client built as the functions build theirs ([`AwsClients::from_config`], path-style
    /// as against any emulator).
    async fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY,
                SECRET_KEY,
                None,
                None,
                "sigv4-test",
            ))
            .load()
            .await;
        AwsClients::from_config(&config, true).s3
    }

    async fn uploads(&self) -> S3Uploads {
        let config = upload_url_config();
        S3Uploads::new(self.client().await, BUCKET, config.encryption)
    }

    async fn object(&self, key: &ObjectKey) -> Vec<u8> {
        let out = self
            .client()
            .await
            .get_object()
            .bucket(BUCKET)
            .key(key.as_str())
            .send()
            .await
            .expect("GetObject");
        out.body.collect().await.expect("body").to_vec()
    }
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::from_stored(format!(
        "incoming/TRIAL-SIGV4/SITE-BOS-01/SUBJ-0001/{name}.dcm"
    ))
}

/// What upload-url signs as `x-amz-checksum-sha256`: the declared digest, base64.
fn declared_sha256(bytes: &[u8]) -> String {
    Sha256Digest::parse(&hex::encode(Sha256::digest(bytes)))
        .expect("digest")
        .to_base64()
}

/// A presigned request as a client sends it, with an attacker's changes.
#[derive(Clone)]
struct Attempt {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Attempt {
    /// Exactly what the API described: method, URL and headers (the body sets its own length).
    fn honest(request: &PresignedHttp, body: &[u8]) -> Self {
        Self {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request
                .headers
                .iter()
                .filter(|(k, _)| k.as_str() != "content-length")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: body.to_vec(),
        }
    }

    fn header(mut self, name: &str, value: Option<&str>) -> Self {
        let had = self.headers.iter().any(|(k, _)| k == name);
        self.headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.headers.push((name.to_owned(), v.to_owned()));
        } else {
            assert!(had, "the presigned request has no {name} header to drop");
        }
        self
    }

    fn url(mut self, from: &str, to: &str) -> Self {
        assert!(self.url.contains(from), "{from} is not in {}", self.url);
        self.url = self.url.replacen(from, to, 1);
        self
    }

    fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    fn method(mut self, method: &str) -> Self {
        self.method = method.to_owned();
        self
    }

    /// Sends it over a plain HTTP/1.1 connection; the status, S3's error code (empty on success)
    /// and the ETag. A body above 1 MiB goes with `Expect: 100-continue` (as curl and the SDKs send
    /// large bodies) and only once the server asked for it: S3 answers a bad signature before it
    /// reads the body and closes the connection, and a client still writing megabytes then sees a
    /// reset, not the answer. (reqwest cannot wait for `100 Continue`.)
    async fn send(&self) -> Answer {
        tokio::time::timeout(Duration::from_secs(30), self.exchange())
            .await
            .unwrap_or_else(|_| panic!("no answer from {}", self.url))
    }

    async fn exchange(&self) -> Answer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = self.url.strip_prefix("http://").expect("an http URL");
        let (host, path) = rest.split_at(rest.find('/').expect("a path"));
        let expect = self.body.len() > MIB;
        let mut head = format!("{} {path} HTTP/1.1\r\nhost: {host}\r\n", self.method);
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n",
            self.body.len()
        ));
        if expect {
            head.push_str("expect: 100-continue\r\n");
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write head");
        let mut received = Vec::new();
        if expect {
            let interim = read_head(&mut stream, &mut received).await;
            if interim.starts_with("HTTP/1.1 100") {
                received.drain(..interim.len());
                stream.write_all(&self.body).await.expect("write body");
            }
        } else {
            stream.write_all(&self.body).await.expect("write body");
        }
        stream
            .read_to_end(&mut received)
            .await
            .expect("read answer");
        let text = String::from_utf8_lossy(&received).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            unchunked(body)
        } else {
            body.to_owned()
        };
        let code = body
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code.to_owned())
            .unwrap_or_default();
        Answer {
            status,
            code,
            etag: header("etag"),
        }
    }
}

/// Reads until the end of one answer's head; returns the head (with its blank line).
async fn read_head(stream: &mut tokio::net::TcpStream, received: &mut Vec<u8>) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&received[..end + 4]).into_owned();
        }
        let n = stream.read(&mut buf).await.expect("read answer");
        assert!(n > 0, "the connection closed before an answer");
        received.extend_from_slice(&buf[..n]);
    }
}

/// A chunked body, decoded.
fn unchunked(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .expect("a chunk size");
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[derive(Debug)]
struct Answer {
    status: u16,
    code: String,
    etag: Option<String>,
}

/// Sends each attack, asserting its refusal, then the honest request on the same URL (which must
/// pass); returns how many attacks were refused and the honest answer.
async fn refused_then_honest(
    attacks: &[(&str, Attempt, u16, &str)],
    honest: &Attempt,
) -> (usize, Answer) {
    for (what, attempt, status, code) in attacks {
        let answer = attempt.send().await;
        assert_eq!(
            (answer.status, answer.code.as_str()),
            (*status, *code),
            "{what}: {answer:?}"
        );
    }
    let answer = honest.send().await;
    assert_eq!(answer.status, 200, "the honest request: {answer:?}");
    (attacks.len(), answer)
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

#[tokio::test]
async fn a_single_put_url_takes_the_declared_bytes_and_refuses_every_change() {
    let s3 = start_s3s_fs().await;
    let config = upload_url_config();
    let uploads = s3.uploads().await;
    let bytes = dicom_file("CT_small.dcm");
    let sha256 = declared_sha256(&bytes);
    let key = key("single");
    let put = uploads
        .presign_put(&key, bytes.len() as u64, DICOM, &sha256, config.url_ttl)
        .await
        .expect("presign PutObject");
    assert_eq!(put.method, "PUT");
    // What upload-url says it signs (README: the upload API).
    assert_eq!(
        put.headers.get("x-amz-checksum-sha256"),
        Some(&sha256),
        "{put:?}"
    );
    assert!(put.headers.contains_key("x-amz-server-side-encryption"));

    let honest = Attempt::honest(&put, &bytes);
    let tampered = flipped(&bytes, bytes.len() / 2);
    let mut longer = bytes.clone();
    longer.push(0);
    let other_digest = declared_sha256(&tampered);
    let attacks = [
        (
            "another key",
            honest.clone().url("/single.dcm", "/other.dcm"),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "one byte more",
            honest.clone().body(longer),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "one byte less",
            honest.clone().body(bytes[..bytes.len() - 1].to_vec()),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "same length, one bit changed",
            honest.clone().body(tampered.clone()),
            400,
            "BadDigest",
        ),
        (
            "changed bytes with their own checksum header",
            honest
                .clone()
                .body(tampered.clone())
                .header("x-amz-checksum-sha256", Some(&other_digest)),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "changed bytes without the checksum header",
            honest
                .clone()
                .body(tampered.clone())
                .header("x-amz-checksum-sha256", None),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "another content type",
            honest
                .clone()
                .header("content-type", Some("application/octet-stream")),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "without the encryption header",
            honest.clone().header("x-amz-server-side-encryption", None),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            "the PUT URL used to read",
            honest.clone().method("GET").body(Vec::new()),
            403,
            "SignatureDoesNotMatch",
        ),
    ];
    let (refused, answer) = refused_then_honest(&attacks, &honest).await;
    assert_eq!(refused, 9);
    assert_eq!(
        answer.etag.as_deref(),
        Some(format!("\"{}\"", hex::encode(md5_digest(&bytes))).as_str())
    );
    assert_eq!(s3.object(&key).await, bytes, "the stored bytes");
    // upload-url's own HEAD (what `complete` and the status route read) sees the declared size.
    let head = uploads
        .head(&key)
        .await
        .expect("HeadObject")
        .expect("found");
    assert_eq!(head.size, bytes.len() as u64);
    // Nothing was stored under the key the attacker tried.
    assert!(uploads.head(&self::key("other")).await.unwrap().is_none());
}

fn md5_digest(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(bytes).into()
}

/// upload-url presigns with `PresigningConfig::expires_in(ttl)` from the moment it signs (the
/// template gives 900 s; the lifetime is a parameter of the same functions). With a 5-second
/// lifetime the same URLs pass at once and are refused once it has passed. S3 counts from
/// `X-Amz-Date`, whole seconds: a request within `ttl - 1` s of signing is inside the lifetime
/// whatever the fraction, one `ttl + 1` s after is outside it.
#[tokio::test]
async fn urls_work_within_their_lifetime_and_are_refused_after_it() {
    let s3 = start_s3s_fs().await;
    assert_eq!(
        upload_url_config().url_ttl,
        Duration::from_secs(900),
        "the template's lifetime"
    );
    let ttl = Duration::from_secs(5);
    let uploads = s3.uploads().await;
    let bytes = dicom_file("CT_small.dcm");
    let key = key("expiry");
    let big = object_of(5 * MIB + 11, 5);
    let upload = multipart(&uploads, "expiry-multipart", &big).await;

    // Signed, then sent at once: accepted. A machine too busy to send them within `ttl - 1` s says
    // nothing about the lifetime; they are signed again (at most three times).
    let mut within = None;
    for _ in 0..3 {
        let signed = Instant::now();
        let put = uploads
            .presign_put(
                &key,
                bytes.len() as u64,
                DICOM,
                &declared_sha256(&bytes),
                ttl,
            )
            .await
            .expect("presign PutObject");
        let mut attempts = vec![("the single PUT", Attempt::honest(&put, &bytes))];
        for (index, part) in upload.parts.iter().enumerate() {
            let number = u32::try_from(index + 1).unwrap();
            let url = uploads
                .presign_part(
                    &upload.key,
                    &upload.upload_id,
                    number,
                    part.len() as u64,
                    ttl,
                )
                .await
                .expect("presign UploadPart");
            let what = if number == 1 { "part 1" } else { "part 2" };
            attempts.push((what, Attempt::honest(&url, part)));
        }
        let mut answers = Vec::new();
        for (_, attempt) in &attempts {
            answers.push(attempt.send().await);
        }
        if signed.elapsed() < ttl - Duration::from_secs(1) {
            for ((what, _), answer) in attempts.iter().zip(&answers) {
                assert_eq!(answer.status, 200, "{what} within its lifetime: {answer:?}");
            }
            within = Some((signed, attempts));
            break;
        }
    }
    let (signed, attempts) = within.expect("three tries, each slower than the lifetime");

    // The lifetime has passed (the wait is the point; nothing else is awaited).
    tokio::time::sleep((ttl + Duration::from_secs(1)).saturating_sub(signed.elapsed())).await;
    let mut refused = 0;
    for (what, attempt) in &attempts {
        let answer = attempt.send().await;
        assert_eq!(
            (answer.status, answer.code.as_str()),
            (403, "AccessDenied"),
            "{what} after its lifetime: {answer:?}"
        );
        refused += 1;
    }
    assert_eq!(refused, 3);
    // What the URLs stored in their lifetime is intact: the declared bytes, both parts.
    assert_eq!(s3.object(&key).await, bytes);
    let stored = s3
        .client()
        .await
        .list_parts()
        .bucket(BUCKET)
        .key(upload.key.as_str())
        .upload_id(&upload.upload_id)
        .send()
        .await
        .expect("ListParts");
    let mut sizes: Vec<_> = stored
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    sizes.sort();
    let expected: Vec<_> = upload
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| (Some(i as i32 + 1), Some(p.len() as i64)))
        .collect();
    assert_eq!(sizes, expected);
}

/// A multipart upload as upload-url plans it: parts of 5 MiB (S3's smallest), the last shorter.
struct Multipart {
    key: ObjectKey,
    upload_id: String,
    parts: Vec<Vec<u8>>,
}

async fn multipart(uploads: &S3Uploads, name: &str, bytes: &[u8]) -> Multipart {
    let key = key(name);
    let upload_id = uploads
        .create_multipart(&key, DICOM)
        .await
        .expect("CreateMultipartUpload");
    Multipart {
        key,
        upload_id,
        parts: bytes.chunks(5 * MIB).map(<[u8]>::to_vec).collect(),
    }
}

fn object_of(size: usize, seed: u8) -> Vec<u8> {
    let mut bytes = dicom_file("CT_small.dcm");
    bytes.resize(size, 0);
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
    bytes
}

#[tokio::test]
async fn part_urls_take_their_parts_and_refuse_every_change() {
    let s3 = start_s3s_fs().await;
    let ttl = upload_url_config().url_ttl;
    let uploads = s3.uploads().await;
    let bytes = object_of(5 * MIB + 123_457, 7);
    let upload = multipart(&uploads, "multipart", &bytes).await;
    assert_eq!(upload.parts.len(), 2);
    // Another open multipart upload of ours, whose id a URL could be pointed at.
    let other = multipart(&uploads, "multipart-other", &bytes).await;

    let mut refused = 0;
    let mut completed = Vec::new();
    for (index, part) in upload.parts.iter().enumerate() {
        let number = u32::try_from(index + 1).unwrap();
        let url = uploads
            .presign_part(
                &upload.key,
                &upload.upload_id,
                number,
                part.len() as u64,
                ttl,
            )
            .await
            .expect("presign UploadPart");
        assert_eq!(url.method, "PUT");
        let honest = Attempt::honest(&url, part);
        let mut longer = part.clone();
        longer.push(0);
        let other_number = if number == 1 { 2 } else { 1 };
        let attacks = [
            (
                "another key",
                honest.clone().url("/multipart.dcm", "/multipart-x.dcm"),
                403,
                "SignatureDoesNotMatch",
            ),
            (
                "another part number",
                honest.clone().url(
                    &format!("partNumber={number}"),
                    &format!("partNumber={other_number}"),
                ),
                403,
                "SignatureDoesNotMatch",
            ),
            (
                "another multipart upload",
                honest.clone().url(&upload.upload_id, &other.upload_id),
                403,
                "SignatureDoesNotMatch",
            ),
            (
                "one byte more",
                honest.clone().body(longer),
                403,
                "SignatureDoesNotMatch",
            ),
            (
                "one byte less",
                honest.clone().body(part[..part.len() - 1].to_vec()),
                403,
                "SignatureDoesNotMatch",
            ),
        ];
        let (n, answer) = refused_then_honest(&attacks, &honest).await;
        refused += n;
        let etag = answer.etag.expect("ETag");
        assert_eq!(etag, format!("\"{}\"", hex::encode(md5_digest(part))));
        completed.push(StoredPart {
            part_number: number,
            size: part.len() as u64,
            etag,
        });
    }
    assert_eq!(refused, 10);
    uploads
        .complete_multipart(&upload.key, &upload.upload_id, &completed)
        .await
        .expect("CompleteMultipartUpload");
    assert_eq!(s3.object(&upload.key).await, bytes, "the assembled object");
    assert_eq!(
        uploads.head(&upload.key).await.unwrap().map(|h| h.size),
        Some(bytes.len() as u64)
    );
    // The other upload's parts were never written to: it has none.
    let other_parts = s3
        .client()
        .await
        .list_parts()
        .bucket(BUCKET)
        .key(other.key.as_str())
        .upload_id(&other.upload_id)
        .send()
        .await
        .expect("ListParts");
    assert!(other_parts.parts().is_empty(), "{other_parts:?}");
}

/// A finding, not a defence: a part URL signs its length but not its bytes (upload-url takes one
/// whole-object SHA-256; S3 has none for multipart, and per-part checksums would need the client to
/// declare each part's digest up front). Same-length different bytes are stored and assembled; what
/// stops them is process-dicom, which hashes the assembled object against the declared digest and
/// quarantines a mismatch (`checksum_mismatch`, tests/api/pipeline.rs:
/// `every_defect_is_quarantined_with_its_reason`).
#[tokio::test]
async fn a_part_url_does_not_bind_its_bytes_the_declared_digest_does() {
    let s3 = start_s3s_fs().await;
    let ttl = upload_url_config().url_ttl;
    let uploads = s3.uploads().await;
    let bytes = object_of(5 * MIB + 99, 3);
    let declared = Sha256::digest(&bytes);
    let upload = multipart(&uploads, "swapped", &bytes).await;
    let mut sent = Vec::new();
    let mut completed = Vec::new();
    for (index, part) in upload.parts.iter().enumerate() {
        let number = u32::try_from(index + 1).unwrap();
        let url = uploads
            .presign_part(
                &upload.key,
                &upload.upload_id,
                number,
                part.len() as u64,
                ttl,
            )
            .await
            .expect("presign UploadPart");
        let body = if number == 1 {
            flipped(part, 1000)
        } else {
            part.clone()
        };
        let answer = Attempt::honest(&url, &body).send().await;
        assert_eq!(answer.status, 200, "part {number}: {answer:?}");
        sent.extend_from_slice(&body);
        completed.push(StoredPart {
            part_number: number,
            size: body.len() as u64,
            etag: answer.etag.expect("ETag"),
        });
    }
    uploads
        .complete_multipart(&upload.key, &upload.upload_id, &completed)
        .await
        .expect("CompleteMultipartUpload");
    let stored = s3.object(&upload.key).await;
    assert_eq!(stored, sent);
    assert_eq!(stored.len(), bytes.len());
    assert_ne!(Sha256::digest(&stored), declared);
}
