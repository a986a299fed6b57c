//! Reference data: drug codes (WHO ATC level 5 → generic name, class, active flag) and trial sites
//! (id → name, country, status). The source of truth is a DynamoDB table changed through an admin
//! route; refresh-cache publishes it as a versioned [`snapshot`] to S3 on a schedule; readers hold
//! the snapshot in a lock-free [`cache`].

pub mod cache;
pub mod snapshot;

use crate::clinical::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The kinds of reference data. Their names are the prefixes of the old API's keys
/// (`drug_code_N02BE01`, `site_SITE-BOS-01`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    DrugCode,
    Site,
}

impl ReferenceKind {
    pub const ALL: [ReferenceKind; 2] = [Self::DrugCode, Self::Site];

    /// The kind's place in [`Self::ALL`] (a snapshot keeps one map per kind in an array).
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DrugCode => "drug_code",
            Self::Site => "site",
        }
    }

    /// Is `code` shaped like a code of this kind? (Unknown shapes are simply not found.)
    pub fn accepts_code(self, code: &str) -> bool {
        match self {
            Self::DrugCode => crate::clinical::forms::is_atc_code(code),
            Self::Site => crate::domain::SiteId::parse(code).is_ok(),
        }
    }
}

// `index` is the declaration order: `ALL` must list the kinds in that order.
const _: () = {
    let mut i = 0;
    while i < ReferenceKind::ALL.len() {
        assert!(ReferenceKind::ALL[i].index() == i);
        i += 1;
    }
};

impl fmt::Display for ReferenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The old API's key, `<kind>_<code>` (`drug_code_N02BE01`): the kind and the code, if it names one.
pub fn parse_legacy_key(key: &str) -> Option<(ReferenceKind, &str)> {
    ReferenceKind::ALL.into_iter().find_map(|kind| {
        key.strip_prefix(kind.as_str())
            .and_then(|rest| rest.strip_prefix('_'))
            .filter(|code| !code.is_empty())
            .map(|code| (kind, code))
    })
}

/// A drug code's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drug {
    /// The generic (INN) name, e.g. `paracetamol`.
    pub name: String,
    /// The ATC level-4 class the code belongs to, e.g. `N02BE`.
    pub atc_class: String,
    /// The class's name, e.g. `Anilides`.
    pub class_name: String,
    /// Whether new data may use the code (inactive codes still resolve for old data).
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SiteStatus {
    Planned,
    Active,
    Closed,
}

/// A trial site's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub name: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub status: SiteStatus,
}

/// The value of one reference entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReferenceValue {
    Drug(Drug),
    Site(Site),
}

impl ReferenceValue {
    pub fn kind(&self) -> ReferenceKind {
        match self {
            Self::Drug(_) => ReferenceKind::DrugCode,
            Self::Site(_) => ReferenceKind::Site,
        }
    }

    /// The value's fields as a JSON object (the metadata route flattens them into its answer).
    pub fn fields(&self) -> serde_json::Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// Parses the body of `PUT /v1/reference/{kind}/{code}` for `kind`; every problem at once.
    pub fn parse(kind: ReferenceKind, body: &Value) -> Result<Self, Vec<FieldError>> {
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("", "the body must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let text = |name: &str, max: usize, errors: &mut Vec<FieldError>| -> Option<String> {
            match obj.get(name) {
                Some(Value::String(s))
                    if !s.trim().is_empty()
                        && s.chars().count() <= max
                        && !s.chars().any(char::is_control) =>
                {
                    Some(s.trim().to_owned())
                }
                Some(_) => {
                    errors.push(FieldError::new(
                        format!("/{name}"),
                        format!("must be text of 1 to {max} characters"),
                    ));
                    None
                }
                None => {
                    errors.push(FieldError::new(format!("/{name}"), "is required"));
                    None
                }
            }
        };
        let known: &[&str] = match kind {
            ReferenceKind::DrugCode => &["name", "atcClass", "className", "active"],
            ReferenceKind::Site => &["name", "country", "status"],
        };
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                errors.push(FieldError::new(format!("/{key}"), "is not a known field"));
            }
        }
        let value = match kind {
            ReferenceKind::DrugCode => {
                let name = text("name", 200, &mut errors);
                let atc_class = text("atcClass", 5, &mut errors).filter(|c| {
                    let ok = c.len() == 5 && is_atc_class(c);
                    if !ok {
                        errors.push(FieldError::new(
                            "/atcClass",
                            "must be an ATC level-4 class such as N02BE",
                        ));
                    }
                    ok
                });
                let class_name = text("className", 200, &mut errors);
                let active = match obj.get("active") {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => {
                        errors.push(FieldError::new("/active", "must be true or false"));
                        None
                    }
                };
                match (name, atc_class, class_name, active) {
                    (Some(name), Some(atc_class), Some(class_name), Some(active)) => {
                        Some(Self::Drug(Drug {
                            name,
                            atc_class,
                            class_name,
                            active,
                        }))
                    }
                    _ => None,
                }
            }
            ReferenceKind::Site => {
                let name = text("name", 200, &mut errors);
                let country = text("country", 2, &mut errors).filter(|c| {
                    let ok = c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase());
                    if !ok {
                        errors.push(FieldError::new(
                            "/country",
                            "must be an ISO 3166-1 alpha-2 code such as US",
                        ));
                    }
                    ok
                });
                let status = match obj.get("status") {
                    Some(v) => serde_json::from_value::<SiteStatus>(v.clone())
                        .map_err(|_| {
                            errors.push(FieldError::new(
                                "/status",
                                "must be PLANNED, ACTIVE or CLOSED",
                            ))
                        })
                        .ok(),
                    None => {
                        errors.push(FieldError::new("/status", "is required"));
                        None
                    }
                };
                match (name, country, status) {
                    (Some(name), Some(country), Some(status)) => Some(Self::Site(Site {
                        name,
                        country,
                        status,
                    })),
                    _ => None,
                }
            }
        };
        match value {
            Some(v) if errors.is_empty() => Ok(v),
            _ => Err(errors),
        }
    }
}

