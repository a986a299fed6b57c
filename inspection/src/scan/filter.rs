//! The scan's prefilter: a bit-parallel shift-or over 2-byte q-grams, the idea of ClamAV's
//! `filtering.c`. It reads every byte of the object once, eight positions per step, and names the
//! few positions where an anchor may end; only the bytes around those go through the Aho-Corasick
//! automaton. It never misses an anchor (a position it does not name holds none); it may name
//! positions that hold none, which the automaton then rejects.
//!
//! Each anchor is held by a window: its first bytes and the classes after it in its segment.
//!
//! Four lanes share one 64-bit state word, one lane per class of window length, so a short window
//! blunts the filter only for the windows of its own class (a window of `n` classes right-aligned
//! on a lane's 8 positions leaves the lane's first `9 - n` positions open: every q-gram passes
//! there, for every window of the lane):
//! - lane 0 (bits 0–15) holds the windows of 9 classes or more, by their first 9 (8 q-grams);
//! - lane 1 (bits 16–31) those of 6 to 8 classes (at most 3 positions open);
//! - lane 2 (bits 32–47) those of 3 to 5 classes;
//! - lane 3 (bits 48–63) those of 1 or 2 classes (one q-gram: a set of byte pairs).
//!
//! The q-gram ending at byte `e` is `(byte[e - 1], byte[e])`. In a lane, bit `p` of `TABLE[q]` is 0
//! when some window of the lane has q-gram `q` at position `p`; after the q-gram ending at `e`, bit 7
//! of the lane is 0 when positions 0..=7 all matched: a window may end at `e` (lanes 1–3) or its
//! first 9 classes end at `e` (lane 0). Either way the anchor starts in `[e - 8, e]`.
//!
//! The table has 65,536 entries of 8 bytes (512 KiB, held once per database); its lookups are the
//! filter's work, eight independent ones per eight bytes, with no branch but one per eight bytes
//! (taken only where a position is named).

use super::signatures::ByteClass;

/// How many positions (q-grams) a lane holds.
const POSITIONS: u32 = 8;
/// Bits per lane in the state word: 8 positions, and room for a step of 8 to shift them into.
const LANE_BITS: u32 = 16;
/// The lane of a window of `n` classes.
fn lane(n: usize) -> u32 {
    match n {
        9.. => 0,
        6..=8 => 1,
        3..=5 => 2,
        _ => 3,
    }
}
/// `bits` repeated in each of the four lanes.
const fn each_lane(bits: u64) -> u64 {
    bits | bits << LANE_BITS | bits << (2 * LANE_BITS) | bits << (3 * LANE_BITS)
}
/// The bits a step carries over: positions 0–6 of each lane (position 7 moves out).
const CARRY: u64 = each_lane(0x7F);
/// After a step of 8 positions, bit `7 + d` of a lane is bit 7 of the state `d` positions earlier.
const BLOCK_FIRE: u64 = each_lane(0xFF << 7);
/// After a step of one position, bit 7 of each lane.
const STEP_FIRE: u64 = each_lane(1 << 7);
/// Each lane's 8 position bits (the others stay 0 in the table).
const LANES: u64 = each_lane(0xFF);
/// Bytes before an anchor's end (or, in lane 0, before the end of its first 9 bytes) at most.
pub const REACH: u64 = POSITIONS as u64;

pub struct QgramFilter {
    table: Box<[u64; 1 << 16]>,
}

impl QgramFilter {
    /// A filter for these windows: each anchor's start and the classes that follow it in its
    /// segment (at most 9, none empty, no two adjacent wildcards), so a short anchor followed by
    /// `??` and more bytes still filters well.
    pub fn new<'a>(windows: impl IntoIterator<Item = &'a [ByteClass]>) -> Self {
        let mut table: Box<[u64; 1 << 16]> = vec![LANES; 1 << 16]
            .into_boxed_slice()
            .try_into()
            .expect("65536 entries");
        // Positions some window leaves open (before a short window): every q-gram passes.
        let mut open = 0u64;
        let mut clear = |a: &ByteClass, b: &ByteClass, bit: u32| {
            for x in members(a) {
                for y in members(b) {
                    table[x as usize | (y as usize) << 8] &= !(1 << bit);
                }
            }
        };
        for window in windows {
            let n = window.len();
            let base = lane(n) * LANE_BITS;
            if n > POSITIONS as usize {
                for p in 0..POSITIONS as usize {
                    clear(&window[p], &window[p + 1], base + p as u32);
                }
            } else if n >= 2 {
                let first = POSITIONS as usize - (n - 1);
                for k in 0..n - 1 {
                    clear(&window[k], &window[k + 1], base + (first + k) as u32);
                }
                open |= ((1 << first) - 1) << base;
            } else if let Some(only) = window.first() {
                // One byte: the q-gram ending at it, whatever the byte before.
                clear(&ByteClass::Any, only, base + POSITIONS - 1);
                open |= 0x7F << base;
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
            *state = ((*state & CARRY) << 1) | table[a as usize | (b as usize) << 8];
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
            let t = |k: u32| table[(v >> (8 * k)) as u16 as usize];
            let t7 = table[(v >> 56) as usize | (w[8] as usize) << 8];
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
                // Bit 7 + d (of any lane) names position i + 7 - d; report in order.
                let mut lanes = fire >> 7;
                lanes |= lanes >> (2 * LANE_BITS);
                lanes |= lanes >> LANE_BITS;
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
