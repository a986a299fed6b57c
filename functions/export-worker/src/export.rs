//! One export, start to end: claim it, count its rows, stream the subject's history into the file
//! while uploading it to S3 part by part, then mark it `DONE` — or abort the upload and mark it
//! `FAILED` with a reason, so no half-written object is ever offered.
//!
//! Memory: the CSV is appended to one buffer that is shipped as a multipart part each time it
//! reaches [`PART_SIZE`] (S3's minimum part, 5 MiB), and the diary is read a page at a time, so
//! the worker holds at most a part plus a page however long the history. The PDF holds the
//! diary's per-day aggregates and the forms, then its rendered bytes (bounded, see [`crate::pdf`]).
//!
//! Idempotency: the claim is a conditional write (`QUEUED → RUNNING` under a lease naming this
//! attempt); every progress write and the final `DONE` name the attempt too. A redelivered message
//! finds the export terminal (nothing to do) or leased (it comes back later; by then the lease has
//! expired or the export is terminal). The object key is the export's own, so a takeover rewrites
//! the same object, never a second one.

use crate::csv_export::CsvExport;
use crate::pain::PainSeries;
use crate::pdf::{self, NamedMedication, ReportHeader, ReportInput, RiskSection};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::clinical::forms::{Form, FormData, FormOid};
use shared::clinical::subject::SubjectRecord;
use shared::exports::{ExportFormat, ExportId, ExportJob};
use shared::reference::cache::ReferenceCache;
use shared::reference::{ReferenceKind, ReferenceValue};
use shared::report::risk;
use shared::report::sources::{EproSource, ImagingSource};
use shared::store::clinical::{EproDiary, EproPosition, Forms, SubjectRecords};
use shared::store::exports::{
    Claimed, DiaryCount, ExportJobs, ExportObjects, FailedBy, UploadedPart,
};
use shared::store::StoreError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// S3's minimum size of every part but the last.
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Diary entries read per page.
pub const DIARY_PAGE: usize = 1000;

/// Drug names by ATC code, from the reference data when it is there.
#[async_trait]
pub trait DrugNames: Send + Sync {
    async fn names(&self, codes: &[String]) -> BTreeMap<String, String>;
}

#[async_trait]
impl DrugNames for ReferenceCache {
    async fn names(&self, codes: &[String]) -> BTreeMap<String, String> {
        self.revalidate_if_due().await;
        self.read(|loaded| {
            let Some(loaded) = loaded else {
                return BTreeMap::new();
            };
            codes
                .iter()
                .filter_map(|c| match loaded.snapshot.get(ReferenceKind::DrugCode, c) {
                    Some(ReferenceValue::Drug(d)) => Some((c.clone(), d.name.clone())),
                    _ => None,
                })
                .collect()
        })
    }
}

/// Where the risk summary comes from (the subject report's risk score).
#[async_trait]
pub trait RiskSource: Send + Sync {
    async fn assess(&self, subject: &SubjectRecord, forms: &[Form]) -> RiskSection;
}

/// No risk source (tests of the rendering): the PDF says the risk was not assessed.
pub struct NoRisk;

#[async_trait]
impl RiskSource for NoRisk {
    async fn assess(&self, _: &SubjectRecord, _: &[Form]) -> RiskSection {
        RiskSection::NotAssessed("no risk source configured".into())
    }
}

/// The subject report's own score ([`shared::report::risk::assess`]), so the PDF and
/// `GET /v1/subjects/{id}/report` agree: over the forms the export read, the diary's last
/// [`risk::DIARY_DAYS`] days and the imaging summary. A source that cannot be read leaves its
/// rules unassessed and the score a lower bound (`complete: false`), as in the report.
pub struct ReportRisk {
    pub diary: Arc<dyn EproSource>,
    pub imaging: Arc<dyn ImagingSource>,
}

#[async_trait]
impl RiskSource for ReportRisk {
    async fn assess(&self, subject: &SubjectRecord, forms: &[Form]) -> RiskSection {
        let now = Utc::now();
        let today = now.date_naive();
        let since = risk::diary_since(today);
        let (diary, imaging) = tokio::join!(
            self.diary.diary(&subject.id, since),
            self.imaging.imaging(&subject.id)
        );
        if let Err(e) = &diary {
            tracing::warn!(error = %e, "risk: the diary could not be read; its rules are unassessed");
        }
        if let Err(e) = &imaging {
            tracing::warn!(error = %e, "risk: the imaging summary could not be read; its rules are unassessed");
        }
        let data: Vec<FormData> = forms.iter().map(|f| f.data.clone()).collect();
        let assessment = risk::assess(&risk::Inputs {
            today,
            enrolled_on: subject.enrolled_on,
            forms: Some(&data),
            diary: diary.as_deref().ok(),
            imaging: imaging.as_ref().ok(),
        });
        RiskSection::Assessed {
            score: assessment.score,
            level: assessment.level.as_str().to_owned(),
            reasons: assessment
                .reasons
                .into_iter()
                .map(|r| pdf::RiskReason {
                    points: r.points,
                    text: r.text,
                })
                .collect(),
            complete: assessment.complete,
        }
    }
}

