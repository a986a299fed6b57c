//! Exports (issue 10): rows per second, CPU seconds and peak RSS of a CSV and a PDF export of
//! 100,000 ePRO entries, rendered in-process into a sink that drops each 5 MiB part as the worker
//! would ship it, beside the old Go service's 3 s PDF export (its figure after the strings.Builder
//! fix, as the issue reports it: an anchor quoted, not measured here).
//!
//! Goal: each under 1 s of CPU for 100,000 entries, peak RSS under 64 MiB.
//!
//! `make bench BENCH=export` runs this group alone.

use chrono::{DateTime, Duration, Utc};
use export_worker::csv_export::CsvExport;
use export_worker::export::PART_SIZE;
use export_worker::pain::PainSeries;
use export_worker::pdf::{self, ReportHeader, ReportInput, RiskSection};
use shared::clinical::epro::{EproEntry, PainScore, Symptom};
use shared::clinical::subject::{Sex, SubjectRecord, SubjectStatus};
use shared::domain::{SiteId, SubjectId, SubjectKey, TrialId};
use std::time::Instant;

/// The old service's PDF export of a large subject after its fix (seconds).
pub const OLD_SERVICE_SECONDS: f64 = 3.0;
pub const ENTRIES: u64 = 100_000;
const PAGE: u64 = 1_000;

fn subject() -> SubjectRecord {
    SubjectRecord {
        id: SubjectId::parse("SUBJ-BENCH").unwrap(),
        trial: TrialId::parse("TRIAL-1").unwrap(),
        site: SiteId::parse("SITE-1").unwrap(),
        subject_key: SubjectKey::parse("BENCH-1").unwrap(),
        sex: Sex::Female,
        birth_year: 1960,
        enrolled_on: "2020-01-01".parse().unwrap(),
        status: SubjectStatus::Enrolled,
        enrolled_by: "bench".into(),
        enrolled_at: "2020-01-01T00:00:00Z".parse().unwrap(),
    }
}

/// One page of the synthetic diary (as a DynamoDB page would arrive): entry i every 30 minutes.
fn page(from: u64, subject: &SubjectId) -> Vec<EproEntry> {
    let start: DateTime<Utc> = "2020-01-01T06:00:00Z".parse().unwrap();
    (from..(from + PAGE).min(ENTRIES))
        .map(|i| EproEntry {
            id: format!("{:08x}-0000-4000-8000-{:012x}", i, i),
            subject: subject.clone(),
            recorded_at: start + Duration::minutes(i as i64 * 30),
            pain_score: PainScore::new((i % 11) as i64).unwrap(),
            symptoms: Symptom::ALL
                .iter()
                .copied()
                .filter(|s| (i as usize + *s as usize) % 6 == 0)
                .collect(),
            diary_completed: i % 9 != 0,
            received_at: start + Duration::minutes(i as i64 * 30 + 2),
            submitted_by: "patient".into(),
        })
        .collect()
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Resets the peak-RSS mark so each export's peak is its own (Linux: clear_refs 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub struct Figure {
    pub what: &'static str,
    pub wall: f64,
    pub cpu: f64,
    pub rss: f64,
    pub bytes: u64,
}

fn measure(what: &'static str, f: impl FnOnce() -> u64) -> Figure {
    reset_peak();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let bytes = f();
    Figure {
        what,
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
        rss: peak_rss_mib(),
        bytes,
    }
}

/// The CSV's and the PDF's figures (also printed).
pub fn run() -> Vec<Figure> {
    let s = subject();
    let csv = measure("CSV", || {
        let mut out = Vec::with_capacity(PART_SIZE + 512 * 1024);
        let mut csv = CsvExport::new(&s);
        csv.header(&mut out).unwrap();
        let mut shipped = 0u64;
        let mut from = 0;
        while from < ENTRIES {
            let entries = page(from, &s.id);
            csv.diary(&mut out, &entries).unwrap();
            if out.len() >= PART_SIZE {
                shipped += out.len() as u64;
                out.clear(); // shipped as a part
            }
            from += PAGE;
        }
        assert_eq!(csv.rows(), ENTRIES);
        shipped + out.len() as u64
    });
    let pdf = measure("PDF", || {
        let mut series = PainSeries::default();
        let mut from = 0;
        while from < ENTRIES {
            for e in &page(from, &s.id) {
                series.add(e);
            }
            from += PAGE;
        }
        assert_eq!(series.entries(), ENTRIES);
        let input = ReportInput {
            header: ReportHeader {
                trial: s.trial.to_string(),
                site: s.site.to_string(),
                subject: s.id.to_string(),
                enrolled_on: s.enrolled_on,
                status: "ENROLLED".into(),
                export_id: "bench".into(),
                generated_at: Utc::now(),
            },
            risk: RiskSection::NotAssessed("benchmark".into()),
            diary: series,
            adverse_events: Vec::new(),
            labs: Vec::new(),
            medications: Vec::new(),
            vital_signs: Vec::new(),
        };
        pdf::render(&input).unwrap().len() as u64
    });
    println!(
        "exports of {ENTRIES} ePRO entries (in-process, rendered into a sink; anchor: the old service's PDF export, {OLD_SERVICE_SECONDS} s):"
    );
    for f in [&csv, &pdf] {
        println!(
            "  {}: {:.3} s wall, {:.3} s CPU, {:.0} rows/s, {:.0} KiB out, peak RSS {:.1} MiB; {:.1}x the anchor; goal <1 s CPU and <64 MiB: {}",
            f.what,
            f.wall,
            f.cpu,
            ENTRIES as f64 / f.wall.max(1e-9),
            f.bytes as f64 / 1024.0,
            f.rss,
            OLD_SERVICE_SECONDS / f.wall.max(1e-9),
            if f.cpu < 1.0 && f.rss < 64.0 { "met" } else { "NOT met" }
        );
    }
    vec![csv, pdf]
}
