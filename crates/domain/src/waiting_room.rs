//! A waiting room in front of one event's sale: fans queue, and are
//! admitted in queue order at a set rate.
//!
//! Fans who join before the opening wait in a pre-queue, which is
//! shuffled at the opening (arriving early gives no edge); later fans are
//! appended in arrival order. A fan's queue number is its place in that
//! order, from 0; the serving number is the first not yet admitted, so a
//! fan's position is `number - serving`. Admission runs by rate, not by
//! who shows up: a fan who never comes back does not hold up the fans
//! behind (an admission expires), and the optional cap on admitted fans
//! still shopping frees as admissions expire or end.
//!
//! As [`Section`](super::Section), a room changes in two steps: `decide_*`
//! returns a [`RoomChange`] (or a [`RoomError`]) and [`WaitingRoom::apply`]
//! is the one place its state changes, live and on replay alike. The
//! shuffle is a pure function of the arrival order and a seed the change
//! carries ([`shuffle`]: SplitMix64 and Fisher-Yates, written here rather
//! than borrowed from a library whose algorithm may change between
//! versions), so an operator can show afterwards that nobody chose the
//! order, and a replay redoes it exactly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hashbrown::HashTable;
use sha2::{Digest, Sha256};

use super::section::FanId;

/// Most fans one room queues: far past any sale, and queue numbers fit
/// the index the room keeps (`u32`).
pub const QUEUE_LEN_MAX: u64 = 100_000_000;

/// A fan as the room knows it: the first 128 bits of the SHA-256 of its
/// id. Sixteen bytes whatever the id's length, so a waiting fan costs
/// the room a fixed few dozen bytes; two of a million fans share a key
/// with odds of about 2^-88.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FanKey(pub [u8; 16]);

impl FanKey {
    pub fn of(fan: &str) -> FanKey {
        let digest = Sha256::digest(fan.as_bytes());
        FanKey(digest[..16].try_into().expect("16 of 32 bytes"))
    }

    /// Its bits are a hash already.
    fn hash(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }
}

/// The most admission credit that builds up while nobody waits: one
/// second's worth of the rate.
const BURST_US: u64 = 1_000_000;

/// How a room runs; an operator may change any of it while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomSettings {
    /// When fans may start joining (the pre-queue opens).
    pub queue_opens_at_ms: u64,
    /// The opening: the pre-queue is shuffled and admission starts.
    pub opens_at_ms: u64,
    /// Fans admitted per second.
    pub rate_per_sec: u32,
    /// Most fans admitted and still shopping at once; `None`: no cap.
    pub active_max: Option<u32>,
    /// How long an admission stays valid.
    pub admission_ttl_ms: u64,
    /// Admission stopped for now (joining goes on).
    pub paused: bool,
}

/// What happens to a room: decided once, applied live and on replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// A fan joined: into the pre-queue before the shuffle, at the end of
    /// the queue after it.
    Joined {
        fan: FanId,
        at_ms: u64,
    },
    /// The opening: the pre-queue put in the order `shuffle(seed)` gives.
    Shuffled {
        seed: u64,
        at_ms: u64,
    },
    /// Queue numbers from the serving number up to `through` (exclusive)
    /// admitted at `at_ms`; the next admission is due at `next_at_us`.
    Admitted {
        through: u64,
        at_ms: u64,
        next_at_us: u64,
    },
    /// Admission `number` was not used in time.
    Expired {
        number: u64,
    },
    /// Admission `number` ended (its fan is done shopping): its place
    /// under the cap is free.
    Done {
        number: u64,
    },
    Settings(RoomSettings),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("the queue opens at {opens_at_ms}")]
    NotOpenYet { opens_at_ms: u64 },
    /// The opening has come and the pre-queue is not shuffled yet: the
    /// caller shuffles first ([`WaitingRoom::decide_opening`]).
    #[error("the opening is due: shuffle first")]
    OpeningDue,
    #[error("this fan is not in the queue")]
    NotInQueue,
    #[error("this fan's admission is not valid")]
    NotAdmitted,
    #[error("the queue is full")]
    Full,
    #[error("invalid waiting room settings: {0}")]
    Settings(&'static str),
}

/// A change that does not fit the room (a journal of another room, or a
/// bug: decide and apply disagree).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("waiting room: {0}")]
pub struct RoomApplyError(pub String);

/// Where a fan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// In the pre-queue: its number comes with the shuffle.
    PreQueue,
    Waiting {
        number: u64,
        ahead: u64,
    },
    Admitted {
        number: u64,
        expires_at_ms: u64,
    },
    Expired {
        number: u64,
    },
    Done {
        number: u64,
    },
}

/// What became of an admitted queue number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Valid { expires_at_ms: u64 },
    Expired,
    Done,
}

