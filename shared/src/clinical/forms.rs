//! EDC case-report forms, keyed like CDISC ODM: a form (`FormOID`) holds item groups
//! (`ItemGroupOID`, repeated under a `repeatKey`), which hold items (`ItemOID` → value). Every item
//! is checked against the [`catalogue`]: its type, its range, its code list, dates not in the
//! future. The typed views ([`FormData::vital_signs`], [`FormData::labs`],
//! [`FormData::adverse_events`], [`FormData::medications`]) are what the report and the exports read.
//!
//! The wire shape (request body of `PUT /v1/subjects/{id}/forms/{formOid}` and the `data` of a
//! stored form):
//! ```json
//! {"itemGroups": [{"itemGroupOid": "IG.AE", "repeatKey": 1,
//!                  "items": {"AETERM": "Headache", "AESTDTC": "2026-10-01", "AESER": "N",
//!                            "AESEV": "MILD", "AEOUT": "RECOVERED"}}]}
//! ```

use super::FieldError;
use crate::domain::SubjectId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The forms this service knows; their OIDs are the CDISC SDTM domain codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FormOid {
    VitalSigns,
    Labs,
    AdverseEvents,
    ConcomitantMedications,
}

impl FormOid {
    pub const ALL: [FormOid; 4] = [
        Self::VitalSigns,
        Self::Labs,
        Self::AdverseEvents,
        Self::ConcomitantMedications,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VitalSigns => "VS",
            Self::Labs => "LB",
            Self::AdverseEvents => "AE",
            Self::ConcomitantMedications => "CM",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::VitalSigns => "Vital signs",
            Self::Labs => "Laboratory results",
            Self::AdverseEvents => "Adverse events",
            Self::ConcomitantMedications => "Concomitant medications",
        }
    }

    /// The one item group of the form (each form here has one, repeated).
    pub fn item_group(self) -> &'static ItemGroupDef {
        catalogue(self)
    }
}

impl Serialize for FormOid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What an item may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ItemType {
    /// Free text of at most this many characters.
    Text { max: usize },
    /// A whole number in `min..=max`.
    Integer { min: i64, max: i64 },
    /// A number in `min..=max`.
    Decimal { min: f64, max: f64 },
    /// A calendar date, `YYYY-MM-DD`, not in the future.
    Date,
    /// One of these codes.
    Code(&'static [&'static str]),
    /// A WHO ATC drug code (`N02BE01`): checked for shape here, against the reference data where
    /// the caller has it.
    DrugCode,
}

#[derive(Debug, Clone, Copy)]
pub struct ItemDef {
    pub oid: &'static str,
    pub label: &'static str,
    pub kind: ItemType,
    pub required: bool,
    pub unit: Option<&'static str>,
}

#[derive(Debug)]
pub struct ItemGroupDef {
    pub oid: &'static str,
    pub items: &'static [ItemDef],
    /// At most this many repeats per form (a DynamoDB item holds 400 KB).
    pub max_repeats: usize,
}

impl ItemGroupDef {
    pub fn item(&self, oid: &str) -> Option<&'static ItemDef> {
        self.items.iter().find(|i| i.oid == oid)
    }
}

const fn item(
    oid: &'static str,
    label: &'static str,
    kind: ItemType,
    required: bool,
    unit: Option<&'static str>,
) -> ItemDef {
    ItemDef {
        oid,
        label,
        kind,
        required,
        unit,
    }
}

pub const LAB_TESTS: &[&str] = &[
    "HGB", "WBC", "PLT", "NEUT", "ALT", "AST", "ALP", "BILI", "CREAT", "EGFR", "GLUC", "NA", "K",
    "CRP", "TSH",
];
pub const SEVERITIES: &[&str] = &["MILD", "MODERATE", "SEVERE"];
pub const AE_OUTCOMES: &[&str] = &[
    "RECOVERED",
    "RECOVERING",
    "NOT_RECOVERED",
    "RECOVERED_WITH_SEQUELAE",
    "FATAL",
    "UNKNOWN",
];
pub const ROUTES: &[&str] = &["ORAL", "IV", "IM", "SC", "TOPICAL", "INHALED", "OTHER"];
const YES_NO: &[&str] = &["Y", "N"];

