//! The published form of the reference data: every entry of every kind, versioned by the SHA-256 of
//! its canonical content (so an unchanged source builds the same version and is not rewritten), as
//! gzip-compressed JSON:
//! ```json
//! {"format": 1, "version": "<sha256 hex>", "builtAt": "2026-11-28T01:00:00.000Z",
//!  "entries": {"drug_code": {"N02BE01": {"name": "paracetamol", ...}}, "site": {...}}}
//! ```
//! Decoding recomputes the hash: a snapshot that does not match its version is refused.

use super::{ReferenceEntry, ReferenceKind, ReferenceValue};
use chrono::{DateTime, SecondsFormat, Utc};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;

const FORMAT: u32 = 1;
/// A decoded snapshot larger than this is refused (a few thousand entries are ~1 MB of JSON).
const MAX_DECODED: u64 = 64 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("the source holds no {0} entries: an empty source is never published")]
    Empty(ReferenceKind),
    #[error("the snapshot cannot be read: {0}")]
    Malformed(String),
    #[error("the snapshot's content does not match its version")]
    VersionMismatch,
}

/// Every entry of every kind, immutable once built; readers share it through an `Arc`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// SHA-256 (hex) of the canonical entries.
    pub version: String,
    pub built_at: DateTime<Utc>,
    /// One index per kind, at the kind's [`ReferenceKind::index`] (a lookup hashes the code only).
    entries: [Index; ReferenceKind::ALL.len()],
}

/// The entries of one kind. Every metadata request, report and export looks codes up here, so a
/// lookup is kept to a hash of the code and one probe:
/// - FxHash (rustc-hash), not SipHash: the keys are the snapshot's own (built from the reference
///   table, never inserted from a request), so SipHash's flooding resistance buys nothing here;
/// - codes of up to [`InlineCode::MAX`] bytes (every ATC code and site id) are held inline in the
///   table, compared as three words: no pointer to follow to a heap string, no `memcmp` call.
///   Longer codes (none today) live in a second map.
///
/// The profile that chose this (README, Measured, reference cache): with `String` keys a read was
/// the lookup, and the lookup was half the string compare.
#[derive(Debug, Clone, Default, PartialEq)]
struct Index {
    inline: FxHashMap<InlineCode, ReferenceValue>,
    long: FxHashMap<String, ReferenceValue>,
}

impl Index {
    fn insert(&mut self, code: String, value: ReferenceValue) {
        match InlineCode::new(&code) {
            Some(key) => {
                self.inline.insert(key, value);
            }
            None => {
                self.long.insert(code, value);
            }
        }
    }

    #[inline]
    fn get(&self, code: &str) -> Option<&ReferenceValue> {
        match InlineCode::new(code) {
            Some(key) => self.inline.get(&key),
            None => self.long.get(code),
        }
    }

    fn len(&self) -> usize {
        self.inline.len() + self.long.len()
    }

    fn iter(&self) -> impl Iterator<Item = (String, &ReferenceValue)> {
        self.inline
            .iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.long.iter().map(|(k, v)| (k.clone(), v)))
    }
}

/// A code of at most [`Self::MAX`] bytes in three words: its bytes, zero-padded, and its length in
/// the last byte (so `A` and `A\0` differ).
#[derive(Clone, Copy, PartialEq, Eq)]
struct InlineCode([u64; 3]);

impl InlineCode {
    const MAX: usize = 23;

    #[inline]
    fn new(code: &str) -> Option<Self> {
        let bytes = code.as_bytes();
        if bytes.len() > Self::MAX {
            return None;
        }
        // Each word straight from the code's bytes (a copy into a buffer and loads back out of it
        // stalled on store forwarding: a fifth of a lookup in the profile).
        let word = |i: usize| {
            let chunk = bytes.get(i * 8..).unwrap_or_default();
            match chunk.first_chunk::<8>() {
                Some(w) => u64::from_le_bytes(*w),
                None => chunk
                    .iter()
                    .rev()
                    .fold(0u64, |w, &b| (w << 8) | u64::from(b)),
            }
        };
        Some(Self([
            word(0),
            word(1),
            word(2) | (bytes.len() as u64) << 56,
        ]))
    }

    fn len(&self) -> usize {
        (self.0[2] >> 56) as usize
    }
}

