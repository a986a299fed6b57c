//! The reference-data cache every reader shares: the current [`Snapshot`] behind an `ArcSwap`.
//!
//! - Readers never lock and never write shared memory. Each thread keeps its own `Arc` of the
//!   snapshot it last read (a thread-local slot per cache) with the cache's generation then; a read
//!   is one atomic load of the generation — a cache line every reader shares read-only, written
//!   once per install — and, when it has not moved, a borrow of the thread's own `Arc`: no
//!   reference count, no debt slot, no lock. Only the first read after an install takes the new
//!   snapshot from the `ArcSwap`. The "is a revalidation due?" check is one atomic load too. The
//!   trade: a thread holds the snapshot it last read until it reads again (on Lambda, a handful of
//!   runtime threads: at most that many superseded snapshots stay alive a little longer).
//! - At most once every `every` (one caller at a time), a request first revalidates with a
//!   conditional GET (`If-None-Match` = the ETag of what it holds): 304 costs a round trip and no
//!   parsing; a new snapshot is decoded, checked against its version and swapped in whole. So a warm
//!   function sees a new snapshot at most `every` after refresh-cache published it, with one read
//!   per `every`, not per request. (On Lambda a background timer would be frozen between
//!   invocations; the revalidation rides on the request that finds it due.)
//! - When the source fails, the last good snapshot keeps serving; its age (time since the source
//!   last answered) and a stale flag are visible to the caller, which puts them in responses and
//!   metrics. Without any snapshot yet (cold start with S3 down), reads find nothing and the next
//!   request retries after [`RETRY_WITHOUT_SNAPSHOT`].

use super::snapshot::Snapshot;
use super::{ReferenceKind, ReferenceValue};
use crate::store::StoreError;
use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest a revalidation may take (a conditional GET of a snapshot of ~100 KB).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How soon a cache that holds nothing tries its source again.
pub const RETRY_WITHOUT_SNAPSHOT: Duration = Duration::from_secs(1);

/// What a conditional read of the published snapshot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The caller's ETag is still current (HTTP 304).
    NotModified,
    /// A snapshot other than the caller's: its bytes and ETag.
    Changed { bytes: Vec<u8>, etag: String },
    /// Nothing has been published yet.
    Missing,
}

/// Where the published snapshot is read from (S3: [`crate::store::snapshots`]).
#[async_trait]
pub trait SnapshotSource: Send + Sync {
    async fn fetch(&self, if_none_match: Option<&str>) -> Result<Fetched, StoreError>;
}

/// A snapshot as the cache holds it, with the ETag it was served under.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub etag: String,
}

/// Milliseconds since the Unix epoch; injectable for tests.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis().max(0) as u64)
}

/// Caches a thread holds a snapshot of at once (a process has one; tests make many).
const HELD_PER_THREAD: usize = 4;

static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// A thread's own reference to the snapshot it last read from one cache.
struct Held {
    cache: u64,
    /// The cache's generation when `loaded` was taken (`None`: not taken yet).
    generation: Option<u64>,
    loaded: Option<Arc<Loaded>>,
}

thread_local! {
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

pub struct ReferenceCache {
    /// Tells this cache's slot apart in a thread's [`HELD`].
    id: u64,
    current: ArcSwapOption<Loaded>,
    /// Moves on every install, after the new snapshot is in `current`.
    generation: AtomicU64,
    /// When the next revalidation is due (ms).
    next_check: AtomicU64,
    /// When the source last answered (ms; 0: never).
    last_ok: AtomicU64,
    /// Did the last revalidation fail?
    stale: AtomicBool,
    /// Held by the one request revalidating.
    checking: AtomicBool,
    source: Arc<dyn SnapshotSource>,
    every: Duration,
    clock: Clock,
}

/// How fresh what the cache serves is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Time since the source last answered (a 200 or a 304).
    pub age: Duration,
    /// The last revalidation failed: this may be older than the source.
    pub stale: bool,
}

/// Clears the "revalidating" flag however the revalidation ends (also when its future is dropped).
struct Checking<'a>(&'a AtomicBool);

impl Drop for Checking<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ReferenceCache {
    /// An empty cache over `source`, revalidating at most every `every`. The first read loads.
    pub fn new(source: Arc<dyn SnapshotSource>, every: Duration) -> Self {
        Self::with_clock(source, every, system_clock())
    }

