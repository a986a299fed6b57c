//! The risk assessment: a deterministic score from what the sources gave, the reasons behind it,
//! and a level. Pure: the same inputs give the same assessment, whatever the clock.
//!
//! ## The rules
//! The diary rules look at the 14 whole UTC days before the report's date (`today − 14` to
//! `today − 1`; today is not over yet), and only at days on or after the subject's enrolment.
//!
//! | code | points | when |
//! |---|---|---|
//! | `SERIOUS_ADVERSE_EVENT` | 30 each | an adverse event recorded as serious (`AESER = Y`), whatever its outcome |
//! | `LAB_OUT_OF_RANGE` | 10 each | a lab test whose **latest** result is outside its reference range (an earlier abnormal value since back in range does not count) |
//! | `PAIN_RISING` | 5 per whole point, at most 20 | the mean pain score of the last 7 days exceeds the mean of the 7 days before by at least 1 point (both weeks need an entry) |
//! | `MISSED_DIARIES` | 2 per missed day | 3 or more of the assessed days have no completed diary (fewer are tolerated: no points) |
//! | `IMAGING_PENDING` | 5 | uploads still being processed |
//! | `IMAGING_QUARANTINED` | 10 each, at most 30 | uploads quarantined (malware, not DICOM, checksum mismatch) |
//! | `IMAGING_WRONG_PATIENT` | 25 each | uploads whose Patient ID belongs to another subject |
//!
//! The level: `LOW` below 20, `MEDIUM` from 20 to 49, `HIGH` from 50. A source that was
//! unavailable adds nothing and is named in `unassessed`: the score is then a lower bound
//! (`complete: false`).

use super::sources::{ImagingStatus, SourceName};
use crate::clinical::epro::EproEntry;
use crate::clinical::forms::{FormData, RangeFlag};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

pub const SERIOUS_AE_POINTS: u32 = 30;
pub const LAB_POINTS: u32 = 10;
pub const PAIN_POINTS_PER_POINT: u32 = 5;
pub const PAIN_MAX_POINTS: u32 = 20;
pub const MISSED_DIARY_POINTS: u32 = 2;
/// Missed days tolerated without points.
pub const MISSED_DIARY_TOLERANCE: u32 = 2;
pub const IMAGING_PENDING_POINTS: u32 = 5;
pub const QUARANTINE_POINTS: u32 = 10;
pub const QUARANTINE_MAX_POINTS: u32 = 30;
pub const WRONG_PATIENT_POINTS: u32 = 25;
/// `MEDIUM` from here.
pub const MEDIUM_FROM: u32 = 20;
/// `HIGH` from here.
pub const HIGH_FROM: u32 = 50;
/// Days the diary rules look back.
pub const DIARY_DAYS: i64 = 14;

/// The first instant the diary rules look at: midnight UTC, [`DIARY_DAYS`] before `today` (what a
/// caller reads the diary from, so the report and the PDF export score the same entries).
pub fn diary_since(today: NaiveDate) -> DateTime<Utc> {
    (today - Duration::days(DIARY_DAYS))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    Low,
    Medium,
    High,
}

impl Level {
    /// The name on the wire (`LOW`, `MEDIUM`, `HIGH`), for what prints the level (the PDF export).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }

    pub fn of(score: u32) -> Self {
        if score >= HIGH_FROM {
            Self::High
        } else if score >= MEDIUM_FROM {
            Self::Medium
        } else {
            Self::Low
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    SeriousAdverseEvent,
    LabOutOfRange,
    PainRising,
    MissedDiaries,
    ImagingPending,
    ImagingQuarantined,
    ImagingWrongPatient,
}

/// One reason behind the score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub points: u32,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    pub score: u32,
    pub level: Level,
    /// Highest points first.
    pub reasons: Vec<Reason>,
    /// False when a source was unavailable: the score is a lower bound.
    pub complete: bool,
    pub unassessed: Vec<SourceName>,
}

/// The diary over the assessed days.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySummary {
    /// First and last assessed day (none when the subject enrolled today or later).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub days_assessed: u32,
    pub days_with_completed_diary: u32,
    pub missed_diary_days: u32,
    /// Mean pain score, `today − 7` to `today − 1`.
    pub pain_mean_last7_days: Option<f64>,
    /// Mean pain score, `today − 14` to `today − 8`.
    pub pain_mean_previous7_days: Option<f64>,
    pub entries: usize,
}

