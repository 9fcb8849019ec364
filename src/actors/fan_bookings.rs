//! Each fan's bookings of one event, across its sections: what "My
//! tickets" lists (`GET /v1/events/{event}/me/bookings`) on any device,
//! not only in the browser that booked.
//!
//! A booking lives in its section's actor; this index keeps only where
//! to find it (the section, its number and secret), so the list is read
//! from the sections themselves, status and check-ins as they are now.
//! A section adds a booking once its record is durable (the journal's
//! flusher runs the addition just before the fan's answer), so the list
//! never shows a booking a crash could take back. Bookings are never
//! removed: a cancelled one stays listed, as cancelled. Rebuilt from the
//! sections at every start (`FanBookings::new`), never persisted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{fan_tag, FanId, Section};

/// Locks the index is spread over, by fan.
const SHARDS: usize = 16;

/// Where one booking is: its section (by position in the event) and its
/// number and secret there, and when it was confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingAt {
    pub confirmed_at_ms: u64,
    pub section: u32,
    pub seq: u64,
    pub secret: u64,
}

impl BookingAt {
    /// A fan's bookings are listed in this order, at run time and after
    /// a restart alike (the order they became durable in may differ: two
    /// sections read the clock, then append in either order).
    fn key(&self) -> (u64, u32, u64) {
        (self.confirmed_at_ms, self.section, self.seq)
    }
}

/// A list per fan, spread over locks by fan (holds of different fans
/// rarely wait for each other); a fan with an empty list has no entry.
pub struct ByFan<T> {
    shards: [Mutex<HashMap<FanId, Vec<T>>>; SHARDS],
}

impl<T> Default for ByFan<T> {
    fn default() -> Self {
        ByFan {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl<T> ByFan<T> {
    /// `fan`'s shard, locked.
    pub fn lock(&self, fan: &str) -> std::sync::MutexGuard<'_, HashMap<FanId, Vec<T>>> {
        self.shards[(fan_tag(fan) % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
pub struct FanBookings {
    /// By fan, oldest first ([`BookingAt::key`]).
    lists: ByFan<BookingAt>,
}

impl FanBookings {
    /// The index of an event whose sections, in the event's order, are
    /// `sections`: each fan's bookings in the order they were confirmed.
    pub fn new<'a>(sections: impl IntoIterator<Item = &'a Section>) -> FanBookings {
        let mut all: Vec<(&FanId, BookingAt)> = Vec::new();
        for (ix, section) in sections.into_iter().enumerate() {
            let ix = u32::try_from(ix).expect("an event's sections are numbered in u32");
            all.extend(section.bookings().map(|b| {
                let at = BookingAt {
                    confirmed_at_ms: b.confirmed_at_ms,
                    section: ix,
                    seq: b.seq,
                    secret: b.secret,
                };
                (&b.fan, at)
            }));
        }
        // Sorted first, so each addition is the fan's last (a fan with
        // many bookings costs no more than one with a few).
        all.sort_by_key(|(_, at)| at.key());
        let index = FanBookings::default();
        for (fan, at) in all {
            index.add(fan, at);
        }
        index
    }

    /// Lists a durable booking of `fan`'s, in its place by
    /// [`BookingAt::key`] (almost always the last).
    pub fn add(&self, fan: &FanId, at: BookingAt) {
        let mut shard = self.lists.lock(fan);
        let list = shard.entry(Arc::clone(fan)).or_default();
        let place = list
            .iter()
            .rposition(|b| b.key() <= at.key())
            .map_or(0, |i| i + 1);
        list.insert(place, at);
    }

    /// `fan`'s newest bookings, newest first, at most `max` of them, and
    /// how many it has in all.
    pub fn newest(&self, fan: &str, max: usize) -> (Vec<BookingAt>, usize) {
        let shard = self.lists.lock(fan);
        let Some(all) = shard.get(fan) else {
            return (Vec::new(), 0);
        };
        (all.iter().rev().take(max).copied().collect(), all.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(section: u32, seq: u64) -> BookingAt {
        BookingAt {
            confirmed_at_ms: 1_000 + seq,
            section,
            seq,
            secret: seq * 7 + u64::from(section),
        }
    }

    #[test]
    fn lists_a_fans_own_bookings_newest_first_up_to_max() {
        let index = FanBookings::default();
        let (a, b): (FanId, FanId) = ("a".into(), "b".into());
        index.add(&a, at(0, 0));
        index.add(&b, at(0, 1));
        index.add(&a, at(3, 0));
        index.add(&a, at(0, 2));
        assert_eq!(
            index.newest("a", 10),
            (vec![at(0, 2), at(3, 0), at(0, 0)], 3)
        );
        assert_eq!(index.newest("a", 2), (vec![at(0, 2), at(3, 0)], 3));
        assert_eq!(index.newest("b", 10), (vec![at(0, 1)], 1));
        assert_eq!(index.newest("c", 10), (vec![], 0));
        assert_eq!(index.newest("a", 0), (vec![], 3));
    }

    /// Two sections read the clock, then append in the other order: the
    /// list has them by when they were confirmed, as a restart would.
    #[test]
    fn a_booking_durable_late_takes_its_place_by_time() {
        let index = FanBookings::default();
        let a: FanId = "a".into();
        let (early, late) = (at(1, 5), at(0, 9));
        index.add(&a, late);
        index.add(&a, early);
        index.add(&a, at(2, 20));
        assert_eq!(index.newest("a", 10), (vec![at(2, 20), late, early], 3));
    }
}
