//! refresh-cache: the reference-data snapshot on an EventBridge schedule (template.yaml:
//! RefreshCacheFunction). Every invocation goes to [`refresh_cache::Refresher::handle`].

use lambda_runtime::{service_fn, Error, LambdaEvent};
use refresh_cache::Refresher;
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let refresher = Arc::new(Refresher::from_env(&ProcessEnv, &clients)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let refresher = Arc::clone(&refresher);
        async move { refresher.handle(event).await }
    }))
    .await
}