impl DiarySummary {
    pub fn of(diary: &[EproEntry], today: NaiveDate, enrolled_on: NaiveDate) -> Self {
        let first = today - Duration::days(DIARY_DAYS);
        let last = today - Duration::days(1);
        let start = first.max(enrolled_on);
        let assessed: Vec<NaiveDate> = start.iter_days().take_while(|d| *d <= last).collect();
        let in_window: Vec<&EproEntry> = diary
            .iter()
            .filter(|e| {
                let d = e.recorded_at.date_naive();
                d >= first && d <= last
            })
            .collect();
        let completed: BTreeSet<NaiveDate> = in_window
            .iter()
            .filter(|e| e.diary_completed)
            .map(|e| e.recorded_at.date_naive())
            .collect();
        let with_diary = assessed.iter().filter(|d| completed.contains(d)).count() as u32;
        let mean = |from: NaiveDate, to: NaiveDate| -> Option<f64> {
            let scores: Vec<f64> = in_window
                .iter()
                .filter(|e| (from..=to).contains(&e.recorded_at.date_naive()))
                .map(|e| f64::from(e.pain_score.value()))
                .collect();
            (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
        };
        Self {
            from: assessed.first().copied(),
            to: assessed.last().copied(),
            days_assessed: assessed.len() as u32,
            days_with_completed_diary: with_diary,
            missed_diary_days: assessed.len() as u32 - with_diary,
            pain_mean_last7_days: mean(today - Duration::days(7), last),
            pain_mean_previous7_days: mean(first, today - Duration::days(8)),
            entries: in_window.len(),
        }
    }
}

/// What the assessment is computed from; `None`: the source was unavailable.
pub struct Inputs<'a> {
    pub today: NaiveDate,
    pub enrolled_on: NaiveDate,
    pub forms: Option<&'a [FormData]>,
    pub diary: Option<&'a [EproEntry]>,
    pub imaging: Option<&'a ImagingStatus>,
}

fn one_decimal(x: f64) -> String {
    format!("{x:.1}")
}

