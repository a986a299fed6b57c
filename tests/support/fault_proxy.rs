//! A fault-injecting HTTP proxy on loopback, between the functions and the emulator (issue 13):
//! every SDK call a function makes goes through it, and a seeded share of them fail as AWS fails —
//! throttled (503 `SlowDown` for S3's XML, 400 `ThrottlingException` for the JSON protocols of
//! DynamoDB, SQS and Secrets Manager), a server error (500 `InternalError`), or the connection
//! closed without an answer (what a reset looks like to a client) — each before the call reaches
//! the emulator — and the **lost answer**: the call is executed by the emulator, then the
//! connection is closed before its answer (a committed write the client cannot tell from a failed
//! one, so the SDK's retry sends it again: a conditional create meets its own item, a queue gets
//! the message twice). The SDK's standard retry (backoff with jitter, three attempts) and the
//! functions' own redelivery must carry the work through, and a retried committed write must be
//! recognised, never counted twice nor answered as a failure.
//!
//! Requests signed in their query string (the presigned URLs a browser uses: no `Authorization`
//! header) are forwarded untouched: they are the client's calls, not the functions'.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// How often each fault strikes, per thousand of the functions' calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultPlan {
    pub seed: u64,
    pub throttle_per_mille: u64,
    pub server_error_per_mille: u64,
    pub reset_per_mille: u64,
    /// Executed by the emulator, then the answer dropped (the connection closed).
    pub lost_answer_per_mille: u64,
    /// Calls of these operations (`x-amz-target`, e.g. `DynamoDB_20120810.PutItem`) lose the
    /// answer of their first attempt, always: the emulator executes it, the SDK's retry (the same
    /// request again) gets its answer. Deterministic, for the tests that every committed write
    /// retried is recognised.
    pub lose_first_answer_of: &'static [&'static str],
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct FaultStats {
    pub forwarded: AtomicU64,
    pub throttled: AtomicU64,
    pub server_errors: AtomicU64,
    pub resets: AtomicU64,
    pub lost_answers: AtomicU64,
    /// Query-signed (presigned) requests, forwarded without faults.
    pub presigned: AtomicU64,
}

impl FaultStats {
    pub fn injected(&self) -> u64 {
        self.throttled.load(Ordering::SeqCst)
            + self.server_errors.load(Ordering::SeqCst)
            + self.resets.load(Ordering::SeqCst)
            + self.lost_answers.load(Ordering::SeqCst)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} calls forwarded; injected {} throttles, {} server errors, {} resets, {} lost answers (executed); {} presigned requests passed",
            self.forwarded.load(Ordering::SeqCst),
            self.throttled.load(Ordering::SeqCst),
            self.server_errors.load(Ordering::SeqCst),
            self.resets.load(Ordering::SeqCst),
            self.lost_answers.load(Ordering::SeqCst),
            self.presigned.load(Ordering::SeqCst),
        )
    }
}

