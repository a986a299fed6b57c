//! A function run as its real binary, as Lambda runs it: a child process with the function's
//! environment (and nothing of the developer's), whose `lambda_runtime` long-polls the Lambda
//! runtime API served here on loopback — `GET /invocation/next`, then `POST /invocation/{id}/response`
//! or `/error`. One invocation at a time, as in one execution environment. The child's peak resident
//! memory is what Lambda would bill against the function's MemorySize.

use crate::pollers::SqsFunction;
use crate::Error;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const API: &str = "/2018-06-01/runtime";
/// Lines of a child's stdout kept for [`ProcessFunction::output`].
const KEPT_LINES: usize = 10_000;

struct Invocation {
    id: String,
    deadline_ms: u64,
    arn: String,
    event: Value,
    reply: oneshot::Sender<Result<Value, String>>,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<HashMap<String, oneshot::Sender<Result<Value, String>>>>,
    init_error: Mutex<Option<String>>,
}

struct ApiState {
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    shared: Arc<Shared>,
}

/// A function's binary in a child process, behind its own runtime API.
pub struct ProcessFunction {
    name: String,
    pid: u32,
    invocations: mpsc::Sender<Invocation>,
    shared: Arc<Shared>,
    output: Arc<Mutex<std::collections::VecDeque<String>>>,
    _child: tokio::process::Child,
    server: JoinHandle<()>,
}

impl Drop for ProcessFunction {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the child needs besides its own environment to reach the emulator.
pub struct Launch<'a> {
    pub name: &'a str,
    pub executable: &'a Path,
    pub environment: &'a BTreeMap<String, String>,
    pub aws_endpoint: &'a str,
    pub region: &'a str,
    pub memory_mb: u64,
    /// The function's own keys (its role's user); `None`: the environment's, or moto's dummy ones.
    pub credentials: Option<&'a crate::emulator::AccessKeys>,
}

impl Launch<'_> {
    /// The child as Lambda starts it: the function's environment and nothing of the developer's,
    /// the runtime API at `runtime_api`, the emulator's endpoint and the function's own keys.
    pub fn command(&self, runtime_api: std::net::SocketAddr) -> tokio::process::Command {
        let env_or = |name: &str| std::env::var(name).unwrap_or_else(|_| "testing".into());
        let (access_key_id, secret_access_key) = match self.credentials {
            Some(keys) => (keys.access_key_id.clone(), keys.secret_access_key.clone()),
            None => (env_or("AWS_ACCESS_KEY_ID"), env_or("AWS_SECRET_ACCESS_KEY")),
        };
        let mut command = tokio::process::Command::new(self.executable);
        command
            .env_clear()
            .envs(self.environment)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", self.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_REGION", self.region)
            .env("AWS_DEFAULT_REGION", self.region)
            .env("AWS_ENDPOINT_URL", self.aws_endpoint)
            .env("AWS_ACCESS_KEY_ID", access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret_access_key)
            .stdin(Stdio::null());
        command
    }
}

impl ProcessFunction {
    pub async fn start(launch: Launch<'_>) -> Result<Self, Error> {
        let (invocations, receiver) = mpsc::channel(16);
        let shared = Arc::new(Shared::default());
        let state = Arc::new(ApiState {
            next: tokio::sync::Mutex::new(receiver),
            shared: Arc::clone(&shared),
        });
        let app = axum::Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(respond))
            .route(&format!("{API}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{API}/init/error"), post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut command = launch.command(address);
        command.stdout(Stdio::piped()).kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", launch.executable.display()))?;
        let pid = child.id().ok_or("the function's process exited at once")?;
        // Its stdout is its log stream (JSON logs, EMF metrics): kept (the last lines) and echoed.
        let output = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        if let Some(stdout) = child.stdout.take() {
            let output = Arc::clone(&output);
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    println!("{line}");
                    let mut kept = output.lock().expect("lock");
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line);
                }
            });
        }
        Ok(Self {
            name: launch.name.to_owned(),
            pid,
            invocations,
            shared,
            output,
            _child: child,
            server,
        })
    }

    /// The last lines the child wrote to stdout (its log stream).
    pub fn output(&self) -> Vec<String> {
        self.output.lock().expect("lock").iter().cloned().collect()
    }

    /// The child's peak resident set so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// One invocation: the event goes to the child's next poll; its response (or error) comes back.
    pub async fn invoke_json(
        &self,
        event: Value,
        id: String,
        deadline_ms: u64,
        arn: String,
    ) -> Result<Value, String> {
        if let Some(e) = self.shared.init_error.lock().expect("lock").clone() {
            return Err(format!("{}: init failed: {e}", self.name));
        }
        let (reply, answer) = oneshot::channel();
        self.invocations
            .send(Invocation {
                id,
                deadline_ms,
                arn,
                event,
                reply,
            })
            .await
            .map_err(|_| format!("{}: the runtime API stopped", self.name))?;
        let now = crate::pollers::now_millis();
        // Lambda stops an invocation at its deadline; a little grace for the reply to arrive.
        let budget = Duration::from_millis(deadline_ms.saturating_sub(now) + 2_000);
        match tokio::time::timeout(budget, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(format!("{}: the invocation was dropped", self.name)),
            Err(_) => Err(format!("{}: timed out", self.name)),
        }
    }
}

#[async_trait]
impl SqsFunction for ProcessFunction {
    async fn invoke(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, lambda_runtime::Error> {
        let LambdaEvent { payload, context } = event;
        let response = self
            .invoke_json(
                serde_json::to_value(payload)?,
                context.request_id,
                context.deadline,
                context.invoked_function_arn,
            )
            .await?;
        Ok(serde_json::from_value(response)?)
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let Some(invocation) = state.next.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    state
        .shared
        .waiting
        .lock()
        .expect("lock")
        .insert(invocation.id.clone(), invocation.reply);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", &invocation.id);
    set(
        "lambda-runtime-deadline-ms",
        &invocation.deadline_ms.to_string(),
    );
    set("lambda-runtime-invoked-function-arn", &invocation.arn);
    let trace = uuid::Uuid::new_v4().simple().to_string();
    set(
        "lambda-runtime-trace-id",
        &format!(
            "Root=1-{:08x}-{}",
            invocation.deadline_ms / 1000,
            &trace[..24]
        ),
    );
    set("content-type", "application/json");
    (StatusCode::OK, headers, invocation.event.to_string()).into_response()
}

fn complete(state: &ApiState, id: &str, result: Result<Value, String>) -> StatusCode {
    match state.shared.waiting.lock().expect("lock").remove(id) {
        Some(reply) => {
            let _ = reply.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn respond(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return complete(&state, &id, Err(format!("response is not JSON: {e}"))),
        }
    };
    complete(&state, &id, Ok(value))
}

async fn fail(
    State(state): State<Arc<ApiState>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    complete(
        &state,
        &id,
        Err(String::from_utf8_lossy(&body).into_owned()),
    )
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> StatusCode {
    *state.shared.init_error.lock().expect("lock") =
        Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}