impl std::hash::Hash for InlineCode {
    /// The three words mixed by folded multiplies before the hasher sees them: FxHash's
    /// add-and-multiply carries a difference in a word's high bytes only upward, and the table
    /// takes its 7-bit tag from the hash's top bits, so fed the words as they are, the 2,480 ATC
    /// codes (which differ in their last two characters) shared 60 of 128 tags and a lookup met
    /// 0.7 false tag matches, each another bucket read (found in review, modelled in Python).
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        fn fold(x: u64, y: u64) -> u64 {
            let p = u128::from(x) * u128::from(y);
            (p as u64) ^ ((p >> 64) as u64)
        }
        let [a, b, c] = self.0;
        let h = fold(
            fold(a ^ 0x243F_6A88_85A3_08D3, b ^ 0x1319_8A2E_0370_7344) ^ c,
            0xA409_3822_299F_31D0,
        );
        state.write_u64(h);
    }
}

impl std::fmt::Display for InlineCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; 24];
        for (i, w) in self.0.iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        // Built from a `&str` of `len` bytes: valid UTF-8.
        f.write_str(std::str::from_utf8(&buf[..self.len()]).unwrap_or_default())
    }
}

impl std::fmt::Debug for InlineCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    format: u32,
    version: String,
    built_at: String,
    entries: BTreeMap<ReferenceKind, BTreeMap<String, ReferenceValue>>,
}

fn content_hash(entries: &BTreeMap<ReferenceKind, BTreeMap<String, ReferenceValue>>) -> String {
    // serde_json writes BTreeMaps in key order and struct fields in declaration order: canonical.
    let canonical = serde_json::to_vec(entries).unwrap_or_default();
    hex::encode(Sha256::digest(&canonical))
}

impl Snapshot {
    /// Builds a snapshot of `entries`; refused if any kind has none (an empty or truncated source
    /// must never replace a good snapshot).
    pub fn build(
        entries: impl IntoIterator<Item = ReferenceEntry>,
        built_at: DateTime<Utc>,
    ) -> Result<Self, SnapshotError> {
        let mut by_kind: BTreeMap<ReferenceKind, BTreeMap<String, ReferenceValue>> =
            BTreeMap::new();
        for e in entries {
            by_kind.entry(e.kind).or_default().insert(e.code, e.value);
        }
        for kind in ReferenceKind::ALL {
            if by_kind.get(&kind).is_none_or(BTreeMap::is_empty) {
                return Err(SnapshotError::Empty(kind));
            }
        }
        Ok(Self::from_canonical(
            content_hash(&by_kind),
            built_at,
            by_kind,
        ))
    }

    fn from_canonical(
        version: String,
        built_at: DateTime<Utc>,
        by_kind: BTreeMap<ReferenceKind, BTreeMap<String, ReferenceValue>>,
    ) -> Self {
        let mut entries: [Index; ReferenceKind::ALL.len()] = Default::default();
        for (kind, values) in by_kind {
            for (code, value) in values {
                entries[kind.index()].insert(code, value);
            }
        }
        Self {
            version,
            built_at,
            entries,
        }
    }

    pub fn get(&self, kind: ReferenceKind, code: &str) -> Option<&ReferenceValue> {
        self.entries[kind.index()].get(code)
    }

    pub fn count(&self, kind: ReferenceKind) -> usize {
        self.entries[kind.index()].len()
    }

    /// The gzip-compressed JSON form.
    pub fn encode(&self) -> Vec<u8> {
        let entries: BTreeMap<ReferenceKind, BTreeMap<String, ReferenceValue>> = ReferenceKind::ALL
            .into_iter()
            .map(|k| {
                let values = &self.entries[k.index()];
                (k, values.iter().map(|(c, v)| (c, v.clone())).collect())
            })
            .collect();
        let wire = Wire {
            format: FORMAT,
            version: self.version.clone(),
            built_at: self.built_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            entries,
        };
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        // Writing to a Vec cannot fail; serialising these types cannot either.
        let _ = serde_json::to_writer(&mut gz, &wire);
        gz.finish().unwrap_or_default()
    }

