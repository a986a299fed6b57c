//! The built-in scanning engine: every body signature's segments are anchored by their longest
//! exact run. A q-gram [`filter`](super::filter) reads every byte and names the few places where an
//! anchor may be; only the bytes around those go through one Aho-Corasick automaton over all the
//! anchors, and each anchor found is verified against its whole segment and chained to the
//! signature's other segments through their gaps. Hash signatures are looked up once the stream
//! ends. The chunks are searched where they lie, 64 KiB at a time; what a scan holds is bounded by
//! that slice, the longest segment and the database (its anchors and gap positions), whatever the
//! object's size.
//!
//! Speed depends on the anchors: with anchors of 9 bytes or more the filter names almost nothing in
//! ordinary data; an anchor of one or two bytes makes it name every occurrence of those bytes, and
//! the automaton then reads much of the data (slower, never less exact).

use super::filter::{self, FilterState, QgramFilter, REACH};
use super::signatures::{BodySignature, ByteClass, Gap, HashKind, Offset, SignatureDb};
use super::Verdict;
use aho_corasick::{AhoCorasick, MatchKind};
use md5::Digest as _;
use std::borrow::Cow;
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
    matcher: Option<(AhoCorasick, QgramFilter)>,
    anchors: Vec<Anchor>,
    longest_segment: usize,
    longest_anchor: usize,
}

/// Bytes scanned at a time: bounds the positions the filter names and the candidates found per step.
const SLICE: usize = 64 * 1024;

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
            let automaton = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                // The filter keeps most bytes away from the automaton, so its memory matters more
                // than its speed: a contiguous NFA, a fraction of a full DFA's size.
                .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
                .build(&patterns)
                .map_err(|e| e.to_string())?;
            let windows: Vec<&[ByteClass]> = anchors
                .iter()
                .map(|a: &Anchor| filter::window(&db.bodies[a.signature].segments[a.segment], a.at))
                .collect();
            let filter = QgramFilter::new(windows);
            Some((automaton, filter))
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

    /// Bytes kept from one chunk to the next: enough for any segment to be verified, and for a
    /// search region to restart an anchor's length back.
    fn keep(&self) -> usize {
        self.longest_segment + self.longest_anchor + REACH as usize + 1
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
            filter: self.matcher.as_ref().map(|(_, f)| f.start()),
            engine: Arc::clone(self),
            size,
            tail: Vec::new(),
            pos: 0,
            open: None,
            reported_until: 0,
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
    filter: Option<FilterState>,
    /// The last bytes before `pos` (at most [`Engine::keep`]).
    tail: Vec<u8>,
    pos: u64,
    /// A search region `[start, end)` whose end has not arrived yet.
    open: Option<(u64, u64)>,
    /// Anchor matches ending at or before this were reported by an earlier search.
    reported_until: u64,
    pending: Vec<Candidate>,
    /// progress[signature][segment]: end positions where segments 0..=segment matched in order.
    progress: Vec<Vec<Vec<u64>>>,
    md5: Option<md5::Md5>,
    sha1: Option<sha1::Sha1>,
    found: Option<String>,
}

/// The bytes a scan can see: the kept tail, then the current chunk.
struct View<'a> {
    tail: &'a [u8],
    chunk: &'a [u8],
    /// The object offset of `chunk[0]`.
    at: u64,
}

impl<'a> View<'a> {
    /// Bytes `[from, to)` of the object, in place when they lie in one piece.
    fn get(&self, from: u64, to: u64) -> Option<Cow<'a, [u8]>> {
        let tail_start = self.at.checked_sub(self.tail.len() as u64)?;
        if from < tail_start || to > self.at + self.chunk.len() as u64 || from > to {
            return None;
        }
        if from >= self.at {
            let (a, b) = ((from - self.at) as usize, (to - self.at) as usize);
            return Some(Cow::Borrowed(&self.chunk[a..b]));
        }
        let a = (from - tail_start) as usize;
        if to <= self.at {
            return Some(Cow::Borrowed(&self.tail[a..(to - tail_start) as usize]));
        }
        let mut joined = self.tail[a..].to_vec();
        joined.extend_from_slice(&self.chunk[..(to - self.at) as usize]);
        Some(Cow::Owned(joined))
    }
}

