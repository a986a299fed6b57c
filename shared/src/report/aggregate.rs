//! The fan-out: every source at once, each under its breaker and its budget, and the report built
//! from what came back in time.
//!
//! - All four calls start together (`tokio::try_join!`): the report takes about as long as its
//!   slowest source, not the sum.
//! - A call's budget is its source's own timeout or what is left of the deadline, whichever is
//!   less. When it runs out, the call's future is dropped — that cancels it (reqwest closes the
//!   connection; an SDK call is abandoned) — and its breaker counts a failure. A call abandoned
//!   because the report itself was refused (no such subject, out of scope) counts as nothing.
//! - A source whose breaker drops the call is not called at all.
//! - Demographics decides: no subject, or one the caller may not see, stops the report at once and
//!   drops the calls still running; demographics unavailable is a 503 (a report cannot be scoped
//!   without it). The caller's gate (scope check, audit of the read) runs as soon as demographics
//!   answers, while the other sources are still on their way.
//! - Any other source failing, late or broken-open: its section says `available: false` and why
//!   (`timeout`, `unavailable`, `circuit_open`), and the report is `degraded`.

use super::risk::{self, Assessment, DiarySummary};
use super::sources::*;
use crate::clinical::epro::EproEntry;
use crate::clinical::forms::{FormData, RangeFlag};
use crate::clinical::subject::SubjectRecord;
use crate::domain::SubjectId;
use crate::problem::Problem;
use crate::resilience::breaker::Breaker;
use crate::resilience::deadline::Deadline;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a section is missing. Generic on purpose: the details are in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// The call did not answer within its budget (and was cancelled).
    Timeout,
    /// The call failed or answered outside its contract.
    Unavailable,
    /// The source's breaker dropped the call: it was not made.
    CircuitOpen,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// A source's own timeout (`<SOURCE>_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy)]
pub struct SourceConfig {
    pub timeout: Duration,
}

/// A port with its breaker (held for the life of the execution environment) and its timeout.
struct Guarded<P: ?Sized> {
    name: SourceName,
    port: Arc<P>,
    breaker: Arc<Breaker>,
    timeout: Duration,
}

impl<P: ?Sized> Guarded<P> {
    fn new(name: SourceName, port: Arc<P>, config: SourceConfig) -> Self {
        Self {
            name,
            port,
            breaker: Arc::new(Breaker::new()),
            timeout: config.timeout,
        }
    }

    /// Runs `call` under the breaker and the budget. `call` is not polled (so nothing is sent)
    /// unless the breaker lets it through; past the budget it is dropped (cancelled).
    async fn run<T>(
        &self,
        deadline: Deadline,
        call: impl Future<Output = Result<T, SourceError>>,
    ) -> Result<T, Unavailable> {
        let source = self.name.as_str();
        let Ok(permit) = self.breaker.allow() else {
            tracing::warn!(source, reason = "circuit_open", "report source skipped");
            count(self.name, Unavailable::CircuitOpen);
            return Err(Unavailable::CircuitOpen);
        };
        let budget = deadline.budget(self.timeout);
        let started = Instant::now();
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(value)) => {
                permit.success();
                tracing::debug!(
                    source,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "report source answered"
                );
                Ok(value)
            }
            Ok(Err(e)) => {
                permit.failure();
                // The error names the operation, never a value read.
                tracing::warn!(source, error = %e, "report source failed");
                count(self.name, Unavailable::Unavailable);
                Err(Unavailable::Unavailable)
            }
            Err(_) => {
                permit.failure();
                tracing::warn!(
                    source,
                    budget_ms = budget.as_millis() as u64,
                    "report source timed out; call cancelled"
                );
                count(self.name, Unavailable::Timeout);
                Err(Unavailable::Timeout)
            }
        }
    }
}

fn count(source: SourceName, reason: Unavailable) {
    crate::metrics::Metrics::new("subject-report")
        .dimension("Source", source.as_str())
        .dimension("Reason", reason.as_str())
        .count("SourceUnavailable", 1)
        .emit();
}

/// The report's sources, each guarded. Built once per execution environment, so each breaker
/// sees every request this environment serves.
pub struct Aggregator {
    demographics: Guarded<dyn Demographics>,
    edc: Guarded<dyn EdcSource>,
    epro: Guarded<dyn EproSource>,
    imaging: Guarded<dyn ImagingSource>,
}

/// What the gate decided about the subject demographics found.
pub type Gate = Result<SubjectRecord, Problem>;

