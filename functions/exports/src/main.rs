//! exports: the HTTP routes of subject exports (template.yaml: ExportsFunction). Builds its clients
//! once per cold start; every request goes to [`exports::ExportsApi::handle`].

use exports::ExportsApi;
use lambda_http::{service_fn, Error, Request};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::{convert::Infallible, sync::Arc};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let api = Arc::new(ExportsApi::from_env(&ProcessEnv, &clients)?);
    lambda_http::run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    }))
    .await
}
