//! The demo trial, seeded through the API as a site would enter it (`clinflow-local seed-trial`,
//! run by `make dev`; tests call [`seed_trial`] on their own stack): three sites, the fixture
//! subjects plus four enrolled through `POST /v1/subjects`, each with vital signs over three visits,
//! labs with reference ranges (some out of range), adverse events (one serious, not recovered) and
//! concomitant medications by ATC code, and three weeks of ePRO diary from the patient's phone
//! (a missed day here and there, one subject's pain rising).
//!
//! Idempotent: enrolments answer the subject enrolled before, forms that exist are left as they
//! are (412 on `If-None-Match: *`), diary entries carry an `Idempotency-Key` per subject and day.
//! Diary submissions honour the per-client rate limit: on 429 they wait `Retry-After`.

use crate::jwt::{self, TokenSpec};
use crate::Error;
use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The demo trial and its sites.
pub const TRIAL: &str = "CLIN-DEMO-01";
pub const SITES: [&str; 3] = ["SITE-BOS-01", "SITE-LYN-02", "SITE-MUC-03"];

/// Subjects enrolled through the API: (site, subject key, sex, birth year).
const ENROLMENTS: [(&str, &str, &str, i64); 4] = [
    ("SITE-BOS-01", "BOS-0003", "M", 1957),
    ("SITE-LYN-02", "LYN-0002", "F", 1972),
    ("SITE-MUC-03", "MUC-0001", "F", 1949),
    ("SITE-MUC-03", "MUC-0002", "M", 1981),
];

/// Days of diary.
const DIARY_DAYS: i64 = 21;

/// Mints the dev tokens the seeding acts with.
pub struct Tokens {
    pub secret: String,
    pub issuer: String,
    pub audience: String,
}

impl Tokens {
    fn mint(&self, user: &str, role: &str, sites: &[&str], extra: &[(&str, &str)]) -> String {
        let sites: Vec<String> = sites.iter().map(|s| (*s).to_owned()).collect();
        jwt::mint_with(
            &self.secret,
            &TokenSpec {
                subject: user,
                role,
                sites: &sites,
                trials: &[TRIAL.to_owned()],
                issuer: &self.issuer,
                audience: &self.audience,
                ttl_seconds: 3600,
            },
            extra,
        )
    }

    fn staff(&self, site: &str) -> String {
        let user = format!("coordinator-{}", site.to_ascii_lowercase());
        self.mint(&user, "site_staff", &[site], &[])
    }

    fn patient(&self, subject: &str) -> String {
        self.mint(
            &format!("patient-{subject}"),
            "patient",
            &[],
            &[("subject", subject)],
        )
    }
}

/// What [`seed_trial`] left in the trial.
#[derive(Debug, Default, Clone)]
pub struct SeededTrial {
    /// (subject id, site), fixtures first.
    pub subjects: Vec<(String, String)>,
    /// Forms written now (a rerun writes none).
    pub forms_written: usize,
    /// Diary entries submitted now (a rerun of the same day replays them).
    pub diary_entries: usize,
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, Value, reqwest::header::HeaderMap), Error> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        ))
    }
}