static VS: ItemGroupDef = ItemGroupDef {
    oid: "IG.VS",
    max_repeats: 500,
    items: &[
        item("VSDAT", "Date of measurement", ItemType::Date, true, None),
        item(
            "SYSBP",
            "Systolic blood pressure",
            ItemType::Integer { min: 40, max: 300 },
            true,
            Some("mmHg"),
        ),
        item(
            "DIABP",
            "Diastolic blood pressure",
            ItemType::Integer { min: 20, max: 200 },
            true,
            Some("mmHg"),
        ),
        item(
            "PULSE",
            "Pulse",
            ItemType::Integer { min: 20, max: 250 },
            false,
            Some("beats/min"),
        ),
        item(
            "TEMP",
            "Temperature",
            ItemType::Decimal {
                min: 30.0,
                max: 45.0,
            },
            false,
            Some("C"),
        ),
        item(
            "WEIGHT",
            "Weight",
            ItemType::Decimal {
                min: 0.5,
                max: 400.0,
            },
            false,
            Some("kg"),
        ),
    ],
};

static LB: ItemGroupDef = ItemGroupDef {
    oid: "IG.LB",
    max_repeats: 1000,
    items: &[
        item("LBDAT", "Date of collection", ItemType::Date, true, None),
        item("LBTESTCD", "Test", ItemType::Code(LAB_TESTS), true, None),
        item(
            "LBORRES",
            "Result",
            ItemType::Decimal {
                min: -1.0e6,
                max: 1.0e6,
            },
            true,
            None,
        ),
        item("LBORRESU", "Unit", ItemType::Text { max: 16 }, true, None),
        item(
            "LBORNRLO",
            "Reference range, low",
            ItemType::Decimal {
                min: -1.0e6,
                max: 1.0e6,
            },
            false,
            None,
        ),
        item(
            "LBORNRHI",
            "Reference range, high",
            ItemType::Decimal {
                min: -1.0e6,
                max: 1.0e6,
            },
            false,
            None,
        ),
    ],
};

static AE: ItemGroupDef = ItemGroupDef {
    oid: "IG.AE",
    max_repeats: 500,
    items: &[
        item(
            "AETERM",
            "Adverse event term",
            ItemType::Text { max: 200 },
            true,
            None,
        ),
        item("AESTDTC", "Start date", ItemType::Date, true, None),
        item("AEENDTC", "End date", ItemType::Date, false, None),
        item("AESER", "Serious", ItemType::Code(YES_NO), true, None),
        item("AESEV", "Severity", ItemType::Code(SEVERITIES), true, None),
        item("AEOUT", "Outcome", ItemType::Code(AE_OUTCOMES), true, None),
        item(
            "AEREL",
            "Related to study treatment",
            ItemType::Code(YES_NO),
            false,
            None,
        ),
    ],
};

static CM: ItemGroupDef = ItemGroupDef {
    oid: "IG.CM",
    max_repeats: 500,
    items: &[
        item("CMTRT", "Drug (ATC code)", ItemType::DrugCode, true, None),
        item(
            "CMDOSE",
            "Dose",
            ItemType::Decimal {
                min: 0.0,
                max: 1.0e5,
            },
            false,
            None,
        ),
        item(
            "CMDOSU",
            "Dose unit",
            ItemType::Text { max: 16 },
            false,
            None,
        ),
        item("CMROUTE", "Route", ItemType::Code(ROUTES), false, None),
        item("CMSTDTC", "Start date", ItemType::Date, true, None),
        item("CMENDTC", "End date", ItemType::Date, false, None),
    ],
};

