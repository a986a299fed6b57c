//! export-worker: the exports queue's and its dead-letter queue's consumer (template.yaml:
//! ExportWorkerFunction). Builds its clients once per cold start; every batch goes to
//! [`export_worker::ExportWorker::handle`].

use export_worker::ExportWorker;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let worker = Arc::new(ExportWorker::from_env(&ProcessEnv, &clients)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let worker = Arc::clone(&worker);
        async move { worker.handle(event).await }
    }))
    .await
}
