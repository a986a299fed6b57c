//! The PDF export: what a monitor prints before a site visit.
//!
//! Page 1: the header (trial, site, the pseudonymous subject id — never the subject key), the
//! risk summary with its reasons, the diary's summary and a vector chart of ePRO pain scores over
//! time (per day, or per ISO week when the diary spans more than [`pain::DAILY_UP_TO_DAYS`] days:
//! mean line, min–max band). Then tables: adverse events (serious ones marked), laboratory
//! results outside their reference range (marked HIGH/LOW with the range), concomitant
//! medications (drug names from the reference data when it has the code), the latest vital signs.
//! Every page carries the export's id, its UTC timestamp and "Page n of N".
//!
//! Bounded: no PDF writer streams, so the document is built in memory, but it holds only
//! aggregates of the diary (one point per day or week) and the forms' rows (each form at most
//! a few hundred repeats): its size does not grow with the number of diary entries. The full rows
//! are what the CSV export is for.
//!
//! Layout first ([`layout`]: pages of drawing operations, so "of N" is known), then
//! [`render`] with krilla and the embedded DejaVu Sans (fonts/, with its licence).

use crate::pain::{Granularity, PainSeries};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use krilla::Document;
use shared::clinical::forms::{AdverseEvent, LabResult, Medication, RangeFlag, VitalSigns};

static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

pub const CONTENT_TYPE: &str = "application/pdf";

/// A4 in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 42.0;
const BODY_TOP: f32 = 78.0;
const BODY_BOTTOM: f32 = PAGE_H - 56.0;
const ROW_H: f32 = 13.0;
const TABLE_SIZE: f32 = 8.0;

/// Who the report is about and which export it is.
#[derive(Debug, Clone)]
pub struct ReportHeader {
    pub trial: String,
    pub site: String,
    /// The pseudonymous subject id.
    pub subject: String,
    pub enrolled_on: NaiveDate,
    pub status: String,
    pub export_id: String,
    pub generated_at: DateTime<Utc>,
}

/// One reason behind the risk score.
#[derive(Debug, Clone)]
pub struct RiskReason {
    pub points: u32,
    pub text: String,
}

/// The risk assessment as the report prints it.
#[derive(Debug, Clone)]
pub enum RiskSection {
    Assessed {
        score: u32,
        level: String,
        reasons: Vec<RiskReason>,
        /// False when a source was unavailable: the score is a lower bound.
        complete: bool,
    },
    /// No assessment available (the reason is printed).
    NotAssessed(String),
}

/// A medication with its drug's name when the reference data knows the code.
#[derive(Debug, Clone)]
pub struct NamedMedication {
    pub medication: Medication,
    pub drug_name: Option<String>,
}

/// Everything the report shows: bounded whatever the diary's length.
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub header: ReportHeader,
    pub risk: RiskSection,
    pub diary: PainSeries,
    pub adverse_events: Vec<AdverseEvent>,
    /// Every lab result; the report lists those outside their range.
    pub labs: Vec<LabResult>,
    pub medications: Vec<NamedMedication>,
    pub vital_signs: Vec<VitalSigns>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Normal,
    Muted,
    Alert,
}

/// One drawing operation, in points from the page's top left.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        tone: Tone,
        text: String,
    },
    /// A stroked polyline.
    Line {
        points: Vec<(f32, f32)>,
        width: f32,
        tone: Tone,
    },
    /// A filled polygon (light).
    Area { points: Vec<(f32, f32)>, tone: Tone },
}

#[derive(Debug, Default)]
pub struct Pages {
    pub pages: Vec<Vec<Op>>,
}

