//! A circuit breaker with go-zero's Google SRE rule (`core/breaker/googlebreaker.go` after its
//! May 2024 rewrite, #4077/#4141/#4151), ported rule for rule. It never "opens" as a state: each
//! call is dropped with a probability that grows as the dependency's recent successes fall behind
//! the calls made to it (SRE book, "Handling Overload", client-side throttling).
//!
//! The rules, as go-zero applies them:
//! - A rolling window of 10 s in 40 buckets of 250 ms ([`RollingWindow`], `core/collection/
//!   rollingwindow.go`); each bucket counts successes, failures and drops (a drop counts in the
//!   total as a request that did not succeed). Buckets older than the window are skipped when read
//!   and reset when next written.
//! - Reading the window oldest bucket first: `accepts` = successes, `total` = every mark;
//!   `workingBuckets` = the run of most recent buckets with successes and no failure (a bucket
//!   with a failure resets it to 0; an empty or drop-only bucket neither extends nor resets it);
//!   `failingBuckets` = the run of most recent buckets with failures and no success (a bucket with
//!   a success resets it).
//! - `w = max(1.1, 1.5 − 0.4·failingBuckets/40)`: the longer the dependency has been failing, the
//!   fewer requests beyond its successes are let through.
//! - `dropRatio = (total − 5 − w·accepts) / (total + 1)`; at or below 0 the call passes (and the
//!   time of the last pass is *not* updated: go-zero updates it only on the throttled path).
//! - Throttled path: if a call passed before and more than 1 s ago, this call passes (a forced
//!   probe, so a recovered dependency is seen even when the ratio says drop).
//! - Otherwise the ratio is scaled by `(40 − workingBuckets)/40` (recent healthy buckets lower it)
//!   and the call is dropped with that probability — no cap: a ratio ≥ 1 drops every call until
//!   the next forced probe. A call that passes records the time of this pass.
//!
//! The clock and the random source are injected ([`Clock`], [`Chance`]) so tests compute the
//! exact outcome by hand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window: 10 s.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Buckets in the window (250 ms each).
pub const BUCKETS: u32 = 40;
/// A call is let through after this long without a pass, whatever the ratio.
pub const FORCE_PASS: Duration = Duration::from_secs(1);
/// `k`: how many requests per success a healthy dependency may receive.
const K: f64 = 1.5;
const MIN_K: f64 = 1.1;
/// Requests the window tolerates before any throttling.
const PROTECTION: i64 = 5;

/// Monotonic time since an origin of the clock's choosing.
pub trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

/// The process's monotonic clock.
#[derive(Debug)]
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A uniform number in `[0, 1)` per draw.
pub trait Chance: Send + Sync {
    fn draw(&self) -> f64;
}

/// Seeded from the OS (fastrand).
#[derive(Debug)]
pub struct RandomChance(Mutex<fastrand::Rng>);

impl Default for RandomChance {
    fn default() -> Self {
        Self(Mutex::new(fastrand::Rng::new()))
    }
}

impl Chance for RandomChance {
    fn draw(&self) -> f64 {
        match self.0.lock() {
            Ok(mut rng) => rng.f64(),
            Err(poisoned) => poisoned.into_inner().f64(),
        }
    }
}

/// One bucket's marks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    pub sum: i64,
    pub success: i64,
    pub failure: i64,
    pub drop: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Success,
    Failure,
    Drop,
}

impl Bucket {
    fn add(&mut self, mark: Mark) {
        self.sum += 1;
        match mark {
            Mark::Success => self.success += 1,
            Mark::Failure => self.failure += 1,
            Mark::Drop => self.drop += 1,
        }
    }
}

/// go-zero's `RollingWindow` (without `IgnoreCurrentBucket`, as the breaker uses it).
#[derive(Debug)]
struct RollingWindow {
    buckets: Vec<Bucket>,
    interval: Duration,
    offset: usize,
    /// Start of the current bucket, aligned to the interval.
    last_time: Duration,
}

impl RollingWindow {
    fn new(size: usize, interval: Duration, now: Duration) -> Self {
        Self {
            buckets: vec![Bucket::default(); size],
            interval,
            offset: 0,
            last_time: now,
        }
    }

