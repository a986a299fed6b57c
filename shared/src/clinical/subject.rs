//! Enrolment and the subject record. The record holds no direct identifier: a pseudonymous
//! subject key, sex and year of birth (never a full date of birth), the enrolment date.

use super::FieldError;
use crate::domain::{SiteId, SubjectId, SubjectKey, TrialId};
use crate::store::Subject;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sex as collected on the demographics page (CDISC SEX: F, M, U).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    #[serde(rename = "F")]
    Female,
    #[serde(rename = "M")]
    Male,
    #[serde(rename = "U")]
    Unknown,
}

impl Sex {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "F" => Some(Self::Female),
            "M" => Some(Self::Male),
            "U" => Some(Self::Unknown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Female => "F",
            Self::Male => "M",
            Self::Unknown => "U",
        }
    }
}

/// Where a subject stands in the trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubjectStatus {
    Enrolled,
    Completed,
    Withdrawn,
}

impl SubjectStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ENROLLED" => Some(Self::Enrolled),
            "COMPLETED" => Some(Self::Completed),
            "WITHDRAWN" => Some(Self::Withdrawn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrolled => "ENROLLED",
            Self::Completed => "COMPLETED",
            Self::Withdrawn => "WITHDRAWN",
        }
    }
}

/// What `POST /v1/subjects` asks for, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub trial: TrialId,
    pub site: SiteId,
    pub subject_key: SubjectKey,
    pub sex: Sex,
    pub birth_year: i32,
    pub enrolled_on: NaiveDate,
}

impl Enrolment {
    /// Parses `{trialId, siteId, subjectKey, sex, birthYear, enrolledOn}`; every problem at once.
    /// `today` is the server's UTC date: an enrolment date after it is refused.
    pub fn parse(body: &Value, today: NaiveDate) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let text = |name: &str, errors: &mut Vec<FieldError>| -> Option<String> {
            match body.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    errors.push(FieldError::new(format!("/{name}"), "must be a string"));
                    None
                }
                None => {
                    errors.push(FieldError::new(format!("/{name}"), "is required"));
                    None
                }
            }
        };
        if !body.is_object() {
            return Err(vec![FieldError::new("", "the body must be a JSON object")]);
        }
        let trial = text("trialId", &mut errors).and_then(|s| {
            TrialId::parse(&s)
                .map_err(|e| errors.push(FieldError::new("/trialId", e)))
                .ok()
        });
        let site = text("siteId", &mut errors).and_then(|s| {
            SiteId::parse(&s)
                .map_err(|e| errors.push(FieldError::new("/siteId", e)))
                .ok()
        });
        let subject_key = text("subjectKey", &mut errors).and_then(|s| {
            SubjectKey::parse(&s)
                .map_err(|e| errors.push(FieldError::new("/subjectKey", e)))
                .ok()
        });
        let sex = text("sex", &mut errors).and_then(|s| {
            Sex::parse(&s).or_else(|| {
                errors.push(FieldError::new("/sex", "must be F, M or U"));
                None
            })
        });
        let birth_year = match body.get("birthYear") {
            Some(Value::Number(n)) => match n.as_i64() {
                Some(y) if (1900..=i64::from(today.year())).contains(&y) => Some(y as i32),
                _ => {
                    errors.push(FieldError::new(
                        "/birthYear",
                        format!("must be a whole year from 1900 to {}", today.year()),
                    ));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("/birthYear", "must be a number"));
                None
            }
            None => {
                errors.push(FieldError::new("/birthYear", "is required"));
                None
            }
        };
        let enrolled_on = text("enrolledOn", &mut errors).and_then(|s| {
            match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
                Ok(d) if d > today => {
                    errors.push(FieldError::new("/enrolledOn", "must not be in the future"));
                    None
                }
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(FieldError::new("/enrolledOn", "must be a date, YYYY-MM-DD"));
                    None
                }
            }
        });
        if let Some(obj) = body.as_object() {
            for key in obj.keys() {
                if ![
                    "trialId",
                    "siteId",
                    "subjectKey",
                    "sex",
                    "birthYear",
                    "enrolledOn",
                ]
                .contains(&key.as_str())
                {
                    errors.push(FieldError::new(format!("/{key}"), "is not a known field"));
                }
            }
        }
        match (trial, site, subject_key, sex, birth_year, enrolled_on) {
            (Some(trial), Some(site), Some(subject_key), Some(sex), Some(birth_year), Some(on))
                if errors.is_empty() =>
            {
                Ok(Self {
                    trial,
                    site,
                    subject_key,
                    sex,
                    birth_year,
                    enrolled_on: on,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A subject as stored: what the site-scoping check needs and the report's demographics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRecord {
    #[serde(rename = "subjectId")]
    pub id: SubjectId,
    #[serde(rename = "trialId")]
    pub trial: TrialId,
    #[serde(rename = "siteId")]
    pub site: SiteId,
    pub subject_key: SubjectKey,
    pub sex: Sex,
    pub birth_year: i32,
    pub enrolled_on: NaiveDate,
    pub status: SubjectStatus,
    /// The token `sub` of who enrolled the subject.
    pub enrolled_by: String,
    pub enrolled_at: DateTime<Utc>,
}

impl SubjectRecord {
    /// The record of a new enrolment under a server-chosen id.
    pub fn enrol(id: SubjectId, e: &Enrolment, by: &str, at: DateTime<Utc>) -> Self {
        Self {
            id,
            trial: e.trial.clone(),
            site: e.site.clone(),
            subject_key: e.subject_key.clone(),
            sex: e.sex,
            birth_year: e.birth_year,
            enrolled_on: e.enrolled_on,
            status: SubjectStatus::Enrolled,
            enrolled_by: by.to_owned(),
            enrolled_at: at,
        }
    }

    /// Is `e` the same enrolment as this record (a retry or a double click)?
    pub fn is_same_enrolment(&self, e: &Enrolment) -> bool {
        self.trial == e.trial
            && self.site == e.site
            && self.subject_key == e.subject_key
            && self.sex == e.sex
            && self.birth_year == e.birth_year
            && self.enrolled_on == e.enrolled_on
    }

    /// The subject as the scoping check sees it.
    pub fn scope(&self) -> Subject {
        Subject {
            id: self.id.clone(),
            trial: self.trial.clone(),
            site: self.site.clone(),
        }
    }

    /// Age in whole years at `on`, as far as a birth year tells (the lower bound).
    pub fn age_on(&self, on: NaiveDate) -> i32 {
        (on.year() - self.birth_year - 1).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    #[test]
    fn parses_an_enrolment() {
        let e = Enrolment::parse(
            &json!({"trialId": "T1", "siteId": "S1", "subjectKey": "BOS-0001", "sex": "F",
                    "birthYear": 1961, "enrolledOn": "2026-01-15"}),
            today(),
        )
        .unwrap();
        assert_eq!(e.subject_key.as_str(), "BOS-0001");
        assert_eq!(e.sex, Sex::Female);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let errors = Enrolment::parse(
            &json!({"trialId": "T 1", "siteId": 7, "sex": "X", "birthYear": 1850,
                    "enrolledOn": "2026-12-01", "name": "Jane"}),
            today(),
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for p in [
            "/trialId",
            "/siteId",
            "/subjectKey",
            "/sex",
            "/birthYear",
            "/enrolledOn",
            "/name",
        ] {
            assert!(pointers.contains(&p), "{p} in {pointers:?}");
        }
    }
}