/// What became of an admitted queue number, as [`RoomParts`] carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionPart {
    Valid { expires_at_ms: u64 },
    Expired,
    Done,
}

/// A room's whole state, in and out of a snapshot: the fans in queue
/// order, and what became of each admitted number (`admissions[n]` for
/// `n` below the serving number, which is their count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomParts {
    pub settings: RoomSettings,
    pub queue: Vec<FanKey>,
    /// When each fan in `queue` joined, in seconds since the epoch.
    pub joined_s: Vec<u32>,
    pub shuffled: Option<u64>,
    pub next_at_us: u64,
    pub admissions: Vec<AdmissionPart>,
}

#[derive(Debug)]
pub struct WaitingRoom {
    settings: RoomSettings,
    /// Fans in queue order (before the shuffle: the pre-queue in arrival
    /// order).
    queue: Vec<FanKey>,
    /// When each fan of `queue` joined, in seconds since the epoch (its
    /// wait is measured from it, or from the opening if later).
    joined_s: Vec<u32>,
    /// Each fan's index in `queue`.
    numbers: HashTable<u32>,
    /// The seed of the shuffle, once done.
    shuffled: Option<u64>,
    /// The first queue number not admitted.
    serving: u64,
    /// When the next admission is due, in microseconds.
    next_at_us: u64,
    /// What became of each admitted number (below `serving`).
    admissions: Vec<Admission>,
    /// Valid admissions: the ones counting against the cap.
    active: u32,
    /// (expires_at_ms, number) of valid admissions, soonest first; stale
    /// entries are skipped.
    expiries: BinaryHeap<Reverse<(u64, u64)>>,
}

impl RoomSettings {
    /// Refuses settings no room can run by.
    pub fn check(&self) -> Result<(), RoomError> {
        if self.queue_opens_at_ms > self.opens_at_ms {
            return Err(RoomError::Settings("the queue opens after the sale"));
        }
        if self.rate_per_sec == 0 || self.rate_per_sec > 1_000_000 {
            return Err(RoomError::Settings(
                "the rate is 1 to 1,000,000 fans a second",
            ));
        }
        if self.active_max == Some(0) {
            return Err(RoomError::Settings("a cap of 0 admits nobody"));
        }
        if self.admission_ttl_ms < 1_000 {
            return Err(RoomError::Settings("an admission lasts at least a second"));
        }
        Ok(())
    }

    fn interval_us(&self) -> u64 {
        (1_000_000 / u64::from(self.rate_per_sec.max(1))).max(1)
    }
}

impl WaitingRoom {
    pub fn new(settings: RoomSettings) -> WaitingRoom {
        WaitingRoom {
            settings,
            queue: Vec::new(),
            joined_s: Vec::new(),
            numbers: HashTable::new(),
            shuffled: None,
            serving: 0,
            next_at_us: settings.opens_at_ms.saturating_mul(1000),
            admissions: Vec::new(),
            active: 0,
            expiries: BinaryHeap::new(),
        }
    }

    /// Rebuilds a room from its parts, refusing any that no run of the
    /// room could have left (a fan twice, admissions before the shuffle
    /// or past the queue, settings no room runs by).
    pub fn from_parts(parts: RoomParts) -> Result<WaitingRoom, RoomApplyError> {
        let bad = |m: String| Err(RoomApplyError(m));
        if let Err(e) = parts.settings.check() {
            return bad(e.to_string());
        }
        if parts.admissions.len() > parts.queue.len() {
            return bad(format!(
                "{} admissions of {} fans",
                parts.admissions.len(),
                parts.queue.len()
            ));
        }
        if parts.shuffled.is_none() && !parts.admissions.is_empty() {
            return bad("admissions before the shuffle".into());
        }
        if parts.joined_s.len() != parts.queue.len() {
            return bad(format!(
                "{} join times for {} fans",
                parts.joined_s.len(),
                parts.queue.len()
            ));
        }
        if parts.queue.len() as u64 > QUEUE_LEN_MAX {
            return bad(format!("{} fans in one queue", parts.queue.len()));
        }
        let expired: Vec<bool> = parts
            .admissions
            .iter()
            .map(|a| *a == AdmissionPart::Expired)
            .collect();
        let numbers = index(&parts.queue, &expired)
            .map_err(|fan| RoomApplyError(format!("fan {fan:?} in the queue twice")))?;
        let mut active = 0u32;
        let mut expiries = BinaryHeap::new();
        let admissions: Vec<Admission> = parts
            .admissions
            .iter()
            .enumerate()
            .map(|(number, a)| match *a {
                AdmissionPart::Valid { expires_at_ms } => {
                    active += 1;
                    expiries.push(Reverse((expires_at_ms, number as u64)));
                    Admission::Valid { expires_at_ms }
                }
                AdmissionPart::Expired => Admission::Expired,
                AdmissionPart::Done => Admission::Done,
            })
            .collect();
        let room = WaitingRoom {
            settings: parts.settings,
            serving: admissions.len() as u64,
            queue: parts.queue,
            joined_s: parts.joined_s,
            numbers,
            shuffled: parts.shuffled,
            next_at_us: parts.next_at_us,
            admissions,
            active,
            expiries,
        };
        #[cfg(debug_assertions)]
        room.check_invariants();
        Ok(room)
    }

