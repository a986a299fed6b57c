//! AWS SDK clients, built once per cold start and shared by every invocation.

use aws_config::{BehaviorVersion, SdkConfig};

/// The clients a function may need. Cloning is cheap (they are `Arc`s inside).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// Loads the configuration from the environment. `AWS_ENDPOINT_URL` (an emulator on loopback)
    /// is honoured by the SDK itself; S3 then uses path-style addressing, which emulators need.
    pub async fn from_env() -> Self {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        let path_style = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        Self::from_config(&config, path_style)
    }

    pub fn from_config(config: &SdkConfig, force_path_style: bool) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(force_path_style)
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }
}
