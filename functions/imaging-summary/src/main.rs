//! imaging-summary: the imaging-events queue's consumer (template.yaml: ImagingSummaryFunction).
//! Every batch goes to [`imaging_summary::Summarizer::handle`].

use imaging_summary::Summarizer;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let summarizer = Arc::new(Summarizer::from_env(&ProcessEnv, &clients)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let summarizer = Arc::clone(&summarizer);
        async move { summarizer.handle(event).await }
    }))
    .await
}