pub struct FaultProxy {
    pub endpoint: String,
    pub stats: Arc<FaultStats>,
    /// Faults strike only while this is set (a test turns them off to read the end state).
    pub enabled: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Fault {
    Throttle,
    ServerError,
    Reset,
    LostAnswer,
}

/// splitmix64 over the call's sequence number: the same seed strikes the same share of calls, and
/// the same calls when they arrive in the same order (concurrent traffic does not replay exactly).
fn draw(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 1000
}

impl FaultPlan {
    fn fault(&self, n: u64) -> Option<Fault> {
        let roll = draw(self.seed, n);
        let mut edge = self.throttle_per_mille;
        if roll < edge {
            return Some(Fault::Throttle);
        }
        edge += self.server_error_per_mille;
        if roll < edge {
            return Some(Fault::ServerError);
        }
        edge += self.reset_per_mille;
        if roll < edge {
            return Some(Fault::Reset);
        }
        edge += self.lost_answer_per_mille;
        if roll < edge {
            return Some(Fault::LostAnswer);
        }
        None
    }
}

/// The answer AWS gives for `fault` in the protocol of the call (`x-amz-target` names the JSON
/// protocols; everything else here is S3's REST-XML).
fn answer(fault: &Fault, json_target: Option<&str>) -> Response<Full<Bytes>> {
    let (status, code, message) = match (fault, json_target.is_some()) {
        (Fault::Throttle, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        (Fault::Throttle, true) => (
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    };
    let builder = Response::builder().status(status);
    let response = match json_target {
        Some(target) => {
            // DynamoDB names its errors in its own namespace; the SDKs read the part after '#'.
            let namespace = if target.starts_with("DynamoDB_") {
                "com.amazonaws.dynamodb.v20120810"
            } else {
                "com.amazonaws.coral.service"
            };
            builder
                .header("content-type", "application/x-amz-json-1.0")
                .header("x-amzn-errortype", code)
                .body(Full::new(Bytes::from(format!(
                    r#"{{"__type":"{namespace}#{code}","message":"{message}"}}"#
                ))))
        }
        None => builder
            .header("content-type", "application/xml")
            .body(Full::new(Bytes::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
            )))),
    };
    response.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Headers that belong to one hop, or that the forwarding client sets itself.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "content-length"
            | "expect"
    )
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (the emulator's endpoint).
    pub async fn start(upstream: &str, plan: FaultPlan) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fault proxy listener");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let stats = Arc::new(FaultStats::default());
        let enabled = Arc::new(AtomicBool::new(true));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("forwarding client");
        let forwarder = Arc::new(Forwarder {
            client,
            upstream: upstream.trim_end_matches('/').to_owned(),
            plan,
            stats: Arc::clone(&stats),
            enabled: Arc::clone(&enabled),
            sequence: AtomicU64::new(0),
            seen: Default::default(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let forwarder = Arc::clone(&forwarder);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let forwarder = Arc::clone(&forwarder);
                        async move { forwarder.handle(request).await }
                    });
                    // An Err from the service closes the connection without an answer.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            endpoint,
            stats,
            enabled,
            task,
        }
    }
}

/// Why the proxy closed a connection without an answer (an injected reset, or the upstream failed).
#[derive(Debug)]
struct Closed(String);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Closed {}

fn closed(e: impl std::fmt::Display) -> Closed {
    Closed(e.to_string())
}

/// What every connection of the proxy shares.
struct Forwarder {
    client: reqwest::Client,
    upstream: String,
    plan: FaultPlan,
    stats: Arc<FaultStats>,
    enabled: Arc<AtomicBool>,
    /// The functions' calls so far: the number the plan draws on.
    sequence: AtomicU64,
    /// The requests of `lose_first_answer_of` seen (a hash of operation and body).
    seen: std::sync::Mutex<std::collections::HashSet<u64>>,
}

