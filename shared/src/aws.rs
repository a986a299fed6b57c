//! AWS SDK clients, built once per cold start and shared by every invocation.
//!
//! Every client of the process shares one HTTPS client: the SDK's default one (hyper 1.x, rustls on
//! aws-lc, the system's root certificates, proxy settings from the environment), built exactly as
//! the SDK builds it. Left to itself the SDK builds a whole connector — the TLS configuration with
//! its root store, every system CA certificate parsed — in each client's
//! `validate_base_client_config` only to drop it ("so that native certs load at client
//! initialization time"), and each client then builds its own again at its first request: the
//! config loader and four clients cost five root stores at init. Here the root store is still
//! loaded at init, as the SDK intends (Lambda's init phase is where such work belongs), but once:
//! only the first validation of the shared client builds it; the connector used is built and
//! cached at the first request (README, Measured: cold start). Credentials, region and endpoint
//! (`AWS_ENDPOINT_URL`) stay the default chain's: only the HTTP client is given to the loader.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use aws_smithy_types::config_bag::ConfigBag;

/// The clients a function may need. Cloning is cheap (they are `Arc`s inside).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// Loads the configuration from the environment ([`load_config`]). `AWS_ENDPOINT_URL` (an
    /// emulator on loopback) is honoured by the SDK itself; S3 then uses path-style addressing,
    /// which emulators need.
    pub async fn from_env() -> Self {
        let config = load_config().await;
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

/// `aws_config::load_defaults(BehaviorVersion::latest())` — the default credential, region and
/// endpoint chains — with [`https_client`] as the HTTP client of the configuration (and so of every
/// client built from it, and of the chain's own providers: IMDS, ECS, STS, SSO).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The SDK's default HTTPS client, as `aws-smithy-runtime` builds it for
/// `BehaviorVersion::latest()` with the `default-https-client` feature (`default_https_client`:
/// rustls on aws-lc, its connector settings and sleep, proxy from the environment), whose eager
/// root-store load happens once per process, not once per client (see the module's notes).
pub fn https_client() -> SharedHttpClient {
    let inner = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    OnceAtInit {
        inner,
        validated: std::sync::atomic::AtomicBool::new(false),
    }
    .into_shared()
}

/// An HTTP client whose eager connector build (`validate_base_client_config`: the root store
/// loaded at initialization) runs for the first client validated only, not again for each.
#[derive(Debug)]
struct OnceAtInit {
    inner: SharedHttpClient,
    validated: std::sync::atomic::AtomicBool,
}

impl HttpClient for OnceAtInit {
    fn validate_base_client_config(
        &self,
        runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if self
            .validated
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        self.inner
            .validate_base_client_config(runtime_components, cfg)
    }

    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner.http_connector(settings, components)
    }

    fn validate_final_config(
        &self,
        runtime_components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        self.inner.validate_final_config(runtime_components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::{Credentials, Region};
    use aws_sdk_dynamodb::types::AttributeValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A DynamoDB-shaped server on loopback: answers every request on a connection with one item,
    /// keeps the connection open, and counts connections and requests.
    async fn server() -> (
        String,
        tokio::sync::mpsc::UnboundedReceiver<(usize, String)>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut connection = 0;
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                connection += 1;
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request: headers, then content-length bytes of body.
                        let (head, length) = loop {
                            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                                let length = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .unwrap_or(0);
                                break (end + 4, length);
                            }
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        while buf.len() < head + length {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = String::from_utf8_lossy(&buf[head..head + length]).into_owned();
                        buf.drain(..head + length);
                        let _ = seen.send((connection, body));
                        let answer = br#"{"Item":{"id":{"S":"probe"},"n":{"N":"7"}}}"#;
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n",
                            answer.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err()
                            || socket.write_all(answer).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (url, receiver)
    }

    fn dynamodb(url: &str, http: &SharedHttpClient) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
                .endpoint_url(url)
                .http_client(http.clone())
                .build(),
        )
    }

    /// Two clients built on the one HTTPS client: both calls are answered, and they travel on one
    /// pooled connection (each client had its own pool, and its own connector, before).
    #[tokio::test]
    async fn clients_share_one_https_client_and_its_connection_pool() {
        let (url, mut seen) = server().await;
        let http = https_client();
        for (table, client) in [
            ("first", dynamodb(&url, &http)),
            ("second", dynamodb(&url, &http)),
        ] {
            let item = client
                .get_item()
                .table_name(table)
                .key("id", AttributeValue::S("probe".into()))
                .send()
                .await
                .expect("GetItem answered")
                .item
                .expect("the item");
            assert_eq!(item.get("n"), Some(&AttributeValue::N("7".into())));
            let (connection, body) = seen.recv().await.unwrap();
            assert_eq!(connection, 1, "a new connection for {table}");
            assert!(
                body.contains(&format!(r#""TableName":"{table}""#)),
                "{body}"
            );
        }
    }
}