    /// The room's whole state (see [`RoomParts`]).
    pub fn parts(&self) -> RoomParts {
        RoomParts {
            settings: self.settings,
            queue: self.queue.clone(),
            joined_s: self.joined_s.clone(),
            shuffled: self.shuffled,
            next_at_us: self.next_at_us,
            admissions: self
                .admissions
                .iter()
                .map(|a| match *a {
                    Admission::Valid { expires_at_ms } => AdmissionPart::Valid { expires_at_ms },
                    Admission::Expired => AdmissionPart::Expired,
                    Admission::Done => AdmissionPart::Done,
                })
                .collect(),
        }
    }

    pub fn settings(&self) -> &RoomSettings {
        &self.settings
    }

    /// The first queue number not yet admitted.
    pub fn serving(&self) -> u64 {
        self.serving
    }

    /// Fans in the queue, admitted or not.
    pub fn len(&self) -> u64 {
        self.queue.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The seed the pre-queue was shuffled with, once it was.
    pub fn shuffle_seed(&self) -> Option<u64> {
        self.shuffled
    }

    /// Valid admissions now (those under the cap).
    pub fn active(&self) -> u32 {
        self.active
    }

    /// The fan with queue number `number`.
    pub fn fan(&self, number: u64) -> Option<FanKey> {
        self.queue.get(usize::try_from(number).ok()?).copied()
    }

    /// When the fan with queue number `number` joined, in seconds since
    /// the epoch.
    pub fn joined_s(&self, number: u64) -> Option<u32> {
        self.joined_s.get(usize::try_from(number).ok()?).copied()
    }

    /// The queue number of the fan with key `key`.
    fn number_of(&self, key: &FanKey) -> Option<u64> {
        let queue = &self.queue;
        self.numbers
            .find(key.hash(), |&i| queue[i as usize] == *key)
            .map(|&i| u64::from(i))
    }

    /// Where `fan` stands, if it joined.
    pub fn standing(&self, fan: &FanKey) -> Option<Standing> {
        let number = self.number_of(fan)?;
        if self.shuffled.is_none() {
            return Some(Standing::PreQueue);
        }
        Some(match self.admissions.get(number as usize) {
            None => Standing::Waiting {
                number,
                ahead: number - self.serving,
            },
            Some(Admission::Valid { expires_at_ms }) => Standing::Admitted {
                number,
                expires_at_ms: *expires_at_ms,
            },
            Some(Admission::Expired) => Standing::Expired { number },
            Some(Admission::Done) => Standing::Done { number },
        })
    }

    /// Whether `fan` holds an admission valid at `now_ms`.
    pub fn is_admitted(&self, fan: &FanKey, now_ms: u64) -> bool {
        matches!(self.standing(fan), Some(Standing::Admitted { expires_at_ms, .. }) if now_ms < expires_at_ms)
    }

    // ---- decide ----

    /// `fan` joins; `None` when it is in the queue already (joining again
    /// keeps its place).
    pub fn decide_join(&self, fan: &FanId, now_ms: u64) -> Result<Option<RoomChange>, RoomError> {
        if let Some(number) = self.number_of(&FanKey::of(fan)) {
            if !self.may_rejoin(number) {
                return Ok(None);
            }
        }
        if self.len() >= QUEUE_LEN_MAX {
            return Err(RoomError::Full);
        }
        if now_ms < self.settings.queue_opens_at_ms {
            return Err(RoomError::NotOpenYet {
                opens_at_ms: self.settings.queue_opens_at_ms,
            });
        }
        if self.shuffled.is_none() && now_ms >= self.settings.opens_at_ms {
            return Err(RoomError::OpeningDue);
        }
        Ok(Some(RoomChange::Joined {
            fan: FanId::clone(fan),
            at_ms: now_ms,
        }))
    }

    /// Whether the fan at `number` may join again, at the back: its
    /// admission ran out unused (its phone was off, say). A fan waiting,
    /// admitted or done keeps its place.
    fn may_rejoin(&self, number: u64) -> bool {
        matches!(
            self.admissions.get(number as usize),
            Some(Admission::Expired)
        )
    }

    /// The shuffle, once the opening has come (with `seed`, which the
    /// caller draws from a source nobody controls).
    pub fn decide_opening(&self, now_ms: u64, seed: u64) -> Option<RoomChange> {
        (self.shuffled.is_none() && now_ms >= self.settings.opens_at_ms).then_some(
            RoomChange::Shuffled {
                seed,
                at_ms: now_ms,
            },
        )
    }

    /// The fans whose turn has come at `now_ms`: at most the rate allows
    /// since the last admission (with up to a second's credit after a
    /// lull), and no more than the cap leaves room for.
    pub fn decide_admission(&self, now_ms: u64) -> Option<RoomChange> {
        let s = &self.settings;
        if s.paused || self.shuffled.is_none() || now_ms < s.opens_at_ms {
            return None;
        }
        let waiting = self.len() - self.serving;
        let room = s
            .active_max
            .map_or(u64::MAX, |m| u64::from(m.saturating_sub(self.active)));
        let now_us = now_ms.saturating_mul(1000);
        let interval = s.interval_us();
        // The credit after a lull: the admissions of the last second, no
        // more (the first due one interval into it).
        let mut t = self
            .next_at_us
            .max(now_us.saturating_sub(BURST_US).saturating_add(interval));
        let mut k = 0;
        while t <= now_us && k < waiting && k < room {
            k += 1;
            t += interval;
        }
        (k > 0).then_some(RoomChange::Admitted {
            through: self.serving + k,
            at_ms: now_ms,
            next_at_us: t,
        })
    }

    /// Admissions unused past their time, at most `max`, soonest first.
    /// Takes `&mut self` only to drop the heap entries it looked at (as
    /// `Section::decide_expiries`).
    pub fn decide_expiries(&mut self, now_ms: u64, max: usize) -> Vec<RoomChange> {
        let mut due = Vec::new();
        while due.len() < max {
            let Some(&Reverse((at, number))) = self.expiries.peek() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.expiries.pop();
            if self.admissions.get(number as usize) == Some(&Admission::Valid { expires_at_ms: at })
            {
                due.push(RoomChange::Expired { number });
            }
        }
        due
    }

    /// `fan`'s admission ends (it booked, or left): its place under the
    /// cap frees.
    pub fn decide_done(&self, fan: &FanKey, now_ms: u64) -> Result<RoomChange, RoomError> {
        let number = self.number_of(fan).ok_or(RoomError::NotInQueue)?;
        if !self.is_admitted(fan, now_ms) {
            return Err(RoomError::NotAdmitted);
        }
        Ok(RoomChange::Done { number })
    }

    pub fn decide_settings(&self, settings: RoomSettings) -> Result<RoomChange, RoomError> {
        settings.check()?;
        Ok(RoomChange::Settings(settings))
    }

    // ---- apply ----

    pub fn apply(&mut self, change: &RoomChange) -> Result<(), RoomApplyError> {
        let err = |m: String| Err(RoomApplyError(m));
        match change {
            RoomChange::Joined { fan, at_ms } => {
                let key = FanKey::of(fan);
                if self.len() >= QUEUE_LEN_MAX {
                    return err(format!("{fan:?} joined a full queue"));
                }
                if let Some(number) = self.number_of(&key) {
                    if !self.may_rejoin(number) {
                        return err(format!("{fan:?} joined twice"));
                    }
                    // Joining again: its old place stays (expired), the
                    // index points at the new one.
                    let queue = &self.queue;
                    if let Ok(entry) = self
                        .numbers
                        .find_entry(key.hash(), |&i| queue[i as usize] == key)
                    {
                        entry.remove();
                    }
                }
                let queue = &self.queue;
                self.numbers
                    .insert_unique(key.hash(), self.len() as u32, |&i| queue[i as usize].hash());
                self.queue.push(key);
                self.joined_s
                    .push(u32::try_from(at_ms / 1000).unwrap_or(u32::MAX));
            }
            RoomChange::Shuffled { seed, .. } => {
                if self.shuffled.is_some() {
                    return err("shuffled twice".into());
                }
                // One permutation for both: it depends on the length
                // and the seed alone.
                shuffle(&mut self.queue, *seed);
                shuffle(&mut self.joined_s, *seed);
                self.numbers = index(&self.queue, &[])
                    .map_err(|fan| RoomApplyError(format!("fan {fan:?} in the queue twice")))?;
                self.shuffled = Some(*seed);
            }
            RoomChange::Admitted {
                through,
                at_ms,
                next_at_us,
            } => {
                if self.shuffled.is_none() || *through <= self.serving || *through > self.len() {
                    return err(format!(
                        "admission through {through} (serving {}, {} in the queue)",
                        self.serving,
                        self.len()
                    ));
                }
                let expires_at_ms = at_ms.saturating_add(self.settings.admission_ttl_ms);
                for number in self.serving..*through {
                    self.admissions.push(Admission::Valid { expires_at_ms });
                    self.expiries.push(Reverse((expires_at_ms, number)));
                }
                self.active += (*through - self.serving) as u32;
                self.serving = *through;
                self.next_at_us = *next_at_us;
            }
            RoomChange::Expired { number } | RoomChange::Done { number } => {
                let slot = self.admissions.get_mut(*number as usize);
                let Some(slot @ Admission::Valid { .. }) = slot else {
                    return err(format!("admission {number} is not valid"));
                };
                *slot = if matches!(change, RoomChange::Done { .. }) {
                    Admission::Done
                } else {
                    Admission::Expired
                };
                self.active -= 1;
                self.compact_expiries();
            }
            RoomChange::Settings(s) => {
                self.settings = *s;
                if self.shuffled.is_none() {
                    self.next_at_us = s.opens_at_ms.saturating_mul(1000);
                }
            }
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
        Ok(())
    }

    /// Drops expiry entries of admissions that ended otherwise once they
    /// outnumber the valid ones.
    fn compact_expiries(&mut self) {
        if self.expiries.len() > 2 * self.active as usize + 1024 {
            let admissions = &self.admissions;
            self.expiries.retain(|Reverse((at, n))| {
                admissions.get(*n as usize) == Some(&Admission::Valid { expires_at_ms: *at })
            });
        }
    }

    /// Recounts everything; panics on any disagreement. Debug builds and
    /// tests.
    pub fn check_invariants(&self) {
        assert_eq!(self.joined_s.len(), self.queue.len(), "one join time a fan");
        // Each fan's index entry is its latest place; an earlier place of
        // it expired (it joined again).
        let mut latest = 0;
        for (i, fan) in self.queue.iter().enumerate() {
            let n = self.number_of(fan).expect("every fan indexed");
            if n == i as u64 {
                latest += 1;
            } else {
                assert!(n > i as u64, "{fan:?}: indexed at {n}, behind {i}");
                assert_eq!(self.admissions.get(i), Some(&Admission::Expired), "{fan:?}");
            }
        }
        assert_eq!(self.numbers.len(), latest, "one number a fan");
        assert_eq!(self.admissions.len() as u64, self.serving);
        assert!(self.serving <= self.len());
        assert!(self.shuffled.is_some() || self.serving == 0);
        let valid = self
            .admissions
            .iter()
            .filter(|a| matches!(a, Admission::Valid { .. }))
            .count();
        assert_eq!(valid, self.active as usize, "valid admissions");
    }
}

/// The index from fan key to queue number: a fan's latest place. A key
/// may come again only after a place whose admission expired
/// (`expired[number]`: the fan joined again); the first key found twice
/// otherwise is the error.
fn index(queue: &[FanKey], expired: &[bool]) -> Result<HashTable<u32>, FanKey> {
    let mut numbers = HashTable::with_capacity(queue.len());
    for (i, key) in queue.iter().enumerate() {
        let found = numbers.find_mut(key.hash(), |&j: &u32| queue[j as usize] == *key);
        match found {
            Some(j) if expired.get(*j as usize) == Some(&true) => *j = i as u32,
            Some(_) => return Err(*key),
            None => {
                numbers.insert_unique(key.hash(), i as u32, |&j| queue[j as usize].hash());
            }
        }
    }
    Ok(numbers)
}

/// Puts `fans` in the order seed `seed` gives: Fisher-Yates from the last
/// place down, each swap partner drawn from SplitMix64 and bounded by
/// Lemire's multiply-and-reject (no modulo bias). Part of the journal's
/// meaning: never change it, or a replay reorders the queue.
pub fn shuffle<T>(fans: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = || splitmix64(&mut state);
    for i in (1..fans.len()).rev() {
        let bound = i as u64 + 1;
        // Lemire: the high word of x * bound is uniform on 0..bound once
        // the low word's biased values are rejected.
        let threshold = bound.wrapping_neg() % bound;
        let j = loop {
            let m = u128::from(next()) * u128::from(bound);
            if (m as u64) >= threshold {
                break (m >> 64) as u64;
            }
        };
        fans.swap(i, j as usize);
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): the next output of the
/// generator whose state is `state`.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENS: u64 = 1_000_000;

    fn settings(rate: u32, cap: Option<u32>) -> RoomSettings {
        RoomSettings {
            queue_opens_at_ms: OPENS - 600_000,
            opens_at_ms: OPENS,
            rate_per_sec: rate,
            active_max: cap,
            admission_ttl_ms: 60_000,
            paused: false,
        }
    }

    fn fan(i: usize) -> FanId {
        format!("fan-{i}").into()
    }

    fn key(i: usize) -> FanKey {
        FanKey::of(&fan(i))
    }

    fn apply(room: &mut WaitingRoom, c: Option<RoomChange>) {
        if let Some(c) = c {
            room.apply(&c).unwrap();
        }
    }

    /// `pre` fans in the pre-queue, shuffled with `seed` at the opening,
    /// then `late` fans after it.
    fn room(pre: usize, late: usize, seed: u64, rate: u32, cap: Option<u32>) -> WaitingRoom {
        let mut r = WaitingRoom::new(settings(rate, cap));
        for i in 0..pre {
            {
                let c = r.decide_join(&fan(i), OPENS - 1000).unwrap();
                apply(&mut r, c);
            }
        }
        assert_eq!(r.decide_join(&fan(pre), OPENS), Err(RoomError::OpeningDue));
        {
            let c = r.decide_opening(OPENS, seed);
            apply(&mut r, c);
        }
        for i in pre..pre + late {
            {
                let c = r.decide_join(&fan(i), OPENS + i as u64).unwrap();
                apply(&mut r, c);
            }
        }
        r
    }

    /// Ticks every `step_ms` from the opening to `until_ms`, admitting
    /// and expiring; returns every admission as (fan, at).
    fn run(r: &mut WaitingRoom, step_ms: u64, until_ms: u64) -> Vec<(FanKey, u64)> {
        let mut out = Vec::new();
        let mut now = OPENS;
        while now <= until_ms {
            for c in r.decide_expiries(now, usize::MAX) {
                r.apply(&c).unwrap();
            }
            if let Some(c) = r.decide_admission(now) {
                let from = r.serving();
                r.apply(&c).unwrap();
                for n in from..r.serving() {
                    out.push((r.fan(n).unwrap(), now));
                }
            }
            now += step_ms;
        }
        out
    }

    #[test]
    fn joining_again_keeps_the_place_and_the_queue_opens_on_time() {
        let mut r = WaitingRoom::new(settings(10, None));
        assert_eq!(
            r.decide_join(&fan(0), OPENS - 600_001),
            Err(RoomError::NotOpenYet {
                opens_at_ms: OPENS - 600_000
            })
        );
        {
            let c = r.decide_join(&fan(0), OPENS - 5).unwrap();
            apply(&mut r, c);
        }
        assert_eq!(r.standing(&FanKey::of("fan-0")), Some(Standing::PreQueue));
        assert_eq!(r.decide_join(&fan(0), OPENS - 4), Ok(None));
        {
            let c = r.decide_opening(OPENS, 7);
            apply(&mut r, c);
        }
        assert_eq!(r.decide_opening(OPENS + 1, 8), None, "one shuffle");
        assert_eq!(
            r.standing(&FanKey::of("fan-0")),
            Some(Standing::Waiting {
                number: 0,
                ahead: 0
            })
        );
        assert_eq!(r.decide_join(&fan(0), OPENS + 10), Ok(None));
        assert_eq!(r.standing(&FanKey::of("nobody")), None);
    }

    /// The shuffle is a permutation that the seed alone decides; the
    /// pre-queue is admitted exactly in its order, then the later fans in
    /// arrival order.
    #[test]
    fn admission_follows_the_shuffle_then_arrival() {
        let mut r = room(50, 20, 42, 10, None);
        let admitted = run(&mut r, 100, OPENS + 10_000);
        assert_eq!(admitted.len(), 70);
        let mut expected: Vec<FanKey> = (0..50).map(key).collect();
        shuffle(&mut expected, 42);
        expected.extend((50..70).map(key));
        let got: Vec<FanKey> = admitted.iter().map(|(f, _)| *f).collect();
        assert_eq!(got, expected);
        let mut sorted = got[..50].to_vec();
        sorted.sort();
        let mut all: Vec<FanKey> = (0..50).map(key).collect();
        all.sort();
        assert_eq!(sorted, all, "a permutation");
        assert_ne!(&got[..50], &(0..50).map(key).collect::<Vec<_>>()[..]);
        assert_eq!(r.shuffle_seed(), Some(42));
    }

    /// The shuffle's order never changes (a journal replays it).
    #[test]
    fn the_shuffle_is_stable() {
        let mut v: Vec<u32> = (0..10).collect();
        shuffle(&mut v, 1);
        assert_eq!(v, [9, 0, 1, 4, 8, 2, 3, 7, 6, 5]);
        // The generator is the reference SplitMix64.
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(&mut state), 0x6e78_9e6a_a1b9_65f4);
    }

    /// Over a fixed set of seeds, whoever is admitted first is spread
    /// evenly over the pre-queue: chi-square over 10 places with 9
    /// degrees of freedom, below the 0.1% critical value (27.88). The
    /// seeds are fixed, so the test never flakes.
    #[test]
    fn the_first_admitted_is_uniform_over_the_pre_queue() {
        const PLACES: usize = 10;
        const SEEDS: u64 = 10_000;
        let mut first = [0u64; PLACES];
        for seed in 0..SEEDS {
            let mut order: Vec<usize> = (0..PLACES).collect();
            shuffle(&mut order, seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
            first[order[0]] += 1;
        }
        let expected = SEEDS as f64 / PLACES as f64;
        let chi2: f64 = first
            .iter()
            .map(|&o| (o as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 27.88, "chi-square {chi2}: {first:?}");
    }

    /// Admissions keep to the rate (a second's credit at most), and do
    /// not wait for fans who never come back.
    #[test]
    fn admissions_keep_to_the_rate() {
        let mut r = room(5_000, 0, 3, 50, None);
        let admitted = run(&mut r, 100, OPENS + 60_000);
        // 60 s at 50 a second, the first at the opening.
        assert!(
            (2_950..=3_051).contains(&admitted.len()),
            "{}",
            admitted.len()
        );
        // Any one-second window: at most the rate, plus the credit.
        let times: Vec<u64> = admitted.iter().map(|(_, at)| *at).collect();
        for (i, &t) in times.iter().enumerate() {
            let within = times[i..].iter().take_while(|&&u| u < t + 1000).count();
            assert!(within <= 100, "{within} admitted in the second from {t}");
        }
    }

    /// The cap holds admitted fans still shopping; it frees as admissions
    /// expire or end.
    #[test]
    fn the_cap_frees_as_admissions_expire_or_end() {
        let mut r = room(100, 0, 9, 1_000, Some(10));
        let admitted = run(&mut r, 100, OPENS + 1_000);
        assert_eq!(admitted.len(), 10);
        assert_eq!(r.active(), 10);
        assert_eq!(r.decide_admission(OPENS + 2_000), None, "the cap is full");
        // One fan books: one more is admitted.
        let done = admitted[0].0;
        {
            let c = Some(r.decide_done(&done, OPENS + 2_000).unwrap());
            apply(&mut r, c);
        }
        assert_eq!(
            r.decide_done(&done, OPENS + 2_000),
            Err(RoomError::NotAdmitted)
        );
        let Some(RoomChange::Admitted { through, .. }) = r.decide_admission(OPENS + 2_000) else {
            panic!("one place freed")
        };
        assert_eq!(through, 11);
        // The rest never come back: their admissions expire after the
        // TTL, and the fans behind them are admitted.
        let admitted = run(&mut r, 1_000, OPENS + 70_000);
        assert!(admitted.len() >= 10, "{}", admitted.len());
        assert!(r.active() <= 10);
        assert!(matches!(
            r.standing(&admitted[0].0),
            Some(Standing::Admitted { .. } | Standing::Expired { .. })
        ));
    }

    /// Paused, nobody is admitted; resumed, admission goes on in order.
    #[test]
    fn pausing_stops_admission_and_resuming_goes_on() {
        let mut r = room(20, 0, 5, 10, None);
        let paused = RoomSettings {
            paused: true,
            ..*r.settings()
        };
        {
            let c = Some(r.decide_settings(paused).unwrap());
            apply(&mut r, c);
        }
        assert_eq!(r.decide_admission(OPENS + 5_000), None);
        let resumed = RoomSettings {
            paused: false,
            ..paused
        };
        {
            let c = Some(r.decide_settings(resumed).unwrap());
            apply(&mut r, c);
        }
        let Some(RoomChange::Admitted { through, .. }) = r.decide_admission(OPENS + 5_000) else {
            panic!("admitted after resuming")
        };
        // A second's worth (the rate), not the whole pause.
        assert_eq!(through, 10);
        let bad = RoomSettings {
            rate_per_sec: 0,
            ..resumed
        };
        assert!(r.decide_settings(bad).is_err());
    }

    /// A room rebuilt from its changes is the same room.
    #[test]
    fn replaying_the_changes_rebuilds_the_room() {
        let mut live = WaitingRoom::new(settings(7, Some(5)));
        let mut log = Vec::new();
        let mut now = OPENS - 100;
        for i in 0..40u64 {
            let mut changes = Vec::new();
            if let Some(c) = live.decide_opening(now, 99) {
                changes.push(c);
            }
            for c in changes.drain(..) {
                live.apply(&c).unwrap();
                log.push(c);
            }
            if let Ok(Some(c)) = live.decide_join(&fan(i as usize), now) {
                live.apply(&c).unwrap();
                log.push(c);
            }
            for c in live.decide_expiries(now, usize::MAX) {
                live.apply(&c).unwrap();
                log.push(c);
            }
            if let Some(c) = live.decide_admission(now) {
                live.apply(&c).unwrap();
                log.push(c);
            }
            now += 2_500;
        }
        let mut replayed = WaitingRoom::new(settings(7, Some(5)));
        for c in &log {
            replayed.apply(c).unwrap();
        }
        for i in 0..40 {
            let f = format!("fan-{i}");
            let k = FanKey::of(&f);
            assert_eq!(replayed.standing(&k), live.standing(&k), "{f}");
        }
        assert_eq!(replayed.serving(), live.serving());
        assert_eq!(replayed.decide_admission(now), live.decide_admission(now));
        // A change that does not fit is an error, not a panic.
        let shuffle = log
            .iter()
            .find(|c| matches!(c, RoomChange::Shuffled { .. }))
            .unwrap();
        assert!(replayed.apply(shuffle).is_err(), "shuffled twice");
        let waiting = (0..40)
            .map(fan)
            .find(|f| {
                matches!(
                    live.standing(&FanKey::of(f)),
                    Some(Standing::Waiting { .. })
                )
            })
            .unwrap();
        let twice = RoomChange::Joined {
            fan: waiting,
            at_ms: now,
        };
        assert!(replayed.apply(&twice).is_err(), "joined twice");
    }

    #[test]
    fn a_room_rebuilds_from_its_parts_and_refuses_impossible_ones() {
        let mut r = room(50, 30, 7, 10, Some(8));
        run(&mut r, 100, OPENS + 3_000);
        let back = WaitingRoom::from_parts(r.parts()).unwrap();
        assert_eq!(back.parts(), r.parts());
        assert_eq!((back.serving(), back.active()), (r.serving(), r.active()));
        for n in 0..r.len() {
            let f = r.fan(n).unwrap();
            assert_eq!(back.standing(&f), r.standing(&f));
        }

        let mut twice = r.parts();
        twice.queue[3] = twice.queue[4];
        assert!(WaitingRoom::from_parts(twice).is_err());
        let mut unshuffled = r.parts();
        unshuffled.shuffled = None;
        assert!(WaitingRoom::from_parts(unshuffled).is_err());
        let mut past = r.parts();
        past.queue.truncate(past.admissions.len() - 1);
        assert!(WaitingRoom::from_parts(past).is_err());
        let mut zero = r.parts();
        zero.settings.rate_per_sec = 0;
        assert!(WaitingRoom::from_parts(zero).is_err());
    }

    /// A fan whose admission ran out unused may queue again, at the
    /// back; one waiting, admitted or done keeps its place. The room
    /// with the fan in it twice rebuilds from its parts.
    #[test]
    fn an_expired_fan_may_queue_again_at_the_back() {
        let mut r = room(4, 0, 3, 10, None);
        run(&mut r, 100, OPENS + 1_000);
        assert_eq!(r.serving(), 4);
        let first = r.fan(0).unwrap();
        let who = (0..4).find(|&i| key(i) == first).unwrap();
        let done = (0..4).find(|&i| key(i) == r.fan(1).unwrap()).unwrap();
        {
            let c = Some(r.decide_done(&key(done), OPENS + 2_000).unwrap());
            apply(&mut r, c);
        }
        // Admitted, not expired yet: joining again keeps the place.
        assert_eq!(r.decide_join(&fan(who), OPENS + 2_000), Ok(None));
        for c in r.decide_expiries(OPENS + 61_000, usize::MAX) {
            r.apply(&c).unwrap();
        }
        assert_eq!(r.standing(&key(who)), Some(Standing::Expired { number: 0 }));
        assert_eq!(
            r.decide_join(&fan(done), OPENS + 61_000),
            Ok(None),
            "done stays done"
        );
        {
            let c = r.decide_join(&fan(who), OPENS + 61_000).unwrap();
            assert!(c.is_some(), "an expired fan joins again");
            apply(&mut r, c);
        }
        assert_eq!(
            r.standing(&key(who)),
            Some(Standing::Waiting {
                number: 4,
                ahead: 0
            })
        );
        assert_eq!(r.len(), 5);
        assert_eq!(r.decide_join(&fan(who), OPENS + 61_001), Ok(None));
        let back = WaitingRoom::from_parts(r.parts()).unwrap();
        assert_eq!(back.standing(&key(who)), r.standing(&key(who)));
        {
            let c = r.decide_admission(OPENS + 61_100);
            assert!(matches!(c, Some(RoomChange::Admitted { through: 5, .. })));
            apply(&mut r, c);
        }
        assert!(matches!(
            r.standing(&key(who)),
            Some(Standing::Admitted { number: 4, .. })
        ));
    }
}
