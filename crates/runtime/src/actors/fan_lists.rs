//! A list per fan of where its holds or bookings of one event are, for
//! the fan's own lists (`actors/fan_holds.rs`, `actors/fan_bookings.rs`).

use std::collections::HashMap;
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
/// since the section reading them checks the fan. A fan with an empty list has no entry; a list's memory grows
/// one entry at a time (most fans have one or two).
pub struct FanLists {
    shards: [Mutex<HashMap<u64, Vec<FanRef>>>; SHARDS],
}

impl Default for FanLists {
    fn default() -> Self {
        FanLists {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl FanLists {
    fn shard(&self, tag: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<FanRef>>> {
        self.shards[(tag % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Lists `at` for the fan tagged `tag`, in its place by key (almost
    /// always the last).
    pub fn add(&self, tag: u64, at: FanRef) {
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
    pub fn remove(&self, tag: u64, gone: impl Fn(&FanRef) -> bool) {
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
    pub fn newest(&self, fan: &str, max: usize) -> (Vec<FanRef>, usize) {
        let own = tag(fan);
        let shard = self.shard(own);
        let Some(all) = shard.get(&own) else {
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
    pub fn from_all(all: impl Iterator<Item = (u64, FanRef)>) -> FanLists {
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
