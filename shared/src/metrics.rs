//! Counts and latencies as CloudWatch Embedded Metric Format: one JSON line on stdout per unit of
//! work, which Lambda's log pipeline turns into metrics (namespace `clinflow`) with no API call.
//! Dimensions are the function and low-cardinality labels (route, outcome, status class): never an
//! identifier, never patient data.
//!
//! Lines are written only inside Lambda (`AWS_LAMBDA_FUNCTION_NAME` set), where stdout is the log
//! stream; in-process uses (tests, the local stack) render them without printing.

use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub const NAMESPACE: &str = "clinflow";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Bytes => "Bytes",
        }
    }
}

/// One EMF record: a set of dimensions and the values measured under them.
#[derive(Debug, Clone)]
pub struct Metrics {
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, Unit, f64)>,
}

impl Metrics {
    /// A record for `function` (e.g. `process-dicom`).
    pub fn new(function: &str) -> Self {
        Self {
            dimensions: vec![("Function", function.to_owned())],
            values: Vec::new(),
        }
    }

    /// A dimension: a small, fixed set of values only (route, outcome).
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    pub fn value(mut self, name: &'static str, unit: Unit, value: f64) -> Self {
        self.values.push((name, unit, value));
        self
    }

    pub fn count(self, name: &'static str, n: u64) -> Self {
        self.value(name, Unit::Count, n as f64)
    }

    pub fn millis(self, name: &'static str, elapsed: std::time::Duration) -> Self {
        self.value(name, Unit::Milliseconds, elapsed.as_secs_f64() * 1e3)
    }

    /// The EMF document at `timestamp_ms`.
    pub fn render(&self, timestamp_ms: u64) -> Value {
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [self.dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                    "Metrics": self.values.iter().map(|(name, unit, _)| json!({
                        "Name": name,
                        "Unit": unit.as_str(),
                    })).collect::<Vec<_>>(),
                }],
            }),
        );
        for (k, v) in &self.dimensions {
            doc.insert((*k).into(), Value::String(v.clone()));
        }
        for (name, _, v) in &self.values {
            doc.insert((*name).into(), json!(v));
        }
        Value::Object(doc)
    }

    /// Writes the record to stdout, inside Lambda.
    pub fn emit(&self) {
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        println!("{}", self.render(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_embedded_metric_format() {
        let m = Metrics::new("process-dicom")
            .dimension("Outcome", "PROCESSED")
            .count("Objects", 1)
            .value("ObjectBytes", Unit::Bytes, 1024.0)
            .millis("InspectTime", std::time::Duration::from_millis(250));
        let doc = m.render(1_700_000_000_000);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "clinflow");
        assert_eq!(directive["Dimensions"], json!([["Function", "Outcome"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "Objects", "Unit": "Count"},
                {"Name": "ObjectBytes", "Unit": "Bytes"},
                {"Name": "InspectTime", "Unit": "Milliseconds"},
            ])
        );
        // Every dimension and metric named in the directive is a member of the root.
        assert_eq!(doc["Function"], "process-dicom");
        assert_eq!(doc["Outcome"], "PROCESSED");
        assert_eq!(doc["Objects"], 1.0);
        assert_eq!(doc["ObjectBytes"], 1024.0);
        assert_eq!(doc["InspectTime"], 250.0);
    }
}
