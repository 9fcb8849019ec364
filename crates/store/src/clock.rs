//! Time, injected: the system clock in production, a manual clock in tests,
//! so that expiry can be tested without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock(AtomicU64::new(start_ms))
    }

    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Formats epoch milliseconds as RFC 3339 in UTC with milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms.min(TIME_MS_MAX));
    humantime::format_rfc3339_millis(t).to_string()
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
/// Every time the server keeps is checked against it where it comes from
/// outside (a snapshot, an event document); rendering saturates at it
/// besides, so no time can make an answer panic.
pub const TIME_MS_MAX: u64 = 253_402_300_799_999;

/// Formats epoch milliseconds as RFC 3339 in UTC, with milliseconds only
/// when there are some (as an operator writes a sale's opening).
pub fn rfc3339(ms: u64) -> String {
    if ms.is_multiple_of(1000) && ms <= TIME_MS_MAX {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_seconds(t).to_string()
    } else {
        rfc3339_ms(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any u64 renders: a hostile file's time cannot make an answer panic.
    #[test]
    fn every_time_renders() {
        assert_eq!(rfc3339_ms(TIME_MS_MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(u64::MAX / 1000 * 1000), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.500Z");
    }
}