    pub fn with_clock(source: Arc<dyn SnapshotSource>, every: Duration, clock: Clock) -> Self {
        Self {
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            current: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            next_check: AtomicU64::new(0),
            last_ok: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            checking: AtomicBool::new(false),
            source,
            every,
            clock,
        }
    }

    /// Runs `f` on the current snapshot (`None` before one was loaded), lock-free: every lookup
    /// inside one call sees the same snapshot. `f` borrows the calling thread's own reference
    /// (see the module's notes); a read nested in `f` borrows through the `ArcSwap` instead.
    pub fn read<R>(&self, f: impl FnOnce(Option<&Loaded>) -> R) -> R {
        let mut f = Some(f);
        let done = HELD.try_with(|held| {
            let mut held = held.try_borrow_mut().ok()?;
            let generation = self.generation.load(Ordering::Acquire);
            let slot = match held.iter().position(|h| h.cache == self.id) {
                Some(slot) => slot,
                None => {
                    if held.len() >= HELD_PER_THREAD {
                        held.remove(0);
                    }
                    held.push(Held {
                        cache: self.id,
                        generation: None,
                        loaded: None,
                    });
                    held.len() - 1
                }
            };
            let mine = &mut held[slot];
            if mine.generation != Some(generation) {
                // Taken after the generation was read: at least as new as that generation's
                // snapshot (install stores the snapshot, then moves the generation).
                mine.loaded = self.current.load_full();
                mine.generation = Some(generation);
            }
            f.take().map(|f| f(mine.loaded.as_deref()))
        });
        if let Ok(Some(answer)) = done {
            return answer;
        }
        let guard = self.current.load();
        match f {
            Some(f) => f(guard.as_deref()),
            None => unreachable!("f is taken only to run it, and its answer was returned"),
        }
    }

    /// The entry of `kind` and `code` in the current snapshot, copied out.
    pub fn get(&self, kind: ReferenceKind, code: &str) -> Option<ReferenceValue> {
        self.read(|loaded| loaded?.snapshot.get(kind, code).cloned())
    }

