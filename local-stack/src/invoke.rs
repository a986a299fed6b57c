//! The Lambda Invoke API, as `sam local start-lambda` serves it, without Docker:
//! `POST /2015-03-31/functions/{FunctionName}/invocations` at `CLINFLOW_LAMBDA_ADDR`, function names
//! being the template's logical ids. So `aws lambda invoke --endpoint-url http://127.0.0.1:3001` and
//! the SDK's Lambda client run any function on any events/ file.
//!
//! Each invocation is run by the function's real handler: in-process (the payload deserialized into
//! the type its `main.rs` hands the handler: an API Gateway v2 request, an `SqsEvent`, a scheduled
//! event), or, where the stack runs the function as its binary ([`crate::runtime`]), handed as raw
//! JSON to the child's `lambda_runtime` through the local runtime API.
//!
//! Answers as Lambda does: `RequestResponse` → 200 with the function's response; `Event` → 202, run
//! in the background; `DryRun` → 204; a function error → 200 with `X-Amz-Function-Error: Unhandled`
//! and `{"errorType", "errorMessage"}`; an unknown function → 404 `ResourceNotFoundException`; a
//! payload that is not JSON → 400 `InvalidRequestContentException`.

use crate::functions::LocalFunction;
use crate::runtime::ProcessFunction;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::event::sqs::SqsEvent;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Lambda's synchronous payload limit (request and response).
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// How the local stack runs one function.
#[derive(Clone)]
pub enum Runner {
    InProcess(LocalFunction),
    /// Its binary in a child process, under the local runtime API.
    Process(Arc<ProcessFunction>),
}

/// One function as the Invoke API reaches it.
#[derive(Clone)]
pub struct Invocable {
    pub runner: Runner,
    /// `arn:aws:lambda:<region>:<account>:function:<stack>-<logical id>`.
    pub arn: String,
    pub timeout: Duration,
}

pub struct InvokeState {
    /// By logical id.
    pub functions: BTreeMap<String, Invocable>,
    /// The deployed names (`<stack>-<logical id>`) also answer, as do full ARNs.
    pub stack_name: String,
}

impl InvokeState {
    fn find(&self, name: &str) -> Option<&Invocable> {
        // A full or partial ARN names the function in its last segment (a qualifier may follow).
        let name = match name.split_once(":function:") {
            Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
            None => name,
        };
        let name = name
            .strip_prefix(&format!("{}-", self.stack_name))
            .filter(|id| self.functions.contains_key(*id))
            .unwrap_or(name);
        self.functions.get(name)
    }
}

/// What an invocation produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    /// The function failed: Lambda's `{"errorType", "errorMessage"}`.
    FunctionError(Value),
}

fn function_error(kind: &str, message: impl std::fmt::Display) -> Outcome {
    Outcome::FunctionError(json!({ "errorType": kind, "errorMessage": message.to_string() }))
}

/// The Invoke API's router (served by [`crate::LocalStack::start`]).
pub fn router(state: Arc<InvokeState>) -> axum::Router {
    axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(invoke),
        )
        .fallback(|| async {
            service_error(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "Only Invoke (POST /2015-03-31/functions/{FunctionName}/invocations) is served locally.",
            )
        })
        .with_state(state)
}

/// A Lambda service error, as the SDK reads it (`x-amzn-ErrorType` and a JSON body).
fn service_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/json"),
        ],
        json!({ "Type": "User", "message": message }).to_string(),
    )
        .into_response()
}

