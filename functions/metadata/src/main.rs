//! metadata: `GET /v1/metadata/{kind}/{code}` and the old API's `GET /v1/metadata?key=`
//! (template.yaml: MetadataFunction). Loads the reference snapshot at cold start; every request
//! goes to [`metadata::MetadataApi::handle`].

use lambda_http::{service_fn, Error, Request};
use metadata::MetadataApi;
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::{convert::Infallible, sync::Arc};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let api = Arc::new(MetadataApi::from_env(&ProcessEnv, &clients)?);
    api.warm().await;
    lambda_http::run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    }))
    .await
}