/// The item group definition of a form.
pub fn catalogue(form: FormOid) -> &'static ItemGroupDef {
    match form {
        FormOid::VitalSigns => &VS,
        FormOid::Labs => &LB,
        FormOid::AdverseEvents => &AE,
        FormOid::ConcomitantMedications => &CM,
    }
}

/// A checked item value.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemValue {
    Text(String),
    Integer(i64),
    Decimal(f64),
    Date(NaiveDate),
    Code(String),
}

impl ItemValue {
    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(s) | Self::Code(s) => Value::from(s.as_str()),
            Self::Integer(i) => Value::from(*i),
            Self::Decimal(d) => Value::from(*d),
            Self::Date(d) => Value::from(d.format("%Y-%m-%d").to_string()),
        }
    }

    /// The value as text (audit trail, CSV).
    pub fn display(&self) -> String {
        match self {
            Self::Text(s) | Self::Code(s) => s.clone(),
            Self::Integer(i) => i.to_string(),
            Self::Decimal(d) => d.to_string(),
            Self::Date(d) => d.format("%Y-%m-%d").to_string(),
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Self::Text(s) | Self::Code(s) => Some(s),
            _ => None,
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Self::Integer(i) => Some(*i as f64),
            Self::Decimal(d) => Some(*d),
            _ => None,
        }
    }

    fn date(&self) -> Option<NaiveDate> {
        match self {
            Self::Date(d) => Some(*d),
            _ => None,
        }
    }
}

/// Is `raw` shaped like a WHO ATC level-5 code (`A10BA02`: letter, 2 digits, 2 letters, 2 digits)?
pub fn is_atc_code(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.len() == 7
        && b[0].is_ascii_uppercase()
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3..5].iter().all(u8::is_ascii_uppercase)
        && b[5..7].iter().all(u8::is_ascii_digit)
}

fn check_item(def: &ItemDef, raw: &Value, today: NaiveDate) -> Result<ItemValue, String> {
    match (def.kind, raw) {
        (ItemType::Text { max }, Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Err("must not be empty".into())
            } else if s.chars().count() > max {
                Err(format!("must be at most {max} characters"))
            } else if s.chars().any(char::is_control) {
                Err("must not hold control characters".into())
            } else {
                Ok(ItemValue::Text(s.to_owned()))
            }
        }
        (ItemType::Integer { min, max }, Value::Number(n)) => match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(ItemValue::Integer(i)),
            _ => Err(format!("must be a whole number from {min} to {max}")),
        },
        (ItemType::Decimal { min, max }, Value::Number(n)) => match n.as_f64() {
            Some(d) if d.is_finite() && (min..=max).contains(&d) => Ok(ItemValue::Decimal(d)),
            _ => Err(format!("must be a number from {min} to {max}")),
        },
        (ItemType::Date, Value::String(s)) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) if d > today => Err("must not be in the future".into()),
            Ok(d) => Ok(ItemValue::Date(d)),
            Err(_) => Err("must be a date, YYYY-MM-DD".into()),
        },
        (ItemType::Code(codes), Value::String(s)) => {
            if codes.contains(&s.as_str()) {
                Ok(ItemValue::Code(s.clone()))
            } else {
                Err(format!("must be one of {}", codes.join(", ")))
            }
        }
        (ItemType::DrugCode, Value::String(s)) => {
            if is_atc_code(s) {
                Ok(ItemValue::Code(s.clone()))
            } else {
                Err("must be a WHO ATC code such as N02BE01".into())
            }
        }
        (ItemType::Text { .. } | ItemType::Date | ItemType::Code(_) | ItemType::DrugCode, _) => {
            Err("must be a string".into())
        }
        (ItemType::Integer { .. } | ItemType::Decimal { .. }, _) => Err("must be a number".into()),
    }
}

/// One repeat of an item group, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemGroupData {
    pub repeat_key: u32,
    pub items: BTreeMap<&'static str, ItemValue>,
}

