//! Ports of the clinical data ([`crate::clinical`]): what the report and the exports read, and what
//! the clinical routes write. Every write is conditional and carries its audit entry in the same
//! transaction; reads never write (the caller audits a user's read separately).
//!
//! Table layout (template.yaml):
//! - subjects (`subjectId`): the subject record; `BySite` index (`siteId`, `subjectId`) lists a
//!   site's subjects; the subject keys table (`trialSubjectKey` = `<trialId>#<subjectKey>`) makes a
//!   subject key unique per trial (written in the enrolment's transaction);
//! - forms (`subjectId`, `formOid`): the form's data as JSON, its `version`, who and when;
//! - epro (`subjectId`, `entry` = `<recordedAt RFC 3339 UTC, millis>#<entryId>`): the diary,
//!   oldest first by the time the patient recorded it; the ePRO requests table (`requestKey` =
//!   `<client>#<Idempotency-Key>`) holds each request's first answer, written in the entry's
//!   transaction, expired by TTL (`expiresAt`);
//! - audit ([`super::audit`]): entity `subject#<subjectId>` for all of the above and for every
//!   user's read of them.

use super::{AuditEntry, StoreError};
use crate::clinical::epro::EproEntry;
use crate::clinical::forms::{Form, FormOid};
use crate::clinical::subject::SubjectRecord;
use crate::domain::{SiteId, SubjectId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// What an enrolment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enrolled {
    /// Written now.
    New,
    /// The trial already has a subject under this key (a retry, a double click or a clash): the
    /// caller compares it with the request.
    Existing(SubjectRecord),
}

/// One page of a site's subjects, in subject id order.
#[derive(Debug, Clone)]
pub struct SubjectPage {
    pub subjects: Vec<SubjectRecord>,
    /// The last subject id of this page, where the next starts after; `None` on the last page.
    pub next: Option<SubjectId>,
}

#[async_trait]
pub trait SubjectRecords: Send + Sync {
    async fn get(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError>;
    /// Writes the record and claims its subject key in the trial, with the audit entry, in one
    /// transaction.
    async fn enrol(
        &self,
        record: &SubjectRecord,
        audit: &AuditEntry,
    ) -> Result<Enrolled, StoreError>;
    async fn list_site(
        &self,
        site: &SiteId,
        limit: usize,
        after: Option<&SubjectId>,
    ) -> Result<SubjectPage, StoreError>;
}

#[async_trait]
pub trait Forms: Send + Sync {
    async fn get(&self, subject: &SubjectId, form: FormOid) -> Result<Option<Form>, StoreError>;
    /// Every form of the subject (at most one per [`FormOid`]).
    async fn of_subject(&self, subject: &SubjectId) -> Result<Vec<Form>, StoreError>;
    /// Writes `form` (whose `version` is the new one) if the stored version is `form.version - 1`
    /// (0: none stored), with its audit entries, in one transaction; `Conflict` when someone else
    /// wrote first. A transaction holds at most 100 writes, so a form may change more items than it
    /// could carry entries for: the clinical routes write one entry per accepted write, holding the
    /// item-level old → new values (`old`/`new`: JSON objects `{"<repeatKey>/<ItemOID>": value}`).
    async fn put(&self, form: &Form, audit: &[AuditEntry]) -> Result<(), StoreError>;
}

/// Where a page of a diary ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EproPosition(pub String);

#[derive(Debug, Clone)]
pub struct EproPage {
    /// Oldest first by `recordedAt`.
    pub entries: Vec<EproEntry>,
    pub next: Option<EproPosition>,
}

#[async_trait]
pub trait EproDiary: Send + Sync {
    /// At most `limit` entries recorded at or after `since` (all when `None`), after `after`.
    async fn page(
        &self,
        subject: &SubjectId,
        since: Option<DateTime<Utc>>,
        limit: usize,
        after: Option<&EproPosition>,
    ) -> Result<EproPage, StoreError>;
}

/// The first answer to an idempotent request (`POST .../epro` with an `Idempotency-Key`), kept so a
/// retry gets it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// What the request carried (a digest of the route, the subject and the body): the same key
    /// with another fingerprint is another request, refused.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// Writes diary entries exactly once per idempotency key.
#[async_trait]
pub trait EproSubmissions: Send + Sync {
    /// The answer stored under `request_key` (unexpired), if any.
    async fn answer(&self, request_key: &str) -> Result<Option<StoredAnswer>, StoreError>;
    /// Writes the request key with its answer (kept until `keep_until`), the entry and its audit
    /// entry in one transaction. `Ok(None)`: written. `Ok(Some(first))`: the key was taken by
    /// another request first (a concurrent retry): nothing written, its answer returned.
    async fn record(
        &self,
        request_key: &str,
        answer: &StoredAnswer,
        keep_until: DateTime<Utc>,
        entry: &EproEntry,
        audit: &AuditEntry,
    ) -> Result<Option<StoredAnswer>, StoreError>;
}
