//! The scan's prefilter: a bit-parallel shift-or over 2-byte q-grams, the idea of ClamAV's
//! `filtering.c`. It reads every byte of the object once, eight positions per step, and names the
//! few positions where an anchor may end; only the bytes around those go through the Aho-Corasick
//! automaton. It never misses an anchor (a position it does not name holds none); it may name
//! positions that hold none, which the automaton then rejects.
//!
//! Each anchor is held by a window: its first bytes and the classes after it in its segment.
//!
//! Three lanes share one state word, one per class of window length, so a short window blunts the
//! filter only for the windows of its own class:
//! - lane A (state bits 0–14) holds the windows of 9 classes or more, by their first 9 (8 q-grams);
//! - lane B (bits 16–30) those of 3 to 8 classes, right-aligned on the lane's 8 positions (a window
//!   of `n` classes leaves the lane's first `9 - n` positions open: every q-gram passes there);
//! - lane C (bits 31–38) those of 1 or 2 classes: one q-gram each, a set of byte pairs, so the lane
//!   needs one bit of the table and no state carried from one position to the next. Lone two-byte
//!   segments name only their own pairs, and the windows of lane B keep all their q-grams.
//!
//! The q-gram ending at byte `e` is `(byte[e - 1], byte[e])`. In lanes A and B, bit `p` of
//! `TABLE[q]` is 0 when some window of the lane has q-gram `q` at position `p`; after the q-gram
//! ending at `e`, bit 7 of the lane is 0 when positions 0..=7 all matched: a window may end at `e`
//! (lane B) or its first 9 classes end at `e` (lane A). Bit 31 of `TABLE[q]` is 0 when `q` is a
//! window of lane C. Either way the anchor starts in `[e - 8, e]`.
//!
//! The table is 65,536 entries of 4 bytes (256 KiB, once per database): its lookups are the
//! filter's work, eight independent ones per eight bytes, with one branch per eight bytes (taken
//! only where a position is named).

use super::signatures::ByteClass;

/// How many positions (q-grams) lanes A and B hold.
const POSITIONS: u32 = 8;
/// Lane B's offset in the state word and the table.
const LANE_B: u32 = 16;
/// Lane C's bit in the table (and, after a step of one position, in the state).
const LANE_C: u32 = 31;
/// The bits a step carries over: positions 0–6 of lanes A and B (position 7 moves out; lane C
/// carries nothing).
const CARRY: u64 = 0x7F | (0x7F << LANE_B);
/// After a step of 8 positions, bit `7 + d` of lanes A and B, and bit `31 + d` of lane C, say
/// whether a window may end `d` positions before the last.
const BLOCK_FIRE: u64 = 0xFF << 7 | (0xFF << (7 + LANE_B)) | (0xFF << LANE_C);
/// After a step of one position, bit 7 of lanes A and B, and lane C's bit.
const STEP_FIRE: u64 = 1 << 7 | 1 << (7 + LANE_B) | 1 << LANE_C;

/// The table's bits in use: lanes A and B's 8 positions, lane C's one (the others stay 0).
const LANES: u32 = 0xFF | (0xFF << LANE_B) | (1 << LANE_C);
/// Bytes before an anchor's end (or, in lane A, before the end of its first 9 bytes) at most.
pub const REACH: u64 = POSITIONS as u64;

pub struct QgramFilter {
    table: Box<[u32; 1 << 16]>,
}

