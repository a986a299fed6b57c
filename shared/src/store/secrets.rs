//! [`PatientKeySource`] on Secrets Manager (template.yaml: `PatientIdKeySecret`, generated at
//! deploy; the local stack creates it in the emulator with a random value). Read on first use, then
//! kept for the life of the execution environment: one `GetSecretValue` per cold start. A failed
//! read is not kept: the next message tries again.

use super::StoreError;
use crate::identity::{PatientKey, PatientKeySource};
use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;
use tokio::sync::OnceCell;

pub struct SecretsManagerPatientKey {
    client: Client,
    secret_id: String,
    key: OnceCell<PatientKey>,
}

impl SecretsManagerPatientKey {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
            key: OnceCell::new(),
        }
    }

    async fn load(&self) -> Result<PatientKey, StoreError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| {
                // The error names the operation and the cause, never the secret.
                let message = format!("GetSecretValue: {}", DisplayErrorContext(&e));
                tracing::error!(error = %message, "could not read the Patient ID key");
                StoreError::Unavailable("GetSecretValue patient id key".into())
            })?;
        let secret = out.secret_string().ok_or_else(|| {
            StoreError::Corrupt("the Patient ID key secret has no string value".into())
        })?;
        PatientKey::from_secret(secret).map_err(StoreError::Corrupt)
    }
}

#[async_trait]
impl PatientKeySource for SecretsManagerPatientKey {
    async fn key(&self) -> Result<&PatientKey, StoreError> {
        self.key.get_or_try_init(|| self.load()).await
    }
}

impl std::fmt::Debug for SecretsManagerPatientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerPatientKey")
            .field("secret_id", &self.secret_id)
            .finish_non_exhaustive()
    }
}
