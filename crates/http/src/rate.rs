//! The per-fan rate limit of hold attempts: at most `--fan-holds-per-sec`
//! a second per fan, after a small burst (GCRA, by the governor crate).
//! Beyond it, `429` with `Retry-After`: a bot's loop is slowed to a fan's
//! pace before it reaches a section.
//!
//! Bounded: a fan's state is kept only while it differs from a fresh
//! one (`prune`, every second, drops the rest: about burst / rate
//! seconds after a fan's last attempt), and never for more than
//! `keys_max` fans at once; past that, new fans are told to come back
//! (`Busy`, a 503) rather than the state growing.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::domain::FanId;

/// Whether a fan may try a hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Too fast: try again in this many seconds (at least 1).
    Wait {
        secs: u32,
    },
    /// The limiter tracks `keys_max` fans already.
    Busy,
}

type Limiter<C> =
    RateLimiter<FanId, DashMapStateStore<FanId>, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub struct FanRate<C: Clock = DefaultClock> {
    limiter: Limiter<C>,
    clock: C,
    keys_max: usize,
    limited: AtomicU64,
}

impl FanRate<DefaultClock> {
    /// `per_sec` attempts a second per fan after a burst of `burst`; `None`
    /// when `per_sec` is 0 (no limit).
    pub fn new(per_sec: u32, burst: u32, keys_max: usize) -> Option<FanRate> {
        FanRate::with_clock(per_sec, burst, keys_max, DefaultClock::default())
    }
}

impl<C: Clock + Clone> FanRate<C> {
    pub fn with_clock(per_sec: u32, burst: u32, keys_max: usize, clock: C) -> Option<FanRate<C>> {
        let quota = Quota::per_second(NonZeroU32::new(per_sec)?)
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Some(FanRate {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
            keys_max,
            limited: AtomicU64::new(0),
        })
    }

    /// Counts one hold attempt of `fan`.
    pub fn check(&self, fan: &FanId) -> Verdict {
        if self.limiter.len() >= self.keys_max {
            self.prune();
            if self.limiter.len() >= self.keys_max {
                self.limited.fetch_add(1, Ordering::Relaxed);
                return Verdict::Busy;
            }
        }
        match self.limiter.check_key(fan) {
            Ok(()) => Verdict::Go,
            Err(not_until) => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                let wait = not_until.wait_time_from(self.clock.now());
                Verdict::Wait {
                    secs: u32::try_from(wait.as_secs_f64().ceil() as u64)
                        .unwrap_or(u32::MAX)
                        .max(1),
                }
            }
        }
    }

    /// Forgets every fan whose state is back to fresh.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Fans tracked now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attempts refused (`Wait` or `Busy`) since start.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn fan(s: &str) -> FanId {
        s.into()
    }

    fn limiter(keys_max: usize) -> (FanRate<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let rate = FanRate::with_clock(2, 3, keys_max, clock.clone()).unwrap();
        (rate, clock)
    }

    #[test]
    fn a_burst_then_the_rate_then_retry_after() {
        let (r, clock) = limiter(100);
        for _ in 0..3 {
            assert_eq!(r.check(&fan("a")), Verdict::Go);
        }
        assert_eq!(r.check(&fan("a")), Verdict::Wait { secs: 1 });
        assert_eq!(r.check(&fan("b")), Verdict::Go, "another fan is not slowed");
        clock.advance(Duration::from_millis(500));
        assert_eq!(r.check(&fan("a")), Verdict::Go, "one more every 1/2 s");
        assert_eq!(r.check(&fan("a")), Verdict::Wait { secs: 1 });
        assert_eq!(r.limited(), 2);
        assert!(
            FanRate::with_clock(0, 3, 100, clock).is_none(),
            "0: no limit"
        );
    }

    #[test]
    fn fans_at_rest_are_forgotten_and_the_state_is_bounded() {
        let (r, clock) = limiter(10);
        for i in 0..10 {
            assert_eq!(r.check(&fan(&format!("f{i}"))), Verdict::Go);
        }
        assert_eq!(r.check(&fan("late")), Verdict::Busy, "at keys_max");
        assert_eq!(r.len(), 10);
        // Their burst refilled: nothing to remember about them.
        clock.advance(Duration::from_secs(2));
        assert_eq!(r.check(&fan("late")), Verdict::Go);
        assert_eq!(r.len(), 1);
        r.prune();
        clock.advance(Duration::from_secs(2));
        r.prune();
        assert!(r.is_empty());
    }
}