    /// Whole intervals since the current bucket started, at most the window's size.
    fn span(&self, now: Duration) -> usize {
        let elapsed = now.saturating_sub(self.last_time);
        let span = (elapsed.as_nanos() / self.interval.as_nanos()) as usize;
        span.min(self.buckets.len())
    }

    fn update_offset(&mut self, now: Duration) {
        let span = self.span(now);
        if span == 0 {
            return;
        }
        let size = self.buckets.len();
        for i in 0..span {
            self.buckets[(self.offset + i + 1) % size] = Bucket::default();
        }
        self.offset = (self.offset + span) % size;
        let since = now.saturating_sub(self.last_time);
        let rem = Duration::from_nanos((since.as_nanos() % self.interval.as_nanos()) as u64);
        self.last_time = now - rem;
    }

    fn add(&mut self, now: Duration, mark: Mark) {
        self.update_offset(now);
        let offset = self.offset;
        self.buckets[offset].add(mark);
    }

    /// The live buckets, oldest first (expired ones skipped).
    fn live(&self, now: Duration) -> impl Iterator<Item = &Bucket> {
        let size = self.buckets.len();
        let span = self.span(now);
        let start = (self.offset + span + 1) % size;
        (0..size - span).map(move |i| &self.buckets[(start + i) % size])
    }
}

/// What the window holds now (go-zero's `windowResult`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    pub accepts: i64,
    pub total: i64,
    pub failing_buckets: i64,
    pub working_buckets: i64,
}

/// Why a call was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open: the call was dropped")]
pub struct BreakerOpen;

#[derive(Debug)]
struct State {
    window: RollingWindow,
    last_pass: Option<Duration>,
}

/// One dependency's breaker. Cheap to share (`Arc`); every method takes `&self`.
pub struct Breaker {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    chance: Arc<dyn Chance>,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker").finish_non_exhaustive()
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

impl Breaker {
    /// The process clock and an OS-seeded random source.
    pub fn new() -> Self {
        Self::with(
            Arc::new(SystemClock::default()),
            Arc::new(RandomChance::default()),
        )
    }

    pub fn with(clock: Arc<dyn Clock>, chance: Arc<dyn Chance>) -> Self {
        let interval = WINDOW / BUCKETS;
        let window = RollingWindow::new(BUCKETS as usize, interval, clock.now());
        Self {
            state: Mutex::new(State {
                window,
                last_pass: None,
            }),
            clock,
            chance,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Counters stay meaningful whatever a panicking holder left: take them as they are.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The window now.
    pub fn history(&self) -> History {
        let now = self.clock.now();
        history(&self.lock().window, now)
    }

    /// May a call be made now? `Ok`: make it and report how it went through the permit; `Err`: the
    /// call is dropped (and counted as a drop).
    pub fn allow(&self) -> Result<Permit<'_>, BreakerOpen> {
        let now = self.clock.now();
        let mut state = self.lock();
        if self.accept(&mut state, now) {
            Ok(Permit {
                breaker: self,
                settled: false,
            })
        } else {
            state.window.add(now, Mark::Drop);
            Err(BreakerOpen)
        }
    }

    /// go-zero's `accept()`.
    fn accept(&self, state: &mut State, now: Duration) -> bool {
        let h = history(&state.window, now);
        let w = K - (K - MIN_K) * h.failing_buckets as f64 / f64::from(BUCKETS);
        let weighted_accepts = w.max(MIN_K) * h.accepts as f64;
        let mut drop_ratio =
            ((h.total - PROTECTION) as f64 - weighted_accepts) / (h.total + 1) as f64;
        if drop_ratio <= 0.0 {
            return true;
        }
        if let Some(last) = state.last_pass {
            if now.saturating_sub(last) > FORCE_PASS {
                state.last_pass = Some(now);
                return true;
            }
        }
        drop_ratio *= f64::from(BUCKETS - h.working_buckets as u32) / f64::from(BUCKETS);
        if self.chance.draw() < drop_ratio {
            return false;
        }
        state.last_pass = Some(now);
        true
    }

    fn mark(&self, mark: Mark) {
        let now = self.clock.now();
        self.lock().window.add(now, mark);
    }
}

fn history(window: &RollingWindow, now: Duration) -> History {
    let mut h = History::default();
    for b in window.live(now) {
        h.accepts += b.success;
        h.total += b.sum;
        if b.failure > 0 {
            h.working_buckets = 0;
        } else if b.success > 0 {
            h.working_buckets += 1;
        }
        if b.success > 0 {
            h.failing_buckets = 0;
        } else if b.failure > 0 {
            h.failing_buckets += 1;
        }
    }
    h
}

/// A call the breaker let through. Report its outcome with [`Permit::success`] or
/// [`Permit::failure`] (a call cut at its deadline is a failure: report it). A permit dropped
/// unreported while its thread panics counts as a failure, as go-zero counts a panicking request;
/// dropped unreported otherwise — the caller abandoned the call, e.g. the report was refused
/// before this source answered — it counts as nothing: the source did nothing wrong.
#[must_use = "report the call's outcome"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    settled: bool,
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.mark(Mark::Success);
    }

