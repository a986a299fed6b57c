//! Patient-reported outcomes: one diary entry per submission from the patient's phone.

use super::{FieldError, CLOCK_SKEW};
use crate::domain::SubjectId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Symptoms a diary may report: a code list, never free text (free text invites identifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Symptom {
    Nausea,
    Vomiting,
    Fatigue,
    Headache,
    Dizziness,
    Rash,
    Insomnia,
    Anxiety,
    ShortnessOfBreath,
    Diarrhoea,
    Constipation,
    LossOfAppetite,
    Other,
}

impl Symptom {
    pub const ALL: [Symptom; 13] = [
        Self::Nausea,
        Self::Vomiting,
        Self::Fatigue,
        Self::Headache,
        Self::Dizziness,
        Self::Rash,
        Self::Insomnia,
        Self::Anxiety,
        Self::ShortnessOfBreath,
        Self::Diarrhoea,
        Self::Constipation,
        Self::LossOfAppetite,
        Self::Other,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(Value::String(raw.to_owned())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nausea => "NAUSEA",
            Self::Vomiting => "VOMITING",
            Self::Fatigue => "FATIGUE",
            Self::Headache => "HEADACHE",
            Self::Dizziness => "DIZZINESS",
            Self::Rash => "RASH",
            Self::Insomnia => "INSOMNIA",
            Self::Anxiety => "ANXIETY",
            Self::ShortnessOfBreath => "SHORTNESS_OF_BREATH",
            Self::Diarrhoea => "DIARRHOEA",
            Self::Constipation => "CONSTIPATION",
            Self::LossOfAppetite => "LOSS_OF_APPETITE",
            Self::Other => "OTHER",
        }
    }
}

/// A pain score on the 0–10 numeric rating scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PainScore(u8);

impl PainScore {
    pub fn new(value: i64) -> Option<Self> {
        (0..=10).contains(&value).then_some(Self(value as u8))
    }

    pub fn value(self) -> u8 {
        self.0
    }
}

/// What `POST /v1/subjects/{subjectId}/epro` carries, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EproSubmission {
    /// When the patient filled the diary in (their device's clock, UTC).
    pub recorded_at: DateTime<Utc>,
    pub pain_score: PainScore,
    pub symptoms: BTreeSet<Symptom>,
    pub diary_completed: bool,
}

impl EproSubmission {
    /// Parses `{recordedAt, painScore, symptoms, diaryCompleted}`; every problem at once. A
    /// `recordedAt` more than [`CLOCK_SKEW`] after `now` is refused.
    pub fn parse(body: &Value, now: DateTime<Utc>) -> Result<Self, Vec<FieldError>> {
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("", "the body must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let recorded_at = match obj.get("recordedAt") {
            Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) if t.with_timezone(&Utc) > now + CLOCK_SKEW => {
                    errors.push(FieldError::new("/recordedAt", "must not be in the future"));
                    None
                }
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    errors.push(FieldError::new(
                        "/recordedAt",
                        "must be an RFC 3339 timestamp with its offset",
                    ));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("/recordedAt", "must be a string"));
                None
            }
            None => {
                errors.push(FieldError::new("/recordedAt", "is required"));
                None
            }
        };
        let pain_score = match obj.get("painScore") {
            Some(Value::Number(n)) => match n.as_i64().and_then(PainScore::new) {
                Some(p) => Some(p),
                None => {
                    errors.push(FieldError::new(
                        "/painScore",
                        "must be a whole number from 0 to 10",
                    ));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("/painScore", "must be a number"));
                None
            }
            None => {
                errors.push(FieldError::new("/painScore", "is required"));
                None
            }
        };
        let mut symptoms = BTreeSet::new();
        match obj.get("symptoms") {
            None => {}
            Some(Value::Array(list)) if list.len() <= Symptom::ALL.len() => {
                for (i, s) in list.iter().enumerate() {
                    match s.as_str().and_then(Symptom::parse) {
                        Some(s) => {
                            symptoms.insert(s);
                        }
                        None => errors.push(FieldError::new(
                            format!("/symptoms/{i}"),
                            "is not a known symptom code",
                        )),
                    }
                }
            }
            Some(_) => errors.push(FieldError::new(
                "/symptoms",
                "must be a list of symptom codes",
            )),
        }
        let diary_completed = match obj.get("diaryCompleted") {
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push(FieldError::new("/diaryCompleted", "must be true or false"));
                None
            }
            None => {
                errors.push(FieldError::new("/diaryCompleted", "is required"));
                None
            }
        };
        for key in obj.keys() {
            if !["recordedAt", "painScore", "symptoms", "diaryCompleted"].contains(&key.as_str()) {
                errors.push(FieldError::new(format!("/{key}"), "is not a known field"));
            }
        }
        match (recorded_at, pain_score, diary_completed) {
            (Some(recorded_at), Some(pain_score), Some(diary_completed)) if errors.is_empty() => {
                Ok(Self {
                    recorded_at,
                    pain_score,
                    symptoms,
                    diary_completed,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A diary entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EproEntry {
    /// Server-chosen (UUID v4).
    #[serde(rename = "entryId")]
    pub id: String,
    #[serde(rename = "subjectId")]
    pub subject: SubjectId,
    pub recorded_at: DateTime<Utc>,
    pub pain_score: PainScore,
    pub symptoms: BTreeSet<Symptom>,
    pub diary_completed: bool,
    /// When the server accepted it.
    pub received_at: DateTime<Utc>,
    /// The token `sub` of the submitter.
    pub submitted_by: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn parses_a_diary_entry() {
        let e = EproSubmission::parse(
            &json!({"recordedAt": "2026-11-28T08:00:00+01:00", "painScore": 4,
                    "symptoms": ["NAUSEA", "FATIGUE", "NAUSEA"], "diaryCompleted": true}),
            now(),
        )
        .unwrap();
        assert_eq!(e.pain_score.value(), 4);
        assert_eq!(e.symptoms.len(), 2);
        assert_eq!(e.recorded_at.to_rfc3339(), "2026-11-28T07:00:00+00:00");
    }

    #[test]
    fn refuses_pain_eleven_the_future_and_unknown_symptoms() {
        let errors = EproSubmission::parse(
            &json!({"recordedAt": "2026-11-28T13:00:00Z", "painScore": 11,
                    "symptoms": ["HEADACHE", "my name is Jane"], "diaryCompleted": "yes"}),
            now(),
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/recordedAt",
                "/painScore",
                "/symptoms/1",
                "/diaryCompleted"
            ]
        );
        assert!(EproSubmission::parse(
            &json!({"recordedAt": "2026-11-28T12:04:00Z", "painScore": 0, "diaryCompleted": false}),
            now()
        )
        .is_ok());
        assert!(PainScore::new(-1).is_none());
    }
}