/// `N02BE`: an ATC level-4 class (letter, two digits, two letters).
pub fn is_atc_class(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.len() == 5
        && b[0].is_ascii_uppercase()
        && b[1..3].iter().all(u8::is_ascii_digit)
        && b[3..5].iter().all(u8::is_ascii_uppercase)
}

/// One entry as the source of truth holds it: its code, value and the version its admin `ETag`
/// names (1 for the first write, +1 per change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceEntry {
    pub kind: ReferenceKind,
    pub code: String,
    pub value: ReferenceValue,
    pub version: u64,
}

/// A drug (N02BE01) and a site (SITE-BOS-01), both named `tag`: every entry of one snapshot
/// carries its tag, so a reader can tell snapshots apart (tests).
#[cfg(test)]
pub(crate) fn sample_entries(tag: &str) -> Vec<ReferenceEntry> {
    vec![
        ReferenceEntry {
            kind: ReferenceKind::DrugCode,
            code: "N02BE01".into(),
            value: ReferenceValue::Drug(Drug {
                name: tag.into(),
                atc_class: "N02BE".into(),
                class_name: "Anilides".into(),
                active: true,
            }),
            version: 1,
        },
        ReferenceEntry {
            kind: ReferenceKind::Site,
            code: "SITE-BOS-01".into(),
            value: ReferenceValue::Site(Site {
                name: tag.into(),
                country: "US".into(),
                status: SiteStatus::Active,
            }),
            version: 1,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_keys_name_a_kind_and_a_code() {
        assert_eq!(
            parse_legacy_key("drug_code_N02BE01"),
            Some((ReferenceKind::DrugCode, "N02BE01"))
        );
        assert_eq!(
            parse_legacy_key("drug_code_001"),
            Some((ReferenceKind::DrugCode, "001"))
        );
        assert_eq!(
            parse_legacy_key("site_SITE-BOS-01"),
            Some((ReferenceKind::Site, "SITE-BOS-01"))
        );
        assert_eq!(parse_legacy_key("drug_code_"), None);
        assert_eq!(parse_legacy_key("colour_red"), None);
    }

    #[test]
    fn parses_drug_and_site_values_and_lists_every_problem() {
        let drug = ReferenceValue::parse(
            ReferenceKind::DrugCode,
            &json!({"name": "paracetamol", "atcClass": "N02BE", "className": "Anilides", "active": true}),
        )
        .unwrap();
        assert_eq!(drug.kind(), ReferenceKind::DrugCode);
        assert_eq!(drug.fields()["atcClass"], "N02BE");
        let errors = ReferenceValue::parse(
            ReferenceKind::Site,
            &json!({"name": "", "country": "usa", "status": "OPEN", "extra": 1}),
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        for p in ["/extra", "/name", "/country", "/status"] {
            assert!(pointers.contains(&p), "{p} in {pointers:?}");
        }
    }
}