impl ItemGroupData {
    fn text(&self, oid: &str) -> Option<&str> {
        self.items.get(oid).and_then(ItemValue::text)
    }
    fn number(&self, oid: &str) -> Option<f64> {
        self.items.get(oid).and_then(ItemValue::number)
    }
    fn date(&self, oid: &str) -> Option<NaiveDate> {
        self.items.get(oid).and_then(ItemValue::date)
    }
}

/// A form's data, checked against its catalogue entry.
#[derive(Debug, Clone, PartialEq)]
pub struct FormData {
    pub form: FormOid,
    /// In `repeatKey` order, each key once.
    pub groups: Vec<ItemGroupData>,
}

impl FormData {
    /// Parses and checks `{"itemGroups": [...]}` (other top-level fields are the caller's business,
    /// e.g. `reasonForChange`); every problem at once, each with its JSON pointer.
    pub fn parse(form: FormOid, body: &Value, today: NaiveDate) -> Result<Self, Vec<FieldError>> {
        let def = catalogue(form);
        let Some(groups) = body.get("itemGroups").and_then(Value::as_array) else {
            return Err(vec![FieldError::new(
                "/itemGroups",
                "is required: a list of item groups",
            )]);
        };
        let mut errors = Vec::new();
        if groups.len() > def.max_repeats {
            return Err(vec![FieldError::new(
                "/itemGroups",
                format!("at most {} item groups per form", def.max_repeats),
            )]);
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(groups.len());
        for (g, group) in groups.iter().enumerate() {
            let at = format!("/itemGroups/{g}");
            let Some(obj) = group.as_object() else {
                errors.push(FieldError::new(at, "must be an object"));
                continue;
            };
            match obj.get("itemGroupOid").and_then(Value::as_str) {
                Some(oid) if oid == def.oid => {}
                _ => errors.push(FieldError::new(
                    format!("{at}/itemGroupOid"),
                    format!("must be {} for form {}", def.oid, form.as_str()),
                )),
            }
            let repeat_key = match obj.get("repeatKey").and_then(Value::as_u64) {
                Some(k) if (1..=u64::from(u32::MAX)).contains(&k) => {
                    if !seen.insert(k) {
                        errors.push(FieldError::new(
                            format!("{at}/repeatKey"),
                            "appears twice in this form",
                        ));
                    }
                    k as u32
                }
                _ => {
                    errors.push(FieldError::new(
                        format!("{at}/repeatKey"),
                        "must be a whole number from 1",
                    ));
                    0
                }
            };
            for key in obj.keys() {
                if !["itemGroupOid", "repeatKey", "items"].contains(&key.as_str()) {
                    errors.push(FieldError::new(
                        format!("{at}/{key}"),
                        "is not a known field",
                    ));
                }
            }
            let empty = Map::new();
            let items = match obj.get("items") {
                Some(Value::Object(items)) => items,
                _ => {
                    errors.push(FieldError::new(
                        format!("{at}/items"),
                        "is required: an object of item OID → value",
                    ));
                    &empty
                }
            };
            let mut values = BTreeMap::new();
            for (oid, raw) in items {
                let Some(item) = def.item(oid) else {
                    errors.push(FieldError::new(
                        format!("{at}/items/{}", pointer_escape(oid)),
                        format!("is not an item of {}", def.oid),
                    ));
                    continue;
                };
                if raw.is_null() && !item.required {
                    continue;
                }
                match check_item(item, raw, today) {
                    Ok(v) => {
                        values.insert(item.oid, v);
                    }
                    Err(why) => errors.push(FieldError::new(format!("{at}/items/{oid}"), why)),
                }
            }
            for item in def.items.iter().filter(|i| i.required) {
                if !items.contains_key(item.oid) {
                    errors.push(FieldError::new(
                        format!("{at}/items/{}", item.oid),
                        "is required",
                    ));
                }
            }
            let data = ItemGroupData {
                repeat_key,
                items: values,
            };
            cross_check(form, &data, &at, &mut errors);
            out.push(data);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        out.sort_by_key(|g| g.repeat_key);
        Ok(Self { form, groups: out })
    }

    /// The wire shape, `{"itemGroups": [...]}`.
    pub fn to_json(&self) -> Value {
        let oid = catalogue(self.form).oid;
        let groups: Vec<Value> = self
            .groups
            .iter()
            .map(|g| {
                let items: Map<String, Value> = g
                    .items
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_json()))
                    .collect();
                serde_json::json!({"itemGroupOid": oid, "repeatKey": g.repeat_key, "items": items})
            })
            .collect();
        serde_json::json!({ "itemGroups": groups })
    }

