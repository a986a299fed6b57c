//! The built-in scanning engine: every body signature's segments are found in one multi-pattern
//! pass (Aho-Corasick over each segment's longest exact run), verified around each hit, and chained
//! through their gaps; hash signatures are looked up once the stream ends. Memory is bounded by the
//! longest segment plus one chunk, whatever the object's size.

use super::signatures::{BodySignature, ByteClass, Gap, HashKind, Offset, SignatureDb};
use super::Verdict;
use aho_corasick::{AhoCorasick, MatchKind};
use md5::Digest as _;
use std::sync::Arc;

/// Which segment of which signature an Aho-Corasick pattern anchors, and where in the segment.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    signature: usize,
    segment: usize,
    at: usize,
}

/// A compiled database.
pub struct Engine {
    db: Arc<SignatureDb>,
    matcher: Option<AhoCorasick>,
    anchors: Vec<Anchor>,
    longest_segment: usize,
    longest_anchor: usize,
}

/// Up to this many anchors the matcher is a full DFA.
const MAX_DFA_PATTERNS: usize = 5_000;

/// End positions kept per (signature, segment) for bounded gaps.
const MAX_ENDS: usize = 64;

impl Engine {
    pub fn new(db: SignatureDb) -> Result<Self, String> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut anchors = Vec::new();
        let mut longest_segment = 0;
        for (si, sig) in db.bodies.iter().enumerate() {
            for (gi, seg) in sig.segments.iter().enumerate() {
                longest_segment = longest_segment.max(seg.len());
                // The longest run of exact bytes is the anchor.
                let (mut best, mut run_start) = ((0usize, 0usize), None);
                for (i, c) in seg
                    .iter()
                    .chain(std::iter::once(&ByteClass::Any))
                    .enumerate()
                {
                    match (c, run_start) {
                        (ByteClass::Exact(_), None) => run_start = Some(i),
                        (ByteClass::Exact(_), Some(_)) => {}
                        (_, Some(s)) => {
                            if i - s > best.1 - best.0 {
                                best = (s, i);
                            }
                            run_start = None;
                        }
                        (_, None) => {}
                    }
                }
                let bytes: Vec<u8> = seg[best.0..best.1]
                    .iter()
                    .map(|c| match c {
                        ByteClass::Exact(b) => *b,
                        _ => 0,
                    })
                    .collect();
                patterns.push(bytes);
                anchors.push(Anchor {
                    signature: si,
                    segment: gi,
                    at: best.0,
                });
            }
        }
        let longest_anchor = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let matcher = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    // A full DFA is the fastest automaton; past some thousands of patterns its memory
                    // grows too much, and the crate's own choice (an NFA) is used instead.
                    .kind(
                        (patterns.len() <= MAX_DFA_PATTERNS)
                            .then_some(aho_corasick::AhoCorasickKind::DFA),
                    )
                    .build(&patterns)
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(Self {
            db: Arc::new(db),
            matcher,
            anchors,
            longest_segment,
            longest_anchor,
        })
    }

    pub fn db(&self) -> &SignatureDb {
        &self.db
    }

    /// Starts scanning an object of `size` bytes (the size fixes `EOF-n` offsets).
    pub fn scan(self: &Arc<Self>, size: u64) -> EngineScan {
        EngineScan {
            progress: self
                .db
                .bodies
                .iter()
                .map(|s| vec![Vec::new(); s.segments.len()])
                .collect(),
            md5: self
                .db
                .needs_for_size(HashKind::Md5, size)
                .then(md5::Md5::new),
            sha1: self
                .db
                .needs_for_size(HashKind::Sha1, size)
                .then(sha1::Sha1::new),
            engine: Arc::clone(self),
            size,
            window: Vec::new(),
            window_start: 0,
            pos: 0,
            pending: Vec::new(),
            found: None,
        }
    }
}

/// A candidate segment match: `[start, start + len)` must be verified once its bytes arrived.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    signature: usize,
    segment: usize,
    start: u64,
    end: u64,
}

pub struct EngineScan {
    engine: Arc<Engine>,
    size: u64,
    /// The bytes `[window_start, pos)`: at least the longest segment back.
    window: Vec<u8>,
    window_start: u64,
    pos: u64,
    pending: Vec<Candidate>,
    /// progress[signature][segment]: end positions where segments 0..=segment matched in order.
    progress: Vec<Vec<Vec<u64>>>,
    md5: Option<md5::Md5>,
    sha1: Option<sha1::Sha1>,
    found: Option<String>,
}