/// Where the next line goes; starts a new page when the body is full.
struct Cursor {
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl Cursor {
    fn new() -> Self {
        Self {
            pages: vec![Vec::new()],
            y: BODY_TOP,
        }
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Makes room for `h` points, breaking the page if needed; true when it broke.
    fn need(&mut self, h: f32) -> bool {
        if self.y + h > BODY_BOTTOM {
            self.pages.push(Vec::new());
            self.y = BODY_TOP;
            true
        } else {
            false
        }
    }

    fn text(&mut self, x: f32, size: f32, bold: bool, tone: Tone, text: impl Into<String>) {
        let y = self.y;
        self.ops().push(Op::Text {
            x,
            y,
            size,
            bold,
            tone,
            text: text.into(),
        });
    }

    fn line_of_text(&mut self, size: f32, bold: bool, tone: Tone, text: impl Into<String>) {
        self.need(size * 1.5);
        self.y += size * 1.2;
        self.text(MARGIN, size, bold, tone, text);
        self.y += size * 0.4;
    }

    fn heading(&mut self, text: &str) {
        // Keep a heading with at least a few lines of what follows.
        self.need(11.0 * 1.6 + 4.0 * ROW_H);
        self.y += 8.0;
        self.line_of_text(11.0, true, Tone::Normal, text);
        self.rule();
    }

    fn rule(&mut self) {
        let y = self.y + 1.0;
        self.ops().push(Op::Line {
            points: vec![(MARGIN, y), (PAGE_W - MARGIN, y)],
            width: 0.5,
            tone: Tone::Muted,
        });
        self.y += 3.0;
    }
}

/// Shortens `text` to what fits `width` points at `size` (DejaVu Sans averages ~0.55 em a glyph).
fn fit(text: &str, width: f32, size: f32) -> String {
    let max = ((width / (size * 0.56)).floor() as usize).max(2);
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// A table: a bold header row repeated on every page it spans.
fn table(c: &mut Cursor, columns: &[(&str, f32)], rows: &[(Tone, Vec<String>)]) {
    let header = |c: &mut Cursor| {
        c.y += ROW_H;
        let mut x = MARGIN;
        for (name, w) in columns {
            c.text(
                x,
                TABLE_SIZE,
                true,
                Tone::Normal,
                fit(name, *w - 4.0, TABLE_SIZE),
            );
            x += w;
        }
        c.y += 3.0;
        c.rule();
    };
    c.need(ROW_H * 3.0);
    header(c);
    for (tone, cells) in rows {
        if c.need(ROW_H) {
            header(c);
        }
        c.y += ROW_H;
        let mut x = MARGIN;
        for ((_, w), cell) in columns.iter().zip(cells) {
            c.text(
                x,
                TABLE_SIZE,
                *tone == Tone::Alert,
                *tone,
                fit(cell, *w - 4.0, TABLE_SIZE),
            );
            x += w;
        }
    }
    c.y += 4.0;
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn opt_date(d: Option<NaiveDate>) -> String {
    d.map(date).unwrap_or_else(|| "ongoing".into())
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The chart of pain scores: axes, grid, the min–max band and the mean line, all vector.
fn chart(c: &mut Cursor, diary: &PainSeries) {
    let (granularity, points) = diary.points();
    let h = 170.0;
    let top = c.y + 10.0;
    let left = MARGIN + 26.0;
    let right = PAGE_W - MARGIN - 6.0;
    let bottom = top + h;
    let ops = c.ops();
    // Grid and y labels (0 to 10).
    for score in (0..=10).step_by(2) {
        let y = bottom - h * score as f32 / 10.0;
        ops.push(Op::Line {
            points: vec![(left, y), (right, y)],
            width: if score == 0 { 0.8 } else { 0.3 },
            tone: if score == 0 {
                Tone::Normal
            } else {
                Tone::Muted
            },
        });
        ops.push(Op::Text {
            x: MARGIN + 8.0,
            y: y + 3.0,
            size: 7.5,
            bold: false,
            tone: Tone::Muted,
            text: score.to_string(),
        });
    }
    ops.push(Op::Line {
        points: vec![(left, top), (left, bottom)],
        width: 0.8,
        tone: Tone::Normal,
    });
    let n = points.len();
    let x_of = |i: usize| -> f32 {
        if n <= 1 {
            (left + right) / 2.0
        } else {
            left + 6.0 + (right - left - 12.0) * i as f32 / (n - 1) as f32
        }
    };
    let y_of = |v: f64| -> f32 { bottom - h * (v as f32) / 10.0 };
    if n > 0 {
        // The band: min along the top edge… max back along the bottom.
        let mut band: Vec<(f32, f32)> = (0..n)
            .map(|i| (x_of(i), y_of(f64::from(points[i].max))))
            .collect();
        band.extend(
            (0..n)
                .rev()
                .map(|i| (x_of(i), y_of(f64::from(points[i].min)))),
        );
        if n == 1 {
            band = vec![
                (x_of(0) - 3.0, y_of(f64::from(points[0].max))),
                (x_of(0) + 3.0, y_of(f64::from(points[0].max))),
                (x_of(0) + 3.0, y_of(f64::from(points[0].min))),
                (x_of(0) - 3.0, y_of(f64::from(points[0].min))),
            ];
        }
        ops.push(Op::Area {
            points: band,
            tone: Tone::Muted,
        });
        let line: Vec<(f32, f32)> = (0..n).map(|i| (x_of(i), y_of(points[i].mean))).collect();
        let line = if n == 1 {
            vec![(line[0].0 - 3.0, line[0].1), (line[0].0 + 3.0, line[0].1)]
        } else {
            line
        };
        ops.push(Op::Line {
            points: line,
            width: 1.4,
            tone: Tone::Alert,
        });
        // X labels: first, middle, last.
        let mut labelled = vec![0, n / 2, n - 1];
        labelled.dedup();
        for i in labelled {
            let x = (x_of(i) - 22.0).clamp(left - 10.0, right - 44.0);
            ops.push(Op::Text {
                x,
                y: bottom + 11.0,
                size: 7.5,
                bold: false,
                tone: Tone::Muted,
                text: date(points[i].start),
            });
        }
    }
    c.y = bottom + 16.0;
    let what = match granularity {
        Granularity::Daily => "per day",
        Granularity::Weekly => "per ISO week (Monday)",
    };
    c.line_of_text(
        7.5,
        false,
        Tone::Muted,
        format!(
            "Pain score 0–10, {what}: line = mean, band = lowest to highest. {} points.",
            n
        ),
    );
}

/// Lays the report out into pages of drawing operations (headers and footers not yet added).
pub fn layout(input: &ReportInput) -> Pages {
    let mut c = Cursor::new();
    let h = &input.header;
    c.line_of_text(16.0, true, Tone::Normal, "Subject history report");
    c.line_of_text(
        10.0,
        false,
        Tone::Normal,
        format!(
            "Trial {}   ·   Site {}   ·   Subject {}",
            h.trial, h.site, h.subject
        ),
    );
    c.line_of_text(
        9.0,
        false,
        Tone::Muted,
        format!("Enrolled {}   ·   Status {}", date(h.enrolled_on), h.status),
    );

    c.heading("Risk summary");
    match &input.risk {
        RiskSection::Assessed {
            score,
            level,
            reasons,
            complete,
        } => {
            c.line_of_text(
                10.0,
                true,
                if level == "HIGH" {
                    Tone::Alert
                } else {
                    Tone::Normal
                },
                format!(
                    "Risk {level}, score {score}{}",
                    if *complete {
                        ""
                    } else {
                        " (a lower bound: a source was unavailable)"
                    }
                ),
            );
            if reasons.is_empty() {
                c.line_of_text(9.0, false, Tone::Muted, "No risk factor found.");
            }
            for r in reasons {
                c.line_of_text(
                    9.0,
                    false,
                    Tone::Normal,
                    format!("+{}  {}", r.points, r.text),
                );
            }
        }
        RiskSection::NotAssessed(why) => {
            c.line_of_text(9.0, false, Tone::Muted, format!("Not assessed: {why}"));
        }
    }

    c.heading("Patient-reported outcomes (ePRO)");
    let d = &input.diary;
    match (d.first_day(), d.last_day()) {
        (Some(first), Some(last)) => {
            c.line_of_text(
                9.0,
                false,
                Tone::Normal,
                format!(
                    "{} diary entries from {} to {} on {} days; {} completed; mean pain {:.1}.",
                    d.entries(),
                    date(first),
                    date(last),
                    d.days_with_entries(),
                    d.completed(),
                    d.mean().unwrap_or(0.0)
                ),
            );
            let symptoms: Vec<String> = d
                .symptom_counts()
                .iter()
                .map(|(s, n)| format!("{} {n}", s.as_str()))
                .collect();
            if !symptoms.is_empty() {
                c.line_of_text(
                    8.0,
                    false,
                    Tone::Muted,
                    fit(
                        &format!("Symptoms reported: {}", symptoms.join(", ")),
                        PAGE_W - 2.0 * MARGIN,
                        8.0,
                    ),
                );
            }
            c.need(220.0);
            chart(&mut c, d);
        }
        _ => c.line_of_text(9.0, false, Tone::Muted, "No diary entries."),
    }

    c.heading(&format!("Adverse events ({})", input.adverse_events.len()));
    if input.adverse_events.is_empty() {
        c.line_of_text(9.0, false, Tone::Muted, "None recorded.");
    } else {
        let rows: Vec<(Tone, Vec<String>)> = input
            .adverse_events
            .iter()
            .map(|ae| {
                (
                    if ae.serious {
                        Tone::Alert
                    } else {
                        Tone::Normal
                    },
                    vec![
                        ae.term.clone(),
                        date(ae.start),
                        opt_date(ae.end),
                        if ae.serious { "SERIOUS" } else { "no" }.into(),
                        ae.severity.clone(),
                        ae.outcome.clone(),
                        match ae.related {
                            Some(true) => "yes",
                            Some(false) => "no",
                            None => "",
                        }
                        .into(),
                    ],
                )
            })
            .collect();
        table(
            &mut c,
            &[
                ("Term", 150.0),
                ("Start", 58.0),
                ("End", 58.0),
                ("Serious", 52.0),
                ("Severity", 58.0),
                ("Outcome", 90.0),
                ("Related", 45.0),
            ],
            &rows,
        );
    }

    let out: Vec<&LabResult> = input
        .labs
        .iter()
        .filter(|l| l.out_of_range().is_some())
        .collect();
    c.heading(&format!(
        "Laboratory results outside their reference range ({} of {})",
        out.len(),
        input.labs.len()
    ));
    if out.is_empty() {
        c.line_of_text(9.0, false, Tone::Muted, "None.");
    } else {
        let rows: Vec<(Tone, Vec<String>)> = out
            .iter()
            .map(|l| {
                let flag = match l.out_of_range() {
                    Some(RangeFlag::High) => "HIGH ▲",
                    Some(RangeFlag::Low) => "LOW ▼",
                    None => "",
                };
                let range = match (l.low, l.high) {
                    (Some(lo), Some(hi)) => format!("{} – {}", number(lo), number(hi)),
                    (Some(lo), None) => format!("≥ {}", number(lo)),
                    (None, Some(hi)) => format!("≤ {}", number(hi)),
                    (None, None) => String::new(),
                };
                (
                    Tone::Alert,
                    vec![
                        date(l.date),
                        l.test.clone(),
                        number(l.value),
                        l.unit.clone(),
                        range,
                        flag.into(),
                    ],
                )
            })
            .collect();
        table(
            &mut c,
            &[
                ("Date", 70.0),
                ("Test", 60.0),
                ("Result", 70.0),
                ("Unit", 70.0),
                ("Reference range", 110.0),
                ("Flag", 80.0),
            ],
            &rows,
        );
    }

    c.heading(&format!(
        "Concomitant medications ({})",
        input.medications.len()
    ));
    if input.medications.is_empty() {
        c.line_of_text(9.0, false, Tone::Muted, "None recorded.");
    } else {
        let rows: Vec<(Tone, Vec<String>)> = input
            .medications
            .iter()
            .map(|m| {
                let med = &m.medication;
                let dose = match (med.dose, &med.dose_unit) {
                    (Some(d), Some(u)) => format!("{} {u}", number(d)),
                    (Some(d), None) => number(d),
                    _ => String::new(),
                };
                (
                    Tone::Normal,
                    vec![
                        m.drug_name
                            .clone()
                            .unwrap_or_else(|| "(not in reference data)".into()),
                        med.drug_code.clone(),
                        dose,
                        med.route.clone().unwrap_or_default(),
                        date(med.start),
                        opt_date(med.end),
                    ],
                )
            })
            .collect();
        table(
            &mut c,
            &[
                ("Drug", 160.0),
                ("ATC code", 62.0),
                ("Dose", 70.0),
                ("Route", 60.0),
                ("Start", 58.0),
                ("End", 58.0),
            ],
            &rows,
        );
    }

    c.heading(&format!("Vital signs ({})", input.vital_signs.len()));
    if input.vital_signs.is_empty() {
        c.line_of_text(9.0, false, Tone::Muted, "None recorded.");
    } else {
        let rows: Vec<(Tone, Vec<String>)> = input
            .vital_signs
            .iter()
            .map(|v| {
                (
                    Tone::Normal,
                    vec![
                        date(v.date),
                        format!("{}/{}", v.systolic, v.diastolic),
                        v.pulse.map(|p| p.to_string()).unwrap_or_default(),
                        v.temperature_c.map(number).unwrap_or_default(),
                        v.weight_kg.map(number).unwrap_or_default(),
                    ],
                )
            })
            .collect();
        table(
            &mut c,
            &[
                ("Date", 80.0),
                ("BP (mmHg)", 80.0),
                ("Pulse (/min)", 80.0),
                ("Temp (°C)", 80.0),
                ("Weight (kg)", 80.0),
            ],
            &rows,
        );
    }

    Pages { pages: c.pages }
}

/// Adds the running header and footer ("Page n of N", the export id and timestamp) to every page.
fn frame(pages: &mut Pages, h: &ReportHeader) {
    let n = pages.pages.len();
    let stamp = h.generated_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    for (i, ops) in pages.pages.iter_mut().enumerate() {
        ops.push(Op::Text {
            x: MARGIN,
            y: 40.0,
            size: 8.0,
            bold: false,
            tone: Tone::Muted,
            text: format!(
                "clinflow · trial {} · site {} · subject {}",
                h.trial, h.site, h.subject
            ),
        });
        ops.push(Op::Line {
            points: vec![(MARGIN, 48.0), (PAGE_W - MARGIN, 48.0)],
            width: 0.5,
            tone: Tone::Muted,
        });
        ops.push(Op::Line {
            points: vec![(MARGIN, PAGE_H - 40.0), (PAGE_W - MARGIN, PAGE_H - 40.0)],
            width: 0.5,
            tone: Tone::Muted,
        });
        ops.push(Op::Text {
            x: MARGIN,
            y: PAGE_H - 28.0,
            size: 8.0,
            bold: false,
            tone: Tone::Muted,
            text: format!("Export {} · generated {stamp}", h.export_id),
        });
        ops.push(Op::Text {
            x: PAGE_W - MARGIN - 62.0,
            y: PAGE_H - 28.0,
            size: 8.0,
            bold: false,
            tone: Tone::Muted,
            text: format!("Page {} of {n}", i + 1),
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font could not be read")]
    Font,
    #[error("the PDF writer failed: {0}")]
    Writer(String),
}

fn color(tone: Tone) -> rgb::Color {
    match tone {
        Tone::Normal => rgb::Color::new(20, 20, 20),
        Tone::Muted => rgb::Color::new(120, 120, 120),
        Tone::Alert => rgb::Color::new(178, 24, 24),
    }
}

fn path(points: &[(f32, f32)], close: bool) -> Option<krilla::geom::Path> {
    let mut pb = PathBuilder::new();
    let (first, rest) = points.split_first()?;
    pb.move_to(first.0, first.1);
    for p in rest {
        pb.line_to(p.0, p.1);
    }
    if close {
        pb.close();
    }
    pb.finish()
}

/// The whole report as PDF bytes.
pub fn render(input: &ReportInput) -> Result<Vec<u8>, PdfError> {
    let mut pages = layout(input);
    frame(&mut pages, &input.header);
    let regular = Font::new(REGULAR.into(), 0).ok_or(PdfError::Font)?;
    let bold = Font::new(BOLD.into(), 0).ok_or(PdfError::Font)?;
    let mut doc = Document::new();
    doc.set_metadata(
        krilla::metadata::Metadata::new()
            .title(format!("Subject history {}", input.header.subject))
            .creator("clinflow export-worker".into())
            .language("en".into()),
    );
    for ops in &pages.pages {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
            .ok_or_else(|| PdfError::Writer("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut s = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    bold: b,
                    tone,
                    text,
                } => {
                    s.set_fill(Some(Fill {
                        paint: color(*tone).into(),
                        opacity: NormalizedF32::ONE,
                        rule: Default::default(),
                    }));
                    s.set_stroke(None);
                    s.draw_text(
                        Point::from_xy(*x, *y),
                        if *b { bold.clone() } else { regular.clone() },
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Line {
                    points,
                    width,
                    tone,
                } => {
                    if let Some(p) = path(points, false) {
                        s.set_fill(None);
                        s.set_stroke(Some(Stroke {
                            paint: color(*tone).into(),
                            width: *width,
                            ..Stroke::default()
                        }));
                        s.draw_path(&p);
                    }
                }
                Op::Area { points, tone } => {
                    if let Some(p) = path(points, true) {
                        s.set_stroke(None);
                        s.set_fill(Some(Fill {
                            paint: color(*tone).into(),
                            opacity: NormalizedF32::new(0.25).unwrap_or(NormalizedF32::ONE),
                            rule: Default::default(),
                        }));
                        s.draw_path(&p);
                    }
                }
            }
        }
        s.finish();
        page.finish();
    }
    doc.finish().map_err(|e| PdfError::Writer(format!("{e:?}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::Duration;
    use shared::clinical::epro::{EproEntry, PainScore, Symptom};
    use shared::domain::SubjectId;
    use std::process::Command;

    pub fn sample(entries: u32, aes: u32) -> ReportInput {
        let mut diary = PainSeries::default();
        let start: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
        for i in 0..entries {
            diary.add(&EproEntry {
                id: format!("e{i}"),
                subject: SubjectId::parse("SUBJ-0001").unwrap(),
                recorded_at: start + Duration::hours(i64::from(i) * 7),
                pain_score: PainScore::new(i64::from((i / 40 + i % 3) % 11)).unwrap(),
                symptoms: [Symptom::Nausea].into_iter().collect(),
                diary_completed: i % 5 != 0,
                received_at: start,
                submitted_by: "p".into(),
            });
        }
        let d = |s: &str| -> NaiveDate { s.parse().unwrap() };
        ReportInput {
            header: ReportHeader {
                trial: "TRIAL-1".into(),
                site: "SITE-BOS".into(),
                subject: "SUBJ-0001".into(),
                enrolled_on: d("2026-03-01"),
                status: "ENROLLED".into(),
                export_id: "exp-123".into(),
                generated_at: "2026-11-28T01:30:00Z".parse().unwrap(),
            },
            risk: RiskSection::Assessed {
                score: 40,
                level: "MEDIUM".into(),
                reasons: vec![RiskReason {
                    points: 30,
                    text: "Serious adverse event: Pneumonia".into(),
                }],
                complete: true,
            },
            diary,
            adverse_events: (0..aes)
                .map(|i| AdverseEvent {
                    repeat_key: i + 1,
                    term: if i == 0 {
                        "Pneumonia".into()
                    } else {
                        format!("Headache {i}")
                    },
                    start: d("2026-10-01"),
                    end: None,
                    serious: i == 0,
                    severity: "SEVERE".into(),
                    outcome: "RECOVERING".into(),
                    related: Some(false),
                })
                .collect(),
            labs: vec![
                LabResult {
                    repeat_key: 1,
                    date: d("2026-11-01"),
                    test: "ALT".into(),
                    value: 112.0,
                    unit: "U/L".into(),
                    low: Some(7.0),
                    high: Some(56.0),
                },
                LabResult {
                    repeat_key: 2,
                    date: d("2026-11-01"),
                    test: "HGB".into(),
                    value: 13.5,
                    unit: "g/dL".into(),
                    low: Some(12.0),
                    high: Some(16.0),
                },
            ],
            medications: vec![NamedMedication {
                medication: Medication {
                    repeat_key: 1,
                    drug_code: "N02BE01".into(),
                    dose: Some(500.0),
                    dose_unit: Some("mg".into()),
                    route: Some("ORAL".into()),
                    start: d("2026-10-01"),
                    end: None,
                },
                drug_name: Some("paracetamol".into()),
            }],
            vital_signs: Vec::new(),
        }
    }

    fn poppler(tool: &str, args: &[&str]) -> std::process::Output {
        let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
            panic!("{tool} (poppler-utils, scripts/setup.sh installs it): {e}")
        });
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    #[test]
    fn the_report_renders_with_its_tables_chart_and_page_numbers() {
        let input = sample(2_000, 80);
        let bytes = render(&input).unwrap();
        if let Ok(keep) = std::env::var("EXPORT_PDF_SAMPLE") {
            std::fs::write(keep, &bytes).unwrap(); // to look at it: EXPORT_PDF_SAMPLE=/tmp/r.pdf
        }
        let dir = std::env::temp_dir().join(format!("pdf-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("report.pdf");
        std::fs::write(&file, &bytes).unwrap();
        let f = file.to_str().unwrap();
        let text = String::from_utf8(poppler("pdftotext", &["-layout", f, "-"]).stdout).unwrap();
        let pages = layout(&input).pages.len();
        assert!(pages >= 3, "80 adverse events span pages: {pages}");
        for needle in [
            "Subject SUBJ-0001",
            "TRIAL-1",
            "SITE-BOS",
            "Risk MEDIUM, score 40",
            "Serious adverse event: Pneumonia",
            "Adverse events (80)",
            "Term",
            "Severity",
            "SERIOUS",
            "outside their reference range (1 of 2)",
            "HIGH",
            "7 – 56",
            "paracetamol",
            "N02BE01",
            "per ISO week",
            "Export exp-123",
            "2026-11-28T01:30:00Z",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        for p in 1..=pages {
            assert!(text.contains(&format!("Page {p} of {pages}")), "page {p}");
        }
        assert!(!text.contains("HGB"), "an in-range result is not listed");
        // The chart: vector strokes on page 1 (the rasterised chart area is not blank).
        poppler(
            "pdftoppm",
            &[
                "-r",
                "40",
                "-gray",
                "-f",
                "1",
                "-l",
                "1",
                f,
                dir.join("p").to_str().unwrap(),
            ],
        );
        let png = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".pgm"))
            .map(|e| e.path())
            .expect("pdftoppm wrote page 1");
        assert!(std::fs::metadata(png).unwrap().len() > 1000);
        std::fs::remove_dir_all(&dir).ok();
    }
}