impl QgramFilter {
    /// A filter for these windows: each anchor's start and the classes that follow it in its
    /// segment (at most 9, none empty, no two adjacent wildcards), so a short anchor followed by
    /// `??` and more bytes still filters well.
    pub fn new<'a>(windows: impl IntoIterator<Item = &'a [ByteClass]>) -> Self {
        let mut table: Box<[u32; 1 << 16]> = vec![LANES; 1 << 16]
            .into_boxed_slice()
            .try_into()
            .expect("65536 entries");
        // Positions some window of lane B leaves open: every q-gram passes.
        let mut open = 0u32;
        let mut clear = |a: &ByteClass, b: &ByteClass, bit: u32| {
            for x in members(a) {
                for y in members(b) {
                    table[x as usize | (y as usize) << 8] &= !(1 << bit);
                }
            }
        };
        for window in windows {
            match window {
                [] => {}
                // One byte: the q-gram ending at it, whatever the byte before.
                [only] => clear(&ByteClass::Any, only, LANE_C),
                [a, b] => clear(a, b, LANE_C),
                _ if window.len() > POSITIONS as usize => {
                    for p in 0..POSITIONS as usize {
                        clear(&window[p], &window[p + 1], p as u32);
                    }
                }
                _ => {
                    let n = window.len();
                    let first = POSITIONS as usize - (n - 1);
                    for k in 0..n - 1 {
                        clear(&window[k], &window[k + 1], LANE_B + (first + k) as u32);
                    }
                    open |= ((1 << first) - 1) << LANE_B;
                }
            }
        }
        for entry in table.iter_mut() {
            *entry &= !open;
        }
        Self { table }
    }

    /// A filter's run over one object.
    pub fn start(&self) -> FilterState {
        // Zero: the bytes before the object count as matching, so an anchor at its very start is
        // named (with some positions named for nothing, which the automaton rejects).
        FilterState { state: 0, last: 0 }
    }

    /// Runs over `chunk`, whose first byte is at `offset` in the object, and pushes onto `fires`
    /// every position `e` where an anchor may end (see the module's note).
    pub fn run(&self, s: &mut FilterState, chunk: &[u8], offset: u64, fires: &mut Vec<u64>) {
        let Some(&first) = chunk.first() else {
            return;
        };
        let table = &*self.table;
        let step = |state: &mut u64, a: u8, b: u8, e: u64, fires: &mut Vec<u64>| {
            *state = ((*state & CARRY) << 1) | u64::from(table[a as usize | (b as usize) << 8]);
            if !*state & STEP_FIRE != 0 {
                fires.push(e);
            }
        };
        let mut state = s.state;
        step(&mut state, s.last, first, offset, fires);
        // Positions i = 1.. of the chunk, eight at a time: the q-grams are independent lookups,
        // and the state advances by one shift per eight bytes. The nine bytes are two loads.
        let mut i = 1;
        while i + 8 <= chunk.len() {
            let w: &[u8; 9] = chunk[i - 1..i + 8].try_into().expect("nine bytes");
            let v = u64::from_le_bytes(w[..8].try_into().expect("eight bytes"));
            let t = |k: u32| u64::from(table[(v >> (8 * k)) as u16 as usize]);
            let t7 = u64::from(table[(v >> 56) as usize | (w[8] as usize) << 8]);
            state = ((state & CARRY) << 8)
                | t(0) << 7
                | t(1) << 6
                | t(2) << 5
                | t(3) << 4
                | t(4) << 3
                | t(5) << 2
                | t(6) << 1
                | t7;
            let fire = !state & BLOCK_FIRE;
            if fire != 0 {
                // Bit 7 + d (of lane A or B) or 31 + d (lane C) names position i + 7 - d; report
                // in order.
                let lanes = (fire >> 7) | (fire >> (7 + LANE_B)) | (fire >> LANE_C);
                for d in (0..8).rev() {
                    if lanes & (1 << d) != 0 {
                        fires.push(offset + (i + 7 - d) as u64);
                    }
                }
            }
            i += 8;
        }
        while i < chunk.len() {
            step(&mut state, chunk[i - 1], chunk[i], offset + i as u64, fires);
            i += 1;
        }
        s.state = state;
        s.last = chunk[chunk.len() - 1];
    }
}

/// The bytes a class admits.
fn members(c: &ByteClass) -> Vec<u8> {
    match c {
        ByteClass::Exact(b) => vec![*b],
        ByteClass::Any => (0..=255).collect(),
        ByteClass::High(h) => (0..16).map(|l| h << 4 | l).collect(),
        ByteClass::Low(l) => (0..16).map(|h| h << 4 | l).collect(),
        ByteClass::OneOf(set) => set.clone(),
    }
}

/// The window the filter holds for an anchor at `at` in `segment`: from the anchor's start, at
/// most 9 classes, ending before two adjacent wildcards (a q-gram every byte pair passes).
pub fn window(segment: &[ByteClass], at: usize) -> &[ByteClass] {
    let rest = &segment[at..];
    let mut n = rest.len().min(POSITIONS as usize + 1);
    if let Some(k) = rest[..n]
        .windows(2)
        .position(|w| matches!(w, [ByteClass::Any, ByteClass::Any]))
    {
        n = k + 1;
    }
    &rest[..n]
}

