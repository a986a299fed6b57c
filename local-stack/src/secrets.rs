//! The template's `AWS::SecretsManager::Secret` resources, created in the emulator. A secret the
//! template has Secrets Manager generate (`GenerateSecretString`) gets a fresh random value here,
//! as it does at deploy: no secret is written in the template, and none is shared between stacks.

use crate::provision::ProvisionError;
use crate::template::{json_str, Template};
use shared::aws::AwsClients;

/// Creates each secret (or finds the one a previous run created) and makes `!Ref` give its ARN.
pub async fn provision(
    template: &mut Template,
    clients: &AwsClients,
) -> Result<(), ProvisionError> {
    let secrets: Vec<(String, serde_json::Value)> = template
        .resources_of("AWS::SecretsManager::Secret")
        .iter()
        .map(|r| Ok((r.logical_id.clone(), template.eval(r.properties)?)))
        .collect::<Result<_, ProvisionError>>()?;
    for (id, props) in secrets {
        let name =
            json_str(&props, "Name").unwrap_or_else(|| format!("{}-{id}", template.stack_name));
        let value = match json_str(&props, "SecretString") {
            Some(value) => value,
            // 256 random bits, as hex.
            None => format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        };
        let aws_err = |e: String| ProvisionError::Aws {
            resource: id.clone(),
            message: e,
        };
        let arn = match clients
            .secrets
            .create_secret()
            .name(&name)
            .secret_string(value)
            .send()
            .await
        {
            Ok(out) => out.arn().unwrap_or_default().to_owned(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                clients
                    .secrets
                    .describe_secret()
                    .secret_id(&name)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_err(format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))
                    })?
                    .arn()
                    .unwrap_or_default()
                    .to_owned()
            }
            Err(e) => {
                return Err(aws_err(format!(
                    "{}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )))
            }
        };
        template.set_ref(&id, arn.clone());
        template.set_arn(&id, arn);
    }
    Ok(())
}
