//! The reference-data cache every reader shares: the current [`Snapshot`] behind an `ArcSwap`.
//!
//! - Readers never lock and never write shared memory: `ArcSwap::load` borrows the current
//!   snapshot through a thread-local debt slot (no reference count touched in the common case), and
//!   the "is a revalidation due?" check is one atomic load.
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
use arc_swap::{ArcSwapOption, Guard};
use async_trait::async_trait;
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

pub struct ReferenceCache {
    current: ArcSwapOption<Loaded>,
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

/// A borrowed view of the current snapshot: every lookup through one view sees the same snapshot.
pub struct View {
    guard: Guard<Option<Arc<Loaded>>>,
}

impl View {
    pub fn loaded(&self) -> Option<&Loaded> {
        self.guard.as_deref()
    }

    pub fn get(&self, kind: ReferenceKind, code: &str) -> Option<&ReferenceValue> {
        self.loaded()?.snapshot.get(kind, code)
    }
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
            current: ArcSwapOption::empty(),
            next_check: AtomicU64::new(0),
            last_ok: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            checking: AtomicBool::new(false),
            source,
            every,
            clock,
        }
    }

    /// The current snapshot, lock-free.
    pub fn view(&self) -> View {
        View {
            guard: self.current.load(),
        }
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
        self.current.store(Some(Arc::new(loaded)));
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
        match cache.view().get(ReferenceKind::DrugCode, "N02BE01")? {
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
        assert!(cache.view().loaded().is_none());
        source.publish("v1");
        now.fetch_add(RETRY_WITHOUT_SNAPSHOT.as_millis() as u64, Ordering::SeqCst);
        cache.revalidate_if_due().await;
        assert_eq!(name(&cache).as_deref(), Some("v1"));
    }

    /// Readers racing with swaps see one snapshot or the next, never a mix: every entry of snapshot
    /// `vN` carries the name `vN`, and a reader's two lookups through one view must agree.
    #[test]
    fn readers_racing_with_swaps_never_see_a_mix() {
        let cache = Arc::new(ReferenceCache::new(
            Arc::new(Published::default()),
            Duration::from_secs(60),
        ));
        let snapshots: Vec<Snapshot> = (0..50).map(|i| snapshot(&format!("v{i}"))).collect();
        cache.install(Loaded {
            snapshot: snapshots[0].clone(),
            etag: "0".into(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let view = cache.view();
                        let drug = match view.get(ReferenceKind::DrugCode, "N02BE01") {
                            Some(ReferenceValue::Drug(d)) => d.name.clone(),
                            other => panic!("drug lookup: {other:?}"),
                        };
                        let site = match view.get(ReferenceKind::Site, "SITE-BOS-01") {
                            Some(ReferenceValue::Site(s)) => s.name.clone(),
                            other => panic!("site lookup: {other:?}"),
                        };
                        assert_eq!(drug, site, "one view, one snapshot");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for round in 0..20_000 {
            cache.install(Loaded {
                snapshot: snapshots[round % snapshots.len()].clone(),
                etag: round.to_string(),
            });
        }
        stop.store(true, Ordering::Relaxed);
        let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert!(reads > 0);
    }
}
