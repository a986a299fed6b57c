//! process-dicom: the ingest queue's consumer (template.yaml: ProcessDicomFunction). Builds its
//! clients and scanner once per cold start; every batch goes to [`process_dicom::Processor::handle`].

use lambda_runtime::{service_fn, Error, LambdaEvent};
use process_dicom::{Config, Processor};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_source(&ProcessEnv)?;
    let clients = AwsClients::from_env().await;
    let processor = Arc::new(Processor::new(config, &clients));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let processor = Arc::clone(&processor);
        async move { processor.handle(event).await }
    }))
    .await
}
