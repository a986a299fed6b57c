//! The CSV export: one row per EDC item value and per ePRO diary entry, RFC 4180 (the `csv`
//! crate: fields holding `,`, `"`, CR or LF are quoted, quotes doubled; CRLF line ends), UTF-8
//! without a byte-order mark.
//!
//! ## The columns (stable: new columns are only ever appended)
//! | # | column | EDC row | ePRO row |
//! |---|---|---|---|
//! | 1 | `record_type` | `EDC` | `EPRO` |
//! | 2 | `subject_id` | the pseudonymous subject id | same |
//! | 3 | `trial_id` | | |
//! | 4 | `site_id` | | |
//! | 5 | `form_oid` | `VS`, `LB`, `AE`, `CM` | empty |
//! | 6 | `item_group_oid` | `IG.VS`, … | empty |
//! | 7 | `repeat_key` | 1, 2, … | empty |
//! | 8 | `item_oid` | `SYSBP`, `LBORRES`, … | empty |
//! | 9 | `item_label` | the catalogue's label | empty |
//! | 10 | `value` | the item's value as text (dates `YYYY-MM-DD`) | empty |
//! | 11 | `unit` | the catalogue's unit, if any | empty |
//! | 12 | `form_version` | the form's version | empty |
//! | 13 | `entry_id` | empty | the diary entry's id |
//! | 14 | `recorded_at` | when this form version was written (RFC 3339 UTC, ms) | when the patient recorded the entry |
//! | 15 | `received_at` | empty | when the server accepted it |
//! | 16 | `pain_score` | empty | 0–10 |
//! | 17 | `symptoms` | empty | symptom codes joined by `;`, in code order |
//! | 18 | `diary_completed` | empty | `true` / `false` |
//!
//! Text values that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab
//! or a carriage return — OWASP's CSV injection list) are written with a leading `'`, which
//! spreadsheets show as text; numbers and dates never start so and are written as they are.
//!
//! Rows come EDC first (forms in `VS, LB, AE, CM` order, item groups by repeat key, items by OID),
//! then the diary oldest first. Nothing that names a person is written: no subject key, no user ids.
//!
//! Streaming: [`CsvExport`] appends rows to a byte buffer the caller owns and drains (the worker
//! ships it to S3 in multipart parts), so memory holds one page of rows and one part, however long
//! the history.

use chrono::{DateTime, SecondsFormat, Utc};
use shared::clinical::epro::EproEntry;
use shared::clinical::forms::{catalogue, Form, ItemValue};

/// A text value a spreadsheet would take for a formula, made inert with a leading `'`.
pub fn neutralised(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}
use shared::clinical::subject::SubjectRecord;

/// The header row, in column order.
pub const COLUMNS: [&str; 18] = [
    "record_type",
    "subject_id",
    "trial_id",
    "site_id",
    "form_oid",
    "item_group_oid",
    "repeat_key",
    "item_oid",
    "item_label",
    "value",
    "unit",
    "form_version",
    "entry_id",
    "recorded_at",
    "received_at",
    "pain_score",
    "symptoms",
    "diary_completed",
];

pub const CONTENT_TYPE: &str = "text/csv; charset=utf-8; header=present";

/// The writer of one subject's CSV: the subject's columns are fixed at the start.
pub struct CsvExport {
    subject_id: String,
    trial_id: String,
    site_id: String,
    rows: u64,
    /// Scratch space reused for every row's formatted fields.
    scratch: [String; 6],
}