pub fn assess(inputs: &Inputs<'_>) -> Assessment {
    let mut reasons = Vec::new();
    let mut unassessed = Vec::new();
    match inputs.forms {
        Some(forms) => {
            for ae in forms.iter().flat_map(FormData::adverse_events) {
                if ae.serious {
                    reasons.push(Reason {
                        code: ReasonCode::SeriousAdverseEvent,
                        points: SERIOUS_AE_POINTS,
                        text: format!(
                            "Serious adverse event: {} (started {}, {}, outcome {})",
                            ae.term,
                            ae.start,
                            ae.severity.to_lowercase(),
                            ae.outcome.to_lowercase().replace('_', " ")
                        ),
                    });
                }
            }
            // The latest result of each test (by date, then repeat key).
            let mut latest = BTreeMap::new();
            for lab in forms.iter().flat_map(FormData::labs) {
                let newer =
                    latest
                        .get(&lab.test)
                        .is_none_or(|l: &crate::clinical::forms::LabResult| {
                            (lab.date, lab.repeat_key) > (l.date, l.repeat_key)
                        });
                if newer {
                    latest.insert(lab.test.clone(), lab);
                }
            }
            for lab in latest.values() {
                if let Some(flag) = lab.out_of_range() {
                    let range = match (lab.low, lab.high) {
                        (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
                        (Some(lo), None) => format!("≥ {lo}"),
                        (None, Some(hi)) => format!("≤ {hi}"),
                        (None, None) => String::new(),
                    };
                    reasons.push(Reason {
                        code: ReasonCode::LabOutOfRange,
                        points: LAB_POINTS,
                        text: format!(
                            "{} {} {} on {} is {} (reference {range} {})",
                            lab.test,
                            lab.value,
                            lab.unit,
                            lab.date,
                            match flag {
                                RangeFlag::Low => "below range",
                                RangeFlag::High => "above range",
                            },
                            lab.unit
                        ),
                    });
                }
            }
        }
        None => unassessed.push(SourceName::Edc),
    }
    match inputs.diary {
        Some(diary) => {
            let s = DiarySummary::of(diary, inputs.today, inputs.enrolled_on);
            if let (Some(last), Some(prev)) = (s.pain_mean_last7_days, s.pain_mean_previous7_days) {
                let rise = last - prev;
                if rise >= 1.0 {
                    let points = (PAIN_POINTS_PER_POINT * rise.floor() as u32).min(PAIN_MAX_POINTS);
                    reasons.push(Reason {
                        code: ReasonCode::PainRising,
                        points,
                        text: format!(
                            "Pain rising: mean {} over the last 7 days against {} the 7 days before (+{})",
                            one_decimal(last),
                            one_decimal(prev),
                            one_decimal(rise)
                        ),
                    });
                }
            }
            if s.missed_diary_days > MISSED_DIARY_TOLERANCE {
                reasons.push(Reason {
                    code: ReasonCode::MissedDiaries,
                    points: MISSED_DIARY_POINTS * s.missed_diary_days,
                    text: format!(
                        "No completed diary on {} of the last {} days",
                        s.missed_diary_days, s.days_assessed
                    ),
                });
            }
        }
        None => unassessed.push(SourceName::Epro),
    }
    match inputs.imaging {
        Some(i) => {
            if i.pending > 0 {
                reasons.push(Reason {
                    code: ReasonCode::ImagingPending,
                    points: IMAGING_PENDING_POINTS,
                    text: format!("{} imaging upload(s) still being processed", i.pending),
                });
            }
            if i.quarantined > 0 {
                reasons.push(Reason {
                    code: ReasonCode::ImagingQuarantined,
                    points: (QUARANTINE_POINTS as u64 * i.quarantined)
                        .min(u64::from(QUARANTINE_MAX_POINTS)) as u32,
                    text: format!("{} imaging upload(s) quarantined", i.quarantined),
                });
            }
            if i.patient_mismatches > 0 {
                reasons.push(Reason {
                    code: ReasonCode::ImagingWrongPatient,
                    points: (u64::from(WRONG_PATIENT_POINTS) * i.patient_mismatches)
                        .min(u64::from(u32::MAX / 2)) as u32,
                    text: format!(
                        "{} imaging upload(s) carry another patient's identifier",
                        i.patient_mismatches
                    ),
                });
            }
        }
        None => unassessed.push(SourceName::Imaging),
    }
    // Highest points first; equal points keep the order above (stable sort).
    reasons.sort_by_key(|r| std::cmp::Reverse(r.points));
    let score = reasons.iter().fold(0u32, |s, r| s.saturating_add(r.points));
    Assessment {
        score,
        level: Level::of(score),
        reasons,
        complete: unassessed.is_empty(),
        unassessed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::epro::PainScore;
    use crate::domain::SubjectId;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    fn entry(days_ago: i64, pain: i64, completed: bool) -> EproEntry {
        let at: DateTime<Utc> = (today() - Duration::days(days_ago))
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc();
        EproEntry {
            id: format!("e{days_ago}"),
            subject: SubjectId::parse("SUBJ-1").unwrap(),
            recorded_at: at,
            pain_score: PainScore::new(pain).unwrap(),
            symptoms: Default::default(),
            diary_completed: completed,
            received_at: at,
            submitted_by: "p".into(),
        }
    }

    fn forms() -> Vec<FormData> {
        let ae = FormData::parse(
            crate::clinical::forms::FormOid::AdverseEvents,
            &json!({"itemGroups": [
                {"itemGroupOid": "IG.AE", "repeatKey": 1, "items": {"AETERM": "Pneumonia",
                 "AESTDTC": "2026-11-10", "AESER": "Y", "AESEV": "SEVERE", "AEOUT": "RECOVERING"}},
                {"itemGroupOid": "IG.AE", "repeatKey": 2, "items": {"AETERM": "Headache",
                 "AESTDTC": "2026-11-01", "AESER": "N", "AESEV": "MILD", "AEOUT": "RECOVERED"}}]}),
            today(),
        )
        .unwrap();
        let lb = FormData::parse(
            crate::clinical::forms::FormOid::Labs,
            &json!({"itemGroups": [
                // ALT high, then back in range: the latest counts → not flagged.
                {"itemGroupOid": "IG.LB", "repeatKey": 1, "items": {"LBDAT": "2026-10-01",
                 "LBTESTCD": "ALT", "LBORRES": 112.0, "LBORRESU": "U/L", "LBORNRLO": 7, "LBORNRHI": 56}},
                {"itemGroupOid": "IG.LB", "repeatKey": 2, "items": {"LBDAT": "2026-11-01",
                 "LBTESTCD": "ALT", "LBORRES": 40.0, "LBORRESU": "U/L", "LBORNRLO": 7, "LBORNRHI": 56}},
                // Haemoglobin low on its only result → flagged.
                {"itemGroupOid": "IG.LB", "repeatKey": 3, "items": {"LBDAT": "2026-11-20",
                 "LBTESTCD": "HGB", "LBORRES": 9.1, "LBORRESU": "g/dL", "LBORNRLO": 12, "LBORNRHI": 16}}]}),
            today(),
        )
        .unwrap();
        vec![ae, lb]
    }

    #[test]
    fn a_quiet_subject_scores_zero() {
        let diary: Vec<EproEntry> = (1..=14).map(|d| entry(d, 2, true)).collect();
        let a = assess(&Inputs {
            today: today(),
            enrolled_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            forms: Some(&[]),
            diary: Some(&diary),
            imaging: Some(&ImagingStatus::default()),
        });
        assert_eq!((a.score, a.level, a.complete), (0, Level::Low, true));
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn the_seeded_high_risk_subject() {
        // Diary: days 14..8 ago pain 2,3,2,3,2,3,2 (mean 17/7 = 2.43), all completed;
        // days 7..1 ago pain 6 on the days it was filled in: days 7, 6, 4, 2 completed,
        // days 5, 3, 1 missing. Mean last 7 = 6.0; rise = 6.0 − 2.43 = 3.57 → floor 3 → 15 points.
        // Missed: 3 of 14 days (> 2 tolerated) → 3 × 2 = 6 points.
        let mut diary: Vec<EproEntry> = (8..=14).map(|d| entry(d, 2 + (d % 2), true)).collect();
        diary.extend([7, 6, 4, 2].map(|d| entry(d, 6, true)));
        let imaging = ImagingStatus {
            pending: 1,
            quarantined: 1,
            patient_mismatches: 1,
            ..Default::default()
        };
        let forms = forms();
        let a = assess(&Inputs {
            today: today(),
            enrolled_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            forms: Some(&forms),
            diary: Some(&diary),
            imaging: Some(&imaging),
        });
        // 30 (serious AE) + 25 (wrong patient) + 15 (pain) + 10 (HGB low) + 10 (quarantined)
        // + 6 (3 missed days) + 5 (pending) = 101 → HIGH.
        let got: Vec<(ReasonCode, u32)> = a.reasons.iter().map(|r| (r.code, r.points)).collect();
        assert_eq!(
            got,
            [
                (ReasonCode::SeriousAdverseEvent, 30),
                (ReasonCode::ImagingWrongPatient, 25),
                (ReasonCode::PainRising, 15),
                (ReasonCode::LabOutOfRange, 10),
                (ReasonCode::ImagingQuarantined, 10),
                (ReasonCode::MissedDiaries, 6),
                (ReasonCode::ImagingPending, 5),
            ]
        );
        assert_eq!((a.score, a.level), (101, Level::High));
        assert!(a.reasons[0].text.contains("Pneumonia"));
        assert!(a.reasons[3]
            .text
            .starts_with("HGB 9.1 g/dL on 2026-11-20 is below range"));
        assert_eq!(
            a.reasons[2].text,
            "Pain rising: mean 6.0 over the last 7 days against 2.4 the 7 days before (+3.6)"
        );
    }

    #[test]
    fn missed_diaries_count_from_enrolment_and_tolerate_two() {
        // Enrolled 5 days ago: assessed days are days 5..1 ago (5 days). Diaries on days 5 and 4
        // only (day 3 was not completed) → 3 missed → 3 × 2 = 6 points; 6 < 20 → LOW.
        let diary = vec![entry(5, 1, true), entry(4, 1, true), entry(3, 1, false)];
        let a = assess(&Inputs {
            today: today(),
            enrolled_on: today() - Duration::days(5),
            forms: Some(&[]),
            diary: Some(&diary),
            imaging: Some(&ImagingStatus::default()),
        });
        assert_eq!(a.reasons.len(), 1);
        assert_eq!(a.reasons[0].code, ReasonCode::MissedDiaries);
        assert_eq!(
            a.reasons[0].text,
            "No completed diary on 3 of the last 5 days"
        );
        assert_eq!((a.score, a.level), (6, Level::Low));
        // Two missed: tolerated.
        let diary = vec![entry(5, 1, true), entry(4, 1, true), entry(3, 1, true)];
        let a = assess(&Inputs {
            today: today(),
            enrolled_on: today() - Duration::days(5),
            forms: Some(&[]),
            diary: Some(&diary),
            imaging: Some(&ImagingStatus::default()),
        });
        assert_eq!(a.score, 0);
        // Enrolled today: nothing assessed, nothing missed.
        let s = DiarySummary::of(&[], today(), today());
        assert_eq!((s.days_assessed, s.missed_diary_days, s.from), (0, 0, None));
    }

    #[test]
    fn pain_points_are_capped_and_need_both_weeks() {
        // Previous week mean 0, last week mean 9: +9 → 45 points, capped at 20.
        let mut diary: Vec<EproEntry> = (8..=14).map(|d| entry(d, 0, true)).collect();
        diary.extend((1..=7).map(|d| entry(d, 9, true)));
        let a = assess(&Inputs {
            today: today(),
            enrolled_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            forms: None,
            diary: Some(&diary),
            imaging: None,
        });
        assert_eq!(a.reasons[0].points, 20);
        assert_eq!((a.score, a.level), (20, Level::Medium));
        assert!(!a.complete);
        assert_eq!(a.unassessed, [SourceName::Edc, SourceName::Imaging]);
        // Only the last week: no trend. An entry today is outside the window.
        let diary: Vec<EproEntry> = (0..=7).map(|d| entry(d, 9, true)).collect();
        let s = DiarySummary::of(&diary, today(), today() - Duration::days(30));
        assert_eq!(s.pain_mean_previous7_days, None);
        assert_eq!(s.entries, 7);
    }

    #[test]
    fn quarantine_points_are_capped_and_levels_have_their_thresholds() {
        let imaging = ImagingStatus {
            quarantined: 5,
            ..Default::default()
        };
        let a = assess(&Inputs {
            today: today(),
            enrolled_on: today(),
            forms: Some(&[]),
            diary: Some(&[]),
            imaging: Some(&imaging),
        });
        // 5 × 10 = 50, capped at 30 → MEDIUM.
        assert_eq!((a.score, a.level), (30, Level::Medium));
        assert_eq!(Level::of(19), Level::Low);
        assert_eq!(Level::of(20), Level::Medium);
        assert_eq!(Level::of(49), Level::Medium);
        assert_eq!(Level::of(50), Level::High);
    }
}