pub struct Ports {
    pub jobs: Arc<dyn ExportJobs>,
    pub objects: Arc<dyn ExportObjects>,
    pub subjects: Arc<dyn SubjectRecords>,
    pub forms: Arc<dyn Forms>,
    pub diary: Arc<dyn EproDiary>,
    pub diary_count: Arc<dyn DiaryCount>,
    pub drugs: Arc<dyn DrugNames>,
    pub risk: Arc<dyn RiskSource>,
}

/// What one delivery of a message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done {
        rows: u64,
        bytes: u64,
    },
    /// The export was already terminal, or does not exist: nothing done.
    AlreadyFinished,
    /// Another attempt holds the lease: the message should come back later.
    Busy,
    /// Ended `FAILED` now, with this reason.
    Failed(String),
}

/// Why an attempt stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the subject no longer exists")]
    SubjectMissing,
    #[error("reading the subject's data failed")]
    Read(#[source] StoreError),
    #[error("writing the export file failed")]
    Write(#[source] StoreError),
    #[error("the export lost its lease to another attempt")]
    LeaseLost,
    #[error("rendering the file failed")]
    Render(String),
    #[error("the export did not finish within the worker's time limit")]
    OutOfTime,
}

impl ExportError {
    /// The reason stored with `FAILED`: a fixed phrase, never data.
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// Worth another delivery (the dependency was unavailable)?
    pub fn transient(&self) -> bool {
        matches!(
            self,
            Self::Read(StoreError::Unavailable(_)) | Self::Write(StoreError::Unavailable(_))
        )
    }
}

/// One delivery's hold on an export: the attempt's name, and when it must stop.
#[derive(Clone, Copy)]
struct Run<'a> {
    attempt: &'a str,
    deadline: Option<tokio::time::Instant>,
}

impl Run<'_> {
    fn out_of_time(&self) -> bool {
        self.deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d)
    }
}

/// The multipart upload in progress and the buffer that feeds it.
struct Upload<'a> {
    objects: &'a dyn ExportObjects,
    key: String,
    upload_id: String,
    parts: Vec<UploadedPart>,
    buf: Vec<u8>,
    bytes: u64,
    /// The most the buffer held (tests assert the memory bound on it).
    high_water: usize,
}

impl<'a> Upload<'a> {
    async fn start(
        objects: &'a dyn ExportObjects,
        key: String,
        content_type: &str,
    ) -> Result<Upload<'a>, ExportError> {
        let upload_id = objects
            .start(&key, content_type)
            .await
            .map_err(ExportError::Write)?;
        Ok(Self {
            objects,
            key,
            upload_id,
            parts: Vec::new(),
            buf: Vec::with_capacity(PART_SIZE + 256 * 1024),
            bytes: 0,
            high_water: 0,
        })
    }

    /// Ships the buffer as a part once it reaches [`PART_SIZE`] (or whatever is left when `last`).
    async fn ship(&mut self, last: bool) -> Result<(), ExportError> {
        self.high_water = self.high_water.max(self.buf.len());
        while self.buf.len() >= PART_SIZE || (last && !self.buf.is_empty()) {
            let take = if last && self.buf.len() < 2 * PART_SIZE {
                self.buf.len()
            } else {
                PART_SIZE
            };
            let rest = self.buf.split_off(take);
            let part = std::mem::replace(&mut self.buf, rest);
            self.bytes += part.len() as u64;
            let number = self.parts.len() as i32 + 1;
            let uploaded = self
                .objects
                .part(&self.key, &self.upload_id, number, part)
                .await
                .map_err(ExportError::Write)?;
            self.parts.push(uploaded);
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), ExportError> {
        self.ship(true).await?;
        if self.parts.is_empty() {
            // An empty file still needs one (empty) part.
            let uploaded = self
                .objects
                .part(&self.key, &self.upload_id, 1, Vec::new())
                .await
                .map_err(ExportError::Write)?;
            self.parts.push(uploaded);
        }
        self.objects
            .complete(&self.key, &self.upload_id, &self.parts)
            .await
            .map_err(ExportError::Write)
    }

    async fn abort(&self) {
        if let Err(e) = self.objects.abort(&self.key, &self.upload_id).await {
            // The bucket's lifecycle rule removes it after a day.
            tracing::error!(error = %e, "aborting the export's multipart upload failed");
        }
    }
}

pub struct Exporter {
    ports: Ports,
    /// How long an attempt's claim lives without progress (longer than the function's timeout).
    pub lease: Duration,
    /// Progress is written at most every this many rows.
    pub progress_every: u64,
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    /// The buffer's high-water mark of the last run (tests).
    pub last_high_water: std::sync::atomic::AtomicUsize,
}

