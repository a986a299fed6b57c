//! subject-imaging: the HTTP route `GET /v1/subjects/{subjectId}/imaging` (template.yaml:
//! SubjectImagingFunction). Builds its clients once per cold start; every request goes to
//! [`subject_imaging::ImagingApi::handle`].

use lambda_http::{service_fn, Error, Request};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::{convert::Infallible, sync::Arc};
use subject_imaging::ImagingApi;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let api = Arc::new(ImagingApi::from_env(&ProcessEnv, &clients)?);
    lambda_http::run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    }))
    .await
}