/// Where a filter's run is: its state and the last byte seen.
#[derive(Debug, Clone, Copy)]
pub struct FilterState {
    state: u64,
    last: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(anchors: &[&[u8]]) -> QgramFilter {
        let windows: Vec<Vec<ByteClass>> = anchors
            .iter()
            .map(|a| a.iter().take(9).map(|b| ByteClass::Exact(*b)).collect())
            .collect();
        QgramFilter::new(windows.iter().map(Vec::as_slice))
    }

    /// Every end position of every anchor occurrence, by brute force.
    fn ends(data: &[u8], anchors: &[&[u8]]) -> Vec<u64> {
        let mut v: Vec<u64> = anchors
            .iter()
            .flat_map(|a| {
                data.windows(a.len())
                    .enumerate()
                    .filter(move |(_, w)| w == a)
                    .map(move |(s, _)| s as u64)
                    .map(move |s| s + a.len().min(9) as u64 - 1)
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn fires(f: &QgramFilter, data: &[u8], chunk: usize) -> Vec<u64> {
        let mut s = f.start();
        let mut out = Vec::new();
        let mut offset = 0;
        for c in data.chunks(chunk) {
            f.run(&mut s, c, offset, &mut out);
            offset += c.len() as u64;
        }
        out
    }

    #[test]
    fn names_every_anchor_end_at_every_chunking() {
        let anchors: [&[u8]; 7] = [
            b"a-long-anchor-here",
            b"exactly9!",
            b"seven77",
            b"eight888",
            b"short",
            b"Zq",
            b"\x07",
        ];
        let f = exact(&anchors);
        let mut data = Vec::new();
        let mut x = 1u32;
        for round in 0..200 {
            for _ in 0..(round * 7 % 50) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                // Printable noise without the one-byte anchor.
                data.push(b'A' + (x >> 16) as u8 % 26);
            }
            data.extend_from_slice(anchors[round % anchors.len()]);
        }
        // At the very start and the very end as well.
        let mut edges = b"exactly9!".to_vec();
        edges.extend_from_slice(&data);
        edges.extend_from_slice(b"Zq");
        let want = ends(&edges, &anchors);
        assert!(want.len() > 200);
        for chunk in [1, 2, 7, 8, 9, 15, 16, 17, 64, 4096] {
            let got = fires(&f, &edges, chunk);
            assert!(
                want.iter().all(|e| got.binary_search(e).is_ok()),
                "chunk {chunk}: missed {:?}",
                want.iter()
                    .filter(|e| got.binary_search(e).is_err())
                    .collect::<Vec<_>>()
            );
            assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, once each");
            assert_eq!(
                got,
                fires(&f, &edges, 1),
                "chunk {chunk}: as one byte at a time"
            );
        }
    }

    #[test]
    fn random_bytes_rarely_fire_for_long_anchors() {
        let anchors: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("some-signature-{i:04}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = anchors.iter().map(Vec::as_slice).collect();
        let f = exact(&refs);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let got = fires(&f, &data, 1 << 16);
        // Only the first positions (the bytes before the object count as matching).
        assert!(got.iter().all(|&e| e < 8), "{got:?}");
    }

    /// The worst case of a single lane: windows of one q-gram next to windows of 8 classes. Each
    /// class has its own lane, so the short ones name only their own byte pairs, and the long
    /// ones still name almost nothing in random data.
    #[test]
    fn a_short_window_does_not_blunt_the_longer_ones() {
        let long: Vec<Vec<u8>> = (0..250)
            .map(|i| format!("eig{i:04}!").into_bytes())
            .collect();
        let pairs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![0x30 + i, 0x80 + i]).collect();
        let refs: Vec<&[u8]> = long.iter().chain(&pairs).map(Vec::as_slice).collect();
        let f = exact(&refs);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let got = fires(&f, &data, 1 << 16);
        let pair_ends = ends(&data, &pairs.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // Every pair is named; beyond them, only the first positions.
        assert!(pair_ends.iter().all(|e| got.binary_search(e).is_ok()));
        let others: Vec<u64> = got
            .iter()
            .copied()
            .filter(|e| pair_ends.binary_search(e).is_err())
            .collect();
        assert!(
            others.iter().all(|&e| e < 8),
            "{} others: {:?}",
            others.len(),
            &others[..others.len().min(20)]
        );
        // Some hundreds of the 2^20 positions hold a pair (about 10 / 65,536 of them).
        assert!((50..1000).contains(&pair_ends.len()), "{}", pair_ends.len());
    }
}
