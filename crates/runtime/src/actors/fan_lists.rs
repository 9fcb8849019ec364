//! A list per fan of where its holds or bookings of one event are, for
//! the fan's own lists (`actors/fan_holds.rs`, `actors/fan_bookings.rs`).

use std::collections::hash_map::{Entry, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, OnceLock};

/// The 64-bit tag a fan's lists are kept by: its id hashed with a key made
/// afresh by every process (the lists are rebuilt at every start, so no
/// tag outlives it). Nobody can search for a `sub` whose tag is another
/// fan's, to crowd that fan's list with entries it is never shown.
pub fn tag(fan: &str) -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new).hash_one(fan)
}

/// Where one of a fan's holds or bookings is: its section (by position
/// in the event), its number and secret there, and when it was made
/// (held, or confirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanRef {
    pub made_at_ms: u64,
    pub section: u32,
    pub seq: u64,
    pub secret: u64,
}

impl FanRef {
    /// A fan's list is in this order, at run time and after a restart
    /// alike: two sections read the clock, then append in either order,
    /// so the order they became durable in is not it.
    fn key(&self) -> (u64, u32, u64) {
        (self.made_at_ms, self.section, self.seq)
    }
}

/// Locks a fan list is spread over, by fan.
const SHARDS: usize = 16;

/// A list per fan, kept by the fan's 64-bit tag ([`tag`]), spread over
/// locks by fan. Two fans whose tags collided (by chance: 1 in 2^64 a
/// pair) would share a list; each would still see only its own entries,
/// since the section reading them checks the fan. A fan with an empty
/// list has no entry; most fans have one, kept in the table itself.
pub struct FanLists {
    shards: [Mutex<HashMap<u64, List>>; SHARDS],
}

/// One fan's entries, in key order: the first inline (most fans hold or
/// book once an event; a `Vec` of one cost an allocation of 32 bytes
/// and its 24-byte header), more on the heap, grown one entry at a time.
#[derive(Debug)]
enum List {
    One(FanRef),
    Many(Vec<FanRef>),
}

impl List {
    fn as_slice(&self) -> &[FanRef] {
        match self {
            List::One(at) => std::slice::from_ref(at),
            List::Many(all) => all,
        }
    }

    /// Appends `at`, out of order.
    fn push(&mut self, at: FanRef) {
        match self {
            List::One(first) => *self = List::Many(vec![*first, at]),
            List::Many(all) => all.push(at),
        }
    }

    /// Puts the entries in key order, in no more memory than they need.
    fn settle(&mut self) {
        if let List::Many(all) = self {
            all.sort_by_key(|at| at.key());
            all.shrink_to_fit();
        }
    }

    /// Adds `at` in its place by key (almost always the last).
    fn insert(&mut self, at: FanRef) {
        match self {
            List::One(first) => {
                let first = *first;
                *self = List::Many(if first.key() <= at.key() {
                    vec![first, at]
                } else {
                    vec![at, first]
                });
            }
            List::Many(all) => {
                if all.len() == all.capacity() {
                    // Not the default step: double.
                    all.reserve_exact(all.len());
                }
                let place = all
                    .iter()
                    .rposition(|b| b.key() <= at.key())
                    .map_or(0, |i| i + 1);
                all.insert(place, at);
            }
        }
    }

    /// Drops the entries `gone` says of; false if none is left.
    fn retain(&mut self, gone: impl Fn(&FanRef) -> bool) -> bool {
        match self {
            List::One(at) => !gone(at),
            List::Many(all) => {
                all.retain(|e| !gone(e));
                if let [only] = all[..] {
                    *self = List::One(only);
                }
                !self.as_slice().is_empty()
            }
        }
    }
}

impl Default for FanLists {
    fn default() -> Self {
        FanLists {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl FanLists {
    fn shard(&self, tag: u64) -> std::sync::MutexGuard<'_, HashMap<u64, List>> {
        self.shards[(tag % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Lists `at` for the fan tagged `tag`, in its place by key (almost
    /// always the last).
    pub fn add(&self, tag: u64, at: FanRef) {
        let mut shard = self.shard(tag);
        match shard.entry(tag) {
            Entry::Occupied(mut list) => list.get_mut().insert(at),
            Entry::Vacant(v) => {
                v.insert(List::One(at));
            }
        }
    }

    /// Takes the entries `gone` says of off the fan's list.
    pub fn remove(&self, tag: u64, gone: impl Fn(&FanRef) -> bool) {
        let mut shard = self.shard(tag);
        let Some(list) = shard.get_mut(&tag) else {
            return;
        };
        if !list.retain(gone) {
            shard.remove(&tag);
        }
    }

    /// The fan's newest entries, newest first, at most `max` of them, and
    /// how many it has in all.
    pub fn newest(&self, fan: &str, max: usize) -> (Vec<FanRef>, usize) {
        let own = tag(fan);
        let shard = self.shard(own);
        let Some(all) = shard.get(&own) else {
            return (Vec::new(), 0);
        };
        let all = all.as_slice();
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
    pub fn from_all(all: impl Iterator<Item = (u64, FanRef)>) -> FanLists {
        let lists = FanLists::default();
        for (tag, at) in all {
            match lists.shard(tag).entry(tag) {
                Entry::Occupied(mut list) => list.get_mut().push(at),
                Entry::Vacant(v) => {
                    v.insert(List::One(at));
                }
            }
        }
        for shard in &lists.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.values_mut().for_each(List::settle);
            shard.shrink_to_fit();
        }
        lists
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(made_at_ms: u64, seq: u64) -> FanRef {
        FanRef {
            made_at_ms,
            section: 0,
            seq,
            secret: seq * 7,
        }
    }

    fn seqs(lists: &FanLists, fan: &str) -> Vec<u64> {
        lists
            .newest(fan, usize::MAX)
            .0
            .iter()
            .map(|r| r.seq)
            .collect()
    }

    #[test]
    fn a_list_keeps_its_order_as_it_grows_and_shrinks() {
        // A fan's one entry lives in the table: no allocation of its own.
        assert!(std::mem::size_of::<List>() <= 40);
        let lists = FanLists::default();
        let fan = tag("a");
        lists.add(fan, at(20, 2));
        assert!(matches!(lists.shard(fan).get(&fan), Some(List::One(_))));
        // Out of order (two sections, one clock): put in place.
        lists.add(fan, at(10, 1));
        lists.add(fan, at(30, 3));
        lists.add(fan, at(25, 4));
        assert_eq!(seqs(&lists, "a"), [3, 4, 2, 1]);
        lists.remove(fan, |r| r.seq != 4);
        assert_eq!(seqs(&lists, "a"), [4]);
        assert!(matches!(lists.shard(fan).get(&fan), Some(List::One(_))));
        lists.remove(fan, |r| r.seq == 4);
        assert_eq!(lists.fans(), 0, "an empty list is no entry");
        assert_eq!(lists.newest("a", 10), (vec![], 0));
    }

    #[test]
    fn built_at_once_each_list_is_in_order() {
        let (a, b) = (tag("a"), tag("b"));
        let lists = FanLists::from_all(
            [
                (a, at(30, 3)),
                (b, at(5, 9)),
                (a, at(10, 1)),
                (a, at(20, 2)),
            ]
            .into_iter(),
        );
        assert_eq!(seqs(&lists, "a"), [3, 2, 1]);
        assert_eq!(lists.newest("a", 2).1, 3);
        assert_eq!(seqs(&lists, "b"), [9]);
        assert!(matches!(lists.shard(b).get(&b), Some(List::One(_))));
        assert_eq!(lists.fans(), 2);
    }
}