    pub fn vital_signs(&self) -> Vec<VitalSigns> {
        self.of(FormOid::VitalSigns, |g| {
            Some(VitalSigns {
                repeat_key: g.repeat_key,
                date: g.date("VSDAT")?,
                systolic: g.number("SYSBP")? as i64,
                diastolic: g.number("DIABP")? as i64,
                pulse: g.number("PULSE").map(|p| p as i64),
                temperature_c: g.number("TEMP"),
                weight_kg: g.number("WEIGHT"),
            })
        })
    }

    pub fn labs(&self) -> Vec<LabResult> {
        self.of(FormOid::Labs, |g| {
            Some(LabResult {
                repeat_key: g.repeat_key,
                date: g.date("LBDAT")?,
                test: g.text("LBTESTCD")?.to_owned(),
                value: g.number("LBORRES")?,
                unit: g.text("LBORRESU")?.to_owned(),
                low: g.number("LBORNRLO"),
                high: g.number("LBORNRHI"),
            })
        })
    }

    pub fn adverse_events(&self) -> Vec<AdverseEvent> {
        self.of(FormOid::AdverseEvents, |g| {
            Some(AdverseEvent {
                repeat_key: g.repeat_key,
                term: g.text("AETERM")?.to_owned(),
                start: g.date("AESTDTC")?,
                end: g.date("AEENDTC"),
                serious: g.text("AESER")? == "Y",
                severity: g.text("AESEV")?.to_owned(),
                outcome: g.text("AEOUT")?.to_owned(),
                related: g.text("AEREL").map(|r| r == "Y"),
            })
        })
    }

    pub fn medications(&self) -> Vec<Medication> {
        self.of(FormOid::ConcomitantMedications, |g| {
            Some(Medication {
                repeat_key: g.repeat_key,
                drug_code: g.text("CMTRT")?.to_owned(),
                dose: g.number("CMDOSE"),
                dose_unit: g.text("CMDOSU").map(str::to_owned),
                route: g.text("CMROUTE").map(str::to_owned),
                start: g.date("CMSTDTC")?,
                end: g.date("CMENDTC"),
            })
        })
    }

    fn of<T>(&self, form: FormOid, view: impl Fn(&ItemGroupData) -> Option<T>) -> Vec<T> {
        if self.form != form {
            return Vec::new();
        }
        self.groups.iter().filter_map(view).collect()
    }

    /// Every item that differs between `old` and `self`: `(repeatKey/ItemOID, old, new)`, for the
    /// audit trail's old → new values.
    pub fn changes_from(&self, old: Option<&FormData>) -> Vec<ItemChange> {
        let index = |d: Option<&FormData>| -> BTreeMap<(u32, &'static str), String> {
            d.map(|d| {
                d.groups
                    .iter()
                    .flat_map(|g| {
                        g.items
                            .iter()
                            .map(|(k, v)| ((g.repeat_key, *k), v.display()))
                    })
                    .collect()
            })
            .unwrap_or_default()
        };
        let before = index(old);
        let after = index(Some(self));
        let keys: BTreeSet<_> = before.keys().chain(after.keys()).copied().collect();
        keys.into_iter()
            .filter_map(|k| {
                let (o, n) = (before.get(&k), after.get(&k));
                (o != n).then(|| ItemChange {
                    item: format!("{}/{}", k.0, k.1),
                    old: o.cloned(),
                    new: n.cloned(),
                })
            })
            .collect()
    }
}

