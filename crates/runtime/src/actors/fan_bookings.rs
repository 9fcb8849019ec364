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

use super::fan_lists::{tag, FanLists, FanRef};
use crate::domain::{FanId, Section};

#[derive(Default)]
pub struct FanBookings {
    lists: FanLists,
}

impl FanBookings {
    /// The index of an event whose sections, in the event's order, are
    /// `sections`.
    pub fn new<'a>(sections: impl IntoIterator<Item = &'a Section>) -> FanBookings {
        let all = (0u32..).zip(sections).flat_map(|(ix, section)| {
            section.bookings().map(move |b| {
                let at = FanRef {
                    made_at_ms: b.confirmed_at_ms,
                    section: ix,
                    seq: b.seq,
                    secret: b.secret,
                };
                (tag(&b.fan), at)
            })
        });
        FanBookings {
            lists: FanLists::from_all(all),
        }
    }

    /// Lists a durable booking of `fan`'s.
    pub fn add(&self, fan: &FanId, at: FanRef) {
        self.lists.add(tag(fan), at);
    }

    /// `fan`'s newest bookings, newest first, at most `max` of them, and
    /// how many it has in all (with any of a fan whose tag is the same).
    pub fn newest(&self, fan: &str, max: usize) -> (Vec<FanRef>, usize) {
        self.lists.newest(fan, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(section: u32, seq: u64) -> FanRef {
        FanRef {
            made_at_ms: 1_000 + seq,
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