/// What the sources gave.
pub struct Gathered {
    pub subject: SubjectRecord,
    pub forms: Result<Vec<FormData>, Unavailable>,
    pub diary: Result<Vec<EproEntry>, Unavailable>,
    pub imaging: Result<ImagingStatus, Unavailable>,
}

impl Aggregator {
    pub fn new(
        demographics: (Arc<dyn Demographics>, SourceConfig),
        edc: (Arc<dyn EdcSource>, SourceConfig),
        epro: (Arc<dyn EproSource>, SourceConfig),
        imaging: (Arc<dyn ImagingSource>, SourceConfig),
    ) -> Self {
        Self {
            demographics: Guarded::new(SourceName::Demographics, demographics.0, demographics.1),
            edc: Guarded::new(SourceName::Edc, edc.0, edc.1),
            epro: Guarded::new(SourceName::Epro, epro.0, epro.1),
            imaging: Guarded::new(SourceName::Imaging, imaging.0, imaging.1),
        }
    }

    /// Replaces a source's breaker (tests give one a manual clock and a fixed draw).
    pub fn with_breaker(mut self, source: SourceName, breaker: Breaker) -> Self {
        let breaker = Arc::new(breaker);
        match source {
            SourceName::Demographics => self.demographics.breaker = breaker,
            SourceName::Edc => self.edc.breaker = breaker,
            SourceName::Epro => self.epro.breaker = breaker,
            SourceName::Imaging => self.imaging.breaker = breaker,
        }
        self
    }

    /// The breaker of a source (its state is what tests and metrics look at).
    pub fn breaker(&self, source: SourceName) -> &Breaker {
        match source {
            SourceName::Demographics => &self.demographics.breaker,
            SourceName::Edc => &self.edc.breaker,
            SourceName::Epro => &self.epro.breaker,
            SourceName::Imaging => &self.imaging.breaker,
        }
    }

    /// Reads every source at once. `gate` gets what demographics found (`None`: no such subject)
    /// and says whether the report goes on (the scope check and the read's audit entry); its
    /// problem, or demographics being unavailable (503), ends the report at once, cancelling the
    /// calls still running.
    pub async fn gather<G, F>(
        &self,
        id: &SubjectId,
        deadline: Deadline,
        now: DateTime<Utc>,
        gate: G,
    ) -> Result<Gathered, Problem>
    where
        G: FnOnce(Option<SubjectRecord>) -> F,
        F: Future<Output = Gate>,
    {
        let since = risk::diary_since(now.date_naive());
        let subject = async {
            match self
                .demographics
                .run(deadline, self.demographics.port.subject(id))
                .await
            {
                // The scope check and the read's audit entry: bounded by what is left of the
                // deadline too, so a slow audit write ends in a 503, never in Lambda's kill.
                Ok(found) => match tokio::time::timeout(deadline.remaining(), gate(found)).await {
                    Ok(gated) => gated,
                    Err(_) => Err(Problem::unavailable()),
                },
                Err(_) => Err(Problem::unavailable()),
            }
        };
        // The optional sources never fail the join: their outcome is their section.
        let forms = async { Ok(self.edc.run(deadline, self.edc.port.forms(id)).await) };
        let diary = async {
            Ok(self
                .epro
                .run(deadline, self.epro.port.diary(id, since))
                .await)
        };
        let imaging = async {
            Ok(self
                .imaging
                .run(deadline, self.imaging.port.imaging(id))
                .await)
        };
        let (subject, forms, diary, imaging) = tokio::try_join!(subject, forms, diary, imaging)?;
        Ok(Gathered {
            subject,
            forms,
            diary,
            imaging,
        })
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A section of the report: its data, or why it is missing.
#[derive(Debug, Clone)]
pub enum Section<T> {
    Available(T),
    Unavailable(Unavailable),
}

impl<T: Serialize> Serialize for Section<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        match self {
            Self::Available(data) => {
                let mut v = serde_json::to_value(data).map_err(S::Error::custom)?;
                if let Some(fields) = v.as_object_mut() {
                    fields.insert("available".into(), true.into());
                }
                v.serialize(s)
            }
            Self::Unavailable(reason) => {
                serde_json::json!({"available": false, "reason": reason.as_str()}).serialize(s)
            }
        }
    }
}

impl<T> Section<T> {
    fn of(r: Result<T, Unavailable>) -> Self {
        match r {
            Ok(v) => Self::Available(v),
            Err(e) => Self::Unavailable(e),
        }
    }

