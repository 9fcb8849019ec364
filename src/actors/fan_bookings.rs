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
use std::sync::Mutex;

use crate::domain::{fan_tag, FanId, Section};

/// Locks a fan list is spread over, by fan.
const SHARDS: usize = 16;

/// An entry of a fan's list, listed in the order of its key.
pub trait Listed: Copy {
    /// (when made, section, number): the same at run time and after a
    /// restart.
    fn key(&self) -> (u64, u32, u64);
}

/// A list per fan, kept by the fan's 64-bit tag (`fan_tag`), spread over
/// locks by fan. Two fans whose tags collide would share a list; each
/// still sees only its own entries, since the section reading them checks
/// the fan. A fan with an empty list has no entry; a list's memory grows
/// one entry at a time (most fans have one or two).
pub struct FanLists<T> {
    shards: [Mutex<HashMap<u64, Vec<T>>>; SHARDS],
}

impl<T> Default for FanLists<T> {
    fn default() -> Self {
        FanLists {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl<T: Listed> FanLists<T> {
    fn shard(&self, tag: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<T>>> {
        self.shards[(tag % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Lists `at` for the fan tagged `tag`, in its place by key (almost
    /// always the last).
    pub fn add(&self, tag: u64, at: T) {
        let mut shard = self.shard(tag);
        let list = shard.entry(tag).or_default();
        if list.len() == list.capacity() {
            // Not the default first step of four entries: one, then double.
            list.reserve_exact(list.len().max(1));
        }
        let place = list
            .iter()
            .rposition(|b| b.key() <= at.key())
            .map_or(0, |i| i + 1);
        list.insert(place, at);
    }

    /// Takes the entries `gone` says of off the fan's list.
    pub fn remove(&self, tag: u64, gone: impl Fn(&T) -> bool) {
        let mut shard = self.shard(tag);
        let Some(list) = shard.get_mut(&tag) else {
            return;
        };
        list.retain(|e| !gone(e));
        if list.is_empty() {
            shard.remove(&tag);
        }
    }

    /// The fan's newest entries, newest first, at most `max` of them, and
    /// how many it has in all.
    pub fn newest(&self, fan: &str, max: usize) -> (Vec<T>, usize) {
        let tag = fan_tag(fan);
        let shard = self.shard(tag);
        let Some(all) = shard.get(&tag) else {
            return (Vec::new(), 0);
        };
        (all.iter().rev().take(max).copied().collect(), all.len())
    }

    /// How many fans have a list.
    #[cfg(test)]
    pub fn fans(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Lists every entry of `all`, each fan's then put in order: no copy
    /// of them all on the side (at start-up, after the heap was trimmed,
    /// such a copy would stay resident).
    pub fn from_all(all: impl Iterator<Item = (u64, T)>) -> FanLists<T> {
        let lists = FanLists::default();
        for (tag, at) in all {
            lists.shard(tag).entry(tag).or_default().push(at);
        }
        for shard in &lists.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for list in shard.values_mut() {
                list.sort_by_key(|at| at.key());
                list.shrink_to_fit();
            }
        }
        lists
    }
}

/// Where one booking is: its section (by position in the event) and its
/// number and secret there, and when it was confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingAt {
    pub confirmed_at_ms: u64,
    pub section: u32,
    pub seq: u64,
    pub secret: u64,
}

impl Listed for BookingAt {
    /// Two sections read the clock, then append in either order: listed
    /// by the time, not the order they became durable.
    fn key(&self) -> (u64, u32, u64) {
        (self.confirmed_at_ms, self.section, self.seq)
    }
}

#[derive(Default)]
pub struct FanBookings {
    lists: FanLists<BookingAt>,
}

impl FanBookings {
    /// The index of an event whose sections, in the event's order, are
    /// `sections`.
    pub fn new<'a>(sections: impl IntoIterator<Item = &'a Section>) -> FanBookings {
        let all = (0u32..).zip(sections).flat_map(|(ix, section)| {
            section.bookings().map(move |b| {
                let at = BookingAt {
                    confirmed_at_ms: b.confirmed_at_ms,
                    section: ix,
                    seq: b.seq,
                    secret: b.secret,
                };
                (fan_tag(&b.fan), at)
            })
        });
        FanBookings {
            lists: FanLists::from_all(all),
        }
    }

    /// Lists a durable booking of `fan`'s.
    pub fn add(&self, fan: &FanId, at: BookingAt) {
        self.lists.add(fan_tag(fan), at);
    }

    /// `fan`'s newest bookings, newest first, at most `max` of them, and
    /// how many it has in all (with any of a fan whose tag is the same).
    pub fn newest(&self, fan: &str, max: usize) -> (Vec<BookingAt>, usize) {
        self.lists.newest(fan, max)
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
