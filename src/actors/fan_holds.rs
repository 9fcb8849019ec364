//! Each fan's live holds of one event, across its sections: so a fan who
//! held seats on one device (or in a tab it closed) finds its hold again
//! on another, to pay for it or release it, instead of meeting its own
//! seats as taken and its own places counted against its limit until
//! the hold expires (`GET /v1/events/{event}/me/holds`).
//!
//! Moved in journal order by the view publisher, as each change's record
//! is durable (a `HoldNote` rides on the change's `SeatNote`): a hold is
//! listed once its creation is durable and no longer once its release,
//! expiry or confirmation is. The list is read from the sections
//! themselves (`GetHolds`), which answer only for holds still live.
//! Rebuilt from the sections at every start (`FanHolds::new`), never
//! persisted.

use std::sync::Arc;

use super::fan_bookings::ByFan;
use crate::domain::{FanId, Section};

/// Where one live hold is: its section (by position in the event) and
/// its number and secret there, and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldAt {
    pub created_at_ms: u64,
    pub section: u32,
    pub seq: u64,
    pub secret: u64,
}

impl HoldAt {
    /// A fan's holds are listed in this order, at run time and after a
    /// restart alike.
    fn key(&self) -> (u64, u32, u64) {
        (self.created_at_ms, self.section, self.seq)
    }
}

#[derive(Default)]
pub struct FanHolds {
    /// By fan, oldest first ([`HoldAt::key`]).
    lists: ByFan<HoldAt>,
}

/// A hold listed or ended, for the publisher to apply once durable.
pub struct HoldNote {
    pub holds: Arc<FanHolds>,
    pub fan: FanId,
    pub at: HoldAt,
    /// Created (listed), or ended (no longer).
    pub live: bool,
}

impl HoldNote {
    pub fn apply(self) {
        match self.live {
            true => self.holds.add(&self.fan, self.at),
            false => self.holds.remove(&self.fan, self.at.section, self.at.seq),
        }
    }
}

impl FanHolds {
    /// The index of an event whose sections, in the event's order, are
    /// `sections`.
    pub fn new<'a>(sections: impl IntoIterator<Item = &'a Section>) -> FanHolds {
        let mut all: Vec<(&FanId, HoldAt)> = Vec::new();
        for (ix, section) in sections.into_iter().enumerate() {
            let ix = u32::try_from(ix).expect("an event's sections are numbered in u32");
            all.extend(section.holds().map(|h| {
                let at = HoldAt {
                    created_at_ms: h.created_at_ms,
                    section: ix,
                    seq: h.seq,
                    secret: h.secret,
                };
                (&h.fan, at)
            }));
        }
        // Sorted first, so each addition is the fan's last.
        all.sort_by_key(|(_, at)| at.key());
        let index = FanHolds::default();
        for (fan, at) in all {
            index.add(fan, at);
        }
        index
    }

    /// Lists `fan`'s hold in its place by [`HoldAt::key`] (almost always
    /// the last).
    fn add(&self, fan: &FanId, at: HoldAt) {
        let mut shard = self.lists.lock(fan);
        let list = shard.entry(Arc::clone(fan)).or_default();
        let place = list
            .iter()
            .rposition(|h| h.key() <= at.key())
            .map_or(0, |i| i + 1);
        list.insert(place, at);
    }

    fn remove(&self, fan: &str, section: u32, seq: u64) {
        let mut shard = self.lists.lock(fan);
        let Some(list) = shard.get_mut(fan) else {
            return;
        };
        list.retain(|h| (h.section, h.seq) != (section, seq));
        if list.is_empty() {
            shard.remove(fan);
        }
    }

    /// `fan`'s newest live holds, newest first, at most `max`.
    pub fn newest(&self, fan: &str, max: usize) -> Vec<HoldAt> {
        let shard = self.lists.lock(fan);
        shard
            .get(fan)
            .map(|all| all.iter().rev().take(max).copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(holds: &Arc<FanHolds>, fan: &str, section: u32, seq: u64, live: bool) -> HoldNote {
        HoldNote {
            holds: Arc::clone(holds),
            fan: fan.into(),
            at: HoldAt {
                created_at_ms: seq,
                section,
                seq,
                secret: seq + 1,
            },
            live,
        }
    }

    #[test]
    fn lists_a_fans_live_holds_until_each_ends() {
        let holds = Arc::new(FanHolds::default());
        note(&holds, "a", 3, 1, true).apply();
        note(&holds, "b", 0, 2, true).apply();
        // Made first, durable second: listed by when it was made.
        note(&holds, "a", 0, 1, true).apply();
        let seqs = |fan| -> Vec<(u32, u64)> {
            holds
                .newest(fan, 10)
                .iter()
                .map(|h| (h.section, h.seq))
                .collect()
        };
        assert_eq!(seqs("a"), [(3, 1), (0, 1)]);
        assert_eq!(holds.newest("a", 1).len(), 1);
        note(&holds, "a", 0, 1, false).apply();
        assert_eq!(seqs("a"), [(3, 1)]);
        assert_eq!(seqs("b"), [(0, 2)]);
        note(&holds, "a", 3, 1, false).apply();
        assert!(seqs("a").is_empty());
        assert!(holds.lists.lock("a").get("a").is_none(), "forgotten");
        // An end of a hold never listed changes nothing.
        note(&holds, "c", 0, 9, false).apply();
        assert!(seqs("c").is_empty());
    }
}
