//! ClamAV signature databases, the subset the built-in engine runs:
//! - hash signatures, `.hdb` (MD5) and `.hsb` (SHA-1 or SHA-256, by length): `HASH:SIZE:NAME`, the
//!   size `*` for any;
//! - body signatures, `.ndb`: `NAME:TARGET:OFFSET:HEXSIG[:MINFL[:MAXFL]]`, target 0 (any file),
//!   offset `*`, `N`, `N,MAXSHIFT` or `EOF-N`; the hex signature with `??`, nibble wildcards `a?`/`?a`,
//!   single-byte alternatives `(aa|bb)`, and gaps `*`, `{N}`, `{N-M}`, `{-M}`, `{N-}`.
//!
//! Lines this engine cannot run (other targets, other offset kinds, other signature syntax) are
//! counted and reported, never silently dropped.

use std::collections::HashMap;

/// One byte position of a signature segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByteClass {
    Exact(u8),
    Any,
    /// High nibble fixed: `a?`.
    High(u8),
    /// Low nibble fixed: `?a`.
    Low(u8),
    OneOf(Vec<u8>),
}

impl ByteClass {
    pub fn matches(&self, b: u8) -> bool {
        match self {
            Self::Exact(x) => *x == b,
            Self::Any => true,
            Self::High(x) => b >> 4 == *x,
            Self::Low(x) => b & 0x0f == *x,
            Self::OneOf(set) => set.contains(&b),
        }
    }
}

/// A gap between two segments: at least `min`, at most `max` (None: unbounded) bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub min: u64,
    pub max: Option<u64>,
}