async fn invoke(
    State(state): State<Arc<InvokeState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(function) = state.find(&name).cloned() else {
        return service_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    };
    if body.len() > MAX_PAYLOAD {
        return service_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
        );
    }
    // An empty payload is `{}` to Lambda.
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return service_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                )
            }
        }
    };
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    match invocation_type {
        "RequestResponse" => {}
        "Event" => {
            tokio::spawn(async move {
                if let Outcome::FunctionError(e) = run(&function, payload).await {
                    tracing::warn!(function = %name, error = %e, "asynchronous invocation failed");
                }
            });
            return StatusCode::ACCEPTED.into_response();
        }
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        other => {
            return service_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                &format!("Unsupported invocation type {other}"),
            )
        }
    }
    let (value, error) = match run(&function, payload).await {
        Outcome::Response(v) => (v, false),
        Outcome::FunctionError(e) => (e, true),
    };
    let mut response = (
        StatusCode::OK,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if error {
        h.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    response
}

/// Runs one invocation to its end (or its timeout, as Lambda stops it).
pub async fn run(function: &Invocable, payload: Value) -> Outcome {
    let mut context = Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    context.deadline = crate::pollers::now_millis() + function.timeout.as_millis() as u64;
    context.invoked_function_arn = function.arn.clone();
    let work = {
        let function = function.clone();
        tokio::spawn(async move { dispatch(&function.runner, payload, context).await })
    };
    match tokio::time::timeout(function.timeout, work).await {
        Ok(Ok(outcome)) => outcome,
        // A panic in the handler: the runtime reports it as an error.
        Ok(Err(e)) => function_error("Runtime.ExitError", format!("the handler panicked: {e}")),
        Err(_) => function_error(
            "Sandbox.Timedout",
            format!(
                "Task timed out after {:.2} seconds",
                function.timeout.as_secs_f64()
            ),
        ),
    }
}

async fn dispatch(runner: &Runner, payload: Value, context: Context) -> Outcome {
    match runner {
        Runner::Process(process) => {
            let deadline = context.deadline;
            match process
                .invoke_json(
                    payload,
                    context.request_id,
                    deadline,
                    context.invoked_function_arn,
                )
                .await
            {
                Ok(v) => Outcome::Response(v),
                // What the runtime posted to /error: already Lambda's error JSON, or a message.
                Err(e) => match serde_json::from_str::<Value>(&e) {
                    Ok(v) if v.get("errorMessage").is_some() => Outcome::FunctionError(v),
                    _ => function_error("Runtime.Error", e),
                },
            }
        }
        Runner::InProcess(LocalFunction::Http(handler)) => {
            // What lambda_http does with the payload in AWS: an API Gateway v2 request, or an error.
            let request = match lambda_http::request::from_str(&payload.to_string()) {
                Ok(r) => r,
                Err(e) => return function_error("Runtime.UnmarshalError", e),
            };
            // lambda_http hands the handler the invocation's context (its deadline) as well.
            let request = lambda_http::RequestExt::with_lambda_context(request, context);
            let response = handler.invoke(request).await;
            match serde_json::to_value(gateway_response(response)) {
                Ok(v) => Outcome::Response(v),
                Err(e) => function_error("Runtime.MarshalError", e),
            }
        }
        Runner::InProcess(LocalFunction::Sqs(handler)) => {
            let event: SqsEvent = match serde_json::from_value(payload) {
                Ok(e) => e,
                Err(e) => return function_error("Runtime.UnmarshalError", e),
            };
            match handler.invoke(LambdaEvent::new(event, context)).await {
                Ok(response) => match serde_json::to_value(response) {
                    Ok(v) => Outcome::Response(v),
                    Err(e) => function_error("Runtime.MarshalError", e),
                },
                Err(e) => function_error("Unhandled", e),
            }
        }
        Runner::InProcess(LocalFunction::Scheduled(handler)) => {
            match handler.invoke(LambdaEvent::new(payload, context)).await {
                Ok(()) => Outcome::Response(Value::Null),
                Err(e) => function_error("Unhandled", e),
            }
        }
    }
}

/// The API Gateway v2 response lambda_http returns to Lambda for an HTTP function's response.
fn gateway_response(
    response: lambda_http::Response<lambda_http::Body>,
) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    headers.remove(http::header::SET_COOKIE);
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.is_base64_encoded = matches!(body, lambda_http::Body::Binary(_));
    out.body = match body {
        lambda_http::Body::Empty => None,
        other => Some(other),
    };
    out.headers = headers;
    out.cookies = cookies;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> InvokeState {
        let scheduled: Arc<dyn crate::pollers::ScheduledFunction> = Arc::new(Nothing);
        InvokeState {
            functions: BTreeMap::from([(
                "TickFunction".to_owned(),
                Invocable {
                    runner: Runner::InProcess(LocalFunction::Scheduled(scheduled)),
                    arn: "arn:aws:lambda:us-east-1:123456789012:function:s-TickFunction".into(),
                    timeout: Duration::from_millis(50),
                },
            )]),
            stack_name: "s".into(),
        }
    }

    struct Nothing;
    #[async_trait::async_trait]
    impl crate::pollers::ScheduledFunction for Nothing {
        async fn invoke(&self, event: LambdaEvent<Value>) -> Result<(), lambda_runtime::Error> {
            if event.payload["sleep"] == true {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if event.payload["fail"] == true {
                return Err("asked to fail".into());
            }
            Ok(())
        }
    }

    #[test]
    fn names_are_logical_ids_deployed_names_or_arns() {
        let s = state();
        for name in [
            "TickFunction",
            "s-TickFunction",
            "arn:aws:lambda:us-east-1:123456789012:function:TickFunction",
            "arn:aws:lambda:us-east-1:123456789012:function:s-TickFunction:$LATEST",
        ] {
            assert!(s.find(name).is_some(), "{name}");
        }
        assert!(s.find("OtherFunction").is_none());
        assert!(s.find("s-").is_none());
    }

    #[tokio::test]
    async fn errors_and_timeouts_are_function_errors() {
        let s = state();
        let f = s.find("TickFunction").unwrap();
        assert_eq!(run(f, json!({})).await, Outcome::Response(Value::Null));
        let Outcome::FunctionError(e) = run(f, json!({"fail": true})).await else {
            panic!("expected a function error")
        };
        assert_eq!(e["errorMessage"], "asked to fail");
        let Outcome::FunctionError(e) = run(f, json!({"sleep": true})).await else {
            panic!("expected a timeout")
        };
        assert!(
            e["errorMessage"]
                .as_str()
                .unwrap()
                .starts_with("Task timed out"),
            "{e}"
        );
    }
}
