//! The fan ledger: how many places each fan owns of one event, held plus
//! booked, across all its sections, so that no fan goes past the event's
//! `tickets_per_fan_max` (invariant 7).
//!
//! The sections are separate actors on separate threads, and a hold must
//! not wait for another section, so the count is not kept in any section:
//! the event's sections share one ledger. A section takes a new hold's
//! places from the ledger (check and add, under the lock of the fan's
//! shard) after deciding the hold and before applying it; refused, it
//! drops the change, and nothing happened. A hold that fails after
//! taking (the journal refuses it) keeps its share: the journal has
//! failed, the section answers nothing more, and the next start rebuilds
//! the ledger from the journal. Places come back when a release, expiry
//! or cancellation is queued to the journal, not when it is durable:
//! the journal is written in order, so any hold that the returned places
//! let through is behind the change that freed them, and no crash can
//! keep the hold but lose the change. The ledger is rebuilt from the
//! sections at every start (`FanLedger::new`), never persisted. The rule
//! itself is the domain's (`take_places`); this is where it is shared.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::domain::{fan_tag, take_places, CommandError, FanId, Section};

/// Locks the counts are spread over, by fan: holds of different fans
/// rarely wait for each other.
const SHARDS: usize = 64;

pub struct FanLedger {
    /// `None`: the event has no limit and nothing is counted.
    limit: Option<u32>,
    /// Places owned by fan; a fan owning none has no entry.
    shards: Box<[Mutex<HashMap<FanId, u32>>]>,
    /// Holds refused at the limit since start.
    refused: AtomicU64,
}

impl FanLedger {
    /// The ledger of an event with fan limit `limit`, counting what its
    /// `sections` hold and have booked.
    pub fn new<'a>(limit: Option<u32>, sections: impl IntoIterator<Item = &'a Section>) -> Self {
        let ledger = FanLedger {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            refused: AtomicU64::new(0),
        };
        if limit.is_some() {
            for section in sections {
                for (fan, places) in section.places_by_fan() {
                    *ledger.shard(fan).entry(fan.clone()).or_default() += places;
                }
            }
        }
        ledger
    }

    fn shard(&self, fan: &str) -> std::sync::MutexGuard<'_, HashMap<FanId, u32>> {
        self.shards[(fan_tag(fan) % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// Counts `places` more for `fan`, unless that would take it past the
    /// limit: then nothing changes.
    pub fn take(&self, fan: &FanId, places: u32) -> Result<(), CommandError> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let mut shard = self.shard(fan);
        let owned = shard.get(&**fan).copied().unwrap_or(0);
        match take_places(limit, owned, places) {
            Ok(after) => {
                shard.insert(fan.clone(), after);
                Ok(())
            }
            Err(e) => {
                drop(shard);
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Counts `places` fewer for `fan`.
    pub fn give_back(&self, fan: &str, places: u32) {
        if self.limit.is_none() {
            return;
        }
        let mut shard = self.shard(fan);
        let Some(owned) = shard.get_mut(fan) else {
            debug_assert!(false, "{fan:?} gives back {places} places it does not own");
            return;
        };
        debug_assert!(
            *owned >= places,
            "{fan:?} owns {owned}, gives back {places}"
        );
        *owned = owned.saturating_sub(places);
        if *owned == 0 {
            shard.remove(fan);
        }
    }

    /// The places `fan` owns (held or booked), counting holds being made.
    pub fn owned(&self, fan: &str) -> u32 {
        self.shard(fan).get(fan).copied().unwrap_or(0)
    }

    /// Holds refused at the limit since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(s: &str) -> FanId {
        s.into()
    }

    #[test]
    fn counts_up_to_the_limit_and_back() {
        let l = FanLedger::new(Some(4), []);
        l.take(&fan("a"), 3).unwrap();
        assert_eq!(
            l.take(&fan("a"), 2),
            Err(CommandError::FanLimitReached { limit: 4, owned: 3 })
        );
        assert_eq!(l.owned("a"), 3, "a refusal takes nothing");
        l.take(&fan("a"), 1).unwrap();
        l.take(&fan("b"), 4).unwrap();
        l.give_back("a", 3);
        assert_eq!((l.owned("a"), l.owned("b")), (1, 4));
        l.give_back("a", 1);
        assert!(
            l.shard("a").get("a").is_none(),
            "a fan owning none is forgotten"
        );
        assert_eq!(l.refused(), 1);
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let l = FanLedger::new(None, []);
        l.take(&fan("a"), u32::MAX).unwrap();
        l.take(&fan("a"), u32::MAX).unwrap();
        assert_eq!(l.owned("a"), 0);
    }

    /// Many threads, one fan: the check and the add are one step.
    #[test]
    fn concurrent_takes_never_pass_the_limit() {
        let l = std::sync::Arc::new(FanLedger::new(Some(10), []));
        let taken: u32 = (0..8)
            .map(|_| {
                let l = std::sync::Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..100).filter(|_| l.take(&fan("one"), 1).is_ok()).count() as u32
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(taken, 10);
        assert_eq!(l.owned("one"), 10);
    }
}