impl EngineScan {
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(chunk);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(chunk);
        }
        // In slices, so what a slice can produce (named positions, candidates) stays bounded
        // whatever the size of the chunks handed in.
        for slice in chunk.chunks(SLICE) {
            self.scan_slice(slice);
        }
    }

    fn scan_slice(&mut self, chunk: &[u8]) {
        let engine = Arc::clone(&self.engine);
        let (Some((automaton, filter)), Some(state), None) =
            (&engine.matcher, &mut self.filter, &self.found)
        else {
            self.pos += chunk.len() as u64;
            return;
        };
        let at = self.pos;
        let end = at + chunk.len() as u64;
        // Nothing is allocated unless the filter names a position.
        let mut fires = Vec::new();
        filter.run(state, chunk, at, &mut fires);
        let tail = std::mem::take(&mut self.tail);
        let view = View {
            tail: &tail,
            chunk,
            at,
        };
        // Each named position opens a region where an anchor may lie: from REACH bytes before it
        // to an anchor's length after. Overlapping regions merge; a region is searched once all its
        // bytes are here, or as far as they are, to resume an anchor's length back.
        let reach = engine.longest_anchor as u64 + 1;
        for &e in &fires {
            let region = (e.saturating_sub(REACH), e + reach);
            match self.open {
                Some((s, t)) if region.0 <= t => self.open = Some((s, t.max(region.1))),
                Some(done) => {
                    self.search(&engine, automaton, &view, done);
                    self.open = Some(region);
                }
                None => self.open = Some(region),
            }
        }
        if let Some((s, t)) = self.open {
            self.search(&engine, automaton, &view, (s, t.min(end)));
            self.open = None;
            if t > end {
                // The region goes on in the next chunk: resume an anchor's length back, and skip
                // what this search reported. (Only then: a region that closed here says nothing of
                // the bytes after it, where the next chunk may name an anchor.)
                self.open = Some((end.saturating_sub(engine.longest_anchor as u64), t));
                self.reported_until = end;
            }
        }
        self.pos = end;
        // Verify, in order of end, every candidate whose bytes are all here.
        let (mut ready, waiting): (Vec<Candidate>, Vec<Candidate>) =
            self.pending.drain(..).partition(|c| c.end <= end);
        self.pending = waiting;
        ready.sort_by_key(|c| (c.end, c.segment));
        for c in ready {
            if self.found.is_some() {
                break;
            }
            self.check(&engine, &view, c);
        }
        // Keep the last bytes for the next chunk.
        let keep = engine.keep();
        let mut tail = tail;
        if chunk.len() >= keep {
            tail.clear();
            tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            tail.extend_from_slice(chunk);
            let cut = tail.len().saturating_sub(keep);
            tail.drain(..cut);
        }
        self.tail = tail;
    }

    /// Runs the automaton over `[from, to)` and queues a candidate for every anchor found there
    /// that no earlier search reported.
    fn search(
        &mut self,
        engine: &Engine,
        automaton: &AhoCorasick,
        view: &View,
        (from, to): (u64, u64),
    ) {
        let Some(bytes) = view.get(from, to) else {
            return;
        };
        for m in automaton.find_overlapping_iter(&*bytes) {
            let abs_end = from + m.end() as u64;
            if abs_end <= self.reported_until {
                continue;
            }
            let anchor = engine.anchors[m.pattern().as_usize()];
            let Some(start) = (from + m.start() as u64).checked_sub(anchor.at as u64) else {
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
    }

    fn check(&mut self, engine: &Engine, view: &View, c: Candidate) {
        let sig: &BodySignature = &engine.db.bodies[c.signature];
        let seg = &sig.segments[c.segment];
        let Some(bytes) = view.get(c.start, c.end) else {
            return;
        };
        if !seg
            .iter()
            .zip(bytes.iter())
            .all(|(class, b)| class.matches(*b))
        {
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

    /// The engine against brute force: random single-segment signatures (exact bytes, `??`, nibbles,
    /// alternatives; anchors from 1 to 20 bytes) over random data on a four-letter alphabet, so
    /// near-misses abound; every chunking must give the brute-force answer.
    #[test]
    fn agrees_with_brute_force_at_every_chunking() {
        let mut x = 0x853C_49E6_748F_EA9Bu64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let alphabet = b"ACGT";
        let (mut hits, mut misses) = (0, 0);
        for trial in 0..300 {
            // A signature: some runs of exact letters with single wildcards between them.
            let mut hex = String::new();
            let mut classes: Vec<Box<dyn Fn(u8) -> bool>> = Vec::new();
            for run in 0..=next(3) {
                if run > 0 {
                    match next(3) {
                        0 => {
                            hex.push_str("??");
                            classes.push(Box::new(|_| true));
                        }
                        1 => {
                            // ?N: low nibble of 'C' (0x43) or 'G' (0x47) etc.
                            let b = alphabet[next(4) as usize];
                            hex.push_str(&format!("?{:x}", b & 0x0f));
                            classes.push(Box::new(move |c| c & 0x0f == b & 0x0f));
                        }
                        _ => {
                            let (a, b) = (alphabet[next(4) as usize], alphabet[next(4) as usize]);
                            hex.push_str(&format!("({a:02x}|{b:02x})"));
                            classes.push(Box::new(move |c| c == a || c == b));
                        }
                    }
                }
                for _ in 0..1 + next(if trial % 3 == 0 { 3 } else { 12 }) {
                    let b = alphabet[next(4) as usize];
                    hex.push_str(&format!("{b:02x}"));
                    classes.push(Box::new(move |c| c == b));
                }
            }
            // Dense data keeps search regions open; sparse data (letters in filler) opens and closes
            // them, so anchors fall on every side of a chunk's end.
            let sparse = trial % 2 == 1;
            let mut data: Vec<u8> = (0..2_000 + next(3_000))
                .map(|_| {
                    if sparse && next(6) != 0 {
                        b'x'
                    } else {
                        alphabet[next(4) as usize]
                    }
                })
                .collect();
            // Half the time, plant one occurrence at a random place (edges included).
            if next(2) == 0 {
                let at = match next(4) {
                    0 => 0,
                    1 => data.len() - classes.len(),
                    _ => next((data.len() - classes.len()) as u64) as usize,
                };
                for (i, class) in classes.iter().enumerate() {
                    while !class(data[at + i]) {
                        data[at + i] = alphabet[next(4) as usize];
                    }
                }
            }
            let want = data
                .windows(classes.len())
                .any(|w| classes.iter().zip(w).all(|(c, b)| c(*b)));
            let e = engine(&format!("Random:0:*:{hex}"), "");
            for chunk in [1, 2, 5, 8, 9, 17, 64, 1000, 1 << 20] {
                let got = infected(&scan(&e, &data, chunk)).is_some();
                assert_eq!(got, want, "trial {trial} signature {hex} chunk {chunk}");
            }
            if want {
                hits += 1;
            } else {
                misses += 1;
            }
        }
        assert!(hits > 100 && misses > 50, "{hits} hits, {misses} misses");
    }

    /// One-byte anchors make the filter name every occurrence of their byte: slower, still exact,
    /// and what a step holds stays bounded by the slice.
    #[test]
    fn short_anchors_over_data_full_of_them() {
        let e = engine("Short:0:*:41??43\nPair:0:*:4142{2-4}4344", "");
        let mut data = vec![b'A'; 1 << 20];
        assert_eq!(scan(&e, &data, 1 << 20), Verdict::Clean);
        data.extend_from_slice(b"-A.C-");
        for chunk in [4096, 1 << 20, 2 << 20] {
            assert_eq!(
                infected(&scan(&e, &data, chunk)),
                Some("Short"),
                "chunk {chunk}"
            );
        }
        let mut pair = vec![b'A'; 300_000];
        pair.extend_from_slice(b"AB..CD");
        assert_eq!(infected(&scan(&e, &pair, 65_536)), Some("Pair"));
    }

    /// A short anchor whose window runs on past a chunk's end is named in the next chunk, while the
    /// anchor itself lies wholly in the previous one: it must still be found.
    #[test]
    fn a_short_anchor_named_after_the_chunk_it_lies_in() {
        let e = engine("Split:0:*:4142??43??44??45??46", "");
        for at in 0..12 {
            // A near miss early in the first chunk opens (and closes) a search region there.
            let mut data = b"\0".repeat(4096);
            data[..10].copy_from_slice(b"AB.C.D.E.X");
            let start = 4096 - 12 + at;
            let sig = b"AB.C.D.E.F";
            data.extend_from_slice(&[0u8; 64]);
            data[start..start + sig.len()].copy_from_slice(sig);
            for chunk in [4096, 4095, 4097] {
                assert_eq!(
                    infected(&scan(&e, &data, chunk)),
                    Some("Split"),
                    "at {start}, chunk {chunk}"
                );
            }
        }
    }
}