    /// Reads what [`Self::encode`] wrote; checks the format, the size and the version.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut json = Vec::new();
        GzDecoder::new(bytes)
            .take(MAX_DECODED + 1)
            .read_to_end(&mut json)
            .map_err(|e| SnapshotError::Malformed(format!("gzip: {e}")))?;
        if json.len() as u64 > MAX_DECODED {
            return Err(SnapshotError::Malformed("too large".into()));
        }
        let wire: Wire =
            serde_json::from_slice(&json).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        if wire.format != FORMAT {
            return Err(SnapshotError::Malformed(format!(
                "format {} (this code reads {FORMAT})",
                wire.format
            )));
        }
        if content_hash(&wire.entries) != wire.version {
            return Err(SnapshotError::VersionMismatch);
        }
        let built_at = DateTime::parse_from_rfc3339(&wire.built_at)
            .map_err(|e| SnapshotError::Malformed(format!("builtAt: {e}")))?
            .with_timezone(&Utc);
        Ok(Self::from_canonical(wire.version, built_at, wire.entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn entries(name: &str) -> Vec<ReferenceEntry> {
        super::super::sample_entries(name)
    }

    #[test]
    fn round_trips_and_versions_by_content_only() {
        let t1: DateTime<Utc> = "2026-11-28T01:00:00Z".parse().unwrap();
        let t2: DateTime<Utc> = "2026-11-28T01:10:00Z".parse().unwrap();
        let a = Snapshot::build(entries("paracetamol"), t1).unwrap();
        let b = Snapshot::build(entries("paracetamol").into_iter().rev(), t2).unwrap();
        assert_eq!(a.version, b.version, "same content, same version");
        let c = Snapshot::build(entries("acetaminophen"), t1).unwrap();
        assert_ne!(a.version, c.version);
        let decoded = Snapshot::decode(&a.encode()).unwrap();
        assert_eq!(decoded, a);
        assert_eq!(
            decoded.get(ReferenceKind::DrugCode, "N02BE01"),
            a.get(ReferenceKind::DrugCode, "N02BE01")
        );
        assert_eq!(decoded.count(ReferenceKind::Site), 1);
    }

    #[test]
    fn refuses_an_empty_kind_and_a_tampered_snapshot() {
        let t: DateTime<Utc> = "2026-11-28T01:00:00Z".parse().unwrap();
        let only_drugs: Vec<_> = entries("x")
            .into_iter()
            .filter(|e| e.kind == ReferenceKind::DrugCode)
            .collect();
        assert_eq!(
            Snapshot::build(only_drugs, t),
            Err(SnapshotError::Empty(ReferenceKind::Site))
        );
        let good = Snapshot::build(entries("x"), t).unwrap();
        let mut json = Vec::new();
        GzDecoder::new(good.encode().as_slice())
            .read_to_end(&mut json)
            .unwrap();
        let tampered = String::from_utf8(json).unwrap().replace("\"x\"", "\"y\"");
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(tampered.as_bytes()).unwrap();
        assert_eq!(
            Snapshot::decode(&gz.finish().unwrap()),
            Err(SnapshotError::VersionMismatch)
        );
        assert!(matches!(
            Snapshot::decode(b"not gzip"),
            Err(SnapshotError::Malformed(_))
        ));
    }

    #[test]
    fn codes_of_every_length_are_found_exactly_and_survive_a_round_trip() {
        let t: DateTime<Utc> = "2026-11-28T01:00:00Z".parse().unwrap();
        let max = "A".repeat(InlineCode::MAX);
        let long = "B".repeat(InlineCode::MAX + 1);
        let codes = [
            "",
            "A",
            "AB",
            "ABCDEFGH",
            "ABCDEFGHI",
            &max,
            &long,
            "ü-é",
            "A\0",
        ];
        let mut all = entries("x");
        for code in codes {
            let mut e = all[0].clone();
            e.code = code.to_owned();
            if let ReferenceValue::Drug(d) = &mut e.value {
                d.name = format!("name of {code:?}");
            }
            all.push(e);
        }
        let snapshot = Snapshot::build(all, t).unwrap();
        let decoded = Snapshot::decode(&snapshot.encode()).unwrap();
        for s in [&snapshot, &decoded] {
            assert_eq!(s.count(ReferenceKind::DrugCode), codes.len() + 1);
            for code in codes {
                match s.get(ReferenceKind::DrugCode, code) {
                    Some(ReferenceValue::Drug(d)) => {
                        assert_eq!(d.name, format!("name of {code:?}"))
                    }
                    other => panic!("{code:?}: {other:?}"),
                }
            }
            // A prefix, an extension, a trailing NUL or another kind is not the code.
            for absent in ["ABC", "ABCDEFG", "A\0\0", "AA", &max[1..], &long[1..]] {
                assert_eq!(s.get(ReferenceKind::DrugCode, absent), None, "{absent:?}");
            }
            assert_eq!(s.get(ReferenceKind::Site, "A"), None);
        }
        assert_eq!(decoded, snapshot);
    }
}
