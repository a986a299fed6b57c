//! The default adapters: the report's sources over the store ports (DynamoDB in AWS and on the
//! local stack).

use super::sources::*;
use crate::clinical::epro::EproEntry;
use crate::clinical::forms::FormData;
use crate::clinical::subject::SubjectRecord;
use crate::domain::SubjectId;
use crate::store::clinical::{EproDiary, Forms, SubjectRecords};
use crate::store::ImagingSummaries;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Most diary entries one report reads (a diary a day for a year, several times over).
pub const MAX_DIARY_ENTRIES: usize = 2_000;
const DIARY_PAGE: usize = 500;

pub struct StoreDemographics(pub Arc<dyn SubjectRecords>);

#[async_trait]
impl Demographics for StoreDemographics {
    async fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, SourceError> {
        Ok(self.0.get(id).await?)
    }
}

pub struct StoreEdc(pub Arc<dyn Forms>);

#[async_trait]
impl EdcSource for StoreEdc {
    async fn forms(&self, id: &SubjectId) -> Result<Vec<FormData>, SourceError> {
        Ok(self
            .0
            .of_subject(id)
            .await?
            .into_iter()
            .map(|f| f.data)
            .collect())
    }
}

pub struct StoreEpro(pub Arc<dyn EproDiary>);

#[async_trait]
impl EproSource for StoreEpro {
    async fn diary(
        &self,
        id: &SubjectId,
        since: DateTime<Utc>,
    ) -> Result<Vec<EproEntry>, SourceError> {
        let mut entries = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .0
                .page(id, Some(since), DIARY_PAGE, after.as_ref())
                .await?;
            entries.extend(page.entries);
            match page.next {
                Some(next) if entries.len() < MAX_DIARY_ENTRIES => after = Some(next),
                _ => break,
            }
        }
        entries.truncate(MAX_DIARY_ENTRIES);
        Ok(entries)
    }
}

pub struct StoreImaging(pub Arc<dyn ImagingSummaries>);

#[async_trait]
impl ImagingSource for StoreImaging {
    async fn imaging(&self, id: &SubjectId) -> Result<ImagingStatus, SourceError> {
        match self.0.summary(id).await? {
            Some(summary) => ImagingStatus::from_summary(&summary),
            None => Ok(ImagingStatus::default()),
        }
    }
}
