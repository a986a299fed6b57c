//! The reference-data cache (`shared::reference::cache::ReferenceCache`: an `ArcSwap`ped snapshot)
//! beside the design it replaces, `std::sync::RwLock<HashMap>`, in the same run and the same
//! conditions: 2 reader threads looking up random drug codes of the committed reference data (and
//! reading the value borrowed, no copy, on both sides), while a writer replaces the whole data every
//! millisecond. Both writers swap in one of two prebuilt versions in O(1) and free nothing: building
//! and freeing a snapshot costs the same in both designs (and on 2 cores would steal the readers'
//! CPU), so what differs, and is measured, is the read path.
//! Figures: reads per second (both readers, no per-read timing) and the p99 of one read's latency
//! (timed read by read in a second phase).

use shared::reference::cache::{Fetched, Loaded, ReferenceCache, SnapshotSource};
use shared::reference::snapshot::Snapshot;
use shared::reference::{Drug, ReferenceEntry, ReferenceKind, ReferenceValue};
use shared::store::StoreError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const READERS: usize = 2;
const PHASE: Duration = Duration::from_secs(2);
const WRITE_EVERY: Duration = Duration::from_millis(1);

/// Throughput and tail latency of one design.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub reads_per_second: f64,
    pub p50_ns: f64,
    pub p99_ns: f64,
}

/// What both designs are asked: the drug codes of `reference-data/drug_codes.csv`.
pub struct Data {
    codes: Vec<String>,
    versions: [Vec<ReferenceEntry>; 2],
}

impl Data {
    pub fn load(root: &Path) -> Data {
        let text = std::fs::read_to_string(root.join("reference-data/drug_codes.csv"))
            .expect("reference-data/drug_codes.csv");
        let mut entries = Vec::new();
        for line in text.lines().skip(1) {
            // code,name,... — the code and a name are enough here (names may hold quoted commas).
            let Some((code, rest)) = line.split_once(',') else {
                continue;
            };
            entries.push(ReferenceEntry {
                kind: ReferenceKind::DrugCode,
                code: code.to_owned(),
                value: ReferenceValue::Drug(Drug {
                    name: rest.split(',').next().unwrap_or_default().to_owned(),
                    atc_class: code[..5].to_owned(),
                    class_name: String::new(),
                    active: true,
                }),
                version: 1,
            });
        }
        // Two versions the writer alternates between (names differ, so every swap changes data).
        let other: Vec<ReferenceEntry> = entries
            .iter()
            .cloned()
            .map(|mut e| {
                if let ReferenceValue::Drug(d) = &mut e.value {
                    d.name.push_str(" (v2)");
                }
                e
            })
            .collect();
        let codes = entries.iter().map(|e| e.code.clone()).collect();
        Data {
            codes,
            versions: [entries, other],
        }
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }
}

/// A snapshot needs every kind: one site beside the drugs.
fn snapshot(entries: &[ReferenceEntry]) -> Snapshot {
    let mut all = entries.to_vec();
    all.push(ReferenceEntry {
        kind: ReferenceKind::Site,
        code: "SITE-BOS-01".into(),
        value: ReferenceValue::Site(shared::reference::Site {
            name: "Boston".into(),
            country: "US".into(),
            status: shared::reference::SiteStatus::Active,
        }),
        version: 1,
    });
    Snapshot::build(all, chrono::Utc::now()).expect("snapshot")
}

struct Unused;

#[async_trait::async_trait]
impl SnapshotSource for Unused {
    async fn fetch(&self, _: Option<&str>) -> Result<Fetched, StoreError> {
        Ok(Fetched::NotModified)
    }
}

/// A cheap per-thread pseudo-random index (xorshift, mapped onto `0..n` by a multiply-high rather
/// than a division: the harness's own cost per read is the same for both designs and should stay
/// small beside what is measured), so both designs see the same access pattern.
fn next(state: &mut u64, n: usize) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    ((u128::from(*state) * n as u128) >> 64) as usize
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i])
}

