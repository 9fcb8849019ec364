//! `Limiter`: an adaptive bound on requests in flight, so that excess load
//! is refused at once instead of queued.
//!
//! Little's law: a queue of N requests ahead of one served at R per second
//! waits N / R. A fixed bound large enough for the best case lets latency
//! grow to seconds in the worst (a slow disk, a hot section, both cores
//! busy); one small enough for the worst starves the best. So the bound
//! moves, in the manner of Netflix's concurrency-limits (its gradient
//! limit) and Envoy's adaptive concurrency, on the latency it sees. Every
//! window (at least [`WINDOW`] and [`WINDOW_SAMPLES_MIN`] answers), the
//! window's mean latency is compared with a tolerance: the larger of the
//! target and twice the baseline, the latency with no queue. Above it,
//! the limit drops by a quarter (multiplicative decrease: queues drain
//! fast); under it, with the limit nearly reached, the limit grows by an
//! eighth (so it finds the throughput the machine has); otherwise it
//! stays. It never leaves `[min, max]`.
//!
//! The baseline is measured as Envoy does, by a probe: one window at the
//! minimum limit, where nothing queues; its mean is the baseline. So when
//! every answer is slower for a reason no queue explains (both cores busy
//! with other work, a slower disk), the probe sees it and the limit stops
//! falling; against a fixed target alone, such a slowdown would cut the
//! limit to its minimum and starve the throughput without making anyone
//! faster (a group commit takes as long for one request as for a
//! hundred). A probe refuses what is over the minimum for its window, so
//! unlike Envoy's it runs only when it is needed: after
//! [`SLOW_WINDOWS_BEFORE_PROBE`] windows in a row over the target, when
//! the last probe is older than [`PROBE_EVERY`]. Under the target, or in a
//! spike above it, nothing is refused that the limit would admit.
//!
//! The latency is that of the work the limit guards (a section's mailbox,
//! its decision and the group commit), never of reading a client's body:
//! a slow client cannot make the server shed others.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shortest window between two moves of the limit.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Fewest answers a window needs before the limit moves.
pub const WINDOW_SAMPLES_MIN: u32 = 16;
/// How often the baseline latency is measured again.
pub const PROBE_EVERY: Duration = Duration::from_secs(10);
/// Windows in a row over the target before a probe: a spike is not a
/// reason to refuse anyone.
pub const SLOW_WINDOWS_BEFORE_PROBE: u32 = 3;

/// How a [`Limiter`] moves.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Mean latency above which the limit drops.
    pub target: Duration,
    pub min: u32,
    pub max: u32,
    /// Where the limit starts.
    pub initial: u32,
}

#[derive(Debug)]
pub struct Limiter {
    settings: LimitSettings,
    limit: AtomicU32,
    in_flight: AtomicU32,
    /// Most in flight at once in this window.
    peak: AtomicU32,
    /// Counts probes begun: a permit remembers the one it was admitted
    /// in.
    epoch: AtomicU64,
    refused: AtomicU64,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    samples: u32,
    sum_us: u64,
    /// The latency with no queue, as last probed (see the module).
    baseline: Duration,
    /// This window runs at the minimum limit to measure the baseline;
    /// the limit to return to after it.
    probing: Option<u32>,
    next_probe: Instant,
    /// Windows in a row whose mean passed the target.
    slow_streak: u32,
}

/// One admitted request, given back when dropped, however its request
/// ends; unless made [`quiet`](Permit::quiet), its latency (from
/// admission to the drop) is a sample for the limit. Owned (`'static`),
/// so it can travel with a change and be dropped where the answer is
/// made, not where an HTTP worker gets round to reading it.
#[must_use]
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    started: Instant,
    epoch: u64,
    sample: bool,
}

impl Permit {
    /// This request's latency is no sample: it is not the work the limit
    /// guards (a refusal before any work; a read whose time is the HTTP
    /// worker's).
    pub fn quiet(mut self) -> Permit {
        self.sample = false;
        self
    }
}

/// A change's places within its section's limit and the process's.
#[derive(Debug)]
pub struct Admitted {
    pub section: Permit,
    pub process: Permit,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.sample {
            self.limiter
                .observe(self.started.elapsed(), self.epoch, Instant::now());
        }
    }
}

impl Limiter {
    pub fn new(settings: LimitSettings) -> Limiter {
        // The most is absolute: a minimum above it gives way.
        let max = settings.max.max(1);
        let min = settings.min.clamp(1, max);
        let settings = LimitSettings {
            min,
            max,
            initial: settings.initial.clamp(min, max),
            ..settings
        };
        Limiter {
            limit: AtomicU32::new(settings.initial),
            settings,
            in_flight: AtomicU32::new(0),
            peak: AtomicU32::new(0),
            epoch: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            window: Mutex::new(Window {
                started: Instant::now(),
                samples: 0,
                sum_us: 0,
                baseline: Duration::ZERO,
                probing: None,
                next_probe: Instant::now(),
                slow_streak: 0,
            }),
        }
    }