    fn is_available(&self) -> bool {
        matches!(self, Self::Available(_))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemographicsSection {
    pub subject_key: String,
    pub sex: &'static str,
    pub birth_year: i32,
    /// Whole years at the report's date, as far as a birth year tells (the lower bound).
    pub age_years: i32,
    pub enrolled_on: NaiveDate,
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdverseEventView {
    pub term: String,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub serious: bool,
    pub severity: String,
    pub outcome: String,
    pub related: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabView {
    pub test: String,
    pub date: NaiveDate,
    pub value: f64,
    pub unit: String,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// `LOW`/`HIGH` outside the reference range, `null` inside it or without one.
    pub flag: Option<RangeFlag>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VitalSignsView {
    pub date: NaiveDate,
    pub systolic: i64,
    pub diastolic: i64,
    pub pulse: Option<i64>,
    pub temperature_c: Option<f64>,
    pub weight_kg: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationView {
    /// WHO ATC code (names come with the reference-data cache).
    pub drug_code: String,
    pub dose: Option<f64>,
    pub dose_unit: Option<String>,
    pub route: Option<String>,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdcSection {
    pub adverse_events: Vec<AdverseEventView>,
    /// Newest first.
    pub labs: Vec<LabView>,
    /// Newest first.
    pub vital_signs: Vec<VitalSignsView>,
    pub medications: Vec<MedicationView>,
}

impl EdcSection {
    fn of(forms: &[FormData]) -> Self {
        let mut labs: Vec<LabView> = forms
            .iter()
            .flat_map(FormData::labs)
            .map(|l| LabView {
                flag: l.out_of_range(),
                test: l.test,
                date: l.date,
                value: l.value,
                unit: l.unit,
                low: l.low,
                high: l.high,
            })
            .collect();
        labs.sort_by(|a, b| b.date.cmp(&a.date).then(a.test.cmp(&b.test)));
        let mut vital_signs: Vec<VitalSignsView> = forms
            .iter()
            .flat_map(FormData::vital_signs)
            .map(|v| VitalSignsView {
                date: v.date,
                systolic: v.systolic,
                diastolic: v.diastolic,
                pulse: v.pulse,
                temperature_c: v.temperature_c,
                weight_kg: v.weight_kg,
            })
            .collect();
        vital_signs.sort_by_key(|v| std::cmp::Reverse(v.date));
        Self {
            adverse_events: forms
                .iter()
                .flat_map(FormData::adverse_events)
                .map(|a| AdverseEventView {
                    term: a.term,
                    start: a.start,
                    end: a.end,
                    serious: a.serious,
                    severity: a.severity,
                    outcome: a.outcome,
                    related: a.related,
                })
                .collect(),
            labs,
            vital_signs,
            medications: forms
                .iter()
                .flat_map(FormData::medications)
                .map(|m| MedicationView {
                    drug_code: m.drug_code,
                    dose: m.dose,
                    dose_unit: m.dose_unit,
                    route: m.route,
                    start: m.start,
                    end: m.end,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EproSection {
    #[serde(flatten)]
    pub summary: DiarySummary,
    #[serde(serialize_with = "optional_rfc3339")]
    pub last_recorded_at: Option<DateTime<Utc>>,
}

fn optional_rfc3339<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// `GET /v1/subjects/{subjectId}/report`'s body.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub subject_id: String,
    pub trial_id: String,
    pub site_id: String,
    #[serde(serialize_with = "rfc3339")]
    pub generated_at: DateTime<Utc>,
    /// True when an optional section is unavailable.
    pub degraded: bool,
    pub demographics: DemographicsSection,
    pub edc: Section<EdcSection>,
    pub epro: Section<EproSection>,
    pub imaging: Section<ImagingStatus>,
    pub risk: Assessment,
}

impl Report {
    pub fn edc_available(&self) -> bool {
        self.edc.is_available()
    }

    pub fn epro_available(&self) -> bool {
        self.epro.is_available()
    }

    pub fn imaging_available(&self) -> bool {
        self.imaging.is_available()
    }

    pub fn build(g: Gathered, now: DateTime<Utc>) -> Self {
        let today = now.date_naive();
        let s = &g.subject;
        let assessment = risk::assess(&risk::Inputs {
            today,
            enrolled_on: s.enrolled_on,
            forms: g.forms.as_deref().ok(),
            diary: g.diary.as_deref().ok(),
            imaging: g.imaging.as_ref().ok(),
        });
        let edc = Section::of(g.forms.as_deref().map(EdcSection::of).map_err(|e| *e));
        let epro = Section::of(g.diary.as_deref().map_err(|e| *e).map(|d| EproSection {
            summary: DiarySummary::of(d, today, s.enrolled_on),
            last_recorded_at: d.iter().map(|e| e.recorded_at).max(),
        }));
        let imaging = Section::of(g.imaging.clone());
        Self {
            subject_id: s.id.to_string(),
            trial_id: s.trial.to_string(),
            site_id: s.site.to_string(),
            generated_at: now,
            degraded: !(edc.is_available() && epro.is_available() && imaging.is_available()),
            demographics: DemographicsSection {
                subject_key: s.subject_key.as_str().to_owned(),
                sex: s.sex.as_str(),
                birth_year: s.birth_year,
                age_years: s.age_on(today),
                enrolled_on: s.enrolled_on,
                status: s.status.as_str(),
            },
            edc,
            epro,
            imaging,
            risk: assessment,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::subject::{Sex, SubjectStatus};
    use crate::domain::{SiteId, SubjectKey, TrialId};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn record() -> SubjectRecord {
        SubjectRecord {
            id: SubjectId::parse("SUBJ-1").unwrap(),
            trial: TrialId::parse("T1").unwrap(),
            site: SiteId::parse("S1").unwrap(),
            subject_key: SubjectKey::parse("BOS-0001").unwrap(),
            sex: Sex::Female,
            birth_year: 1961,
            enrolled_on: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
            status: SubjectStatus::Enrolled,
            enrolled_by: "staff".into(),
            enrolled_at: "2026-01-15T09:00:00Z".parse().unwrap(),
        }
    }

    /// A scripted source: answers after `delay`, or fails; counts its calls and how many of them
    /// ran to the end (a cancelled call never does).
    struct Scripted {
        delay: Duration,
        fail: bool,
        calls: AtomicUsize,
        finished: AtomicUsize,
    }

    impl Scripted {
        fn new(delay_ms: u64, fail: bool) -> Arc<Self> {
            Arc::new(Self {
                delay: Duration::from_millis(delay_ms),
                fail,
                calls: AtomicUsize::new(0),
                finished: AtomicUsize::new(0),
            })
        }

        async fn answer<T>(&self, v: T) -> Result<T, SourceError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.finished.fetch_add(1, Ordering::SeqCst);
            if self.fail {
                Err(SourceError::Unavailable("scripted".into()))
            } else {
                Ok(v)
            }
        }
    }

    #[async_trait]
    impl Demographics for Scripted {
        async fn subject(&self, _: &SubjectId) -> Result<Option<SubjectRecord>, SourceError> {
            self.answer(Some(record())).await
        }
    }
    #[async_trait]
    impl EdcSource for Scripted {
        async fn forms(&self, _: &SubjectId) -> Result<Vec<FormData>, SourceError> {
            self.answer(Vec::new()).await
        }
    }
    #[async_trait]
    impl EproSource for Scripted {
        async fn diary(
            &self,
            _: &SubjectId,
            _: DateTime<Utc>,
        ) -> Result<Vec<EproEntry>, SourceError> {
            self.answer(Vec::new()).await
        }
    }
    #[async_trait]
    impl ImagingSource for Scripted {
        async fn imaging(&self, _: &SubjectId) -> Result<ImagingStatus, SourceError> {
            self.answer(ImagingStatus::default()).await
        }
    }

    fn timeout(ms: u64) -> SourceConfig {
        SourceConfig {
            timeout: Duration::from_millis(ms),
        }
    }

    fn aggregator(
        d: &Arc<Scripted>,
        e: &Arc<Scripted>,
        p: &Arc<Scripted>,
        i: &Arc<Scripted>,
    ) -> Aggregator {
        Aggregator::new(
            (d.clone(), timeout(1_000)),
            (e.clone(), timeout(1_000)),
            (p.clone(), timeout(1_000)),
            (i.clone(), timeout(1_000)),
        )
    }

    fn now() -> DateTime<Utc> {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    async fn pass(found: Option<SubjectRecord>) -> Gate {
        found.ok_or_else(|| Problem::not_found("No such subject at your sites."))
    }

    #[tokio::test(start_paused = true)]
    async fn sources_run_concurrently_and_a_late_one_is_cut_at_its_budget() {
        let (d, e, p, i) = (
            Scripted::new(100, false),
            Scripted::new(150, false),
            Scripted::new(5_000, false),
            Scripted::new(200, false),
        );
        let agg = aggregator(&d, &e, &p, &i);
        let id = SubjectId::parse("SUBJ-1").unwrap();
        let started = tokio::time::Instant::now();
        let g = agg
            .gather(&id, Deadline::after(Duration::from_secs(10)), now(), pass)
            .await
            .unwrap();
        // The ePRO source's own timeout (1 s) cuts it; the others answered meanwhile.
        assert_eq!(started.elapsed(), Duration::from_millis(1_000));
        assert!(g.forms.is_ok() && g.imaging.is_ok());
        assert_eq!(g.diary.err(), Some(Unavailable::Timeout));
        assert_eq!(
            p.finished.load(Ordering::SeqCst),
            0,
            "the late call was dropped"
        );
        let report = serde_json::to_value(Report::build(
            Gathered {
                subject: record(),
                forms: Ok(vec![]),
                diary: Err(Unavailable::Timeout),
                imaging: Ok(ImagingStatus::default()),
            },
            now(),
        ))
        .unwrap();
        assert_eq!(report["degraded"], true);
        assert_eq!(
            report["epro"],
            serde_json::json!({"available": false, "reason": "timeout"})
        );
        assert_eq!(report["edc"]["available"], true);
        assert_eq!(report["risk"]["unassessed"], serde_json::json!(["epro"]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_every_budget() {
        let (d, e, p, i) = (
            Scripted::new(10, false),
            Scripted::new(900, false),
            Scripted::new(10, false),
            Scripted::new(10, false),
        );
        let agg = aggregator(&d, &e, &p, &i);
        let id = SubjectId::parse("SUBJ-1").unwrap();
        let started = tokio::time::Instant::now();
        let g = agg
            .gather(
                &id,
                Deadline::after(Duration::from_millis(300)),
                now(),
                pass,
            )
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(g.forms.err(), Some(Unavailable::Timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn demographics_decides() {
        let id = SubjectId::parse("SUBJ-1").unwrap();
        let deadline = || Deadline::after(Duration::from_secs(10));
        // Unavailable demographics: 503, whatever the others say.
        let (d, e, p, i) = (
            Scripted::new(10, true),
            Scripted::new(500, false),
            Scripted::new(10, false),
            Scripted::new(10, false),
        );
        let agg = aggregator(&d, &e, &p, &i);
        let started = tokio::time::Instant::now();
        let err = agg
            .gather(&id, deadline(), now(), pass)
            .await
            .err()
            .unwrap();
        assert_eq!(err.status, 503);
        // It ended when demographics failed, and the slow EDC call was dropped.
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        assert_eq!(e.finished.load(Ordering::SeqCst), 0);
        // A gate refusal (out of scope) ends it the same way, as the gate's problem.
        let (d, e, p, i) = (
            Scripted::new(10, false),
            Scripted::new(500, false),
            Scripted::new(10, false),
            Scripted::new(10, false),
        );
        let agg = aggregator(&d, &e, &p, &i);
        let err = agg
            .gather(&id, deadline(), now(), |_| async {
                Err(Problem::not_found("No such subject at your sites."))
            })
            .await
            .err()
            .unwrap();
        assert_eq!(err.status, 404);
        assert_eq!(e.finished.load(Ordering::SeqCst), 0);
        // The abandoned EDC call is not held against EDC: its breaker saw nothing.
        assert_eq!(agg.breaker(SourceName::Edc).history().total, 0);
        assert_eq!(agg.breaker(SourceName::Demographics).history().accepts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_source_opens_its_breaker_and_is_no_longer_called() {
        let (d, e, p, i) = (
            Scripted::new(1, false),
            Scripted::new(1, true),
            Scripted::new(1, false),
            Scripted::new(1, false),
        );
        use crate::resilience::breaker::{FixedChance, ManualClock};
        // Every draw is 0.5: a call is dropped once the ratio exceeds 0.5. The clock stands still
        // (no forced probe).
        let agg = aggregator(&d, &e, &p, &i).with_breaker(
            SourceName::Edc,
            Breaker::with(
                Arc::new(ManualClock::at(Duration::from_secs(1))),
                Arc::new(FixedChance::new(0.5)),
            ),
        );
        let id = SubjectId::parse("SUBJ-1").unwrap();
        let mut reasons = Vec::new();
        for _ in 0..40 {
            let g = agg
                .gather(&id, Deadline::after(Duration::from_secs(10)), now(), pass)
                .await
                .unwrap();
            reasons.push(g.forms.err().unwrap());
        }
        // The first 5 failures are within go-zero's protection; after that the drop ratio
        // (total − 5)/(total + 1) climbs towards 1 and most calls are dropped before they are made.
        assert!(reasons[..6].iter().all(|r| *r == Unavailable::Unavailable));
        let open = reasons
            .iter()
            .filter(|r| **r == Unavailable::CircuitOpen)
            .count();
        assert!(open >= 20, "{open} of 40 dropped");
        assert_eq!(e.calls.load(Ordering::SeqCst), 40 - open);
        // The healthy sources' breakers never dropped a call.
        assert_eq!(p.calls.load(Ordering::SeqCst), 40);
    }
}
