//! An HTTP adapter per source, so a deployment can point a source at an external system (an EDC
//! vendor's API, an ePRO platform). Each is configured by a base URL and a timeout
//! (`<SOURCE>_URL`, `<SOURCE>_TIMEOUT_MS`; see [`super::aggregate::SourceConfig`]).
//!
//! ## The JSON contract (also in openapi.yaml, `components.schemas.Source*`)
//! Every call is a `GET` with `Accept: application/json`; `{id}` is the subject id
//! (`[A-Za-z0-9._-]`, so it needs no escaping). `200` with the body below; `404`: the source does
//! not know the subject (demographics: no such subject; the others: no data); `429` or `5xx`:
//! unavailable; anything else, or a body outside the contract: a broken source. Unknown fields are
//! ignored; values are checked as strictly as the clinical routes check them.
//!
//! - demographics, `GET {base}/subjects/{id}` →
//!   `{"subjectId","trialId","siteId","subjectKey","sex":"F|M|U","birthYear":1961,
//!     "enrolledOn":"YYYY-MM-DD","status":"ENROLLED|COMPLETED|WITHDRAWN"}`
//! - EDC, `GET {base}/subjects/{id}/forms` →
//!   `{"forms":[{"formOid":"VS|LB|AE|CM","itemGroups":[...]}]}` (the item groups exactly as
//!   `PUT /v1/subjects/{id}/forms/{formOid}` takes them, checked against the same catalogue)
//! - ePRO, `GET {base}/subjects/{id}/diary?since=<RFC 3339 UTC>` →
//!   `{"entries":[{"entryId","recordedAt","painScore":0..10,"symptoms":["NAUSEA"],"diaryCompleted":true}]}`
//! - imaging, `GET {base}/subjects/{id}/imaging-summary` →
//!   `{"studies","series","instances","lastStudyDate","pending","quarantined","failed","patientMismatches"}`
//!
//! A late call is cancelled by dropping its future: reqwest then drops the connection, so the
//! source sees its client go away (tests/api/report.rs proves it).

use super::sources::*;
use crate::clinical::epro::{EproEntry, PainScore, Symptom};
use crate::clinical::forms::{FormData, FormOid};
use crate::clinical::subject::{Sex, SubjectRecord, SubjectStatus};
use crate::domain::{SiteId, SubjectId, SubjectKey, TrialId};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Largest body a source may answer (a year of diaries is well under it).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One source's HTTP endpoint.
#[derive(Debug, Clone)]
pub struct HttpSource {
    client: reqwest::Client,
    base: String,
    name: SourceName,
}

