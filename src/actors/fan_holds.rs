//! Each fan's live holds of one event, across its sections: so a fan who
//! held seats on one device (or in a tab it closed) finds its hold again
//! on another, to pay for it or release it, instead of meeting its own
//! seats as taken and its own places counted against its limit until
//! the hold expires (`GET /v1/events/{event}/me/holds`).
//!
//! Moved in journal order by the view publisher, as each change's record
//! is durable (a `HoldNote` rides on the change's `SeatNote`; the index
//! hangs on the section's `SeatBoard`): a hold is listed once its
//! creation is durable and no longer once its release, expiry or
//! confirmation is. The list is read from the sections themselves
//! (`GetHolds`), which answer only for a hold still live and the fan's
//! own. Rebuilt from the sections at every start (`FanHolds::new`),
//! never persisted.
//!
//! Kept by the fan's 64-bit tag (`fan_tag`), not its id: a note then
//! carries no shared pointer to bump across threads on every hold. Two
//! fans whose tags collide would share a list; each still sees only its
//! own holds, since the section checks the fan.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::{fan_tag, Section};

/// Locks the index is spread over, by fan.
const SHARDS: usize = 16;

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

pub struct FanHolds {
    /// By fan tag, oldest first ([`HoldAt::key`]); a fan with none has
    /// no entry.
    shards: [Mutex<HashMap<u64, Vec<HoldAt>>>; SHARDS],
}

impl Default for FanHolds {
    fn default() -> Self {
        FanHolds {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

/// A hold listed or ended, for the publisher to apply once durable.
pub struct HoldNote {
    /// The fan's tag (`fan_tag`).
    pub fan: u64,
    pub at: HoldAt,
    /// Created (listed), or ended (no longer).
    pub live: bool,
}

impl FanHolds {
    /// The index of an event whose sections, in the event's order, are
    /// `sections`.
    pub fn new<'a>(sections: impl IntoIterator<Item = &'a Section>) -> FanHolds {
        let mut all: Vec<(u64, HoldAt)> = Vec::new();
        for (ix, section) in sections.into_iter().enumerate() {
            let ix = u32::try_from(ix).expect("an event's sections are numbered in u32");
            all.extend(section.holds().map(|h| {
                let at = HoldAt {
                    created_at_ms: h.created_at_ms,
                    section: ix,
                    seq: h.seq,
                    secret: h.secret,
                };
                (fan_tag(&h.fan), at)
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

    fn shard(&self, fan: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<HoldAt>>> {
        self.shards[(fan % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the index as a durable change says.
    pub fn apply(&self, note: HoldNote) {
        match note.live {
            true => self.add(note.fan, note.at),
            false => self.remove(note.fan, note.at.section, note.at.seq),
        }
    }

    /// Lists a fan's hold in its place by [`HoldAt::key`] (almost always
    /// the last).
    fn add(&self, fan: u64, at: HoldAt) {
        let mut shard = self.shard(fan);
        let list = shard.entry(fan).or_default();
        let place = list
            .iter()
            .rposition(|h| h.key() <= at.key())
            .map_or(0, |i| i + 1);
        list.insert(place, at);
    }

    fn remove(&self, fan: u64, section: u32, seq: u64) {
        let mut shard = self.shard(fan);
        let Some(list) = shard.get_mut(&fan) else {
            return;
        };
        list.retain(|h| (h.section, h.seq) != (section, seq));
        if list.is_empty() {
            shard.remove(&fan);
        }
    }

    /// `fan`'s newest live holds, newest first, at most `max` (with any
    /// of a fan whose tag is the same: the section tells them apart).
    pub fn newest(&self, fan: &str, max: usize) -> Vec<HoldAt> {
        let tag = fan_tag(fan);
        let shard = self.shard(tag);
        shard
            .get(&tag)
            .map(|all| all.iter().rev().take(max).copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(fan: &str, section: u32, seq: u64, live: bool) -> HoldNote {
        HoldNote {
            fan: fan_tag(fan),
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
        let holds = FanHolds::default();
        holds.apply(note("a", 3, 1, true));
        holds.apply(note("b", 0, 2, true));
        // Made first, durable second: listed by when it was made.
        holds.apply(note("a", 0, 1, true));
        let seqs = |fan| -> Vec<(u32, u64)> {
            holds
                .newest(fan, 10)
                .iter()
                .map(|h| (h.section, h.seq))
                .collect()
        };
        assert_eq!(seqs("a"), [(3, 1), (0, 1)]);
        assert_eq!(holds.newest("a", 1).len(), 1);
        holds.apply(note("a", 0, 1, false));
        assert_eq!(seqs("a"), [(3, 1)]);
        assert_eq!(seqs("b"), [(0, 2)]);
        holds.apply(note("a", 3, 1, false));
        assert!(seqs("a").is_empty());
        assert!(
            holds.shard(fan_tag("a")).get(&fan_tag("a")).is_none(),
            "forgotten"
        );
        // An end of a hold never listed changes nothing.
        holds.apply(note("c", 0, 9, false));
        assert!(seqs("c").is_empty());
    }
}
