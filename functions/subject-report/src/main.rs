//! subject-report: the HTTP route `GET /v1/subjects/{subjectId}/report` (template.yaml:
//! SubjectReportFunction). Builds its clients, sources and breakers once per execution
//! environment; every request goes to [`subject_report::ReportApi::handle`].

use lambda_http::{service_fn, Error, Request};
use shared::{aws::AwsClients, config::ProcessEnv, telemetry};
use std::{convert::Infallible, sync::Arc};
use subject_report::ReportApi;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let clients = AwsClients::from_env().await;
    let api = Arc::new(ReportApi::from_env(&ProcessEnv, &clients)?);
    lambda_http::run(service_fn(move |request: Request| {
        let api = Arc::clone(&api);
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    }))
    .await
}
