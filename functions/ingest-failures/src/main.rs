//! ingest-failures: the ingest dead-letter queue's consumer (template.yaml: IngestFailuresFunction).
//! Builds its clients once per cold start; every batch goes to
//! [`ingest_failures::IngestFailures::handle`].

use ingest_failures::{Config, IngestFailures};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_source(&ProcessEnv)?;
    let clients = AwsClients::from_env().await;
    let failures = Arc::new(IngestFailures::new(config, &clients));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let failures = Arc::clone(&failures);
        async move { failures.handle(event).await }
    }))
    .await
}
