//! The SQS adapters of [`EventPublisher`] and [`MessageVisibility`].

use super::{sdk_failure, EventPublisher, MessageVisibility, StoreError};
use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;

#[derive(Clone, Debug)]
pub struct SqsPublisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    delay_seconds: Option<i32>,
}

impl SqsPublisher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            delay_seconds: None,
        }
    }

    /// Every message is delivered `seconds` after it is sent (SQS `DelaySeconds`).
    pub fn delayed(mut self, seconds: i32) -> Self {
        self.delay_seconds = Some(seconds);
        self
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
            .set_delay_seconds(self.delay_seconds)
            .send()
            .await
            .map_err(|e| sdk_failure("SendMessage", e))?;
        Ok(())
    }
}

/// A queue's messages, by receipt handle: the consumer's retry delay.
#[derive(Clone, Debug)]
pub struct SqsVisibility {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsVisibility {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl MessageVisibility for SqsVisibility {
    async fn delay(&self, receipt_handle: &str, seconds: i32) -> Result<(), StoreError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| sdk_failure("ChangeMessageVisibility", e))?;
        Ok(())
    }
}