impl Forwarder {
    async fn handle(&self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Closed> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.map_err(closed)?.to_bytes();
        let signed_call = parts.headers.contains_key("authorization");
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        let mut lose_the_answer = false;
        if signed_call
            && self.enabled.load(Ordering::SeqCst)
            && target.is_some_and(|t| self.plan.lose_first_answer_of.contains(&t))
        {
            // The same request again is the SDK's retry of this call: only the first is lost.
            let mut digest = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&target, &mut digest);
            std::hash::Hash::hash(&body[..], &mut digest);
            let first = self
                .seen
                .lock()
                .expect("seen")
                .insert(std::hash::Hasher::finish(&digest));
            lose_the_answer = first;
        }
        if !signed_call {
            self.stats.presigned.fetch_add(1, Ordering::SeqCst);
        } else if self.enabled.load(Ordering::SeqCst) {
            let n = self.sequence.fetch_add(1, Ordering::SeqCst);
            if let Some(fault) = self.plan.fault(n).filter(|_| !lose_the_answer) {
                match fault {
                    Fault::Throttle => {
                        self.stats.throttled.fetch_add(1, Ordering::SeqCst);
                        return Ok(answer(&fault, target));
                    }
                    Fault::ServerError => {
                        self.stats.server_errors.fetch_add(1, Ordering::SeqCst);
                        return Ok(answer(&fault, target));
                    }
                    Fault::Reset => {
                        self.stats.resets.fetch_add(1, Ordering::SeqCst);
                        return Err(Closed("connection reset by the fault proxy".into()));
                    }
                    // A received batch whose answer is lost stays invisible for the queue's
                    // visibility timeout (90 minutes for ingest) before SQS hands it out again:
                    // SQS's own remedy, on the event source mapping's side (AWS's poller, not the
                    // functions' code), and longer than a test. Such a receive fails before it
                    // reaches the queue instead.
                    Fault::LostAnswer if target == Some("AmazonSQS.ReceiveMessage") => {
                        self.stats.resets.fetch_add(1, Ordering::SeqCst);
                        return Err(Closed("connection reset by the fault proxy".into()));
                    }
                    Fault::LostAnswer => lose_the_answer = true,
                }
            }
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut forward = self
            .client
            .request(parts.method.clone(), format!("{}{path}", self.upstream));
        for (name, value) in &parts.headers {
            // The Host header is kept: it is signed, and S3 addressing reads it.
            if !hop_by_hop(name.as_str()) {
                forward = forward.header(name, value);
            }
        }
        let upstream_response = forward.body(body).send().await.map_err(closed)?;
        self.stats.forwarded.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::builder().status(upstream_response.status());
        for (name, value) in upstream_response.headers() {
            // Content-Length is kept on answers: a HEAD's names the object's size (its body is empty,
            // and hyper would not restore it), and any other's equals the body forwarded.
            if name == "content-length" || !hop_by_hop(name.as_str()) {
                response = response.header(name, value);
            }
        }
        let bytes = upstream_response.bytes().await.map_err(closed)?;
        if lose_the_answer {
            // The emulator has done the work; the caller never hears of it.
            self.stats.lost_answers.fetch_add(1, Ordering::SeqCst);
            return Err(Closed("answer lost by the fault proxy".into()));
        }
        response.body(Full::new(bytes)).map_err(closed)
    }
}

impl crate::TestApp {
    /// A front-end's call as site staff: retried on 5xx (and a dropped connection) with a growing
    /// pause, as a client of a service that may throttle must, `tries` times at most. Returns the
    /// first answer below 500.
    pub async fn call_retrying(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        tries: usize,
    ) -> crate::Reply {
        let mut pause = std::time::Duration::from_millis(100);
        for _ in 0..tries {
            let mut request = self
                .http
                .request(method.parse().expect("method"), self.url(path))
                .bearer_auth(self.staff());
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Ok(response) = request.send().await {
                let reply = crate::checked_reply(method, path, response).await;
                if reply.status < 500 {
                    return reply;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        }
        panic!("{method} {path}: no answer below 500 after {tries} tries");
    }

    /// Declares and sends `bytes` (a small file: one PUT) for SUBJ-0001 as a front-end would,
    /// retrying what a front-end retries; the upload id.
    pub async fn upload_retrying(&self, bytes: &[u8]) -> String {
        let created = self
            .call_retrying(
                "POST",
                "/v1/uploads",
                Some(&crate::declaration("SUBJ-0001", bytes)),
                8,
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let plan = &created.body["upload"];
        assert_eq!(plan["mode"], "single", "small files: one PUT");
        let put = self.send_presigned(plan, bytes.to_vec()).await;
        assert_eq!(put.status(), 200);
        created.body["uploadId"]
            .as_str()
            .expect("uploadId")
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_strikes_about_its_share_and_the_same_calls_for_a_seed() {
        let plan = FaultPlan {
            seed: 7,
            throttle_per_mille: 50,
            server_error_per_mille: 30,
            reset_per_mille: 20,
            lost_answer_per_mille: 10,
            ..FaultPlan::default()
        };
        let struck = (0..100_000).filter(|n| plan.fault(*n).is_some()).count();
        assert!((10_000..12_000).contains(&struck), "{struck}");
        let first: Vec<bool> = (0..1000).map(|n| plan.fault(n).is_some()).collect();
        let again: Vec<bool> = (0..1000).map(|n| plan.fault(n).is_some()).collect();
        assert_eq!(first, again);
    }
}