/// Runs `read` on [`READERS`] threads while `write` runs every [`WRITE_EVERY`] on another: first
/// counting reads for [`PHASE`], then timing each read for [`PHASE`].
fn measure<R, W>(read: R, mut write: W, n: usize) -> Measured
where
    R: Fn(usize) -> usize + Send + Sync + 'static,
    W: FnMut(usize) + Send + 'static,
{
    // Every code is found (a lookup that missed would be cheaper and flatter the design).
    for i in 0..n {
        assert!(read(i) > 0, "code {i} not found");
    }
    let read = Arc::new(read);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut round = 0usize;
            let mut next_write = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                next_write += WRITE_EVERY;
                round += 1;
                write(round);
                let now = Instant::now();
                if next_write > now {
                    std::thread::sleep(next_write - now);
                }
            }
            round
        })
    };
    // Phase 1: throughput.
    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..READERS)
        .map(|t| {
            let read = Arc::clone(&read);
            let total = Arc::clone(&total);
            std::thread::spawn(move || {
                let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let mut reads = 0u64;
                let mut sink = 0usize;
                let until = Instant::now() + PHASE;
                while Instant::now() < until {
                    for _ in 0..256 {
                        sink = sink.wrapping_add(read(next(&mut state, n)));
                    }
                    reads += 256;
                }
                std::hint::black_box(sink);
                total.fetch_add(reads, Ordering::Relaxed);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("reader");
    }
    let reads_per_second = total.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    // Phase 2: latency, one read at a time.
    let threads: Vec<_> = (0..READERS)
        .map(|t| {
            let read = Arc::clone(&read);
            std::thread::spawn(move || {
                let mut state = 0xD1B5_4A32_D192_ED03u64 ^ (t as u64 + 1);
                let mut samples = Vec::with_capacity(4 << 20);
                let mut sink = 0usize;
                let until = Instant::now() + PHASE;
                while Instant::now() < until && samples.len() < samples.capacity() {
                    let i = next(&mut state, n);
                    let t0 = Instant::now();
                    sink = sink.wrapping_add(read(i));
                    samples.push(t0.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
                }
                std::hint::black_box(sink);
                samples
            })
        })
        .collect();
    let mut samples: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("reader"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().expect("writer");
    assert!(rounds > 100, "the writer ran {rounds} times");
    samples.sort_unstable();
    Measured {
        reads_per_second,
        p50_ns: percentile(&samples, 0.50),
        p99_ns: percentile(&samples, 0.99),
    }
}

/// The shared cache: readers `view()` the current snapshot; the writer installs a new one.
pub fn arc_swap(data: &Data) -> Measured {
    let snapshots = [0, 1].map(|v| {
        Arc::new(Loaded {
            snapshot: snapshot(&data.versions[v]),
            etag: v.to_string(),
        })
    });
    let cache = Arc::new(ReferenceCache::new(
        Arc::new(Unused),
        Duration::from_secs(3600),
    ));
    cache.install_shared(Arc::clone(&snapshots[0]));
    let codes = Arc::new(data.codes.clone());
    let reader = {
        let cache = Arc::clone(&cache);
        let codes = Arc::clone(&codes);
        move |i: usize| {
            // Borrowed from the snapshot, no copy (as the route serialises it).
            cache.read(|loaded| {
                match loaded.and_then(|l| l.snapshot.get(ReferenceKind::DrugCode, &codes[i])) {
                    Some(ReferenceValue::Drug(d)) => d.name.len(),
                    _ => 0,
                }
            })
        }
    };
    let writer = move |round: usize| {
        // Prebuilt, swapped in whole: O(1), no allocation (the old one stays alive in `snapshots`,
        // so no reader frees it either).
        cache.install_shared(Arc::clone(&snapshots[round % 2]));
    };
    measure(reader, writer, data.len())
}

/// The old design: one map behind a read-write lock; the writer swaps a prebuilt map in under the
/// write lock (the fairest version of it: no rebuilding and no freeing while readers wait; an O(1)
/// swap, as the cache's writer, so the figures are the two read paths and not the allocator).
pub fn rw_lock(data: &Data) -> Measured {
    let maps: [HashMap<String, ReferenceValue>; 2] = [0, 1].map(|v| {
        data.versions[v]
            .iter()
            .map(|e| (e.code.clone(), e.value.clone()))
            .collect()
    });
    let map = Arc::new(RwLock::new(maps[0].clone()));
    let codes = Arc::new(data.codes.clone());
    let reader = {
        let map = Arc::clone(&map);
        let codes = Arc::clone(&codes);
        move |i: usize| {
            // Borrowed under the read lock, no copy (the same work as the cache's reader).
            map.read()
                .map(|m| match m.get(&codes[i]) {
                    Some(ReferenceValue::Drug(d)) => d.name.len(),
                    _ => 0,
                })
                .unwrap_or(0)
        }
    };
    // The writer holds the map that is not in place and swaps it in: `spare` alternates between
    // the two versions without a copy.
    let mut spare = maps[1].clone();
    let writer = move |_round: usize| {
        if let Ok(mut m) = map.write() {
            std::mem::swap(&mut *m, &mut spare);
        }
    };
    measure(reader, writer, data.len())
}
