//! The one table every benchmark adds its rows to: each figure beside its anchor measured in the
//! same run, the ratio, and the goal it is held to (met or not, said plainly). A new benchmark
//! pushes [`Row`]s; the table prints them as markdown and writes `benchmarks/RESULTS.md` with the
//! date and the machine.

use std::fmt::Write as _;

/// A measured amount and its unit.
#[derive(Debug, Clone, Copy)]
pub struct Value {
    pub amount: f64,
    pub unit: &'static str,
}

impl Value {
    pub fn mb_s(amount: f64) -> Self {
        Self {
            amount,
            unit: "MB/s",
        }
    }
    pub fn mib(amount: f64) -> Self {
        Self {
            amount,
            unit: "MiB",
        }
    }
    pub fn per_s(amount: f64, what: &'static str) -> Self {
        Self { amount, unit: what }
    }
    pub fn bytes(amount: f64) -> Self {
        Self {
            amount,
            unit: "bytes",
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.amount;
        let digits = if a.abs() >= 100.0 {
            0
        } else if a.abs() >= 10.0 {
            1
        } else {
            2
        };
        write!(f, "{} {}", thousands(a, digits), self.unit)
    }
}

/// `1234567.8` → `1,234,568` (at 0 digits).
fn thousands(a: f64, digits: usize) -> String {
    let s = format!("{:.*}", digits, a.abs());
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    if a < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// What a figure is held to.
#[derive(Debug, Clone)]
pub enum Goal {
    /// The ratio figure / anchor at least this.
    RatioAtLeast(f64),
    /// The figure at least this (in its unit).
    AtLeast(f64),
    /// The figure at most this (in its unit).
    AtMost(f64),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured, and how.
    pub figure: String,
    pub value: Option<Value>,
    /// What it is measured beside, in the same run.
    pub anchor: String,
    pub anchor_value: Option<Value>,
    /// `value / anchor_value`, when both are there.
    pub ratio: Option<f64>,
    pub goal: Option<Goal>,
}

impl Row {
    pub fn new(figure: impl Into<String>, value: Option<Value>) -> Self {
        Self {
            figure: figure.into(),
            value,
            anchor: String::new(),
            anchor_value: None,
            ratio: None,
            goal: None,
        }
    }

    /// Beside `anchor`, measured in the same run (`None`: it could not be measured here).
    pub fn beside(mut self, anchor: impl Into<String>, anchor_value: Option<Value>) -> Self {
        self.anchor = anchor.into();
        self.anchor_value = anchor_value;
        self.ratio = match (self.value, anchor_value) {
            (Some(v), Some(a)) if a.amount != 0.0 => Some(v.amount / a.amount),
            _ => None,
        };
        self
    }

    pub fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }

    /// The goal and whether this run met it.
    fn verdict(&self) -> String {
        let Some(goal) = &self.goal else {
            return "—".into();
        };
        let unit = self.value.map_or("", |v| v.unit);
        let (text, met) = match goal {
            Goal::RatioAtLeast(r) => (format!("≥ {r}×"), self.ratio.map(|x| x >= *r)),
            Goal::AtLeast(a) => (
                format!("≥ {} {unit}", thousands(*a, 0)),
                self.value.map(|v| v.amount >= *a),
            ),
            Goal::AtMost(a) => (
                format!("≤ {} {unit}", thousands(*a, 0)),
                self.value.map(|v| v.amount <= *a),
            ),
        };
        match met {
            Some(true) => format!("{text}: met"),
            Some(false) => format!("{text}: **not met**"),
            None => format!("{text}: not measured"),
        }
    }
}

/// The rows of one run, in the order they were measured.
#[derive(Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

impl Table {
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| figure | value | anchor (same run) | anchor value | ratio | goal |\n|---|---:|---|---:|---:|---|\n",
        );
        let cell = |v: Option<Value>| v.map_or("not measured".to_string(), |v| v.to_string());
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.figure,
                cell(r.value),
                if r.anchor.is_empty() {
                    "—"
                } else {
                    &r.anchor
                },
                if r.anchor.is_empty() {
                    "—".to_string()
                } else {
                    cell(r.anchor_value)
                },
                r.ratio.map_or("—".to_string(), |x| format!("{x:.2}×")),
                r.verdict(),
            );
        }
        out
    }
}

/// The machine a run was on: what makes its figures comparable with another's.
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    /// The CPU features the hot loops use, of those this CPU has.
    pub flags: Vec<&'static str>,
}

impl Machine {
    pub fn here() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let cpu = field("model name")
            .or_else(|| field("CPU part").map(|p| format!("ARM CPU part {p}")))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let have: Vec<String> = field("flags")
            .or_else(|| field("Features"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let flags = [
            "sha_ni", "avx2", "avx512f", "aes", "vaes", "bmi2", "sha2", "asimd", "sve",
        ]
        .into_iter()
        .filter(|f| have.iter().any(|h| h == f))
        .collect();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            flags,
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {} cores, {} (flags: {})",
            self.cpu,
            self.cores,
            std::env::consts::ARCH,
            if self.flags.is_empty() {
                "none of interest".to_string()
            } else {
                self.flags.join(" ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_ratio_and_goal() {
        let mut t = Table::default();
        t.push(
            Row::new("inspector", Some(Value::mb_s(1234.4)))
                .beside("openssl", Some(Value::mb_s(1000.0)))
                .goal(Goal::RatioAtLeast(0.8)),
        );
        t.push(Row::new("worst case", Some(Value::mb_s(300.0))).goal(Goal::AtLeast(400.0)));
        t.push(
            Row::new("pydicom", Some(Value::per_s(5.0, "files/s")))
                .beside("theirs", None)
                .goal(Goal::RatioAtLeast(20.0)),
        );
        let md = t.markdown();
        assert!(
            md.contains("| inspector | 1,234 MB/s | openssl | 1,000 MB/s | 1.23× | ≥ 0.8×: met |"),
            "{md}"
        );
        assert!(
            md.contains("| worst case | 300 MB/s | — | — | — | ≥ 400 MB/s: **not met** |"),
            "{md}"
        );
        assert!(
            md.contains("| theirs | not measured | — | ≥ 20×: not measured |"),
            "{md}"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1_234_567.8, 0), "1,234,568");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(thousands(15.54, 1), "15.5");
    }
}
