//! The bounds on the streams the server keeps open: every kind counted
//! (`StreamSlots`), each fan's (`FanStreams`, keyed by fan, or by client
//! address for streams without a token), and which of them a stream holds
//! for its life (`StreamSlot`, `FanSlot`, given back however it ends).
//! The seat streams, the waiting room's and the change feeds take their
//! places here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// Waiting-room streams one fan may keep open at once (a phone and a
/// laptop).
pub const STREAMS_PER_FAN_MAX: u32 = 2;

/// Seat streams one signed-in fan may keep open at once (a few tabs and
/// devices).
pub const SEAT_STREAMS_PER_FAN_MAX: u32 = 4;

/// Every kind of stream the server keeps open, each bounded.
pub struct Streams {
    /// Waiting-room streams (two a fan at most).
    pub queue: Arc<FanStreams>,
    /// Seat streams, all of them.
    pub seats: Arc<StreamSlots>,
    /// Seat streams of signed-in fans (within `seats`).
    pub seat_fans: Arc<FanStreams>,
    /// Seat streams without a token (within `seats`).
    pub seats_anonymous: Arc<StreamSlots>,
    /// Those, by client address (within `seats_anonymous`).
    pub seats_by_address: Arc<FanStreams>,
    /// Which address a client without a token counts as.
    pub addresses: super::ClientAddresses,
    /// Change feeds.
    pub feeds: Arc<StreamSlots>,
}

/// How many streams of each kind may be open at once.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    pub queue: usize,
    pub seats: usize,
    pub seats_anonymous: usize,
    pub seats_per_address: u32,
    pub feeds: usize,
}

impl Streams {
    pub fn new(limits: &StreamLimits, addresses: super::ClientAddresses) -> Streams {
        let seats = Arc::new(StreamSlots::new(limits.seats));
        let anonymous = Arc::new(StreamSlots::new(limits.seats_anonymous));
        Streams {
            queue: Arc::new(FanStreams::new(
                Arc::new(StreamSlots::new(limits.queue)),
                STREAMS_PER_FAN_MAX,
            )),
            seat_fans: Arc::new(FanStreams::new(
                Arc::clone(&seats),
                SEAT_STREAMS_PER_FAN_MAX,
            )),
            seats_by_address: Arc::new(FanStreams::new(
                Arc::clone(&anonymous),
                limits.seats_per_address,
            )),
            seats_anonymous: anonymous,
            addresses,
            seats,
            feeds: Arc::new(StreamSlots::new(limits.feeds)),
        }
    }
}

/// Streams of one kind open, bounded, and how many were cut for falling
/// behind.
pub struct StreamSlots {
    open: AtomicUsize,
    max: usize,
    cut: AtomicU64,
}

impl StreamSlots {
    pub fn new(max: usize) -> StreamSlots {
        StreamSlots {
            open: AtomicUsize::new(0),
            max,
            cut: AtomicU64::new(0),
        }
    }

    pub(super) fn take(self: &Arc<Self>) -> Option<StreamSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(StreamSlot(Arc::clone(self)))
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Streams cut since start for falling behind.
    pub fn cut(&self) -> u64 {
        self.cut.load(Ordering::Relaxed)
    }

    /// One more stream cut for falling behind.
    pub(super) fn count_cut(&self) {
        self.cut.fetch_add(1, Ordering::Relaxed);
    }
}

/// A place among the streams open; given back however it ends.
pub(super) struct StreamSlot(Arc<StreamSlots>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Streams of one kind that fans open with their token (or that clients
/// without one open from one address): at most `per_fan` a fan (or an
/// address), and every one of them a place in `all`, so one fan's token
/// (or one machine) cannot take every place.
pub struct FanStreams {
    all: Arc<StreamSlots>,
    per_fan: u32,
    by_fan: Mutex<FxHashMap<Arc<str>, u32>>,
}

/// Why a fan's stream was not opened.
pub(super) enum Refused {
    /// Every place is taken.
    Full,
    /// The fan has `per_fan` streams open already.
    FanFull,
}

impl FanStreams {
    pub fn new(all: Arc<StreamSlots>, per_fan: u32) -> FanStreams {
        FanStreams {
            all,
            per_fan,
            by_fan: Mutex::default(),
        }
    }

    pub(super) fn take(self: &Arc<Self>, fan: &Arc<str>) -> Result<FanSlot, Refused> {
        let mut by_fan = self.by_fan.lock().unwrap_or_else(|e| e.into_inner());
        let mine = by_fan.get(fan).copied().unwrap_or(0);
        if mine >= self.per_fan {
            return Err(Refused::FanFull);
        }
        let place = self.all.take().ok_or(Refused::Full)?;
        by_fan.insert(Arc::clone(fan), mine + 1);
        Ok(FanSlot {
            streams: Arc::clone(self),
            fan: Arc::clone(fan),
            _place: place,
        })
    }

    /// Streams open now, of every fan.
    pub fn open(&self) -> usize {
        self.all.open()
    }
}

/// A fan's place among the streams open at once; given back when the
/// stream ends, however it ends.
pub(super) struct FanSlot {
    streams: Arc<FanStreams>,
    fan: Arc<str>,
    /// Its place in the bound on all of them, given back after the fan's.
    _place: StreamSlot,
}

impl Drop for FanSlot {
    fn drop(&mut self) {
        let mut by_fan = self
            .streams
            .by_fan
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match by_fan.get_mut(&self.fan) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                by_fan.remove(&self.fan);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_streams_are_bounded_in_all_and_per_fan() {
        let streams = Arc::new(FanStreams::new(Arc::new(StreamSlots::new(3)), 2));
        let (a, b): (Arc<str>, Arc<str>) = ("fan-a".into(), "fan-b".into());
        let a1 = streams.take(&a).ok().unwrap();
        let a2 = streams.take(&a).ok().unwrap();
        assert!(matches!(streams.take(&a), Err(Refused::FanFull)));
        let b1 = streams.take(&b).ok().unwrap();
        assert!(matches!(streams.take(&b), Err(Refused::Full)));
        drop(a1);
        let a3 = streams.take(&a).ok().unwrap();
        drop((a2, a3, b1));
        assert_eq!(streams.open(), 0);
        assert!(streams.by_fan.lock().unwrap().is_empty(), "nothing kept");
    }
}
