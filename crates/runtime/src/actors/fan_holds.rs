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
//! Kept by the fan's 64-bit tag (`fan_lists::tag`), not its id: a note
//! then carries no shared pointer to bump across threads on every hold.
//! Two fans whose tags collided would share a list; each would still see
//! only its own holds, since the section checks the fan.

use super::fan_lists::{tag, FanLists, FanRef};
use crate::domain::Section;

#[derive(Default)]
pub struct FanHolds {
    lists: FanLists,
}

/// A hold listed or ended, for the publisher to apply once durable.
pub struct HoldNote {
    /// The fan's tag (`fan_lists::tag`).
    pub fan: u64,
    pub at: FanRef,
    /// Created (listed), or ended (no longer).
    pub live: bool,
}

impl FanHolds {
    /// The index of an event whose sections, in the event's order, are
    /// `sections`.
    pub fn new<'a>(sections: impl IntoIterator<Item = &'a Section>) -> FanHolds {
        let all = (0u32..).zip(sections).flat_map(|(ix, section)| {
            section.holds().map(move |h| {
                let at = FanRef {
                    made_at_ms: h.created_at_ms,
                    section: ix,
                    seq: h.seq,
                    secret: h.secret,
                };
                (tag(&h.fan), at)
            })
        });
        FanHolds {
            lists: FanLists::from_all(all),
        }
    }

    /// Moves the index as a durable change says.
    pub fn apply(&self, note: HoldNote) {
        let HoldNote { fan, at, live } = note;
        match live {
            true => self.lists.add(fan, at),
            false => self
                .lists
                .remove(fan, |h| (h.section, h.seq) == (at.section, at.seq)),
        }
    }

    /// `fan`'s newest live holds, newest first, at most `max` (with any
    /// of a fan whose tag is the same: the section tells them apart).
    pub fn newest(&self, fan: &str, max: usize) -> Vec<FanRef> {
        self.lists.newest(fan, max).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(fan: &str, section: u32, seq: u64, live: bool) -> HoldNote {
        HoldNote {
            fan: tag(fan),
            at: FanRef {
                made_at_ms: seq,
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
        assert_eq!(holds.lists.fans(), 1, "a forgotten, b left");
        // An end of a hold never listed changes nothing.
        holds.apply(note("c", 0, 9, false));
        assert!(seqs("c").is_empty());
    }
}
