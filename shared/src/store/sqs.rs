//! The SQS adapter of [`EventPublisher`].

use super::{sdk_failure, EventPublisher, StoreError};
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;

#[derive(Clone, Debug)]
pub struct SqsPublisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsPublisher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl EventPublisher for SqsPublisher {
    async fn publish(&self, body: &str, correlation_id: &str) -> Result<(), StoreError> {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(correlation_id)
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("correlationId", attribute)
            .send()
            .await
            .map_err(|e| sdk_failure("SendMessage", e))?;
        Ok(())
    }
}
