//! Where a function's init goes: a fresh process times each step a function's `main.rs` takes
//! before `lambda_runtime::run` — the JSON log subscriber, `aws_config::load_defaults`, each SDK
//! client's construction — then the first and second call of one client (a DynamoDB `GetItem`
//! against `AWS_ENDPOINT_URL`, retries off: whatever it answers, the first call pays the one-time
//! costs: credentials resolved, the HTTP connector built with its TLS root store, a connection).
//! Prints `step=ms` pairs on one line; the `coldstart` group runs it in fresh processes and prints
//! the medians.
//!
//! `init-phases sdk-default`: the configuration as `aws_config::load_defaults` gives it, each client
//! with the SDK's own default HTTP client (what every function did before); `init-phases` (no
//! argument): `shared::aws::load_config`, what the functions do now (one HTTPS client, its connector
//! built at the first request).

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let mut steps: Vec<(&str, f64)> = Vec::new();
    let mut at = Instant::now();
    let mut lap = |name: &'static str, steps: &mut Vec<(&str, f64)>| {
        steps.push((name, at.elapsed().as_secs_f64() * 1000.0));
        at = Instant::now();
    };
    shared::telemetry::init();
    lap("telemetry", &mut steps);
    let config = if std::env::args().nth(1).as_deref() == Some("sdk-default") {
        aws_config::load_defaults(BehaviorVersion::latest()).await
    } else {
        shared::aws::load_config().await
    };
    lap("load_defaults", &mut steps);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    lap("s3", &mut steps);
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    lap("dynamodb", &mut steps);
    let sqs = aws_sdk_sqs::Client::new(&config);
    lap("sqs", &mut steps);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    lap("secretsmanager", &mut steps);
    for name in ["first_call", "second_call"] {
        let _ = dynamodb
            .get_item()
            .table_name("init-phases")
            .key(
                "id",
                aws_sdk_dynamodb::types::AttributeValue::S("probe".into()),
            )
            .send()
            .await;
        lap(name, &mut steps);
    }
    drop((s3, sqs, secrets));
    let line: Vec<String> = steps
        .iter()
        .map(|(name, ms)| format!("{name}={ms:.3}"))
        .collect();
    println!("{}", line.join(" "));
}
