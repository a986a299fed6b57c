//! The functions of template.yaml, run in-process: each `AWS::Serverless::Function` names its binary
//! (`Metadata.BuildProperties.Binary`); this maps the binary to the handler its `main.rs` runs, built
//! from the environment the template gives it.

use async_trait::async_trait;
use lambda_http::{Body, Request, Response};
use shared::aws::AwsClients;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An HTTP function: takes the request lambda_http builds from an API Gateway v2 payload.
#[async_trait]
pub trait HttpFunction: Send + Sync {
    async fn invoke(&self, request: Request) -> Response<Body>;
}

#[async_trait]
impl HttpFunction for upload_url::UploadApi {
    async fn invoke(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

#[async_trait]
impl HttpFunction for subject_imaging::ImagingApi {
    async fn invoke(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

#[async_trait]
impl HttpFunction for clinical_data::ClinicalApi {
    async fn invoke(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

#[async_trait]
impl HttpFunction for metadata::MetadataApi {
    async fn invoke(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

#[async_trait]
impl HttpFunction for subject_report::ReportApi {
    async fn invoke(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

#[async_trait]
impl HttpFunction for exports::ExportsApi {
    async fn invoke(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

#[async_trait]
impl HttpFunction for reference_admin::ReferenceAdminApi {
    async fn invoke(&self, request: Request) -> Response<Body> {
        self.handle(request).await
    }
}

#[async_trait]
impl crate::pollers::ScheduledFunction for refresh_cache::Refresher {
    async fn invoke(
        &self,
        event: lambda_runtime::LambdaEvent<serde_json::Value>,
    ) -> Result<(), lambda_runtime::Error> {
        self.handle(event).await
    }
}

#[async_trait]
impl crate::pollers::SqsFunction for process_dicom::Processor {
    async fn invoke(
        &self,
        event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>,
    ) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, lambda_runtime::Error> {
        self.handle(event).await
    }
}

#[async_trait]
impl crate::pollers::SqsFunction for imaging_summary::Summarizer {
    async fn invoke(
        &self,
        event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>,
    ) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, lambda_runtime::Error> {
        self.handle(event).await
    }
}

#[async_trait]
impl crate::pollers::SqsFunction for export_worker::ExportWorker {
    async fn invoke(
        &self,
        event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>,
    ) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, lambda_runtime::Error> {
        self.handle(event).await
    }
}

#[async_trait]
impl crate::pollers::SqsFunction for ingest_failures::IngestFailures {
    async fn invoke(
        &self,
        event: lambda_runtime::LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>,
    ) -> Result<aws_lambda_events::event::sqs::SqsBatchResponse, lambda_runtime::Error> {
        self.handle(event).await
    }
}

#[derive(Clone)]
pub enum LocalFunction {
    Http(Arc<dyn HttpFunction>),
    Sqs(Arc<dyn crate::pollers::SqsFunction>),
    Scheduled(Arc<dyn crate::pollers::ScheduledFunction>),
}

/// Every binary the local stack can run. A test checks this list against template.yaml.
pub const BINARIES: &[&str] = &[
    "clinical-data",
    "export-worker",
    "exports",
    "imaging-summary",
    "ingest-failures",
    "metadata",
    "process-dicom",
    "reference-admin",
    "refresh-cache",
    "subject-imaging",
    "subject-report",
    "upload-url",
];

pub fn build(
    binary: &str,
    env: &BTreeMap<String, String>,
    clients: &AwsClients,
) -> Result<LocalFunction, String> {
    match binary {
        "upload-url" => {
            let config = upload_url::Config::from_source(env).map_err(|e| e.to_string())?;
            Ok(LocalFunction::Http(Arc::new(upload_url::UploadApi::new(
                config, clients,
            ))))
        }
        "process-dicom" => {
            let config = process_dicom::Config::from_source(env).map_err(|e| e.to_string())?;
            Ok(LocalFunction::Sqs(Arc::new(process_dicom::Processor::new(
                config, clients,
            ))))
        }
        "imaging-summary" => Ok(LocalFunction::Sqs(Arc::new(
            imaging_summary::Summarizer::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        "ingest-failures" => {
            let config = ingest_failures::Config::from_source(env).map_err(|e| e.to_string())?;
            Ok(LocalFunction::Sqs(Arc::new(
                ingest_failures::IngestFailures::new(config, clients),
            )))
        }
        "subject-imaging" => Ok(LocalFunction::Http(Arc::new(
            subject_imaging::ImagingApi::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        // Loads its snapshot on its first request (a cold start in Lambda loads it in main).
        "metadata" => Ok(LocalFunction::Http(Arc::new(
            metadata::MetadataApi::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        "reference-admin" => Ok(LocalFunction::Http(Arc::new(
            reference_admin::ReferenceAdminApi::from_env(env, clients)
                .map_err(|e| e.to_string())?,
        ))),
        "refresh-cache" => Ok(LocalFunction::Scheduled(Arc::new(
            refresh_cache::Refresher::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        "clinical-data" => Ok(LocalFunction::Http(Arc::new(
            clinical_data::ClinicalApi::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        "subject-report" => Ok(LocalFunction::Http(Arc::new(
            subject_report::ReportApi::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        "exports" => Ok(LocalFunction::Http(Arc::new(
            exports::ExportsApi::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        "export-worker" => Ok(LocalFunction::Sqs(Arc::new(
            export_worker::ExportWorker::from_env(env, clients).map_err(|e| e.to_string())?,
        ))),
        other => Err(format!("no local handler for binary {other}")),
    }
}