/// One item's change, for the audit trail (`item` is `repeatKey/ItemOID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemChange {
    pub item: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

fn cross_check(form: FormOid, g: &ItemGroupData, at: &str, errors: &mut Vec<FieldError>) {
    let after = |end: &str, start: &str, errors: &mut Vec<FieldError>| {
        if let (Some(e), Some(s)) = (g.date(end), g.date(start)) {
            if e < s {
                errors.push(FieldError::new(
                    format!("{at}/items/{end}"),
                    format!("must not be before {start}"),
                ));
            }
        }
    };
    match form {
        FormOid::Labs => {
            if let (Some(lo), Some(hi)) = (g.number("LBORNRLO"), g.number("LBORNRHI")) {
                if lo > hi {
                    errors.push(FieldError::new(
                        format!("{at}/items/LBORNRLO"),
                        "the low end of the reference range must not exceed the high end",
                    ));
                }
            }
        }
        FormOid::VitalSigns => {
            if let (Some(s), Some(d)) = (g.number("SYSBP"), g.number("DIABP")) {
                if d >= s {
                    errors.push(FieldError::new(
                        format!("{at}/items/DIABP"),
                        "must be lower than the systolic pressure",
                    ));
                }
            }
        }
        FormOid::AdverseEvents => after("AEENDTC", "AESTDTC", errors),
        FormOid::ConcomitantMedications => after("CMENDTC", "CMSTDTC", errors),
    }
}

/// RFC 6901: `~` → `~0`, `/` → `~1`.
fn pointer_escape(raw: &str) -> String {
    raw.replace('~', "~0").replace('/', "~1")
}

/// A form as stored: its data and the version its `ETag` names.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub subject: SubjectId,
    pub data: FormData,
    /// 1 for the first write, +1 for each change.
    pub version: u64,
    pub updated_at: DateTime<Utc>,
    /// The token `sub` of the last writer.
    pub updated_by: String,
}

impl Form {
    pub fn oid(&self) -> FormOid {
        self.data.form
    }

    /// The strong entity tag of this version, `"<version>"`.
    pub fn etag(&self) -> String {
        etag(self.version)
    }
}

pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The version an `If-Match` header names: `"3"` → 3. `*` and weak or malformed tags → `None`.
pub fn version_of_etag(raw: &str) -> Option<u64> {
    raw.trim()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .parse()
        .ok()
}