    /// Whether a snapshot has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.read(|loaded| loaded.is_some())
    }

    pub fn freshness(&self) -> Freshness {
        let now = (self.clock)();
        Freshness {
            age: Duration::from_millis(now.saturating_sub(self.last_ok.load(Ordering::Relaxed))),
            stale: self.stale.load(Ordering::Relaxed),
        }
    }

    /// Puts `loaded` in place (tests and benchmarks; requests go through [`Self::revalidate_if_due`]).
    pub fn install(&self, loaded: Loaded) {
        self.install_shared(Arc::new(loaded));
    }

    /// [`Self::install`] of a snapshot already shared (the benchmark swaps two prebuilt ones).
    pub fn install_shared(&self, loaded: Arc<Loaded>) {
        self.current.store(Some(loaded));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Revalidates against the source if due and nobody else is at it; otherwise returns at once.
    /// When it revalidated: the freshness after it (the caller's metrics report it).
    pub async fn revalidate_if_due(&self) -> Option<Freshness> {
        let now = (self.clock)();
        if now < self.next_check.load(Ordering::Acquire) {
            return None;
        }
        if self
            .checking
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let _checking = Checking(&self.checking);
        let held = self.current.load_full();
        let etag = held.as_ref().map(|l| l.etag.as_str());
        // Bounded: a slow S3 must not hold the request that happens to revalidate (a snapshot in
        // hand keeps serving; without one, the next request retries soon).
        let fetched = match tokio::time::timeout(FETCH_TIMEOUT, self.source.fetch(etag)).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "reference snapshot not read within {FETCH_TIMEOUT:?}"
            ))),
        };
        let ok = match fetched {
            Ok(Fetched::NotModified) => true,
            Ok(Fetched::Changed { bytes, etag }) => match Snapshot::decode(&bytes) {
                Ok(snapshot) => {
                    tracing::info!(version = %snapshot.version, "reference snapshot loaded");
                    self.install(Loaded { snapshot, etag });
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "reference snapshot refused; serving the last good one");
                    false
                }
            },
            Ok(Fetched::Missing) => {
                tracing::warn!("no reference snapshot has been published yet");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "reference snapshot source failed; serving the last good one");
                false
            }
        };
        let after = (self.clock)();
        if ok {
            self.last_ok.store(after, Ordering::Relaxed);
        }
        self.stale.store(!ok, Ordering::Relaxed);
        let wait = if self.current.load().is_some() {
            self.every
        } else {
            RETRY_WITHOUT_SNAPSHOT.min(self.every)
        };
        self.next_check
            .store(after + wait.as_millis() as u64, Ordering::Release);
        Some(self.freshness())
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::Snapshot;
    use super::*;
    use std::sync::Mutex;

    fn snapshot(tag: &str) -> Snapshot {
        Snapshot::build(super::super::sample_entries(tag), chrono::Utc::now()).unwrap()
    }

    /// The published object as a test scripts it: its bytes and ETag, or a failure; counts calls.
    #[derive(Default)]
    struct Published {
        object: Mutex<Option<(Vec<u8>, String)>>,
        failing: AtomicBool,
        calls: AtomicU64,
        conditional: AtomicU64,
    }

    impl Published {
        fn publish(&self, tag: &str) {
            *self.object.lock().unwrap() = Some((snapshot(tag).encode(), format!("\"{tag}\"")));
        }
    }

    #[async_trait]
    impl SnapshotSource for Published {
        async fn fetch(&self, if_none_match: Option<&str>) -> Result<Fetched, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if if_none_match.is_some() {
                self.conditional.fetch_add(1, Ordering::SeqCst);
            }
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("GetObject".into()));
            }
            Ok(match self.object.lock().unwrap().clone() {
                None => Fetched::Missing,
                Some((_, etag)) if Some(etag.as_str()) == if_none_match => Fetched::NotModified,
                Some((bytes, etag)) => Fetched::Changed { bytes, etag },
            })
        }
    }

    fn name(cache: &ReferenceCache) -> Option<String> {
        match cache.get(ReferenceKind::DrugCode, "N02BE01")? {
            ReferenceValue::Drug(d) => Some(d.name.clone()),
            ReferenceValue::Site(_) => None,
        }
    }

    fn manual_clock() -> (Clock, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000_000));
        let read = Arc::clone(&now);
        (Arc::new(move || read.load(Ordering::SeqCst)), now)
    }

    #[tokio::test]
    async fn revalidates_at_most_every_period_and_sees_a_new_snapshot_after_it() {
        let source = Arc::new(Published::default());
        source.publish("v1");
        let (clock, now) = manual_clock();
        let cache = ReferenceCache::with_clock(source.clone(), Duration::from_secs(5), clock);
        cache.revalidate_if_due().await;
        assert_eq!(name(&cache).as_deref(), Some("v1"));
        source.publish("v2");
        // Within the period: no call to the source, the old snapshot.
        for _ in 0..100 {
            now.fetch_add(40, Ordering::SeqCst);
            cache.revalidate_if_due().await;
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        assert_eq!(name(&cache).as_deref(), Some("v1"));
        now.fetch_add(1_000, Ordering::SeqCst);
        cache.revalidate_if_due().await;
        assert_eq!(name(&cache).as_deref(), Some("v2"));
        assert_eq!(source.conditional.load(Ordering::SeqCst), 1);
        // Unchanged: a 304, the same snapshot.
        now.fetch_add(5_000, Ordering::SeqCst);
        cache.revalidate_if_due().await;
        assert_eq!(source.calls.load(Ordering::SeqCst), 3);
        assert_eq!(name(&cache).as_deref(), Some("v2"));
        assert!(!cache.freshness().stale);
    }

    #[tokio::test]
    async fn a_failing_source_leaves_the_last_good_snapshot_serving_with_its_age() {
        let source = Arc::new(Published::default());
        source.publish("v1");
        let (clock, now) = manual_clock();
        let cache = ReferenceCache::with_clock(source.clone(), Duration::from_secs(5), clock);
        cache.revalidate_if_due().await;
        source.failing.store(true, Ordering::SeqCst);
        now.fetch_add(12_000, Ordering::SeqCst);
        cache.revalidate_if_due().await;
        assert_eq!(name(&cache).as_deref(), Some("v1"));
        let f = cache.freshness();
        assert!(f.stale);
        assert_eq!(f.age, Duration::from_secs(12));
        // A corrupt object is refused the same way.
        source.failing.store(false, Ordering::SeqCst);
        *source.object.lock().unwrap() = Some((b"garbage".to_vec(), "\"bad\"".into()));
        now.fetch_add(6_000, Ordering::SeqCst);
        cache.revalidate_if_due().await;
        assert_eq!(name(&cache).as_deref(), Some("v1"));
        assert!(cache.freshness().stale);
        // Recovery.
        source.publish("v3");
        now.fetch_add(6_000, Ordering::SeqCst);
        cache.revalidate_if_due().await;
        assert_eq!(name(&cache).as_deref(), Some("v3"));
        assert_eq!(cache.freshness().age, Duration::ZERO);
        assert!(!cache.freshness().stale);
    }

    #[tokio::test]
    async fn without_any_snapshot_it_retries_soon() {
        let source = Arc::new(Published::default());
        let (clock, now) = manual_clock();
        let cache = ReferenceCache::with_clock(source.clone(), Duration::from_secs(60), clock);
        cache.revalidate_if_due().await;
        assert!(!cache.is_loaded());
        source.publish("v1");
        now.fetch_add(RETRY_WITHOUT_SNAPSHOT.as_millis() as u64, Ordering::SeqCst);
        cache.revalidate_if_due().await;
        assert_eq!(name(&cache).as_deref(), Some("v1"));
    }

    /// Readers racing with swaps see one snapshot or the next, never a mix: every entry of snapshot
    /// `vN` carries the name `vN`, and a reader's two lookups in one read must agree. And never an
    /// old one: a read that begins after an install sees that snapshot or a newer one (each thread
    /// holds its own reference, which must not outlive the generation it was taken at).
    #[test]
    fn readers_racing_with_swaps_never_see_a_mix_nor_an_older_snapshot() {
        let cache = Arc::new(ReferenceCache::new(
            Arc::new(Published::default()),
            Duration::from_secs(60),
        ));
        let snapshots: Vec<Snapshot> = (0..50).map(|i| snapshot(&format!("v{i}"))).collect();
        cache.install(Loaded {
            snapshot: snapshots[0].clone(),
            etag: "0".into(),
        });
        let installed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let stop = Arc::clone(&stop);
                let installed = Arc::clone(&installed);
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let floor = installed.load(Ordering::Acquire);
                        let (round, drug, site) = cache.read(|loaded| {
                            let loaded = loaded.expect("installed");
                            let drug = match loaded.snapshot.get(ReferenceKind::DrugCode, "N02BE01")
                            {
                                Some(ReferenceValue::Drug(d)) => d.name.clone(),
                                other => panic!("drug lookup: {other:?}"),
                            };
                            let site = match loaded.snapshot.get(ReferenceKind::Site, "SITE-BOS-01")
                            {
                                Some(ReferenceValue::Site(s)) => s.name.clone(),
                                other => panic!("site lookup: {other:?}"),
                            };
                            (loaded.etag.parse::<u64>().unwrap(), drug, site)
                        });
                        assert_eq!(drug, site, "one read, one snapshot");
                        assert_eq!(
                            drug,
                            format!("v{}", round % 50),
                            "the snapshot of its round"
                        );
                        assert!(
                            round >= floor,
                            "read round {round} after {floor} was installed"
                        );
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for round in 1..20_000u64 {
            cache.install(Loaded {
                snapshot: snapshots[round as usize % snapshots.len()].clone(),
                etag: round.to_string(),
            });
            installed.store(round, Ordering::Release);
        }
        stop.store(true, Ordering::Relaxed);
        let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(reads > 0);
    }

    /// A read nested in another (of the same cache or another) borrows through the `ArcSwap` (the
    /// current snapshot: the outer read's when nothing was installed between them); a thread
    /// reading many caches keeps each one's own.
    #[test]
    fn nested_reads_and_many_caches_on_one_thread() {
        let caches: Vec<ReferenceCache> = (0..HELD_PER_THREAD + 2)
            .map(|i| {
                let cache =
                    ReferenceCache::new(Arc::new(Published::default()), Duration::from_secs(60));
                cache.install(Loaded {
                    snapshot: snapshot(&format!("c{i}")),
                    etag: i.to_string(),
                });
                cache
            })
            .collect();
        for _ in 0..3 {
            for (i, cache) in caches.iter().enumerate() {
                assert_eq!(name(cache), Some(format!("c{i}")));
            }
        }
        let (outer, inner) = caches[0].read(|l| {
            let inner = caches[0].read(|l| l.map(|l| l.etag.clone()));
            (l.map(|l| l.etag.clone()), inner)
        });
        assert_eq!(outer, inner);
        caches[1].install(Loaded {
            snapshot: snapshot("c1-new"),
            etag: "new".into(),
        });
        assert_eq!(name(&caches[1]).as_deref(), Some("c1-new"));
        assert_eq!(name(&caches[0]).as_deref(), Some("c0"));
    }
}