impl EngineScan {
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(chunk);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(chunk);
        }
        if self.found.is_some() || chunk.is_empty() {
            self.pos += chunk.len() as u64;
            return;
        }
        let engine = Arc::clone(&self.engine);
        let Some(matcher) = &engine.matcher else {
            self.pos += chunk.len() as u64;
            return;
        };
        let previous_end = self.pos;
        self.window.extend_from_slice(chunk);
        self.pos += chunk.len() as u64;
        // Search from where a match could still end in the new bytes.
        let from = (previous_end - self.window_start)
            .saturating_sub(engine.longest_anchor.saturating_sub(1) as u64)
            as usize;
        for m in matcher.find_overlapping_iter(&self.window[from..]) {
            let abs_end = self.window_start + (from + m.end()) as u64;
            if abs_end <= previous_end {
                continue;
            }
            let anchor = engine.anchors[m.pattern().as_usize()];
            let abs_start = self.window_start + (from + m.start()) as u64;
            let Some(start) = abs_start.checked_sub(anchor.at as u64) else {
                continue;
            };
            let len = engine.db.bodies[anchor.signature].segments[anchor.segment].len() as u64;
            self.pending.push(Candidate {
                signature: anchor.signature,
                segment: anchor.segment,
                start,
                end: start + len,
            });
        }
        // Verify, in order of end, every candidate whose bytes are all here.
        let pos = self.pos;
        let (mut ready, waiting): (Vec<Candidate>, Vec<Candidate>) =
            self.pending.drain(..).partition(|c| c.end <= pos);
        self.pending = waiting;
        ready.sort_by_key(|c| (c.end, c.segment));
        for c in ready {
            if self.found.is_some() {
                break;
            }
            self.check(&engine, c);
        }
        // Keep what a future candidate may need: the longest segment back from the oldest pending
        // start, and at least the longest segment before the end.
        let keep_from = self
            .pending
            .iter()
            .map(|c| c.start)
            .min()
            .unwrap_or(u64::MAX)
            .min(
                self.pos
                    .saturating_sub(engine.longest_segment as u64 + engine.longest_anchor as u64),
            );
        if keep_from > self.window_start {
            let cut = ((keep_from - self.window_start) as usize).min(self.window.len());
            self.window.drain(..cut);
            self.window_start += cut as u64;
        }
    }

    fn check(&mut self, engine: &Engine, c: Candidate) {
        if c.start < self.window_start {
            return;
        }
        let sig: &BodySignature = &engine.db.bodies[c.signature];
        let seg = &sig.segments[c.segment];
        let from = (c.start - self.window_start) as usize;
        let Some(bytes) = self.window.get(from..from + seg.len()) else {
            return;
        };
        if !seg.iter().zip(bytes).all(|(class, b)| class.matches(*b)) {
            return;
        }
        let placed = if c.segment == 0 {
            match sig.offset {
                Offset::Any => true,
                Offset::Absolute { start, shift } => (start..=start + shift).contains(&c.start),
                Offset::FromEnd(n) => self.size.checked_sub(n) == Some(c.start),
            }
        } else {
            let gap: Gap = sig.gaps[c.segment - 1];
            self.progress[c.signature][c.segment - 1]
                .iter()
                .any(|&end| {
                    end <= c.start && {
                        let d = c.start - end;
                        d >= gap.min && gap.max.is_none_or(|m| d <= m)
                    }
                })
        };
        if !placed {
            return;
        }
        if c.segment + 1 == sig.segments.len() {
            self.found = Some(sig.name.clone());
            return;
        }
        let next_gap = sig.gaps[c.segment];
        let ends = &mut self.progress[c.signature][c.segment];
        match next_gap.max {
            // Unbounded: the earliest end serves every later start.
            None => {
                if ends.is_empty() {
                    ends.push(c.end);
                }
            }
            Some(max) => {
                let horizon = c.end.saturating_sub(max + engine.longest_segment as u64);
                ends.retain(|&e| e >= horizon);
                if ends.len() >= MAX_ENDS {
                    ends.remove(0);
                }
                ends.push(c.end);
            }
        }
    }

    /// The verdict, once every byte went through `update`.
    pub fn finish(self, sha256: &[u8; 32]) -> Verdict {
        if let Some(name) = self.found {
            return Verdict::Infected { signature: name };
        }
        let db = &self.engine.db;
        let mut digests: Vec<(HashKind, Vec<u8>)> = vec![(HashKind::Sha256, sha256.to_vec())];
        if let Some(h) = self.md5 {
            digests.push((HashKind::Md5, h.finalize().to_vec()));
        }
        if let Some(h) = self.sha1 {
            digests.push((HashKind::Sha1, h.finalize().to_vec()));
        }
        for key in digests {
            if let Some(entries) = db.hashes.get(&key) {
                if let Some((_, name)) = entries
                    .iter()
                    .find(|(size, _)| size.is_none_or(|s| s == self.pos))
                {
                    return Verdict::Infected {
                        signature: name.clone(),
                    };
                }
            }
        }
        Verdict::Clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    pub const EICAR: &[u8] =
        br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

    fn engine(ndb: &str, hdb: &str) -> Arc<Engine> {
        let mut db = SignatureDb::default();
        db.add_file("t.ndb", ndb).unwrap();
        db.add_file("t.hdb", hdb).unwrap();
        assert!(db.skipped.is_empty(), "{:?}", db.skipped);
        Arc::new(Engine::new(db).unwrap())
    }

    /// Scans `data` in chunks of `chunk` bytes.
    fn scan(e: &Arc<Engine>, data: &[u8], chunk: usize) -> Verdict {
        let mut s = e.scan(data.len() as u64);
        for c in data.chunks(chunk.max(1)) {
            s.update(c);
        }
        s.finish(&Sha256::digest(data).into())
    }

    fn infected(v: &Verdict) -> Option<&str> {
        match v {
            Verdict::Infected { signature } => Some(signature),
            _ => None,
        }
    }

    #[test]
    fn eicar_by_hash_and_by_body_at_every_chunking() {
        let e = engine(
            &format!("Eicar-Body:0:*:{}", hex::encode(EICAR)),
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Hash",
        );
        let hash_only = engine(
            "Nothing:0:*:deadbeefcafe",
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Hash",
        );
        assert_eq!(infected(&scan(&hash_only, EICAR, 7)), Some("Eicar-Hash"));
        let mut embedded = vec![0u8; 10_000];
        embedded.extend_from_slice(EICAR);
        embedded.extend(vec![1u8; 5_000]);
        for chunk in [1, 2, 3, 16, 67, 68, 69, 4096, 1 << 20] {
            assert_eq!(
                infected(&scan(&e, &embedded, chunk)),
                Some("Eicar-Body"),
                "chunk {chunk}"
            );
            assert_eq!(
                infected(&scan(&e, &embedded[..10_000 + 67], chunk)),
                None,
                "truncated, chunk {chunk}"
            );
        }
        assert_eq!(scan(&e, &vec![0u8; 100_000], 4096), Verdict::Clean);
    }

    #[test]
    fn wildcards_gaps_and_offsets() {
        let e = engine(
            "Star:0:*:41424344*45464748\nRange:0:*:5051{2-4}5253\nAt10:0:10:6162\nEnd:0:EOF-3:7a7a\nNib:0:*:3?4142(43|44)",
            "",
        );
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"xxABCDyyyyyyyyEFGHzz", Some("Star")),
            (b"xxEFGHyyABCD", None),
            (b"PQ..RS", Some("Range")),
            (b"PQ....RS", Some("Range")),
            (b"PQ.....RS", None),
            (b"PQRS", None),
            (b"0123456789ab", Some("At10")),
            (b"012345678ab", None),
            (b"....zz.", Some("End")),
            (b"....zz..", None),
            (b"-5ABD-", Some("Nib")),
            (b"-5ABE-", None),
            (b"-QABC-", None),
        ];
        for (data, want) in cases {
            for chunk in [1, 3, 64] {
                assert_eq!(
                    infected(&scan(&e, data, chunk)),
                    *want,
                    "{:?} chunk {chunk}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }

    #[test]
    fn many_signatures_one_pass() {
        let ndb: String = (0..2000)
            .map(|i| {
                format!(
                    "Sig{i}:0:*:{}\n",
                    hex::encode(format!("pattern-number-{i:05}"))
                )
            })
            .collect();
        let e = engine(&ndb, "");
        let mut data = vec![b'.'; 1 << 16];
        data.extend_from_slice(b"pattern-number-01234");
        assert_eq!(infected(&scan(&e, &data, 1000)), Some("Sig1234"));
    }
}
