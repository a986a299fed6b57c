//! upload-url: the HTTP routes `/v1/uploads...` (template.yaml: UploadUrlFunction).
//! Builds its clients once per cold start; every request goes to [`upload_url::UploadApi::handle`].

use lambda_http::{service_fn, Error, Request};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::{convert::Infallible, sync::Arc};
use upload_url::{Config, UploadApi};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_source(&ProcessEnv)?;
    let clients = AwsClients::from_env().await;
    let api = Arc::new(UploadApi::new(config, &clients));
    lambda_http::run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    }))
    .await
}