impl HttpSource {
    /// `base` without its trailing `/`; `timeout` bounds each request (connect included), besides
    /// the budget the aggregator gives it.
    pub fn new(name: SourceName, base: &str, timeout: Duration) -> Result<Self, String> {
        let base = base.trim_end_matches('/').to_owned();
        // Plain http only, for now: reqwest is built without TLS. Its rustls "no-provider" feature
        // would make every other reqwest client in the process panic unless a provider is
        // installed first, and the ring variant adds a second crypto library to the Lambda build
        // (README, Known gaps). An external source is reached over http on a private network
        // (a VPC endpoint or a TLS-terminating sidecar) until then.
        if !base.starts_with("http://") {
            return Err(format!(
                "{}_URL must be an http:// URL (https is not built in yet)",
                name.env_prefix()
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("{} HTTP client: {e}", name.as_str()))?;
        Ok(Self { client, base, name })
    }

    /// The body of a 200 (`None` for a 404).
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<Value>, SourceError> {
        let operation = self.name.as_str();
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(query)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                // The URL is the operator's, the subject id is in it: log the kind of failure only.
                tracing::warn!(
                    source = operation,
                    timeout = e.is_timeout(),
                    connect = e.is_connect(),
                    "source call failed"
                );
                SourceError::Unavailable(format!("{operation}: request failed"))
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            tracing::warn!(
                source = operation,
                status = status.as_u16(),
                "source unavailable"
            );
            return Err(SourceError::Unavailable(format!("{operation}: {status}")));
        }
        if !status.is_success() {
            tracing::warn!(
                source = operation,
                status = status.as_u16(),
                "source refused the call"
            );
            return Err(SourceError::Malformed(format!("{operation}: {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(SourceError::Malformed(format!(
                "{operation}: body too large"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|_| SourceError::Unavailable(format!("{operation}: body not received")))?;
        if bytes.len() > MAX_BODY {
            return Err(SourceError::Malformed(format!(
                "{operation}: body too large"
            )));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| SourceError::Malformed(format!("{operation}: body is not JSON")))
    }
}

fn malformed(what: &str) -> SourceError {
    SourceError::Malformed(what.to_owned())
}

fn text<'a>(v: &'a Value, k: &str) -> Result<&'a str, SourceError> {
    v.get(k).and_then(Value::as_str).ok_or_else(|| malformed(k))
}

/// The demographics contract's body as a [`SubjectRecord`]. The record's enrolment metadata
/// (`enrolledBy`, `enrolledAt`) is ours; an external system's record gets `external` and the start
/// of its enrolment day.
pub fn subject_record(v: &Value) -> Result<SubjectRecord, SourceError> {
    let enrolled_on = NaiveDate::parse_from_str(text(v, "enrolledOn")?, "%Y-%m-%d")
        .map_err(|_| malformed("enrolledOn"))?;
    Ok(SubjectRecord {
        id: SubjectId::parse(text(v, "subjectId")?).map_err(|_| malformed("subjectId"))?,
        trial: TrialId::parse(text(v, "trialId")?).map_err(|_| malformed("trialId"))?,
        site: SiteId::parse(text(v, "siteId")?).map_err(|_| malformed("siteId"))?,
        subject_key: SubjectKey::parse(text(v, "subjectKey")?)
            .map_err(|_| malformed("subjectKey"))?,
        sex: Sex::parse(text(v, "sex")?).ok_or_else(|| malformed("sex"))?,
        birth_year: v
            .get("birthYear")
            .and_then(Value::as_i64)
            .and_then(|y| i32::try_from(y).ok())
            .filter(|y| (1900..=2100).contains(y))
            .ok_or_else(|| malformed("birthYear"))?,
        enrolled_on,
        status: SubjectStatus::parse(text(v, "status")?).ok_or_else(|| malformed("status"))?,
        enrolled_by: "external".into(),
        enrolled_at: enrolled_on
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or_else(|| malformed("enrolledOn"))?,
    })
}

/// The EDC contract's body as checked forms.
pub fn forms(v: &Value, today: NaiveDate) -> Result<Vec<FormData>, SourceError> {
    let list = v
        .get("forms")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("forms"))?;
    let mut seen = BTreeSet::new();
    list.iter()
        .map(|f| {
            let oid = FormOid::parse(text(f, "formOid")?).ok_or_else(|| malformed("formOid"))?;
            if !seen.insert(oid) {
                return Err(malformed("formOid repeated"));
            }
            FormData::parse(oid, f, today).map_err(|_| malformed("itemGroups"))
        })
        .collect()
}

/// The ePRO contract's body as diary entries of `subject`, oldest first.
pub fn diary(v: &Value, subject: &SubjectId) -> Result<Vec<EproEntry>, SourceError> {
    let list = v
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("entries"))?;
    let mut entries = list
        .iter()
        .map(|e| {
            let recorded_at = DateTime::parse_from_rfc3339(text(e, "recordedAt")?)
                .map_err(|_| malformed("recordedAt"))?
                .with_timezone(&Utc);
            let symptoms = match e.get("symptoms") {
                None | Some(Value::Null) => BTreeSet::new(),
                Some(Value::Array(s)) => s
                    .iter()
                    .map(|s| s.as_str().and_then(Symptom::parse))
                    .collect::<Option<BTreeSet<_>>>()
                    .ok_or_else(|| malformed("symptoms"))?,
                Some(_) => return Err(malformed("symptoms")),
            };
            Ok(EproEntry {
                id: text(e, "entryId")?.to_owned(),
                subject: subject.clone(),
                recorded_at,
                pain_score: e
                    .get("painScore")
                    .and_then(Value::as_i64)
                    .and_then(PainScore::new)
                    .ok_or_else(|| malformed("painScore"))?,
                symptoms,
                diary_completed: e
                    .get("diaryCompleted")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| malformed("diaryCompleted"))?,
                received_at: recorded_at,
                submitted_by: "external".into(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.recorded_at);
    Ok(entries)
}

#[async_trait]
impl Demographics for HttpSource {
    async fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, SourceError> {
        let Some(body) = self.get(&format!("/subjects/{id}"), &[]).await? else {
            return Ok(None);
        };
        let record = subject_record(&body)?;
        // A source that answers for another subject is broken, not a subject.
        if &record.id != id {
            return Err(malformed("subjectId is not the one asked for"));
        }
        Ok(Some(record))
    }
}

#[async_trait]
impl EdcSource for HttpSource {
    async fn forms(&self, id: &SubjectId) -> Result<Vec<FormData>, SourceError> {
        match self.get(&format!("/subjects/{id}/forms"), &[]).await? {
            Some(body) => forms(&body, Utc::now().date_naive()),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl EproSource for HttpSource {
    async fn diary(
        &self,
        id: &SubjectId,
        since: DateTime<Utc>,
    ) -> Result<Vec<EproEntry>, SourceError> {
        let since = since.to_rfc3339_opts(SecondsFormat::Millis, true);
        match self
            .get(&format!("/subjects/{id}/diary"), &[("since", since)])
            .await?
        {
            Some(body) => diary(&body, id),
            None => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ImagingSource for HttpSource {
    async fn imaging(&self, id: &SubjectId) -> Result<ImagingStatus, SourceError> {
        match self
            .get(&format!("/subjects/{id}/imaging-summary"), &[])
            .await?
        {
            Some(body) => ImagingStatus::from_summary(&body),
            None => Ok(ImagingStatus::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn http_sources_are_configured_and_other_schemes_refused_at_start() {
        let t = Duration::from_secs(1);
        assert!(HttpSource::new(SourceName::Edc, "http://10.0.0.7:8080/api/", t).is_ok());
        // Refused when the function starts (a configuration error), not on the first request.
        let https = HttpSource::new(SourceName::Edc, "https://edc.example.org", t).unwrap_err();
        assert!(https.contains("EDC_URL"), "{https}");
        assert!(HttpSource::new(SourceName::Epro, "ftp://epro.example.org", t).is_err());
    }

    #[test]
    fn parses_each_contract() {
        let r = subject_record(
            &json!({"subjectId": "SUBJ-1", "trialId": "T1", "siteId": "S1",
            "subjectKey": "BOS-0001", "sex": "F", "birthYear": 1961, "enrolledOn": "2026-01-15",
            "status": "ENROLLED", "extra": "ignored"}),
        )
        .unwrap();
        assert_eq!((r.site.as_str(), r.birth_year), ("S1", 1961));
        assert!(subject_record(&json!({"subjectId": "SUBJ-1"})).is_err());

        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let f = forms(
            &json!({"forms": [{"formOid": "AE", "itemGroups": [{"itemGroupOid": "IG.AE",
            "repeatKey": 1, "items": {"AETERM": "Pneumonia", "AESTDTC": "2026-10-01", "AESER": "Y",
            "AESEV": "SEVERE", "AEOUT": "RECOVERING"}}]}]}),
            today,
        )
        .unwrap();
        assert!(f[0].adverse_events()[0].serious);
        assert!(forms(
            &json!({"forms": [{"formOid": "XX", "itemGroups": []}]}),
            today
        )
        .is_err());

        let id = SubjectId::parse("SUBJ-1").unwrap();
        let d = diary(&json!({"entries": [
            {"entryId": "b", "recordedAt": "2026-11-02T08:00:00Z", "painScore": 3, "diaryCompleted": true},
            {"entryId": "a", "recordedAt": "2026-11-01T08:00:00+01:00", "painScore": 2,
             "symptoms": ["NAUSEA"], "diaryCompleted": false}]}), &id)
        .unwrap();
        assert_eq!(d[0].id, "a");
        assert_eq!(d[0].pain_score.value(), 2);
        assert!(diary(
            &json!({"entries": [{"entryId": "a", "recordedAt": "2026-11-01T08:00:00Z",
            "painScore": 11, "diaryCompleted": true}]}),
            &id
        )
        .is_err());

        let i = ImagingStatus::from_summary(&json!({"pending": 1, "quarantined": 2,
            "patientMismatches": 1, "lastStudyDate": "20261101"}))
        .unwrap();
        assert_eq!(
            (i.pending, i.quarantined, i.patient_mismatches, i.failed),
            (1, 2, 1, 0)
        );
        assert!(ImagingStatus::from_summary(&json!({"pending": -1})).is_err());
    }
}
