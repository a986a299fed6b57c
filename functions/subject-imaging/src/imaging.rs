//! The JSON of a subject's imaging: the summary item, and the indexed instances grouped by study
//! and series. No patient identifier is in either (UIDs, modality, digests, sizes, times).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use shared::auth::Caller;
use shared::domain::SiteId;
use shared::store::{InstanceRecord, Subject, SubjectInstances};
use std::collections::BTreeMap;

/// Most instances one answer lists (a few hundred bytes each: well under Lambda's 6 MB response).
/// Past it, `complete` is false; the summary's counts still cover everything.
pub const MAX_INSTANCES: usize = 10_000;

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubjectImaging {
    subject_id: String,
    trial_id: String,
    site_id: String,
    /// The imaging summary (counts, last study date), zeros before the first upload is processed.
    summary: Value,
    /// Studies, most recently received first.
    studies: Vec<Study>,
    /// False when the subject has more than [`MAX_INSTANCES`] indexed instances (the list stops there).
    complete: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Study {
    study_instance_uid: String,
    /// The study's date (DICOM DA, `YYYYMMDD`), as its instances' headers give it.
    study_date: Option<String>,
    modalities: Vec<String>,
    series_count: usize,
    instance_count: usize,
    first_received_at: String,
    last_received_at: String,
    series: Vec<Series>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Series {
    series_instance_uid: String,
    modality: String,
    instance_count: usize,
    first_received_at: String,
    last_received_at: String,
    instances: Vec<Instance>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Instance {
    sop_instance_uid: String,
    sha256: String,
    upload_id: String,
    size_bytes: u64,
    received_at: String,
}

fn empty_summary() -> Value {
    json!({
        "studies": 0,
        "series": 0,
        "instances": 0,
        "instancesByModality": {},
        "lastStudyDate": null,
        "pending": 0,
        "quarantined": 0,
    })
}

/// First and last time of a group of instances.
fn span<'a>(times: impl Iterator<Item = &'a DateTime<Utc>>) -> (String, String) {
    let mut times: Vec<&DateTime<Utc>> = times.collect();
    times.sort();
    let first = times.first().map(|t| rfc3339(t)).unwrap_or_default();
    let last = times.last().map(|t| rfc3339(t)).unwrap_or_default();
    (first, last)
}

impl SubjectImaging {
    pub(crate) fn build(
        subject: &Subject,
        caller: &Caller,
        summary: Option<Value>,
        found: SubjectInstances,
    ) -> Self {
        let mut summary = summary.unwrap_or_else(empty_summary);
        if let Some(fields) = summary.as_object_mut() {
            fields.remove("subjectId");
        }
        // study → series → instances. Every instance is the subject's; its site is checked anyway.
        let mut studies: BTreeMap<String, BTreeMap<String, Vec<InstanceRecord>>> = BTreeMap::new();
        for i in found.instances.into_iter().filter(|i| {
            i.subject == subject.id.as_str()
                && SiteId::parse(&i.site).is_ok_and(|site| caller.can_read(&subject.trial, &site))
        }) {
            studies
                .entry(i.study_instance_uid.clone())
                .or_default()
                .entry(i.series_instance_uid.clone())
                .or_default()
                .push(i);
        }
        let mut studies: Vec<Study> = studies
            .into_iter()
            .map(|(study_uid, series)| {
                let (first, last) = span(series.values().flatten().map(|i| &i.recorded_at));
                let mut modalities: Vec<String> = series
                    .values()
                    .flatten()
                    .map(|i| i.modality.clone())
                    .collect();
                modalities.sort();
                modalities.dedup();
                let study_date = series
                    .values()
                    .flatten()
                    .filter_map(|i| i.study_date.clone())
                    .min();
                let mut series: Vec<Series> = series
                    .into_iter()
                    .map(|(series_uid, mut instances)| {
                        instances.sort_by(|a, b| {
                            (a.recorded_at, &a.sop_instance_uid)
                                .cmp(&(b.recorded_at, &b.sop_instance_uid))
                        });
                        let (first, last) = span(instances.iter().map(|i| &i.recorded_at));
                        Series {
                            series_instance_uid: series_uid,
                            modality: instances
                                .first()
                                .map(|i| i.modality.clone())
                                .unwrap_or_default(),
                            instance_count: instances.len(),
                            first_received_at: first,
                            last_received_at: last,
                            instances: instances
                                .into_iter()
                                .map(|i| Instance {
                                    sop_instance_uid: i.sop_instance_uid,
                                    sha256: i.sha256,
                                    upload_id: i.upload_id,
                                    size_bytes: i.size_bytes,
                                    received_at: rfc3339(&i.recorded_at),
                                })
                                .collect(),
                        }
                    })
                    .collect();
                series.sort_by(|a, b| a.first_received_at.cmp(&b.first_received_at));
                Study {
                    study_instance_uid: study_uid,
                    study_date,
                    modalities,
                    series_count: series.len(),
                    instance_count: series.iter().map(|s| s.instance_count).sum(),
                    first_received_at: first,
                    last_received_at: last,
                    series,
                }
            })
            .collect();
        studies.sort_by(|a, b| b.last_received_at.cmp(&a.last_received_at));
        Self {
            subject_id: subject.id.to_string(),
            trial_id: subject.trial.to_string(),
            site_id: subject.site.to_string(),
            summary,
            studies,
            complete: found.complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::{SubjectId, TrialId};
    use std::collections::HashMap;

    fn instance(study: &str, series: &str, sop: &str, site: &str, minute: u32) -> InstanceRecord {
        InstanceRecord {
            sop_instance_uid: sop.into(),
            sha256: "ab".repeat(32),
            study_instance_uid: study.into(),
            series_instance_uid: series.into(),
            modality: "MR".into(),
            study_date: Some(format!("2026010{}", study.len())),
            trial: "T1".into(),
            site: site.into(),
            subject: "SUBJ-1".into(),
            upload_id: format!("upload-{sop}"),
            object_key: "accepted/x".into(),
            size_bytes: 10,
            recorded_at: DateTime::parse_from_rfc3339(&format!("2026-11-27T10:{minute:02}:00Z"))
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn groups_by_study_and_series_newest_study_first() {
        let subject = Subject {
            id: SubjectId::parse("SUBJ-1").unwrap(),
            trial: TrialId::parse("T1").unwrap(),
            site: SiteId::parse("S1").unwrap(),
        };
        let claims: HashMap<String, String> = [("sub", "m"), ("role", "monitor"), ("sites", "S1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let caller = Caller::from_claims(&claims).unwrap();
        let found = SubjectInstances {
            instances: vec![
                instance("1.1", "1.1.2", "1.1.2.1", "S1", 3),
                instance("1.1", "1.1.1", "1.1.1.2", "S1", 2),
                instance("1.1", "1.1.1", "1.1.1.1", "S1", 1),
                instance("2.2", "2.2.1", "2.2.1.1", "S1", 9),
                // Not at a site the caller reads (cannot happen for one subject; dropped anyway).
                instance("3.3", "3.3.1", "3.3.1.1", "S2", 5),
            ],
            complete: true,
        };
        let v =
            serde_json::to_value(SubjectImaging::build(&subject, &caller, None, found)).unwrap();
        assert_eq!(v["summary"]["instances"], 0);
        let studies = v["studies"].as_array().unwrap();
        assert_eq!(studies.len(), 2);
        assert_eq!(studies[0]["studyInstanceUid"], "2.2");
        let first = &studies[1];
        assert_eq!(first["seriesCount"], 2);
        assert_eq!(first["instanceCount"], 3);
        assert_eq!(first["modalities"], json!(["MR"]));
        assert_eq!(first["studyDate"], "20260103");
        assert_eq!(first["firstReceivedAt"], "2026-11-27T10:01:00.000Z");
        assert_eq!(first["lastReceivedAt"], "2026-11-27T10:03:00.000Z");
        assert_eq!(first["series"][0]["seriesInstanceUid"], "1.1.1");
        assert_eq!(
            first["series"][0]["instances"][0]["sopInstanceUid"],
            "1.1.1.1"
        );
        assert!(first["series"][0]["instances"][0]
            .get("objectKey")
            .is_none());
    }
}