    pub fn failure(mut self) {
        self.settled = true;
        self.breaker.mark(Mark::Failure);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && std::thread::panicking() {
            self.breaker.mark(Mark::Failure);
        }
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct ManualClock(Mutex<Duration>);

impl ManualClock {
    pub fn at(t: Duration) -> Self {
        Self(Mutex::new(t))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A "random" source that returns the values a test sets, the last one forever.
#[derive(Debug)]
pub struct FixedChance(Mutex<f64>);

impl FixedChance {
    pub fn new(value: f64) -> Self {
        Self(Mutex::new(value))
    }

    pub fn set(&self, value: f64) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = value;
    }
}

impl Chance for FixedChance {
    fn draw(&self) -> f64 {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: Duration = Duration::from_millis(250);

    /// A breaker at t = 1 s on a manual clock, drawing `draw` from its random source.
    fn breaker(draw: f64) -> (Breaker, Arc<ManualClock>, Arc<FixedChance>) {
        let clock = Arc::new(ManualClock::at(Duration::from_secs(1)));
        let chance = Arc::new(FixedChance::new(draw));
        (Breaker::with(clock.clone(), chance.clone()), clock, chance)
    }

    fn successes(b: &Breaker, n: usize) {
        for _ in 0..n {
            b.mark(Mark::Success);
        }
    }

    fn failures(b: &Breaker, n: usize) {
        for _ in 0..n {
            b.mark(Mark::Failure);
        }
    }

    #[test]
    fn a_quiet_or_healthy_dependency_is_never_throttled() {
        // Empty window: total 0 → ratio (0 − 5 − 0)/1 = −5 ≤ 0: pass, even drawing 0.
        let (b, _, _) = breaker(0.0);
        b.allow().expect("an empty window passes").success();
        // 100 successes: (101 − 5 − 1.5·101)/102 < 0.
        successes(&b, 100);
        assert!(b.allow().is_ok());
        // 5 failures alone are within the protection: (5 − 5 − 0)/6 = 0 ≤ 0.
        let (b, _, _) = breaker(0.0);
        failures(&b, 5);
        assert!(b.allow().is_ok());
    }

    #[test]
    fn ten_failures_in_one_bucket() {
        let (b, _, chance) = breaker(0.45);
        failures(&b, 10);
        // One bucket, 10 failures: accepts 0, total 10, failingBuckets 1, workingBuckets 0.
        assert_eq!(
            b.history(),
            History {
                accepts: 0,
                total: 10,
                failing_buckets: 1,
                working_buckets: 0
            }
        );
        // ratio = (10 − 5 − w·0)/(10 + 1) = 5/11 = 0.4545…; × (40 − 0)/40 = 0.4545…
        // Draw 0.45 < 0.4545 → dropped (and the drop counted: total 11).
        assert_eq!(b.allow().err(), Some(BreakerOpen));
        assert_eq!(b.history().total, 11);
        // Now (11 − 5)/12 = 0.5. Draw 0.51 ≥ 0.5 → passes.
        chance.set(0.51);
        b.allow().expect("passes").failure();
        // 12 failures... total 12: (12 − 5)/13 = 0.538; draw 0.53 → dropped.
        chance.set(0.53);
        assert!(b.allow().is_err());
    }

    #[test]
    fn successes_then_failures_across_buckets() {
        let (b, clock, chance) = breaker(0.0);
        successes(&b, 20);
        clock.advance(BUCKET);
        failures(&b, 30);
        // Bucket 1: 20 successes (working 1, failing 0); bucket 2: 30 failures (working reset to
        // 0, failing 1). accepts 20, total 50.
        assert_eq!(
            b.history(),
            History {
                accepts: 20,
                total: 50,
                failing_buckets: 1,
                working_buckets: 0
            }
        );
        // w = 1.5 − 0.4·1/40 = 1.49; w·accepts = 29.8;
        // ratio = (50 − 5 − 29.8)/51 = 15.2/51 = 0.298039…; × 40/40.
        chance.set(0.298);
        assert!(b.allow().is_err(), "0.298 < 0.29804");
        // One drop more: total 51 → (51 − 5 − 29.8)/52 = 16.2/52 = 0.311538…
        chance.set(0.3115);
        assert!(b.allow().is_err(), "0.3115 < 0.31154");
        // total 52: (52 − 5 − 29.8)/53 = 17.2/53 = 0.324528…
        chance.set(0.3246);
        b.allow().expect("0.3246 ≥ 0.32453").success();
    }

    #[test]
    fn long_failing_runs_lower_w() {
        let (b, clock, chance) = breaker(0.0);
        successes(&b, 10);
        for _ in 0..20 {
            clock.advance(BUCKET);
            failures(&b, 1);
        }
        // 1 bucket of 10 successes, then 20 buckets of 1 failure: accepts 10, total 30,
        // failingBuckets 20, workingBuckets 0.
        let h = b.history();
        assert_eq!((h.accepts, h.total, h.failing_buckets), (10, 30, 20));
        // w = 1.5 − 0.4·20/40 = 1.3; w·accepts = 13; ratio = (30 − 5 − 13)/31 = 12/31 = 0.387096…
        chance.set(0.387);
        assert!(b.allow().is_err());
        // total 31: (31 − 5 − 13)/32 = 13/32 = 0.40625.
        chance.set(0.4062);
        assert!(b.allow().is_err());
        // total 32: (32 − 5 − 13)/33 = 14/33 = 0.424242…
        chance.set(0.4243);
        assert!(b.allow().is_ok());
    }

    #[test]
    fn thirty_nine_failing_buckets_bring_w_to_its_lowest() {
        // 39 buckets failing after one success bucket: w = 1.5 − 0.4·39/40 = 1.11. (go-zero's
        // max(w, 1.1) never binds: 40 failing buckets leave no success in the window, accepts 0.)
        let (b, clock, chance) = breaker(0.0);
        successes(&b, 20);
        for _ in 0..39 {
            clock.advance(BUCKET);
            failures(&b, 1);
        }
        let h = b.history();
        assert_eq!((h.accepts, h.total, h.failing_buckets), (20, 59, 39));
        // w = 1.5 − 0.4·39/40 = 1.11; w·accepts = 22.2; ratio = (59 − 5 − 22.2)/60 = 31.8/60 = 0.53.
        chance.set(0.5299);
        assert!(b.allow().is_err());
        // total 60: (60 − 5 − 22.2)/61 = 32.8/61 = 0.537704…
        chance.set(0.5378);
        assert!(b.allow().is_ok());
    }

    #[test]
    fn recent_working_buckets_scale_the_ratio_down() {
        let (b, clock, chance) = breaker(0.0);
        failures(&b, 40);
        clock.advance(BUCKET);
        successes(&b, 2);
        clock.advance(BUCKET);
        successes(&b, 2);
        // Buckets: 40 failures | 2 successes | 2 successes. accepts 4, total 44;
        // failing: 1, then reset by each success bucket → 0; working: 0, 1, 2 → 2.
        assert_eq!(
            b.history(),
            History {
                accepts: 4,
                total: 44,
                failing_buckets: 0,
                working_buckets: 2
            }
        );
        // w = 1.5; w·accepts = 6; ratio = (44 − 5 − 6)/45 = 33/45 = 0.7333…; × (40 − 2)/40 = 0.95
        // → 0.696666…
        chance.set(0.6966);
        assert!(b.allow().is_err());
        // total 45: (45 − 5 − 6)/46 = 34/46 = 0.739130…; × 0.95 = 0.702173…
        chance.set(0.7021);
        assert!(b.allow().is_err());
        // total 46: (46 − 5 − 6)/47 = 35/47 = 0.744680…; × 0.95 = 0.707446…
        chance.set(0.7075);
        assert!(b.allow().is_ok());
    }

    #[test]
    fn a_probe_is_forced_after_one_second_without_a_pass() {
        let (b, clock, chance) = breaker(0.99);
        failures(&b, 100);
        // ratio = (100 − 5)/101 = 0.9406; draw 0.99 passes: the pass time is recorded.
        b.allow().expect("0.99 ≥ 0.94").failure();
        // From now on every draw drops (0.0 < ratio).
        chance.set(0.0);
        clock.advance(Duration::from_millis(1000));
        // Exactly 1 s since the pass: not "more than" 1 s → dropped.
        assert!(b.allow().is_err());
        clock.advance(Duration::from_millis(1));
        // 1.001 s: a forced probe passes whatever the draw, and restarts the second.
        b.allow().expect("forced probe").failure();
        assert!(b.allow().is_err());
        clock.advance(Duration::from_millis(1001));
        b.allow().expect("next forced probe").success();
    }

    #[test]
    fn no_forced_probe_before_the_first_throttled_pass() {
        // go-zero records the pass time only on the throttled path: a dependency that failed
        // from the start, with a draw that always drops, gets no probe.
        let (b, clock, _) = breaker(0.0);
        failures(&b, 20);
        clock.advance(Duration::from_secs(2));
        assert!(b.allow().is_err());
    }

    #[test]
    fn the_ratio_is_not_capped_and_needs_no_cap() {
        // go-zero does not cap the ratio; it needs none: (total − 5 − w·accepts)/(total + 1) < 1
        // always. With 0 accepts it tends to 1: 1000 failures → 995/1001.
        let (b, _, chance) = breaker(0.994);
        failures(&b, 1000);
        assert!(b.allow().is_err(), "0.994 < 995/1001 = 0.99400…6");
        chance.set(0.9941);
        assert!(b.allow().is_ok(), "996/1002 = 0.99401 ≤ 0.9941");
    }

    #[test]
    fn the_window_forgets_after_ten_seconds() {
        let (b, clock, _) = breaker(0.0);
        failures(&b, 50);
        clock.advance(Duration::from_millis(9_750));
        // 39 intervals later the failure bucket is still the window's oldest.
        assert_eq!(b.history().total, 50);
        clock.advance(BUCKET);
        // 40 intervals: gone (skipped on read, reset on the next write).
        assert_eq!(b.history(), History::default());
        b.allow()
            .expect("nothing left to hold against it")
            .success();
        assert_eq!(b.history().accepts, 1);
        assert_eq!(b.history().total, 1);
    }

    #[test]
    fn buckets_align_to_the_interval() {
        let (b, clock, _) = breaker(0.0);
        clock.advance(Duration::from_millis(100));
        successes(&b, 1); // bucket 0 (started at 1.000 s)
        clock.advance(Duration::from_millis(200));
        successes(&b, 1); // 1.300 s: bucket 1, which starts at 1.250 s
        clock.advance(Duration::from_millis(150));
        successes(&b, 1); // 1.450 s: still bucket 1
        clock.advance(Duration::from_millis(9_600));
        // 11.050 s: the bucket of 1.000 s has left the window (40 intervals after 1.000 s is
        // 11.000 s); the one of 1.250 s stays until 11.250 s.
        assert_eq!(b.history().accepts, 2);
        clock.advance(Duration::from_millis(200));
        assert_eq!(b.history().accepts, 0);
    }

    #[test]
    fn an_abandoned_permit_counts_as_nothing_a_panicking_one_as_a_failure() {
        let (b, _, _) = breaker(0.0);
        drop(b.allow().expect("pass"));
        assert_eq!(b.history(), History::default());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _permit = b.allow().expect("pass");
            panic!("the call panicked");
        }));
        assert!(panicked.is_err());
        assert_eq!(
            b.history(),
            History {
                accepts: 0,
                total: 1,
                failing_buckets: 1,
                working_buckets: 0
            }
        );
    }
}
