//! The diary as the PDF shows it: pain scores aggregated per day while the diary streams past, then
//! per day or per ISO week for the chart. Memory grows with the number of days the diary spans
//! (a few thousand at most), never with the number of entries.

use chrono::{Datelike, Duration, NaiveDate};
use shared::clinical::epro::{EproEntry, Symptom};
use std::collections::BTreeMap;

/// Up to this many days, the chart shows one point per day; beyond, one per ISO week.
pub const DAILY_UP_TO_DAYS: i64 = 92;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DayStats {
    sum: u32,
    count: u32,
    min: u8,
    max: u8,
    completed: u32,
}

/// What the diary held, summed per UTC day.
#[derive(Debug, Clone, Default)]
pub struct PainSeries {
    days: BTreeMap<NaiveDate, DayStats>,
    symptoms: [u64; Symptom::ALL.len()],
    entries: u64,
    completed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Daily,
    Weekly,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
        }
    }
}

/// One point of the chart: a day or the week starting on `start` (a Monday).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PainPoint {
    pub start: NaiveDate,
    pub mean: f64,
    pub min: u8,
    pub max: u8,
    pub entries: u32,
}

impl PainSeries {
    pub fn add(&mut self, e: &EproEntry) {
        let day = e.recorded_at.date_naive();
        let pain = e.pain_score.value();
        let s = self.days.entry(day).or_insert(DayStats {
            min: u8::MAX,
            ..DayStats::default()
        });
        s.sum += u32::from(pain);
        s.count += 1;
        s.min = s.min.min(pain);
        s.max = s.max.max(pain);
        s.completed += u32::from(e.diary_completed);
        for sym in &e.symptoms {
            if let Some(i) = Symptom::ALL.iter().position(|s| s == sym) {
                self.symptoms[i] += 1;
            }
        }
        self.entries += 1;
        self.completed += u64::from(e.diary_completed);
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn completed(&self) -> u64 {
        self.completed
    }

    pub fn first_day(&self) -> Option<NaiveDate> {
        self.days.keys().next().copied()
    }

    pub fn last_day(&self) -> Option<NaiveDate> {
        self.days.keys().next_back().copied()
    }

    /// Days with at least one entry.
    pub fn days_with_entries(&self) -> usize {
        self.days.len()
    }

    pub fn mean(&self) -> Option<f64> {
        let (sum, n) = self.days.values().fold((0u64, 0u64), |(s, n), d| {
            (s + u64::from(d.sum), n + u64::from(d.count))
        });
        (n > 0).then(|| sum as f64 / n as f64)
    }

    /// How often each symptom was reported, most frequent first; unreported ones left out.
    pub fn symptom_counts(&self) -> Vec<(Symptom, u64)> {
        let mut v: Vec<(Symptom, u64)> = Symptom::ALL
            .iter()
            .copied()
            .zip(self.symptoms.iter().copied())
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        v
    }

    /// The chart's points: per day when the diary spans at most [`DAILY_UP_TO_DAYS`], else per
    /// ISO week (Monday to Sunday).
    pub fn points(&self) -> (Granularity, Vec<PainPoint>) {
        let (Some(first), Some(last)) = (self.first_day(), self.last_day()) else {
            return (Granularity::Daily, Vec::new());
        };
        let granularity = if (last - first).num_days() < DAILY_UP_TO_DAYS {
            Granularity::Daily
        } else {
            Granularity::Weekly
        };
        let mut out: Vec<(NaiveDate, DayStats)> = Vec::new();
        for (day, s) in &self.days {
            let start = match granularity {
                Granularity::Daily => *day,
                Granularity::Weekly => {
                    *day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
                }
            };
            match out.last_mut() {
                Some((at, acc)) if *at == start => {
                    acc.sum += s.sum;
                    acc.count += s.count;
                    acc.min = acc.min.min(s.min);
                    acc.max = acc.max.max(s.max);
                    acc.completed += s.completed;
                }
                _ => out.push((start, *s)),
            }
        }
        let points = out
            .into_iter()
            .map(|(start, s)| PainPoint {
                start,
                mean: f64::from(s.sum) / f64::from(s.count.max(1)),
                min: s.min,
                max: s.max,
                entries: s.count,
            })
            .collect();
        (granularity, points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::clinical::epro::PainScore;
    use shared::domain::SubjectId;

    fn entry(at: &str, pain: i64) -> EproEntry {
        EproEntry {
            id: "e".into(),
            subject: SubjectId::parse("S").unwrap(),
            recorded_at: at.parse().unwrap(),
            pain_score: PainScore::new(pain).unwrap(),
            symptoms: [Symptom::Nausea].into_iter().collect(),
            diary_completed: pain % 2 == 0,
            received_at: at.parse().unwrap(),
            submitted_by: "p".into(),
        }
    }

    #[test]
    fn a_short_diary_charts_per_day() {
        let mut s = PainSeries::default();
        s.add(&entry("2026-11-02T08:00:00Z", 2));
        s.add(&entry("2026-11-02T20:00:00Z", 6));
        s.add(&entry("2026-11-04T08:00:00Z", 5));
        let (g, p) = s.points();
        assert_eq!(g, Granularity::Daily);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].mean, 4.0);
        assert_eq!((p[0].min, p[0].max, p[0].entries), (2, 6, 2));
        assert_eq!(s.entries(), 3);
        assert_eq!(s.completed(), 2);
        assert_eq!(s.symptom_counts(), vec![(Symptom::Nausea, 3)]);
        assert_eq!(s.mean(), Some(13.0 / 3.0));
    }

    #[test]
    fn a_long_diary_charts_per_iso_week() {
        let mut s = PainSeries::default();
        // 2026-01-05 is a Monday; one entry a day for 200 days, pain = week number mod 11.
        let start: NaiveDate = "2026-01-05".parse().unwrap();
        for d in 0..200 {
            let day = start + Duration::days(d);
            s.add(&entry(&format!("{day}T09:00:00Z"), (d / 7) % 11));
        }
        let (g, p) = s.points();
        assert_eq!(g, Granularity::Weekly);
        assert_eq!(p.len(), 29);
        assert!(p.iter().all(|w| w.start.weekday() == chrono::Weekday::Mon));
        assert_eq!(p[3].mean, 3.0);
        assert_eq!(p[3].entries, 7);
        assert_eq!(p[28].entries, 4);
    }
}