impl Exporter {
    pub fn new(ports: Ports, lease: Duration) -> Self {
        Self {
            ports,
            lease,
            progress_every: 10_000,
            clock: Arc::new(Utc::now),
            last_high_water: Default::default(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Runs one delivery of "build export `id`" with no time limit (see [`Exporter::run_until`]).
    pub async fn run(&self, id: &ExportId, attempt: &str) -> Result<Outcome, StoreError> {
        self.run_until(id, attempt, None).await
    }

    /// Runs one delivery of "build export `id`". An error is only returned for what deserves a
    /// redelivery (the store unavailable); everything else ends the export `FAILED`. Past
    /// `deadline` (the invocation's, less the time to clean up) the attempt stops between pages:
    /// the upload is aborted and the export ends `FAILED`, rather than being killed mid-write.
    #[tracing::instrument(name = "export.run", skip_all, fields(export = %id))]
    pub async fn run_until(
        &self,
        id: &ExportId,
        attempt: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Outcome, StoreError> {
        let job = match self
            .ports
            .jobs
            .claim(id, attempt, self.now(), self.lease)
            .await?
        {
            Claimed::Running(job) => job,
            Claimed::Finished(_) | Claimed::Missing => return Ok(Outcome::AlreadyFinished),
            Claimed::Busy => return Ok(Outcome::Busy),
        };
        match self.build(&job, attempt, deadline).await {
            Ok((rows, bytes)) => Ok(Outcome::Done { rows, bytes }),
            Err(ExportError::LeaseLost) => Ok(Outcome::Busy),
            Err(e) if e.transient() => {
                tracing::warn!(error = %e, "export attempt stopped; the message comes back");
                Err(StoreError::Unavailable(e.reason()))
            }
            Err(e) => {
                tracing::error!(error = %e, "export failed");
                let reason = e.reason();
                if self
                    .ports
                    .jobs
                    .fail(id, FailedBy::Attempt(attempt), &reason, self.now())
                    .await?
                {
                    Ok(Outcome::Failed(reason))
                } else {
                    // Another attempt took over meanwhile: it ends the export.
                    Ok(Outcome::Busy)
                }
            }
        }
    }

    async fn build(
        &self,
        job: &ExportJob,
        attempt: &str,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(u64, u64), ExportError> {
        let subject = self
            .ports
            .subjects
            .get(&job.subject)
            .await
            .map_err(ExportError::Read)?
            .ok_or(ExportError::SubjectMissing)?;
        let mut forms = self
            .ports
            .forms
            .of_subject(&job.subject)
            .await
            .map_err(ExportError::Read)?;
        forms.sort_by_key(|f| FormOid::ALL.iter().position(|o| *o == f.oid()));
        let diary_total = self
            .ports
            .diary_count
            .count(&job.subject)
            .await
            .map_err(ExportError::Read)?;
        let form_rows: u64 = forms.iter().map(CsvExport::rows_of_form).sum();
        let total = form_rows + diary_total;
        self.progress(job, attempt, 0, total).await?;

        let run = Run { attempt, deadline };
        let mut upload = Upload::start(
            self.ports.objects.as_ref(),
            job.object_key(),
            job.format.content_type(),
        )
        .await?;
        let result = match job.format {
            ExportFormat::Csv => {
                self.csv(job, run, &subject, &forms, total, &mut upload)
                    .await
            }
            ExportFormat::Pdf => {
                self.pdf(job, run, &subject, &forms, total, &mut upload)
                    .await
            }
        };
        let result = result.and_then(|rows| {
            if run.out_of_time() {
                Err(ExportError::OutOfTime)
            } else {
                Ok(rows)
            }
        });
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        };
        if let Err(e) = upload.complete().await {
            upload.abort().await;
            return Err(e);
        }
        self.last_high_water
            .store(upload.high_water, std::sync::atomic::Ordering::Relaxed);
        match self
            .ports
            .jobs
            .finish(
                &job.id,
                attempt,
                &upload.key,
                upload.bytes,
                rows,
                self.now(),
            )
            .await
        {
            Ok(()) => Ok((rows, upload.bytes)),
            Err(StoreError::Conflict(_)) => Err(ExportError::LeaseLost),
            Err(e) => Err(ExportError::Write(e)),
        }
    }

    async fn progress(
        &self,
        job: &ExportJob,
        attempt: &str,
        done: u64,
        total: u64,
    ) -> Result<(), ExportError> {
        match self
            .ports
            .jobs
            .progress(
                &job.id,
                attempt,
                done,
                total.max(done),
                self.now(),
                self.lease,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(ExportError::LeaseLost),
            Err(e) => Err(ExportError::Write(e)),
        }
    }

    /// Reads the diary page by page, handing each page to `each`, writing progress as it goes.
    async fn walk_diary<F>(
        &self,
        job: &ExportJob,
        attempt: &str,
        mut done: u64,
        total: u64,
        deadline: Option<tokio::time::Instant>,
        mut each: F,
    ) -> Result<u64, ExportError>
    where
        F: FnMut(&[shared::clinical::epro::EproEntry]) -> Result<bool, ExportError>,
    {
        let mut after: Option<EproPosition> = None;
        let mut reported = done;
        loop {
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(ExportError::OutOfTime);
            }
            let page = self
                .ports
                .diary
                .page(&job.subject, None, DIARY_PAGE, after.as_ref())
                .await
                .map_err(ExportError::Read)?;
            done += page.entries.len() as u64;
            let flushed = each(&page.entries)?;
            if flushed || done - reported >= self.progress_every {
                self.progress(job, attempt, done, total).await?;
                reported = done;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(done),
            }
        }
    }

    async fn csv(
        &self,
        job: &ExportJob,
        run: Run<'_>,
        subject: &SubjectRecord,
        forms: &[Form],
        total: u64,
        upload: &mut Upload<'_>,
    ) -> Result<u64, ExportError> {
        let attempt = run.attempt;
        let csv_err = |e: csv::Error| ExportError::Render(format!("CSV: {e}"));
        let mut csv = CsvExport::new(subject);
        csv.header(&mut upload.buf).map_err(csv_err)?;
        for form in forms {
            csv.form(&mut upload.buf, form).map_err(csv_err)?;
        }
        let form_rows = csv.rows();
        // The diary: a page into the buffer, then a part out of it whenever it is full. The part
        // upload is async and the page callback is not, so pages are read here directly.
        let mut after: Option<EproPosition> = None;
        let mut done = form_rows;
        let mut reported = 0u64;
        loop {
            if run.out_of_time() {
                return Err(ExportError::OutOfTime);
            }
            let page = self
                .ports
                .diary
                .page(&job.subject, None, DIARY_PAGE, after.as_ref())
                .await
                .map_err(ExportError::Read)?;
            csv.diary(&mut upload.buf, &page.entries).map_err(csv_err)?;
            done += page.entries.len() as u64;
            let full = upload.buf.len() >= PART_SIZE;
            upload.ship(false).await?;
            if full || done - reported >= self.progress_every {
                self.progress(job, attempt, done, total).await?;
                reported = done;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.progress(job, attempt, done, total).await?;
        Ok(done)
    }

    async fn pdf(
        &self,
        job: &ExportJob,
        run: Run<'_>,
        subject: &SubjectRecord,
        forms: &[Form],
        total: u64,
        upload: &mut Upload<'_>,
    ) -> Result<u64, ExportError> {
        let (attempt, deadline) = (run.attempt, run.deadline);
        let form_rows: u64 = forms.iter().map(CsvExport::rows_of_form).sum();
        let mut series = PainSeries::default();
        let done = self
            .walk_diary(job, attempt, form_rows, total, deadline, |entries| {
                for e in entries {
                    series.add(e);
                }
                Ok(false)
            })
            .await?;
        let mut adverse_events = Vec::new();
        let mut labs = Vec::new();
        let mut medications = Vec::new();
        let mut vital_signs = Vec::new();
        for f in forms {
            adverse_events.extend(f.data.adverse_events());
            labs.extend(f.data.labs());
            medications.extend(f.data.medications());
            vital_signs.extend(f.data.vital_signs());
        }
        let codes: Vec<String> = medications.iter().map(|m| m.drug_code.clone()).collect();
        let names = self.ports.drugs.names(&codes).await;
        let risk = self.ports.risk.assess(subject, forms).await;
        let input = ReportInput {
            header: ReportHeader {
                trial: subject.trial.as_str().to_owned(),
                site: subject.site.as_str().to_owned(),
                subject: subject.id.as_str().to_owned(),
                enrolled_on: subject.enrolled_on,
                status: subject.status.as_str().to_owned(),
                export_id: job.id.as_str().to_owned(),
                generated_at: self.now(),
            },
            risk,
            diary: series,
            adverse_events,
            labs,
            medications: medications
                .into_iter()
                .map(|m| NamedMedication {
                    drug_name: names.get(&m.drug_code).cloned(),
                    medication: m,
                })
                .collect(),
            vital_signs,
        };
        let bytes = pdf::render(&input).map_err(|e| ExportError::Render(e.to_string()))?;
        upload.buf = bytes;
        upload.ship(false).await?;
        self.progress(job, attempt, done, total).await?;
        Ok(done)
    }
}

/// The export id a message names, for logs and the DLQ consumer.
pub fn export_of(body: &str) -> Option<ExportId> {
    serde_json::from_str::<shared::exports::ExportRequested>(body)
        .ok()
        .map(|m| m.export_id)
}

#[cfg(test)]
mod tests {
    //! The pipeline over in-memory doubles of its ports: the streaming, the part boundaries, the
    //! progress, redelivery and failure paths. The DynamoDB and S3 adapters are exercised against
    //! the emulator in tests/api.
    use super::*;
    use chrono::Duration as Days;
    use shared::clinical::epro::{EproEntry, PainScore, Symptom};
    use shared::clinical::forms::FormData;
    use shared::clinical::subject::{Sex, SubjectStatus};
    use shared::domain::{SiteId, SubjectId, SubjectKey, TrialId};
    use shared::exports::ExportStatus;
    use shared::store::clinical::{Enrolled, EproPage, SubjectPage};
    use shared::store::{AuditEntry, Subject};
    use std::sync::Mutex;

    fn subject() -> SubjectRecord {
        SubjectRecord {
            id: SubjectId::parse("SUBJ-0001").unwrap(),
            trial: TrialId::parse("TRIAL-1").unwrap(),
            site: SiteId::parse("SITE-1").unwrap(),
            subject_key: SubjectKey::parse("BOS-0001").unwrap(),
            sex: Sex::Female,
            birth_year: 1961,
            enrolled_on: "2024-01-15".parse().unwrap(),
            status: SubjectStatus::Enrolled,
            enrolled_by: "u".into(),
            enrolled_at: "2024-01-15T09:00:00Z".parse().unwrap(),
        }
    }

    /// Entry `i` of the synthetic diary: every value derived from `i`.
    fn entry(i: u64) -> EproEntry {
        let start: DateTime<Utc> = "2024-01-15T06:00:00Z".parse().unwrap();
        EproEntry {
            id: format!("entry-{i:06}"),
            subject: subject().id,
            recorded_at: start + Days::minutes(i as i64 * 17),
            pain_score: PainScore::new((i % 11) as i64).unwrap(),
            symptoms: Symptom::ALL
                .iter()
                .copied()
                .filter(|s| (i as usize + *s as usize) % 5 == 0)
                .collect(),
            diary_completed: i % 7 != 0,
            received_at: start + Days::minutes(i as i64 * 17 + 1),
            submitted_by: "patient".into(),
        }
    }

    struct Clinical {
        entries: u64,
        forms: Vec<Form>,
    }

    #[async_trait]
    impl SubjectRecords for Clinical {
        async fn get(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError> {
            Ok((*id == subject().id).then(subject))
        }
        async fn enrol(&self, _: &SubjectRecord, _: &AuditEntry) -> Result<Enrolled, StoreError> {
            unreachable!()
        }
        async fn list_site(
            &self,
            _: &SiteId,
            _: usize,
            _: Option<&SubjectId>,
        ) -> Result<SubjectPage, StoreError> {
            unreachable!()
        }
    }

    #[async_trait]
    impl Forms for Clinical {
        async fn get(&self, _: &SubjectId, _: FormOid) -> Result<Option<Form>, StoreError> {
            unreachable!()
        }
        async fn of_subject(&self, _: &SubjectId) -> Result<Vec<Form>, StoreError> {
            Ok(self.forms.clone())
        }
        async fn put(&self, _: &Form, _: &[AuditEntry]) -> Result<(), StoreError> {
            unreachable!()
        }
    }

    #[async_trait]
    impl EproDiary for Clinical {
        async fn page(
            &self,
            _: &SubjectId,
            _: Option<DateTime<Utc>>,
            limit: usize,
            after: Option<&EproPosition>,
        ) -> Result<EproPage, StoreError> {
            let from: u64 = after.map(|p| p.0.parse::<u64>().unwrap() + 1).unwrap_or(0);
            let to = (from + limit as u64).min(self.entries);
            Ok(EproPage {
                entries: (from..to).map(entry).collect(),
                next: (to < self.entries).then(|| EproPosition((to - 1).to_string())),
            })
        }
    }

    #[async_trait]
    impl DiaryCount for Clinical {
        async fn count(&self, _: &SubjectId) -> Result<u64, StoreError> {
            Ok(self.entries)
        }
    }

    /// An export and who holds its lease until when.
    type Held = (ExportJob, Option<(String, DateTime<Utc>)>);

    #[derive(Default)]
    struct Jobs {
        jobs: Mutex<BTreeMap<String, Held>>,
        progress: Mutex<Vec<(u64, u64)>>,
    }

    #[async_trait]
    impl ExportJobs for Jobs {
        async fn create(&self, job: &ExportJob, _: &AuditEntry) -> Result<(), StoreError> {
            self.jobs
                .lock()
                .unwrap()
                .insert(job.id.as_str().into(), (job.clone(), None));
            Ok(())
        }
        async fn get(&self, id: &ExportId) -> Result<Option<ExportJob>, StoreError> {
            Ok(self
                .jobs
                .lock()
                .unwrap()
                .get(id.as_str())
                .map(|j| j.0.clone()))
        }
        async fn of_subject(&self, _: &SubjectId, _: usize) -> Result<Vec<ExportJob>, StoreError> {
            unreachable!()
        }
        async fn claim(
            &self,
            id: &ExportId,
            attempt: &str,
            now: DateTime<Utc>,
            lease: Duration,
        ) -> Result<Claimed, StoreError> {
            let mut jobs = self.jobs.lock().unwrap();
            let Some((job, holder)) = jobs.get_mut(id.as_str()) else {
                return Ok(Claimed::Missing);
            };
            if job.status.is_terminal() {
                return Ok(Claimed::Finished(job.clone()));
            }
            if matches!(holder, Some((_, until)) if *until > now) {
                return Ok(Claimed::Busy);
            }
            job.status = ExportStatus::Running;
            job.rows_done = 0;
            *holder = Some((
                attempt.into(),
                now + chrono::Duration::from_std(lease).unwrap(),
            ));
            Ok(Claimed::Running(job.clone()))
        }
        async fn progress(
            &self,
            id: &ExportId,
            attempt: &str,
            done: u64,
            total: u64,
            _: DateTime<Utc>,
            _: Duration,
        ) -> Result<(), StoreError> {
            let mut jobs = self.jobs.lock().unwrap();
            let (job, holder) = jobs.get_mut(id.as_str()).unwrap();
            if job.status != ExportStatus::Running
                || holder.as_ref().map(|h| h.0.as_str()) != Some(attempt)
                || done < job.rows_done
            {
                return Err(StoreError::Conflict("progress".into()));
            }
            job.rows_done = done;
            job.rows_total = Some(total);
            self.progress.lock().unwrap().push((done, total));
            Ok(())
        }
        async fn finish(
            &self,
            id: &ExportId,
            attempt: &str,
            key: &str,
            size: u64,
            rows: u64,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            let mut jobs = self.jobs.lock().unwrap();
            let (job, holder) = jobs.get_mut(id.as_str()).unwrap();
            if job.status != ExportStatus::Running
                || holder.as_ref().map(|h| h.0.as_str()) != Some(attempt)
            {
                return Err(StoreError::Conflict("finish".into()));
            }
            job.status = ExportStatus::Done;
            job.object_key = Some(key.into());
            job.size_bytes = Some(size);
            job.rows_done = rows;
            job.updated_at = now;
            Ok(())
        }
        async fn fail(
            &self,
            id: &ExportId,
            by: FailedBy<'_>,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            let mut jobs = self.jobs.lock().unwrap();
            let (job, holder) = jobs.get_mut(id.as_str()).unwrap();
            if job.status.is_terminal() {
                return Ok(false);
            }
            let allowed = match by {
                FailedBy::Attempt(a) => {
                    job.status == ExportStatus::Running
                        && holder.as_ref().map(|h| h.0.as_str()) == Some(a)
                }
                FailedBy::NoAttempt => {
                    job.status == ExportStatus::Queued
                        || holder.as_ref().is_none_or(|(_, until)| *until < now)
                }
            };
            if !allowed {
                return Ok(false);
            }
            job.status = ExportStatus::Failed;
            job.reason = Some(reason.into());
            Ok(true)
        }
    }

    #[derive(Default)]
    struct Objects {
        /// Fail the upload of this part number.
        fail_part: Option<i32>,
        open: Mutex<BTreeMap<String, Vec<Vec<u8>>>>,
        done: Mutex<BTreeMap<String, Vec<u8>>>,
        completes: Mutex<u32>,
        aborts: Mutex<u32>,
        part_sizes: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl ExportObjects for Objects {
        async fn start(&self, key: &str, _: &str) -> Result<String, StoreError> {
            self.open.lock().unwrap().insert(key.into(), Vec::new());
            Ok(format!("upload-{key}"))
        }
        async fn part(
            &self,
            key: &str,
            _: &str,
            number: i32,
            bytes: Vec<u8>,
        ) -> Result<UploadedPart, StoreError> {
            if Some(number) == self.fail_part {
                return Err(StoreError::Failed(
                    "injected: the part upload failed".into(),
                ));
            }
            self.part_sizes.lock().unwrap().push(bytes.len());
            self.open.lock().unwrap().get_mut(key).unwrap().push(bytes);
            Ok(UploadedPart {
                number,
                etag: format!("\"{number}\""),
            })
        }
        async fn complete(
            &self,
            key: &str,
            _: &str,
            parts: &[UploadedPart],
        ) -> Result<(), StoreError> {
            let open = self.open.lock().unwrap().remove(key).unwrap();
            assert_eq!(open.len(), parts.len());
            self.done.lock().unwrap().insert(key.into(), open.concat());
            *self.completes.lock().unwrap() += 1;
            Ok(())
        }
        async fn abort(&self, key: &str, _: &str) -> Result<(), StoreError> {
            self.open.lock().unwrap().remove(key);
            *self.aborts.lock().unwrap() += 1;
            Ok(())
        }
        async fn download_url(&self, _: &str, _: &str, _: Duration) -> Result<String, StoreError> {
            unreachable!()
        }
    }

    struct Names;
    #[async_trait]
    impl DrugNames for Names {
        async fn names(&self, codes: &[String]) -> BTreeMap<String, String> {
            codes
                .iter()
                .filter(|c| *c == "N02BE01")
                .map(|c| (c.clone(), "paracetamol".into()))
                .collect()
        }
    }

    fn forms() -> Vec<Form> {
        let form = |oid: FormOid, body: serde_json::Value| Form {
            subject: subject().id,
            data: FormData::parse(oid, &body, "2026-11-28".parse().unwrap()).unwrap(),
            version: 2,
            updated_at: "2026-10-02T10:00:00Z".parse().unwrap(),
            updated_by: "u".into(),
        };
        vec![
            form(
                FormOid::ConcomitantMedications,
                serde_json::json!({"itemGroups": [{"itemGroupOid": "IG.CM", "repeatKey": 1,
                    "items": {"CMTRT": "N02BE01", "CMSTDTC": "2026-09-01", "CMDOSE": 500, "CMDOSU": "mg"}}]}),
            ),
            form(
                FormOid::Labs,
                serde_json::json!({"itemGroups": [{"itemGroupOid": "IG.LB", "repeatKey": 1,
                    "items": {"LBDAT": "2026-10-01", "LBTESTCD": "ALT", "LBORRES": 112.0,
                              "LBORRESU": "U/L", "LBORNRLO": 7, "LBORNRHI": 56}}]}),
            ),
        ]
    }

    struct Rig {
        exporter: Exporter,
        jobs: Arc<Jobs>,
        objects: Arc<Objects>,
        id: ExportId,
    }

    async fn rig(format: ExportFormat, entries: u64, objects: Objects) -> Rig {
        let clinical = Arc::new(Clinical {
            entries,
            forms: forms(),
        });
        let jobs = Arc::new(Jobs::default());
        let objects = Arc::new(objects);
        let s = subject();
        let id = ExportId::generate();
        let job = ExportJob::queued(
            id.clone(),
            &Subject {
                id: s.id.clone(),
                trial: s.trial.clone(),
                site: s.site.clone(),
            },
            format,
            "monitor-1",
            "2026-11-28T01:00:00Z".parse().unwrap(),
        );
        let audit = AuditEntry {
            entity: String::new(),
            actor: String::new(),
            at: job.requested_at,
            action: String::new(),
            old: None,
            new: None,
            reason: String::new(),
            correlation_id: String::new(),
        };
        jobs.create(&job, &audit).await.unwrap();
        let exporter = Exporter::new(
            Ports {
                jobs: jobs.clone(),
                objects: objects.clone(),
                subjects: clinical.clone(),
                forms: clinical.clone(),
                diary: clinical.clone(),
                diary_count: clinical,
                drugs: Arc::new(Names),
                risk: Arc::new(NoRisk),
            },
            Duration::from_secs(900),
        );
        Rig {
            exporter,
            jobs,
            objects,
            id,
        }
    }

    #[tokio::test]
    async fn a_csv_of_100_000_diary_entries_streams_in_parts_with_exactly_the_right_rows() {
        let n = 100_000;
        let r = rig(ExportFormat::Csv, n, Objects::default()).await;
        let outcome = r.exporter.run(&r.id, "attempt-1").await.unwrap();
        let form_rows = 4 + 6; // CM: 4 items, LB: 6 items
        assert!(
            matches!(outcome, Outcome::Done { rows, .. } if rows == n + form_rows),
            "{outcome:?}"
        );
        let job = r.jobs.get(&r.id).await.unwrap().unwrap();
        assert_eq!(job.status, ExportStatus::Done);
        let key = job.object_key.clone().unwrap();
        let file = r.objects.done.lock().unwrap().get(&key).cloned().unwrap();
        assert_eq!(job.size_bytes, Some(file.len() as u64));
        // Every part but the last is S3's minimum; the buffer never held much more than a part.
        let sizes = r.objects.part_sizes.lock().unwrap().clone();
        assert!(sizes.len() >= 3, "{sizes:?}");
        assert!(
            sizes[..sizes.len() - 1].iter().all(|s| *s == PART_SIZE),
            "{sizes:?}"
        );
        let high = r
            .exporter
            .last_high_water
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(high < PART_SIZE + 512 * 1024, "buffer high-water {high}");
        // Exactly the rows written: EDC first, then every entry in order, every field.
        let mut reader = csv::Reader::from_reader(file.as_slice());
        let mut rows = reader.records();
        for _ in 0..form_rows {
            assert_eq!(&rows.next().unwrap().unwrap()[0], "EDC");
        }
        let mut count = 0u64;
        for (i, row) in rows.enumerate() {
            let row = row.unwrap();
            let e = entry(i as u64);
            assert_eq!(&row[0], "EPRO");
            assert_eq!(&row[12], e.id);
            assert_eq!(
                row[13],
                e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
            assert_eq!(row[15], e.pain_score.value().to_string());
            let symptoms: Vec<&str> = e.symptoms.iter().map(|s| s.as_str()).collect();
            assert_eq!(&row[16], symptoms.join(";"));
            assert_eq!(&row[17], if e.diary_completed { "true" } else { "false" });
            count += 1;
        }
        assert_eq!(count, n);
        // Progress only ever went up, and ended at the total.
        let progress = r.jobs.progress.lock().unwrap().clone();
        assert!(
            progress.windows(2).all(|w| w[0].0 <= w[1].0),
            "{progress:?}"
        );
        assert_eq!(progress.last(), Some(&(n + form_rows, n + form_rows)));
        assert!(progress.len() >= 5);
    }

    #[tokio::test]
    async fn a_redelivered_message_changes_nothing() {
        let r = rig(ExportFormat::Csv, 2_500, Objects::default()).await;
        assert!(matches!(
            r.exporter.run(&r.id, "attempt-1").await.unwrap(),
            Outcome::Done { .. }
        ));
        let before = r.jobs.get(&r.id).await.unwrap().unwrap();
        let file = r.objects.done.lock().unwrap().clone();
        assert_eq!(
            r.exporter.run(&r.id, "attempt-2").await.unwrap(),
            Outcome::AlreadyFinished
        );
        assert_eq!(r.jobs.get(&r.id).await.unwrap().unwrap(), before);
        assert_eq!(*r.objects.done.lock().unwrap(), file);
        assert_eq!(*r.objects.completes.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_second_delivery_while_the_first_runs_backs_off() {
        let r = rig(ExportFormat::Csv, 10, Objects::default()).await;
        // The first attempt holds the claim (it is mid-run).
        assert!(matches!(
            r.jobs
                .claim(&r.id, "attempt-1", Utc::now(), Duration::from_secs(900))
                .await
                .unwrap(),
            Claimed::Running(_)
        ));
        assert_eq!(
            r.exporter.run(&r.id, "attempt-2").await.unwrap(),
            Outcome::Busy
        );
        assert_eq!(*r.objects.completes.lock().unwrap(), 0);
        assert!(
            r.objects.open.lock().unwrap().is_empty(),
            "no upload started"
        );
    }

    #[tokio::test]
    async fn a_failure_mid_write_ends_failed_with_the_upload_aborted_and_no_object() {
        let r = rig(
            ExportFormat::Csv,
            100_000,
            Objects {
                fail_part: Some(2),
                ..Objects::default()
            },
        )
        .await;
        let outcome = r.exporter.run(&r.id, "attempt-1").await.unwrap();
        assert_eq!(
            outcome,
            Outcome::Failed("writing the export file failed".into())
        );
        let job = r.jobs.get(&r.id).await.unwrap().unwrap();
        assert_eq!(job.status, ExportStatus::Failed);
        assert_eq!(
            job.reason.as_deref(),
            Some("writing the export file failed")
        );
        assert_eq!(job.object_key, None, "nothing offered for download");
        assert_eq!(*r.objects.aborts.lock().unwrap(), 1);
        assert!(
            r.objects.open.lock().unwrap().is_empty(),
            "the multipart upload is gone"
        );
        assert!(r.objects.done.lock().unwrap().is_empty(), "no object");
        // Redelivered after the failure: still FAILED, nothing written.
        assert_eq!(
            r.exporter.run(&r.id, "attempt-2").await.unwrap(),
            Outcome::AlreadyFinished
        );
        assert_eq!(r.jobs.get(&r.id).await.unwrap().unwrap(), job);
    }

    #[tokio::test]
    async fn an_attempt_out_of_time_stops_between_pages_aborts_and_ends_failed() {
        for format in [ExportFormat::Csv, ExportFormat::Pdf] {
            let r = rig(format, 100_000, Objects::default()).await;
            // The invocation's time is already spent: the attempt stops before its first page.
            let past = tokio::time::Instant::now();
            let outcome = r
                .exporter
                .run_until(&r.id, "attempt-1", Some(past))
                .await
                .unwrap();
            let reason = "the export did not finish within the worker's time limit";
            assert_eq!(outcome, Outcome::Failed(reason.into()), "{format:?}");
            let job = r.jobs.get(&r.id).await.unwrap().unwrap();
            assert_eq!(job.status, ExportStatus::Failed);
            assert_eq!(job.reason.as_deref(), Some(reason));
            assert_eq!(
                *r.objects.aborts.lock().unwrap(),
                1,
                "the upload is aborted"
            );
            assert!(r.objects.done.lock().unwrap().is_empty(), "no object");
        }
    }

    #[tokio::test]
    async fn an_attempt_that_lost_its_lease_never_fails_the_one_that_took_over() {
        let r = rig(ExportFormat::Csv, 10, Objects::default()).await;
        let now = Utc::now();
        let lease = Duration::from_secs(900);
        assert!(matches!(
            r.jobs
                .claim(
                    &r.id,
                    "old",
                    now - chrono::Duration::hours(1),
                    Duration::from_secs(1)
                )
                .await
                .unwrap(),
            Claimed::Running(_)
        ));
        // The old attempt's lease ran out; a new one holds the export.
        assert!(matches!(
            r.jobs.claim(&r.id, "new", now, lease).await.unwrap(),
            Claimed::Running(_)
        ));
        assert!(!r
            .jobs
            .fail(&r.id, FailedBy::Attempt("old"), "x", now)
            .await
            .unwrap());
        // The dead-letter queue neither, while the new attempt's lease lives.
        assert!(!r
            .jobs
            .fail(&r.id, FailedBy::NoAttempt, "x", now)
            .await
            .unwrap());
        assert_eq!(
            r.jobs.get(&r.id).await.unwrap().unwrap().status,
            ExportStatus::Running
        );
        // Once it has run out, the dead-letter queue ends it.
        let later = now + chrono::Duration::hours(1);
        assert!(r
            .jobs
            .fail(&r.id, FailedBy::NoAttempt, "gave up", later)
            .await
            .unwrap());
        assert_eq!(
            r.jobs.get(&r.id).await.unwrap().unwrap().status,
            ExportStatus::Failed
        );
    }

    #[tokio::test]
    async fn a_pdf_export_holds_the_aggregated_diary_and_named_medications() {
        let r = rig(ExportFormat::Pdf, 20_000, Objects::default()).await;
        let outcome = r.exporter.run(&r.id, "attempt-1").await.unwrap();
        assert!(
            matches!(outcome, Outcome::Done { rows: 20_010, .. }),
            "{outcome:?}"
        );
        let job = r.jobs.get(&r.id).await.unwrap().unwrap();
        let file = r
            .objects
            .done
            .lock()
            .unwrap()
            .get(job.object_key.as_deref().unwrap())
            .cloned()
            .unwrap();
        assert!(file.starts_with(b"%PDF-"));
        assert!(file.len() < 512 * 1024, "bounded: {} bytes", file.len());
        let dir = std::env::temp_dir().join(format!("export-pdf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.pdf");
        std::fs::write(&path, &file).unwrap();
        let out = std::process::Command::new("pdftotext")
            .args([path.to_str().unwrap(), "-"])
            .output()
            .expect("pdftotext (poppler-utils; scripts/setup.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        std::fs::remove_dir_all(&dir).ok();
        for needle in [
            "SUBJ-0001",
            "paracetamol",
            "20000 diary entries",
            "Not assessed",
            "Page 1 of",
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert!(!text.contains("BOS-0001"), "never the subject key");
    }
}