fn day(offset: i64) -> String {
    (Utc::now() - Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

fn vital_signs(i: usize) -> Value {
    let i = i as i64;
    let groups: Vec<Value> = [28, 14, 1]
        .iter()
        .enumerate()
        .map(|(n, d)| {
            json!({"itemGroupOid": "IG.VS", "repeatKey": n + 1, "items": {
                "VSDAT": day(*d), "SYSBP": 118 + 4 * i + 3 * n as i64, "DIABP": 74 + 2 * i,
                "PULSE": 64 + 3 * i + n as i64, "TEMP": 36.6 + 0.1 * n as f64,
                "WEIGHT": 61.0 + 4.5 * i as f64}})
        })
        .collect();
    json!({ "itemGroups": groups })
}

/// (test, unit, low, high, normal value) — reference ranges of an adult lab.
const LABS: [(&str, &str, f64, f64, f64); 5] = [
    ("HGB", "g/dL", 12.0, 16.0, 13.8),
    ("ALT", "U/L", 7.0, 56.0, 24.0),
    ("CREAT", "mg/dL", 0.6, 1.2, 0.9),
    ("K", "mmol/L", 3.5, 5.1, 4.2),
    ("CRP", "mg/L", 0.0, 5.0, 2.1),
];

fn labs(i: usize) -> Value {
    let mut groups = Vec::new();
    let mut key = 0;
    for (visit, d) in [(0, 28), (1, 1)] {
        for (test, unit, low, high, normal) in LABS {
            // At the last visit: one subject's liver enzymes up, another's potassium up and
            // haemoglobin down, the serious AE's CRP up.
            let value = match (visit, i, test) {
                (1, 1, "ALT") => 112.0,
                (1, 3, "K") => 5.9,
                (1, 3, "HGB") => 10.1,
                (1, 2, "CRP") => 48.0,
                _ => normal + 0.1 * i as f64,
            };
            key += 1;
            groups.push(json!({"itemGroupOid": "IG.LB", "repeatKey": key, "items": {
                "LBDAT": day(d), "LBTESTCD": test, "LBORRES": value, "LBORRESU": unit,
                "LBORNRLO": low, "LBORNRHI": high}}));
        }
    }
    json!({ "itemGroups": groups })
}

fn adverse_events(i: usize) -> Option<Value> {
    let events: Vec<Value> = match i {
        0 => vec![
            json!({"AETERM": "Headache", "AESTDTC": day(20), "AEENDTC": day(18),
                         "AESER": "N", "AESEV": "MILD", "AEOUT": "RECOVERED", "AEREL": "N"}),
        ],
        2 => vec![
            json!({"AETERM": "Nausea", "AESTDTC": day(25), "AEENDTC": day(22), "AESER": "N",
                   "AESEV": "MODERATE", "AEOUT": "RECOVERED", "AEREL": "Y"}),
            json!({"AETERM": "Pneumonia", "AESTDTC": day(6), "AESER": "Y", "AESEV": "SEVERE",
                   "AEOUT": "NOT_RECOVERED", "AEREL": "N"}),
        ],
        4 => vec![json!({"AETERM": "Rash", "AESTDTC": day(9), "AESER": "N",
                         "AESEV": "MILD", "AEOUT": "RECOVERING", "AEREL": "Y"})],
        _ => return None,
    };
    let groups: Vec<Value> = events
        .into_iter()
        .enumerate()
        .map(|(n, items)| json!({"itemGroupOid": "IG.AE", "repeatKey": n + 1, "items": items}))
        .collect();
    Some(json!({ "itemGroups": groups }))
}

fn medications(i: usize) -> Value {
    // Paracetamol for everyone; ramipril, metformin by subject; amoxicillin for the pneumonia.
    let mut meds = vec![json!({"CMTRT": "N02BE01", "CMDOSE": 500, "CMDOSU": "mg",
                               "CMROUTE": "ORAL", "CMSTDTC": day(27)})];
    if i % 2 == 1 {
        meds.push(
            json!({"CMTRT": "C09AA05", "CMDOSE": 5, "CMDOSU": "mg", "CMROUTE": "ORAL",
                         "CMSTDTC": day(200)}),
        );
    }
    if i % 3 == 0 {
        meds.push(
            json!({"CMTRT": "A10BA02", "CMDOSE": 1000, "CMDOSU": "mg", "CMROUTE": "ORAL",
                         "CMSTDTC": day(400)}),
        );
    }
    if i == 2 {
        meds.push(
            json!({"CMTRT": "J01CA04", "CMDOSE": 1000, "CMDOSU": "mg", "CMROUTE": "ORAL",
                         "CMSTDTC": day(5)}),
        );
    }
    let groups: Vec<Value> = meds
        .into_iter()
        .enumerate()
        .map(|(n, items)| json!({"itemGroupOid": "IG.CM", "repeatKey": n + 1, "items": items}))
        .collect();
    json!({ "itemGroups": groups })
}

/// The diary of subject `i`: (days ago, entry); a missed day here and there; subject 2's pain rises.
fn diary(i: usize) -> Vec<(i64, Value)> {
    let symptoms = ["FATIGUE", "NAUSEA", "HEADACHE", "INSOMNIA", "DIZZINESS"];
    (1..=DIARY_DAYS)
        .rev()
        .filter(|d| (d + i as i64) % 9 != 0)
        .map(|d| {
            let pain = if i == 2 {
                (2 + (DIARY_DAYS - d) * 6 / DIARY_DAYS).min(10)
            } else {
                1 + (d + i as i64) % 3
            };
            let at = Utc::now() - Duration::days(d) - Duration::hours(2);
            let mut listed = Vec::new();
            if pain >= 4 || d % 4 == 0 {
                listed.push(symptoms[(d as usize + i) % symptoms.len()]);
            }
            (
                d,
                json!({"recordedAt": at.to_rfc3339_opts(SecondsFormat::Secs, true),
                       "painScore": pain, "symptoms": listed, "diaryCompleted": d % 7 != 3}),
            )
        })
        .collect()
}

/// Seeds the demo trial through the API at `api` (the local stack's, with the fixture subjects
/// of [`crate::DEMO_SUBJECTS`] seeded).
pub async fn seed_trial(api: &str, tokens: &Tokens) -> Result<SeededTrial, Error> {
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?,
        base: api.trim_end_matches('/').to_owned(),
    };
    let mut seeded = SeededTrial {
        subjects: crate::DEMO_SUBJECTS
            .iter()
            .filter(|(_, trial, _)| *trial == TRIAL)
            .map(|(s, _, site)| ((*s).to_owned(), (*site).to_owned()))
            .collect(),
        ..SeededTrial::default()
    };
    for (site, key, sex, born) in ENROLMENTS {
        let body = json!({"trialId": TRIAL, "siteId": site, "subjectKey": key, "sex": sex,
                          "birthYear": born, "enrolledOn": day(35)});
        let (status, answer, _) = api
            .call(
                reqwest::Method::POST,
                "/v1/subjects",
                &tokens.staff(site),
                &[],
                Some(&body),
            )
            .await?;
        let id = match (status, answer["subjectId"].as_str()) {
            (200 | 201, Some(id)) => id.to_owned(),
            // Enrolled on an earlier day (another enrolment date): the key is taken; find it.
            (409, _) => find_subject(&api, tokens, site, key).await?,
            _ => return Err(format!("enrol {key}: {status} {answer}").into()),
        };
        seeded.subjects.push((id, site.to_owned()));
    }
    for (i, (subject, site)) in seeded.subjects.iter().enumerate() {
        let staff = tokens.staff(site);
        let mut forms = vec![
            ("VS", vital_signs(i)),
            ("LB", labs(i)),
            ("CM", medications(i)),
        ];
        if let Some(ae) = adverse_events(i) {
            forms.push(("AE", ae));
        }
        for (oid, body) in forms {
            let (status, answer, _) = api
                .call(
                    reqwest::Method::PUT,
                    &format!("/v1/subjects/{subject}/forms/{oid}"),
                    &staff,
                    &[("if-none-match", "*")],
                    Some(&body),
                )
                .await?;
            match status {
                201 => seeded.forms_written += 1,
                412 => {} // seeded before
                _ => return Err(format!("form {oid} of {subject}: {status} {answer}").into()),
            }
        }
    }
    // Each patient's phone sends its backlog; all phones at once.
    let submissions = seeded.subjects.iter().enumerate().map(|(i, (subject, _))| {
        let api = &api;
        let token = tokens.patient(subject);
        async move {
            let mut sent = 0usize;
            for (d, body) in diary(i) {
                let key = format!("seed-{subject}-{}", day(d));
                loop {
                    let (status, answer, headers) = api
                        .call(
                            reqwest::Method::POST,
                            &format!("/v1/subjects/{subject}/epro"),
                            &token,
                            &[("idempotency-key", &key)],
                            Some(&body),
                        )
                        .await?;
                    match status {
                        201 => {
                            sent += 1;
                            break;
                        }
                        // Sent on an earlier run today with another time of day.
                        422 if answer["type"] == "/problems/idempotency-key-reused" => break,
                        429 => {
                            let wait = headers
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                                .unwrap_or(1);
                            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                        }
                        _ => {
                            return Err::<usize, Error>(
                                format!("diary of {subject}: {status} {answer}").into(),
                            )
                        }
                    }
                }
            }
            Ok(sent)
        }
    });
    for sent in futures::future::join_all(submissions).await {
        seeded.diary_entries += sent?;
    }
    Ok(seeded)
}

/// The subject holding `key` at `site` (a rerun on a later day, when the enrolment date differs).
async fn find_subject(api: &Api, tokens: &Tokens, site: &str, key: &str) -> Result<String, Error> {
    let mut path = format!("/v1/subjects?siteId={site}&limit=100");
    loop {
        let (status, page, _) = api
            .call(reqwest::Method::GET, &path, &tokens.staff(site), &[], None)
            .await?;
        if status != 200 {
            return Err(format!("list {site}: {status} {page}").into());
        }
        for s in page["subjects"].as_array().into_iter().flatten() {
            if s["subjectKey"] == key {
                return Ok(s["subjectId"].as_str().unwrap_or_default().to_owned());
            }
        }
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/subjects?siteId={site}&limit=100&cursor={c}"),
            None => return Err(format!("{key} is enrolled but not listed at {site}").into()),
        }
    }
}