    /// Admits one request, or `None` (counted) when the limit is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.limit.load(Ordering::Relaxed) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.peak.fetch_max(before + 1, Ordering::Relaxed);
        Some(Permit {
            limiter: Arc::clone(self),
            started: Instant::now(),
            epoch: self.epoch.load(Ordering::Relaxed),
            sample: true,
        })
    }

    /// Whether a request would be admitted now (without admitting it):
    /// the early check, made before a request's body is read. Counted as
    /// refused when not.
    pub fn has_room(&self) -> bool {
        let room = self.in_flight.load(Ordering::Acquire) < self.limit.load(Ordering::Relaxed);
        if !room {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        room
    }

    /// An answer of a request admitted at `epoch` took `latency`.
    fn observe(&self, latency: Duration, epoch: u64, now: Instant) {
        // A sample is a sample: under contention, one may go unrecorded
        // rather than make answers wait on this lock.
        let Ok(mut w) = self.window.try_lock() else {
            return;
        };
        // A probe measures only what it admitted: requests let in under
        // the limit before it queued behind each other.
        if w.probing.is_some() && epoch != self.epoch.load(Ordering::Relaxed) {
            return;
        }
        w.samples += 1;
        w.sum_us += latency.as_micros().min(u128::from(u32::MAX)) as u64;
        self.end_window(&mut w, now);
    }

    /// Moves the limit if the window is over.
    fn end_window(&self, w: &mut Window, now: Instant) {
        if w.samples < WINDOW_SAMPLES_MIN || now.duration_since(w.started) < WINDOW {
            return;
        }
        let mean = Duration::from_micros(w.sum_us / u64::from(w.samples));
        let peak = self.peak.swap(0, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        w.slow_streak = if mean > self.settings.target {
            w.slow_streak + 1
        } else {
            0
        };
        let next = if let Some(back_to) = w.probing.take() {
            w.baseline = mean;
            w.next_probe = now + PROBE_EVERY;
            back_to
        } else if w.slow_streak >= SLOW_WINDOWS_BEFORE_PROBE && now >= w.next_probe {
            // Slow: a queue, or slowness no queue explains? Probe first.
            w.probing = Some(limit);
            self.epoch.fetch_add(1, Ordering::Relaxed);
            self.settings.min
        } else {
            let tolerance = self.settings.target.max(w.baseline.saturating_mul(2));
            next_limit(&self.settings, limit, mean, tolerance, peak)
        };
        self.limit.store(next, Ordering::Relaxed);
        w.started = now;
        w.samples = 0;
        w.sum_us = 0;
    }

    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The limit after a window whose answers took `mean` (against the
/// `tolerance`) and which had at most `peak` in flight.
fn next_limit(
    s: &LimitSettings,
    limit: u32,
    mean: Duration,
    tolerance: Duration,
    peak: u32,
) -> u32 {
    let next = if mean > tolerance {
        limit - limit / 4
    } else if peak >= limit - limit / 4 {
        limit + (limit / 8).max(1)
    } else {
        limit
    };
    next.clamp(s.min, s.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: LimitSettings = LimitSettings {
        target: Duration::from_millis(10),
        min: 4,
        max: 1000,
        initial: 100,
    };

    #[test]
    fn slow_windows_shrink_fast_and_busy_quick_ones_grow() {
        let ms = Duration::from_millis;
        let t = S.target;
        assert_eq!(next_limit(&S, 100, ms(11), t, 100), 75);
        assert_eq!(next_limit(&S, 100, ms(11), t, 3), 75);
        assert_eq!(next_limit(&S, 100, ms(9), t, 100), 112);
        assert_eq!(next_limit(&S, 100, ms(9), t, 75), 112);
        // Quick but far from the limit: no reason to move.
        assert_eq!(next_limit(&S, 100, ms(9), t, 74), 100);
        // Never out of bounds, and a small limit still grows.
        assert_eq!(next_limit(&S, 4, ms(50), t, 4), 4);
        assert_eq!(next_limit(&S, 4, ms(1), t, 4), 5);
        assert_eq!(next_limit(&S, 1000, ms(1), t, 1000), 1000);
        // Slow, but within twice a slow baseline: no queue to drain.
        assert_eq!(next_limit(&S, 100, ms(30), ms(40), 100), 112);
    }

    /// Windows under load: the limit filled each time, and the answers
    /// take `fixed` plus 0.2 ms per request in flight (a queue). Returns
    /// the limits of the last 100 windows, probes left out.
    fn run(l: &Arc<Limiter>, fixed: Duration, windows: usize) -> Vec<u32> {
        let mut now = Instant::now();
        let mut limits = Vec::new();
        for _ in 0..windows {
            let permits: Vec<Permit> = std::iter::from_fn(|| l.try_acquire())
                .take(10_000)
                .collect();
            let n = permits.len() as u32;
            assert_eq!(n, l.limit());
            let latency = fixed + Duration::from_micros(200) * n;
            // Enough answers for a window, recorded by hand (the permits'
            // own clocks would read ~0), then the window's end.
            for p in permits {
                std::mem::forget(p);
                l.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            let mut w = l.window.lock().unwrap();
            w.samples += WINDOW_SAMPLES_MIN.max(n);
            w.sum_us += latency.as_micros() as u64 * u64::from(WINDOW_SAMPLES_MIN.max(n));
            now += WINDOW;
            l.end_window(&mut w, now);
            drop(w);
            if n != S.min {
                limits.push(n);
            }
        }
        limits.split_off(limits.len().saturating_sub(100))
    }

    /// With nothing but the queue making answers slow, the limit settles
    /// where the queue costs about the target (1 ms + 0.2 ms a request
    /// in flight passes 10 ms at 45), from far above or below.
    #[test]
    fn a_queue_is_held_near_the_target() {
        for initial in [4, 100, 1000] {
            let l = Arc::new(Limiter::new(LimitSettings { initial, ..S }));
            let limits = run(&l, Duration::from_millis(1), 400);
            let (lo, hi) = (limits.iter().min().unwrap(), limits.iter().max().unwrap());
            assert!(*lo >= 25 && *hi <= 60, "from {initial}: {lo}..{hi}");
            assert!(l.refused() > 0);
            assert_eq!(l.in_flight(), 0);
        }
    }

    /// When every answer is slow for a reason no queue explains (30 ms
    /// with nothing in flight), the probe sees it: the limit stays where
    /// the queue at most doubles that, instead of falling to the minimum.
    #[test]
    fn slowness_no_queue_explains_does_not_starve_the_limit() {
        let l = Arc::new(Limiter::new(S));
        let limits = run(&l, Duration::from_millis(30), 400);
        let (lo, hi) = (limits.iter().min().unwrap(), limits.iter().max().unwrap());
        // 30 ms + 0.2 ms * n stays under 2 * 31.6 ms up to n = 166.
        assert!(*lo >= 100 && *hi <= 200, "{lo}..{hi}");
    }

    /// Answers to requests admitted before a probe began are not the
    /// probe's: they queued under the old limit.
    #[test]
    fn a_probe_counts_only_what_it_admitted() {
        let l = Arc::new(Limiter::new(S));
        let start = Instant::now();
        let old = l.try_acquire().unwrap();
        // Windows over the target, in a row, begin the first probe.
        {
            let mut w = l.window.lock().unwrap();
            for i in 1..=SLOW_WINDOWS_BEFORE_PROBE {
                w.samples = WINDOW_SAMPLES_MIN;
                w.sum_us = 20_000 * u64::from(WINDOW_SAMPLES_MIN);
                l.end_window(&mut w, start + WINDOW * i);
            }
        }
        assert_eq!(l.limit(), S.min);
        let later = start + WINDOW * (SLOW_WINDOWS_BEFORE_PROBE + 1);
        for _ in 0..100 {
            l.observe(Duration::from_secs(1), old.epoch, later);
        }
        assert_eq!(l.limit(), S.min, "the old answers ended the probe");
        let new = l.try_acquire().unwrap();
        for _ in 0..WINDOW_SAMPLES_MIN {
            l.observe(Duration::from_millis(2), new.epoch, later);
        }
        // Back to the limit from before the probe (the two slow windows
        // before it cut 100 to 75 and 57), with a 2 ms baseline.
        assert_eq!(l.limit(), 57);
        assert_eq!(l.window.lock().unwrap().baseline, Duration::from_millis(2));
        drop((old, new));
    }

    /// Under the target no probe ever runs: nothing the limit would
    /// admit is refused.
    #[test]
    fn under_the_target_nothing_probes() {
        // At most 40 in flight: 0.1 ms + 0.2 ms * 40 stays under 10 ms.
        let l = Arc::new(Limiter::new(LimitSettings {
            max: 40,
            initial: 20,
            ..S
        }));
        let limits = run(&l, Duration::from_micros(100), 400);
        assert_eq!(l.epoch.load(Ordering::Relaxed), 0);
        assert_eq!(limits, vec![40; 100]);
    }

    #[test]
    fn at_the_limit_one_more_is_refused_and_a_release_makes_room() {
        let l = Arc::new(Limiter::new(LimitSettings {
            initial: 2,
            min: 1,
            ..S
        }));
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        assert!(!l.has_room());
        assert_eq!(l.refused(), 2);
        drop(a);
        assert!(l.has_room());
        assert!(l.try_acquire().is_some());
    }
}
