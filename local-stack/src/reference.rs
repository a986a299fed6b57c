//! The reference data the local stack starts with: the repo's `reference-data/*.csv` (see
//! `scripts/reference_data.py` for where the rows come from), written to the reference table before
//! any function runs, so refresh-cache's first run (at start) publishes a snapshot.

use shared::reference::{Drug, ReferenceEntry, ReferenceKind, ReferenceValue, Site, SiteStatus};
use shared::store::reference::entry_item;
use std::path::Path;

/// Which rows to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceSeed {
    /// Every row (`make dev`): a few thousand drug codes.
    All,
    /// The curated rows only (tests: a few hundred, quicker to write per stack).
    Curated,
    /// Nothing (a test of an empty source).
    Nothing,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The entries of `reference-data/` under `root`.
pub fn load(root: &Path, seed: ReferenceSeed) -> Result<Vec<ReferenceEntry>, Error> {
    let mut entries = Vec::new();
    if seed == ReferenceSeed::Nothing {
        return Ok(entries);
    }
    let mut drugs = csv::Reader::from_path(root.join("reference-data/drug_codes.csv"))?;
    for row in drugs.records() {
        let row = row?;
        let field = |i: usize| row.get(i).unwrap_or_default().to_owned();
        if seed == ReferenceSeed::Curated && field(5) != "curated" {
            continue;
        }
        entries.push(ReferenceEntry {
            kind: ReferenceKind::DrugCode,
            code: field(0),
            value: ReferenceValue::Drug(Drug {
                name: field(1),
                atc_class: field(2),
                class_name: field(3),
                active: field(4) == "true",
            }),
            version: 1,
        });
    }
    let mut sites = csv::Reader::from_path(root.join("reference-data/sites.csv"))?;
    for row in sites.records() {
        let row = row?;
        let field = |i: usize| row.get(i).unwrap_or_default().to_owned();
        let status: SiteStatus = serde_json::from_value(serde_json::Value::String(field(3)))?;
        entries.push(ReferenceEntry {
            kind: ReferenceKind::Site,
            code: field(0),
            value: ReferenceValue::Site(Site {
                name: field(1),
                country: field(2),
                status,
            }),
            version: 1,
        });
    }
    Ok(entries)
}

/// Writes `entries` to `table` (25 per BatchWriteItem, retrying what DynamoDB hands back).
pub async fn seed(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    entries: &[ReferenceEntry],
) -> Result<(), Error> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let at = chrono::Utc::now();
    for chunk in entries.chunks(25) {
        let mut requests = chunk
            .iter()
            .map(|e| {
                PutRequest::builder()
                    .set_item(Some(entry_item(e, "seed", at)))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()?;
        for _ in 0..10 {
            let out = dynamodb
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await?;
            requests = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
            if requests.is_empty() {
                break;
            }
        }
    }
    Ok(())
}
