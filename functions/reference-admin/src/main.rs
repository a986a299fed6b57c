//! reference-admin: `GET` and `PUT /v1/reference/{kind}/{code}` (template.yaml:
//! ReferenceAdminFunction). Every request goes to [`reference_admin::ReferenceAdminApi::handle`].

use lambda_http::{service_fn, Error, Request};
use reference_admin::ReferenceAdminApi;
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::{convert::Infallible, sync::Arc};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let api = Arc::new(ReferenceAdminApi::from_env(&ProcessEnv, &clients)?);
    lambda_http::run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    }))
    .await
}