#[derive(Debug, Clone, PartialEq)]
pub struct VitalSigns {
    pub repeat_key: u32,
    pub date: NaiveDate,
    pub systolic: i64,
    pub diastolic: i64,
    pub pulse: Option<i64>,
    pub temperature_c: Option<f64>,
    pub weight_kg: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabResult {
    pub repeat_key: u32,
    pub date: NaiveDate,
    /// A code of [`LAB_TESTS`].
    pub test: String,
    pub value: f64,
    pub unit: String,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// Where a lab value falls against its reference range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RangeFlag {
    Low,
    High,
}

impl LabResult {
    /// `Low`/`High` when outside its reference range; `None` inside it or without one.
    pub fn out_of_range(&self) -> Option<RangeFlag> {
        match (self.low, self.high) {
            (Some(lo), _) if self.value < lo => Some(RangeFlag::Low),
            (_, Some(hi)) if self.value > hi => Some(RangeFlag::High),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdverseEvent {
    pub repeat_key: u32,
    pub term: String,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    pub serious: bool,
    /// A code of [`SEVERITIES`].
    pub severity: String,
    /// A code of [`AE_OUTCOMES`].
    pub outcome: String,
    pub related: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Medication {
    pub repeat_key: u32,
    /// A WHO ATC code; its name comes from the reference data.
    pub drug_code: String,
    pub dose: Option<f64>,
    pub dose_unit: Option<String>,
    pub route: Option<String>,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    #[test]
    fn a_lab_form_round_trips_and_flags_out_of_range_values() {
        let body = json!({"itemGroups": [
            {"itemGroupOid": "IG.LB", "repeatKey": 2, "items": {"LBDAT": "2026-11-01",
             "LBTESTCD": "ALT", "LBORRES": 112.0, "LBORRESU": "U/L", "LBORNRLO": 7, "LBORNRHI": 56}},
            {"itemGroupOid": "IG.LB", "repeatKey": 1, "items": {"LBDAT": "2026-10-01",
             "LBTESTCD": "HGB", "LBORRES": 13.5, "LBORRESU": "g/dL", "LBORNRLO": 12, "LBORNRHI": 16}}
        ]});
        let data = FormData::parse(FormOid::Labs, &body, today()).unwrap();
        let labs = data.labs();
        assert_eq!(labs.len(), 2);
        assert_eq!(labs[0].test, "HGB");
        assert_eq!(labs[0].out_of_range(), None);
        assert_eq!(labs[1].out_of_range(), Some(RangeFlag::High));
        let again = FormData::parse(FormOid::Labs, &data.to_json(), today()).unwrap();
        assert_eq!(again, data);
        assert!(data.adverse_events().is_empty());
    }

    #[test]
    fn refuses_wrong_types_unknown_items_future_dates_and_bad_codes() {
        let body = json!({"itemGroups": [
            {"itemGroupOid": "IG.AE", "repeatKey": 1, "items": {"AETERM": "Headache",
             "AESTDTC": "2027-01-01", "AESER": "maybe", "AESEV": 3, "AEOUT": "RECOVERED",
             "PATIENTNAME": "Jane"}},
            {"itemGroupOid": "IG.VS", "repeatKey": 1, "items": {}}
        ]});
        let errors = FormData::parse(FormOid::AdverseEvents, &body, today()).unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for p in [
            "/itemGroups/0/items/AESTDTC",
            "/itemGroups/0/items/AESER",
            "/itemGroups/0/items/AESEV",
            "/itemGroups/0/items/PATIENTNAME",
            "/itemGroups/1/itemGroupOid",
            "/itemGroups/1/repeatKey",
            "/itemGroups/1/items/AETERM",
        ] {
            assert!(pointers.contains(&p), "{p} in {pointers:?}");
        }
    }

    #[test]
    fn medications_need_atc_codes_and_changes_list_old_and_new() {
        assert!(is_atc_code("N02BE01"));
        assert!(!is_atc_code("N02BE1"));
        assert!(!is_atc_code("paracetamol"));
        let v1 = FormData::parse(
            FormOid::ConcomitantMedications,
            &json!({"itemGroups": [{"itemGroupOid": "IG.CM", "repeatKey": 1,
                "items": {"CMTRT": "N02BE01", "CMSTDTC": "2026-11-01", "CMDOSE": 500}}]}),
            today(),
        )
        .unwrap();
        let v2 = FormData::parse(
            FormOid::ConcomitantMedications,
            &json!({"itemGroups": [{"itemGroupOid": "IG.CM", "repeatKey": 1,
                "items": {"CMTRT": "N02BE01", "CMSTDTC": "2026-11-01", "CMDOSE": 1000}}]}),
            today(),
        )
        .unwrap();
        assert_eq!(v2.medications()[0].dose, Some(1000.0));
        assert_eq!(
            v2.changes_from(Some(&v1)),
            vec![ItemChange {
                item: "1/CMDOSE".into(),
                old: Some("500".into()),
                new: Some("1000".into())
            }]
        );
        assert_eq!(v1.changes_from(None).len(), 3);
    }

    #[test]
    fn etags_name_versions() {
        assert_eq!(etag(3), "\"3\"");
        assert_eq!(version_of_etag("\"3\""), Some(3));
        assert_eq!(version_of_etag("W/\"3\""), None);
        assert_eq!(version_of_etag("*"), None);
    }
}