/// Where the first segment may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    Any,
    /// At `start`, or up to `shift` bytes later.
    Absolute {
        start: u64,
        shift: u64,
    },
    /// `EOF-n`: `n` bytes before the end of the object.
    FromEnd(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySignature {
    pub name: String,
    pub offset: Offset,
    /// Segments in order; `gaps[i]` lies between `segments[i]` and `segments[i + 1]`.
    pub segments: Vec<Vec<ByteClass>>,
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashKind {
    Md5,
    Sha1,
    Sha256,
}

/// Hash signatures with one digest: (size, or None for any size; name).
pub type HashEntries = Vec<(Option<u64>, String)>;

/// A parsed database (one or more files merged).
#[derive(Debug, Default, Clone)]
pub struct SignatureDb {
    /// (kind, digest bytes) → [(size or None for any, name)]
    pub hashes: HashMap<(HashKind, Vec<u8>), HashEntries>,
    pub bodies: Vec<BodySignature>,
    /// Lines that were not run, with why (for the load report).
    pub skipped: Vec<String>,
}

/// Where segments can be longer than this, fixed-size gaps become separate segments.
const MAX_INLINE_GAP: u64 = 32;

impl SignatureDb {
    /// Parses one database file; `file_name` decides the format by its extension.
    pub fn add_file(&mut self, file_name: &str, text: &str) -> Result<(), String> {
        let ext = file_name.rsplit('.').next().unwrap_or("");
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = match ext {
                "hdb" | "hsb" => self.add_hash(line),
                "ndb" => parse_body(line).map(|s| self.bodies.push(s)),
                other => return Err(format!("{file_name}: unsupported database type .{other}")),
            };
            if let Err(why) = parsed {
                self.skipped.push(format!("{file_name}:{}: {why}", n + 1));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty() && self.bodies.is_empty()
    }

    /// Does an object of `size` bytes need a `kind` digest? Hash signatures name their size, so
    /// most objects need none but the SHA-256 the processor computes anyway.
    pub fn needs_for_size(&self, kind: HashKind, size: u64) -> bool {
        self.hashes.iter().any(|((k, _), entries)| {
            *k == kind && entries.iter().any(|(s, _)| s.is_none_or(|s| s == size))
        })
    }

    fn add_hash(&mut self, line: &str) -> Result<(), String> {
        let mut fields = line.splitn(3, ':');
        let (Some(hash), Some(size), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err("expected HASH:SIZE:NAME".into());
        };
        let name = name.split(':').next().unwrap_or(name);
        let digest = hex::decode(hash).map_err(|_| "hash is not hex".to_owned())?;
        let kind = match digest.len() {
            16 => HashKind::Md5,
            20 => HashKind::Sha1,
            32 => HashKind::Sha256,
            n => return Err(format!("a {n}-byte hash is neither MD5, SHA-1 nor SHA-256")),
        };
        let size = if size == "*" {
            None
        } else {
            Some(
                size.parse()
                    .map_err(|_| "size is not a number".to_owned())?,
            )
        };
        self.hashes
            .entry((kind, digest))
            .or_default()
            .push((size, name.to_owned()));
        Ok(())
    }
}

fn parse_offset(raw: &str) -> Result<Offset, String> {
    if raw == "*" {
        return Ok(Offset::Any);
    }
    if let Some(n) = raw.strip_prefix("EOF-") {
        return n
            .parse()
            .map(Offset::FromEnd)
            .map_err(|_| format!("offset {raw}"));
    }
    let (start, shift) = raw.split_once(',').unwrap_or((raw, "0"));
    match (start.parse(), shift.parse()) {
        (Ok(start), Ok(shift)) => Ok(Offset::Absolute { start, shift }),
        _ => Err(format!(
            "offset {raw} is not supported (only *, N, N,M and EOF-N)"
        )),
    }
}

fn nibble(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

pub fn parse_body(line: &str) -> Result<BodySignature, String> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 4 {
        return Err("expected NAME:TARGET:OFFSET:HEXSIG".into());
    }
    if fields[1] != "0" {
        return Err(format!(
            "target type {} (only 0, any file, is run)",
            fields[1]
        ));
    }
    let offset = parse_offset(fields[2])?;
    let (segments, gaps) = parse_hex(fields[3])?;
    Ok(BodySignature {
        name: fields[0].to_owned(),
        offset,
        segments,
        gaps,
    })
}

/// Splits a hex signature into fixed-length segments and the gaps between them.
pub fn parse_hex(sig: &str) -> Result<(Vec<Vec<ByteClass>>, Vec<Gap>), String> {
    let b = sig.as_bytes();
    let mut segments: Vec<Vec<ByteClass>> = vec![Vec::new()];
    let mut gaps = Vec::new();
    let mut i = 0;
    let mut push_gap = |segments: &mut Vec<Vec<ByteClass>>, gap: Gap| -> Result<(), String> {
        if segments.last().is_some_and(Vec::is_empty) {
            return Err("a gap must follow bytes".into());
        }
        gaps.push(gap);
        segments.push(Vec::new());
        Ok(())
    };
    while i < b.len() {
        match b[i] {
            b'*' => {
                push_gap(&mut segments, Gap { min: 0, max: None })?;
                i += 1;
            }
            b'{' => {
                let end = sig[i..].find('}').ok_or("unclosed {")? + i;
                let inner = &sig[i + 1..end];
                let num = |s: &str| s.parse::<u64>().map_err(|_| format!("gap {{{inner}}}"));
                let gap = match inner.split_once('-') {
                    None => {
                        let n = num(inner)?;
                        Gap {
                            min: n,
                            max: Some(n),
                        }
                    }
                    Some(("", m)) => Gap {
                        min: 0,
                        max: Some(num(m)?),
                    },
                    Some((n, "")) => Gap {
                        min: num(n)?,
                        max: None,
                    },
                    Some((n, m)) => Gap {
                        min: num(n)?,
                        max: Some(num(m)?),
                    },
                };
                let current = segments.last_mut().ok_or("gap")?;
                if gap.max == Some(gap.min) && gap.min <= MAX_INLINE_GAP && !current.is_empty() {
                    current.extend(std::iter::repeat_n(ByteClass::Any, gap.min as usize));
                } else {
                    push_gap(&mut segments, gap)?;
                }
                i = end + 1;
            }
            b'(' => {
                let end = sig[i..].find(')').ok_or("unclosed (")? + i;
                let mut set = Vec::new();
                for alt in sig[i + 1..end].split('|') {
                    let v = hex::decode(alt).map_err(|_| format!("alternative {alt}"))?;
                    if v.len() != 1 {
                        return Err("only single-byte alternatives are supported".into());
                    }
                    set.push(v[0]);
                }
                segments.last_mut().ok_or("(")?.push(ByteClass::OneOf(set));
                i = end + 1;
            }
            _ => {
                if i + 1 >= b.len() {
                    return Err("odd number of hex digits".into());
                }
                let class = match (b[i], b[i + 1]) {
                    (b'?', b'?') => ByteClass::Any,
                    (b'?', lo) => ByteClass::Low(nibble(lo).ok_or("bad hex")?),
                    (hi, b'?') => ByteClass::High(nibble(hi).ok_or("bad hex")?),
                    (hi, lo) => ByteClass::Exact(
                        nibble(hi).ok_or("bad hex")? << 4 | nibble(lo).ok_or("bad hex")?,
                    ),
                };
                segments.last_mut().ok_or("hex")?.push(class);
                i += 2;
            }
        }
    }
    if segments.iter().any(Vec::is_empty) {
        return Err("empty segment".into());
    }
    // Trailing inline wildcards carry nothing: trim them.
    for s in &mut segments {
        while matches!(s.last(), Some(ByteClass::Any)) && s.len() > 1 {
            s.pop();
        }
    }
    if segments
        .iter()
        .any(|s| !s.iter().any(|c| matches!(c, ByteClass::Exact(_))))
    {
        return Err("every segment needs at least one exact byte".into());
    }
    Ok((segments, gaps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ByteClass::*;

    #[test]
    fn parses_hex_wildcards_and_gaps() {
        let (segs, gaps) = parse_hex("4142??c?{2}(43|44)*4546{3-7}47{-4}48{5-}49{40}4a").unwrap();
        assert_eq!(
            segs[0],
            vec![
                Exact(0x41),
                Exact(0x42),
                Any,
                High(0xc),
                Any,
                Any,
                OneOf(vec![0x43, 0x44])
            ]
        );
        assert_eq!(segs.len(), 6);
        assert_eq!(gaps[0], Gap { min: 0, max: None });
        assert_eq!(
            gaps[1],
            Gap {
                min: 3,
                max: Some(7)
            }
        );
        assert_eq!(
            gaps[2],
            Gap {
                min: 0,
                max: Some(4)
            }
        );
        assert_eq!(gaps[3], Gap { min: 5, max: None });
        assert_eq!(
            gaps[4],
            Gap {
                min: 40,
                max: Some(40)
            }
        );
    }

    #[test]
    fn reads_databases_and_reports_what_it_skips() {
        let mut db = SignatureDb::default();
        db.add_file(
            "t.hdb",
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n# comment\nxyz:1:Bad\n",
        )
        .unwrap();
        db.add_file("t.hsb", &format!("{}:*:Sha256-Any\n", "ab".repeat(32)))
            .unwrap();
        db.add_file(
            "t.ndb",
            "A:0:*:414243\nB:1:*:414243\nC:0:EP+0:4142\nD:0:*:????\nE:0:EOF-10:4142\n",
        )
        .unwrap();
        assert_eq!(db.hashes.len(), 2);
        assert_eq!(db.bodies.len(), 2);
        assert_eq!(db.skipped.len(), 4, "{:?}", db.skipped);
        assert!(
            db.needs_for_size(HashKind::Md5, 68)
                && db.needs_for_size(HashKind::Sha256, 1)
                && !db.needs_for_size(HashKind::Sha1, 68)
        );
        assert!(db.add_file("t.ldb", "x").is_err());
    }
}