/// RFC 4180: CRLF after every record, quotes only where needed.
fn writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl CsvExport {
    pub fn new(subject: &SubjectRecord) -> Self {
        Self {
            subject_id: subject.id.as_str().to_owned(),
            trial_id: subject.trial.as_str().to_owned(),
            site_id: subject.site.as_str().to_owned(),
            rows: 0,
            scratch: Default::default(),
        }
    }

    /// Data rows written so far (the header not counted).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// How many rows `form` gives (for the progress total before any is written).
    pub fn rows_of_form(form: &Form) -> u64 {
        form.data.groups.iter().map(|g| g.items.len() as u64).sum()
    }

    pub fn header(&mut self, out: &mut Vec<u8>) -> csv::Result<()> {
        let mut w = writer(out);
        w.write_record(COLUMNS)?;
        w.flush()?;
        Ok(())
    }

    /// Appends one row per item value of `form`.
    pub fn form(&mut self, out: &mut Vec<u8>, form: &Form) -> csv::Result<()> {
        let def = catalogue(form.data.form);
        let version = form.version.to_string();
        let written = timestamp(&form.updated_at);
        let mut w = writer(out);
        for group in &form.data.groups {
            let repeat = group.repeat_key.to_string();
            for (oid, value) in &group.items {
                let item = def.item(oid);
                let value = match value {
                    ItemValue::Text(_) | ItemValue::Code(_) => neutralised(value.display()),
                    _ => value.display(),
                };
                w.write_record([
                    "EDC",
                    &self.subject_id,
                    &self.trial_id,
                    &self.site_id,
                    form.data.form.as_str(),
                    def.oid,
                    &repeat,
                    oid,
                    item.map(|i| i.label).unwrap_or(""),
                    &value,
                    item.and_then(|i| i.unit).unwrap_or(""),
                    &version,
                    "",
                    &written,
                    "",
                    "",
                    "",
                    "",
                ])?;
                self.rows += 1;
            }
        }
        w.flush()?;
        Ok(())
    }

    /// Appends one row per diary entry.
    pub fn diary(&mut self, out: &mut Vec<u8>, entries: &[EproEntry]) -> csv::Result<()> {
        let mut w = writer(out);
        for e in entries {
            let [recorded, received, pain, symptoms, ..] = &mut self.scratch;
            recorded.clear();
            received.clear();
            pain.clear();
            symptoms.clear();
            use std::fmt::Write;
            let _ = write!(
                recorded,
                "{}",
                e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let _ = write!(
                received,
                "{}",
                e.received_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let _ = write!(pain, "{}", e.pain_score.value());
            for (i, s) in e.symptoms.iter().enumerate() {
                if i > 0 {
                    symptoms.push(';');
                }
                symptoms.push_str(s.as_str());
            }
            w.write_record([
                "EPRO",
                &self.subject_id,
                &self.trial_id,
                &self.site_id,
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                &e.id,
                recorded,
                received,
                pain,
                symptoms,
                if e.diary_completed { "true" } else { "false" },
            ])?;
            self.rows += 1;
        }
        w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn text_a_spreadsheet_would_run_is_written_inert_numbers_are_not() {
        for (raw, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tcmd", "'\tcmd"),
            ("Headache", "Headache"),
            ("", ""),
        ] {
            assert_eq!(super::neutralised(raw.to_owned()), written);
        }
    }

    use super::*;
    use shared::clinical::epro::{PainScore, Symptom};
    use shared::clinical::forms::{FormData, FormOid};
    use shared::clinical::subject::{Sex, SubjectStatus};
    use shared::domain::{SiteId, SubjectId, SubjectKey, TrialId};

    pub fn subject() -> SubjectRecord {
        SubjectRecord {
            id: SubjectId::parse("SUBJ-0001").unwrap(),
            trial: TrialId::parse("TRIAL-1").unwrap(),
            site: SiteId::parse("SITE-1").unwrap(),
            subject_key: SubjectKey::parse("BOS-0001").unwrap(),
            sex: Sex::Female,
            birth_year: 1961,
            enrolled_on: "2026-01-15".parse().unwrap(),
            status: SubjectStatus::Enrolled,
            enrolled_by: "user-1".into(),
            enrolled_at: "2026-01-15T09:00:00Z".parse().unwrap(),
        }
    }

    fn entry(i: u32, pain: i64, symptoms: &[Symptom]) -> EproEntry {
        EproEntry {
            id: format!("e-{i}"),
            subject: subject().id,
            recorded_at: "2026-11-01T08:00:00Z".parse().unwrap(),
            pain_score: PainScore::new(pain).unwrap(),
            symptoms: symptoms.iter().copied().collect(),
            diary_completed: i % 2 == 0,
            received_at: "2026-11-01T08:00:01.5Z".parse().unwrap(),
            submitted_by: "patient-sub".into(),
        }
    }

    #[test]
    fn writes_the_header_edc_items_and_diary_entries_as_rfc4180() {
        let s = subject();
        let form = Form {
            subject: s.id.clone(),
            data: FormData::parse(
                FormOid::AdverseEvents,
                &serde_json::json!({"itemGroups": [{"itemGroupOid": "IG.AE", "repeatKey": 1,
                    "items": {"AETERM": "Headache, \"severe\" — ça", "AESTDTC": "2026-10-01",
                              "AESER": "Y", "AESEV": "SEVERE", "AEOUT": "RECOVERED"}}]}),
                "2026-11-28".parse().unwrap(),
            )
            .unwrap(),
            version: 3,
            updated_at: "2026-10-02T10:00:00Z".parse().unwrap(),
            updated_by: "user-1".into(),
        };
        let mut out = Vec::new();
        let mut csv = CsvExport::new(&s);
        csv.header(&mut out).unwrap();
        csv.form(&mut out, &form).unwrap();
        csv.diary(
            &mut out,
            &[
                entry(0, 7, &[Symptom::Nausea, Symptom::Fatigue]),
                entry(1, 0, &[]),
            ],
        )
        .unwrap();
        assert_eq!(csv.rows(), 5 + 2);
        assert_eq!(CsvExport::rows_of_form(&form), 5);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("record_type,subject_id,"));
        assert!(text.contains("\r\n"), "CRLF line ends");
        // The quoted, escaped term survives a round trip.
        let mut reader = csv::Reader::from_reader(out.as_slice());
        assert_eq!(reader.headers().unwrap().len(), COLUMNS.len());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 7);
        let term = rows.iter().find(|r| &r[7] == "AETERM").unwrap();
        assert_eq!(&term[9], "Headache, \"severe\" — ça");
        assert_eq!(&term[8], "Adverse event term");
        assert_eq!(&term[11], "3");
        assert_eq!(&term[13], "2026-10-02T10:00:00.000Z");
        let first = &rows[5];
        assert_eq!(&first[0], "EPRO");
        assert_eq!(&first[1], "SUBJ-0001");
        assert_eq!(&first[12], "e-0");
        assert_eq!(&first[13], "2026-11-01T08:00:00.000Z");
        assert_eq!(&first[14], "2026-11-01T08:00:01.500Z");
        assert_eq!(&first[15], "7");
        assert_eq!(&first[16], "NAUSEA;FATIGUE");
        assert_eq!(&first[17], "true");
        assert_eq!(&rows[6][16], "");
        assert_eq!(&rows[6][17], "false");
        assert!(!text.contains("BOS-0001"), "no subject key");
        assert!(!text.contains("patient-sub"), "no user ids");
    }
}
