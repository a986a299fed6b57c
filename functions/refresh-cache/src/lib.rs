//! refresh-cache: reads the whole reference source (every kind, page by page), builds a versioned
//! snapshot and publishes it to S3 — unless it is unchanged (same content hash as the published
//! one: nothing is written) or the read was incomplete (any failed page, or an empty kind: nothing
//! is written and the invocation fails, so the last good snapshot stays and the Errors alarm sees
//! it). Each outcome is one log line and one EMF metric (`Refreshes`, dimension `Outcome`).

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use shared::aws::AwsClients;
use shared::config::{ConfigError, Source};
use shared::metrics::{Metrics, Unit};
use shared::reference::snapshot::{Snapshot, SnapshotError};
use shared::reference::{ReferenceEntry, ReferenceKind};
use shared::store::reference::{DynamoReference, ReferenceSource};
use shared::store::snapshots::{S3Snapshots, SnapshotPublisher};
use shared::store::StoreError;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Entries per source page.
const PAGE_SIZE: usize = 500;
/// A source that pages on past this is broken (a cursor that never ends), not big.
const MAX_PAGES: usize = 10_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Published { version: String, entries: usize },
    Unchanged { version: String },
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("reading the source failed: {0}")]
    Source(StoreError),
    #[error("the source never stopped paging ({0} pages of {1})")]
    Endless(usize, ReferenceKind),
    #[error("refused: {0}")]
    Refused(SnapshotError),
    #[error("publishing failed: {0}")]
    Publish(StoreError),
}

impl RefreshError {
    fn label(&self) -> &'static str {
        match self {
            Self::Source(_) | Self::Endless(..) => "SourceFailed",
            Self::Refused(_) => "Refused",
            Self::Publish(_) => "PublishFailed",
        }
    }
}

pub struct Refresher {
    source: Arc<dyn ReferenceSource>,
    publisher: Arc<dyn SnapshotPublisher>,
    page_size: usize,
}

impl Refresher {
    pub fn from_env(env: &impl Source, clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self::new(
            Arc::new(DynamoReference::reader(
                clients.dynamodb.clone(),
                env.required("REFERENCE_TABLE")?,
            )),
            Arc::new(S3Snapshots::new(
                clients.s3.clone(),
                env.required("REFERENCE_BUCKET")?,
                env.required("REFERENCE_SNAPSHOT_KEY")?,
            )),
        ))
    }

    pub fn new(source: Arc<dyn ReferenceSource>, publisher: Arc<dyn SnapshotPublisher>) -> Self {
        Self {
            source,
            publisher,
            page_size: PAGE_SIZE,
        }
    }

    /// Smaller pages (tests: a failure on a later page).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Every entry of `kind`, or the first failure.
    async fn read_kind(&self, kind: ReferenceKind) -> Result<Vec<ReferenceEntry>, RefreshError> {
        let mut entries = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .source
                .page(kind, after.as_deref(), self.page_size)
                .await
                .map_err(RefreshError::Source)?;
            entries.extend(page.entries);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(entries),
            }
        }
        Err(RefreshError::Endless(MAX_PAGES, kind))
    }

    /// One refresh: read everything, build, publish if changed.
    pub async fn refresh(&self, now: DateTime<Utc>) -> Result<Outcome, RefreshError> {
        let mut entries = Vec::new();
        for kind in ReferenceKind::ALL {
            entries.extend(self.read_kind(kind).await?);
        }
        let count = entries.len();
        let snapshot = Snapshot::build(entries, now).map_err(RefreshError::Refused)?;
        let published = self
            .publisher
            .published_version()
            .await
            .map_err(RefreshError::Publish)?;
        if published.as_deref() == Some(snapshot.version.as_str()) {
            return Ok(Outcome::Unchanged {
                version: snapshot.version,
            });
        }
        self.publisher
            .publish(&snapshot)
            .await
            .map_err(RefreshError::Publish)?;
        Ok(Outcome::Published {
            version: snapshot.version,
            entries: count,
        })
    }

    /// The scheduled invocation: refresh, log, metric. A failure fails the invocation.
    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<(), lambda_runtime::Error> {
        let span = tracing::info_span!("refresh", request_id = %event.context.request_id);
        let started = Instant::now();
        let result = self.refresh(Utc::now()).instrument(span.clone()).await;
        let label = span.in_scope(|| match &result {
            Ok(Outcome::Published { version, entries }) => {
                tracing::info!(%version, entries, "reference snapshot published");
                "Published"
            }
            Ok(Outcome::Unchanged { version }) => {
                tracing::info!(%version, "reference data unchanged; nothing written");
                "Unchanged"
            }
            Err(e) => {
                tracing::error!(error = %e, "reference snapshot not refreshed; the last good one stays");
                e.label()
            }
        });
        Metrics::new("refresh-cache")
            .dimension("Outcome", label)
            .count("Refreshes", 1)
            .value(
                "RefreshMillis",
                Unit::Milliseconds,
                started.elapsed().as_secs_f64() * 1e3,
            )
            .emit();
        result.map(|_| ()).map_err(|e| e.to_string().into())
    }
}
