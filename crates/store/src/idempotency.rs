//! `Idempotency-Key` bookkeeping: the same key with the same request gets
//! the first answer again; the same key with another request is refused.
//!
//! Only successful changes are remembered, and they are remembered in the
//! journal (the key and request fingerprint ride in the change's own
//! record), so a fan's retry after a crash still finds the first answer.
//! Refusals (4xx) change nothing, so a retry simply asks again.
//!
//! Bounded: at most `entries_max` keys, each kept for `ttl_ms`, and at
//! most `scope_max` per scope. A key is `<scope>\n<key>`: the handlers
//! scope each fan's keys to the fan, so two fans' equal keys are two
//! requests. A scope's keys share one shard; past its bound its oldest
//! answers go first, so one fan filling the store forgets its own
//! answers. Many fans together filling a shard make it forget its oldest
//! answers, whoever gave them: a new key is refused (`Full`) only while
//! every key of its shard is a request in flight, so no crowd can deny
//! the keyed requests of others. Which shard a scope falls in is a hash
//! keyed afresh by every store, so no one can aim a crowd at one shard;
//! to push out an answer a fan may still retry (seconds old), a crowd
//! must make as many new answers as the whole store holds in that time.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

/// How long an `Idempotency-Key`'s answer is kept by default: a day. Also
/// what offline snapshots keep, since they cannot know the server's.
pub const TTL_SECS_DEFAULT: u64 = 86_400;

/// Longest `Idempotency-Key` a client may send.
pub const KEY_LEN_MAX: usize = 255;
/// Longest key as kept: its scope (a fan id of at most 128 bytes, or the
/// admin's), a newline, the client's key.
pub const SCOPED_KEY_LEN_MAX: usize = 512;

const SHARDS: usize = 16;

/// Claims a shard's order queue may hold beyond twice its live keys (the
/// rest are of keys since freed or reclaimed) before it is compacted.
const ORDER_STALE_MAX: usize = 1_024;

#[derive(Debug, Clone)]
enum Slot {
    /// A request with this key is being answered right now.
    InFlight { fingerprint: [u8; 32] },
    Done {
        fingerprint: [u8; 32],
        status: u16,
        body: Bytes,
        at_ms: u64,
    },
}

#[derive(Debug)]
struct Entry {
    /// Which claim of the key this is (see `Shard::order`).
    seq: u64,
    slot: Slot,
}

/// One lock's worth of keys.
#[derive(Debug)]
struct Shard {
    /// The store's scope hasher (the same keys in every shard).
    hasher: RandomState,
    map: HashMap<Arc<str>, Entry>,
    /// (seq, claimed at, key) of every claim, oldest first: expiry pops
    /// from the front instead of scanning the map. A claim whose key was
    /// freed or claimed again since is stale and skipped; stale claims are
    /// bounded by compaction.
    order: VecDeque<(u64, u64, Arc<str>)>,
    next_seq: u64,
    /// (seq, key) of each scope's claims, oldest first, when scopes are
    /// bounded. Claims go stale as in `order`; a scope's stale claims at
    /// the front are dropped whenever one of its keys goes, so a scope
    /// whose keys are all gone is gone too.
    /// Keyed by the scope's hash: two scopes sharing a hash (1 in 2^64)
    /// would merely share a bound.
    by_scope: HashMap<u64, VecDeque<(u64, Arc<str>)>>,
    /// Answers forgotten to make room for others' keys.
    evicted: u64,
}

/// The scope of a key: what comes before its first `\n` (the whole key
/// when there is none).
fn scope_of(key: &str) -> &str {
    key.split_once('\n').map_or(key, |(scope, _)| scope)
}

/// A key's scope hashed with `hasher`'s keys: picks its shard and names
/// it in `by_scope`.
fn scope_hash(hasher: &RandomState, key: &str) -> u64 {
    hasher.hash_one(scope_of(key))
}

impl Shard {
    fn new(hasher: RandomState) -> Shard {
        Shard {
            hasher,
            map: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            by_scope: HashMap::new(),
            evicted: 0,
        }
    }

    fn scope_hash(&self, key: &str) -> u64 {
        scope_hash(&self.hasher, key)
    }

    fn is_current(&self, seq: u64, key: &str) -> bool {
        self.map.get(key).is_some_and(|e| e.seq == seq)
    }

    /// Drops answers older than `ttl_ms` at `now_ms`, oldest first, and
    /// stale claims; stops at the first claim younger than the TTL (an
    /// answer is never older than its claim), so a live store pays one
    /// comparison.
    fn expire(&mut self, now_ms: u64, ttl_ms: u64) {
        while let Some((seq, claimed_at_ms, key)) = self.order.front() {
            if now_ms < claimed_at_ms.saturating_add(ttl_ms) {
                break;
            }
            match self.map.get(&**key) {
                Some(e) if e.seq == *seq => match e.slot {
                    Slot::Done { at_ms, .. } if now_ms >= at_ms.saturating_add(ttl_ms) => {
                        let key = Arc::clone(key);
                        let scope = self.scope_hash(&key);
                        self.remove(&key, scope);
                    }
                    _ => break,
                },
                _ => {}
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.map.len() + ORDER_STALE_MAX {
            let order = std::mem::take(&mut self.order);
            self.order = order
                .into_iter()
                .filter(|(seq, _, key)| self.is_current(*seq, key))
                .collect();
        }
    }

    /// Forgets `key` (of scope hash `scope`), and its scope's stale
    /// claims at the front.
    fn remove(&mut self, key: &str, scope: u64) {
        if self.map.remove(key).is_none() {
            return;
        }
        let Some(claims) = self.by_scope.get_mut(&scope) else {
            return;
        };
        while let Some((seq, k)) = claims.front() {
            if self.map.get(&**k).is_some_and(|e| e.seq == *seq) {
                break;
            }
            claims.pop_front();
        }
        if claims.is_empty() {
            self.by_scope.remove(&scope);
        }
    }

    /// A new claim of `key`, which is not in the map. With `scope_max`,
    /// the oldest answers of the key's scope beyond it are forgotten
    /// (never a request in flight).
    fn claim(
        &mut self,
        key: &str,
        slot: Slot,
        at_ms: u64,
        scope_max: Option<usize>,
        scope: u64,
    ) -> Arc<str> {
        let key: Arc<str> = key.into();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.map.insert(Arc::clone(&key), Entry { seq, slot });
        self.order.push_back((seq, at_ms, Arc::clone(&key)));
        if let Some(max) = scope_max {
            self.bound_scope(&key, seq, max, scope);
        }
        key
    }

    fn bound_scope(&mut self, key: &Arc<str>, seq: u64, max: usize, scope: u64) {
        self.by_scope
            .entry(scope)
            .or_default()
            .push_back((seq, Arc::clone(key)));
        self.trim_scope(scope, max);
    }

    /// Forgets the oldest answers of `scope` until it has at most `keep`
    /// keys (or only requests in flight beyond them).
    fn trim_scope(&mut self, scope: u64, keep: usize) {
        let Shard { map, by_scope, .. } = self;
        let Some(claims) = by_scope.get_mut(&scope) else {
            return;
        };
        if claims.len() <= keep {
            return;
        }
        claims.retain(|(seq, k)| map.get(&**k).is_some_and(|e| e.seq == *seq));
        let mut over = claims.len().saturating_sub(keep);
        let mut i = 0;
        while over > 0 && i < claims.len() {
            let (_, k) = &claims[i];
            if matches!(map.get(&**k).map(|e| &e.slot), Some(Slot::Done { .. })) {
                cov_mark::hit!(a_scope_forgets_its_oldest_answer);
                map.remove(&**k);
                claims.remove(i);
                over -= 1;
            } else {
                i += 1;
            }
        }
    }

    /// Makes room for one more key below `entries_max` by forgetting the
    /// oldest answers first, whoever gave them (never a request in
    /// flight). False if only requests in flight are left to forget.
    fn make_room(&mut self, entries_max: usize) -> bool {
        let mut i = 0;
        while self.map.len() >= entries_max {
            let Some((seq, _, key)) = self.order.get(i) else {
                return false;
            };
            let (seq, key) = (*seq, Arc::clone(key));
            let slot = self
                .map
                .get(&*key)
                .filter(|e| e.seq == seq)
                .map(|e| &e.slot);
            let gone = match slot {
                Some(Slot::Done { .. }) => {
                    cov_mark::hit!(a_full_shard_forgets_its_oldest_answer);
                    let scope = self.scope_hash(&key);
                    self.remove(&key, scope);
                    self.evicted += 1;
                    true
                }
                Some(Slot::InFlight { .. }) => false,
                None => true, // a stale claim
            };
            // A claim at the front goes with its key; one behind a request
            // in flight stays, stale, until expiry or compaction.
            if gone && i == 0 {
                self.order.pop_front();
            } else {
                i += 1;
            }
        }
        true
    }

    /// Puts `slot` under `key`: in place if the key is claimed (its place
    /// in the order kept), else as a new claim.
    fn put(&mut self, key: &str, slot: Slot, at_ms: u64, scope_max: Option<usize>, scope: u64) {
        match self.map.get_mut(key) {
            Some(e) => e.slot = slot,
            None => {
                self.claim(key, slot, at_ms, scope_max, scope);
            }
        }
    }
}

/// A remembered answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub key: String,
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub body: Bytes,
    pub at_ms: u64,
}

#[derive(Debug)]
pub struct IdempotencyStore {
    /// Keys the scope hash: made afresh for every store.
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
    ttl_ms: u64,
    entries_max_per_shard: usize,
    /// Most answers kept per scope; `None`: unbounded.
    scope_max: Option<usize>,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Begin {
    /// First time: go ahead, and `complete` or drop the guard.
    Fresh(Pending),
    /// Answered before: send this again.
    Replay { status: u16, body: Bytes },
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key has not finished yet.
    InFlight,
    /// No room for another key right now: every key of its shard is a
    /// request in flight (answers are forgotten, oldest first, to make
    /// room; requests in flight never are).
    Full,
}

impl IdempotencyStore {
    /// At most `entries_max` keys in all, `scope_max` per scope (`None`:
    /// no bound per scope), each for `ttl_ms`.
    pub fn new(ttl_ms: u64, entries_max: usize, scope_max: Option<usize>) -> Arc<IdempotencyStore> {
        assert!(scope_max != Some(0));
        let hasher = RandomState::new();
        Arc::new(IdempotencyStore {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(hasher.clone())))
                .collect(),
            hasher,
            ttl_ms,
            entries_max_per_shard: entries_max.div_ceil(SHARDS),
            scope_max,
        })
    }

    /// The shard of a scope (by its hash): a scope's keys share one.
    fn shard(&self, scope: u64) -> MutexGuard<'_, Shard> {
        self.shards[(scope % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn begin(self: &Arc<Self>, key: &str, fingerprint: [u8; 32], now_ms: u64) -> Begin {
        // Hashed once, for the shard, the scope's bound and its claim.
        let scope = scope_hash(&self.hasher, key);
        let mut shard = self.shard(scope);
        match shard.map.get(key).map(|e| &e.slot) {
            Some(Slot::Done {
                fingerprint: f,
                status,
                body,
                at_ms,
            }) if now_ms < at_ms.saturating_add(self.ttl_ms) => {
                if *f == fingerprint {
                    return Begin::Replay {
                        status: *status,
                        body: body.clone(),
                    };
                }
                return Begin::Mismatch;
            }
            Some(Slot::InFlight { fingerprint: f }) => {
                return if *f == fingerprint {
                    Begin::InFlight
                } else {
                    Begin::Mismatch
                };
            }
            Some(Slot::Done { .. }) => {
                // Expired: the key is free; its old claim goes stale.
                shard.remove(key, scope);
            }
            None => {}
        }
        shard.expire(now_ms, self.ttl_ms);
        if let Some(max) = self.scope_max {
            // Room for this key in its scope first: a fan at its bound
            // makes room from its own answers, not from the store's.
            shard.trim_scope(scope, max - 1);
        }
        if !shard.make_room(self.entries_max_per_shard) {
            return Begin::Full;
        }
        let key = shard.claim(
            key,
            Slot::InFlight { fingerprint },
            now_ms,
            self.scope_max,
            scope,
        );
        Begin::Fresh(Pending {
            store: Arc::clone(self),
            key,
            scope,
            fingerprint,
            finished: false,
        })
    }

    /// Every remembered answer still fresh at `now_ms`, sorted by key:
    /// what a snapshot keeps.
    pub fn answers(&self, now_ms: u64) -> Vec<Answer> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (key, e) in shard.map.iter() {
                if let Slot::Done {
                    fingerprint,
                    status,
                    body,
                    at_ms,
                } = &e.slot
                {
                    if now_ms < at_ms.saturating_add(self.ttl_ms) {
                        out.push(Answer {
                            key: key.to_string(),
                            fingerprint: *fingerprint,
                            status: *status,
                            body: body.clone(),
                            at_ms: *at_ms,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Remembers an answer: a request's own (`Pending::complete`), or one
    /// found in the journal or a snapshot on start-up (give those oldest
    /// first: expiry goes in the order answers were remembered).
    pub fn restore(&self, key: &str, fingerprint: [u8; 32], status: u16, body: Bytes, at_ms: u64) {
        self.put(
            scope_hash(&self.hasher, key),
            key,
            fingerprint,
            status,
            body,
            at_ms,
        );
    }

    fn put(
        &self,
        scope: u64,
        key: &str,
        fingerprint: [u8; 32],
        status: u16,
        body: Bytes,
        at_ms: u64,
    ) {
        self.shard(scope).put(
            key,
            Slot::Done {
                fingerprint,
                status,
                body,
                at_ms,
            },
            at_ms,
            self.scope_max,
            scope,
        );
    }

    /// Drops every answer older than the TTL.
    pub fn prune(&self, now_ms: u64) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expire(now_ms, self.ttl_ms);
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers forgotten since start to make room for other keys (before
    /// their TTL, and not by their own scope's bound).
    pub fn evicted(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).evicted)
            .sum()
    }
}

/// A key claimed by one request. Dropping it without `complete` frees the
/// key again (the request was refused, or failed before changing anything).
#[derive(Debug)]
pub struct Pending {
    store: Arc<IdempotencyStore>,
    key: Arc<str>,
    /// The key's scope, hashed.
    scope: u64,
    fingerprint: [u8; 32],
    finished: bool,
}

impl Pending {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    pub fn complete(mut self, status: u16, body: Bytes, at_ms: u64) {
        self.store
            .put(self.scope, &self.key, self.fingerprint, status, body, at_ms);
        self.finished = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.finished {
            let mut shard = self.store.shard(self.scope);
            if matches!(
                shard.map.get(&*self.key).map(|e| &e.slot),
                Some(Slot::InFlight { .. })
            ) {
                shard.remove(&self.key, self.scope);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_refuses_and_frees() {
        let store = IdempotencyStore::new(1000, 64, None);
        let Begin::Fresh(p) = store.begin("k", [1; 32], 0) else {
            panic!()
        };
        assert!(matches!(store.begin("k", [1; 32], 0), Begin::InFlight));
        assert!(matches!(store.begin("k", [2; 32], 0), Begin::Mismatch));
        p.complete(201, Bytes::from_static(b"{}"), 0);
        assert!(matches!(
            store.begin("k", [1; 32], 999),
            Begin::Replay { status: 201, .. }
        ));
        assert!(matches!(store.begin("k", [2; 32], 999), Begin::Mismatch));
        // Expired: the key is free again.
        assert!(matches!(store.begin("k", [2; 32], 1000), Begin::Fresh(_)));
        // A dropped (refused) request frees its key.
        let Begin::Fresh(p) = store.begin("j", [1; 32], 0) else {
            panic!()
        };
        drop(p);
        assert!(matches!(store.begin("j", [3; 32], 0), Begin::Fresh(_)));
    }

    #[test]
    fn bounded() {
        let store = IdempotencyStore::new(1000, 16, None);
        let mut kept = Vec::new();
        for i in 0..16 {
            if let Begin::Fresh(p) = store.begin(&format!("k{i}"), [0; 32], 0) {
                kept.push(p);
            }
        }
        let full =
            (16..200).any(|i| matches!(store.begin(&format!("k{i}"), [0; 32], 0), Begin::Full));
        assert!(full);
        assert!(store.len() <= 16 + SHARDS);
    }

    /// Tries 1,000 new keys; answers those that fit.
    fn fill(store: &Arc<IdempotencyStore>, prefix: &str, now_ms: u64) -> usize {
        let mut answered = 0;
        for i in 0..1_000 {
            match store.begin(&format!("{prefix}{i}"), [0; 32], now_ms) {
                Begin::Fresh(p) => {
                    p.complete(201, Bytes::from_static(b"{}"), now_ms);
                    answered += 1;
                }
                Begin::Full => {}
                other => panic!("{other:?}"),
            }
        }
        answered
    }

    /// A full shard forgets its oldest answers to make room, never a
    /// request in flight; it refuses a key only when nothing but requests
    /// in flight is left.
    #[test]
    fn a_full_store_forgets_its_oldest_answers_first() {
        cov_mark::check!(a_full_shard_forgets_its_oldest_answer);
        let store = IdempotencyStore::new(1_000, 64, None);
        // Every shard full: 4 keys each over 16 shards.
        assert_eq!(fill(&store, "a", 0), 1_000);
        assert_eq!(store.len(), 64);
        assert_eq!(store.evicted(), 1_000 - 64);
        // The newest answers are the ones kept: each shard's last four.
        assert!(matches!(
            store.begin("a999", [0; 32], 1),
            Begin::Replay { status: 201, .. }
        ));
        assert!(!store.answers(1).iter().any(|a| a.key == "a0"));
        // Requests in flight fill one shard: its next key is refused, and
        // what is in flight stays.
        let mut flying = Vec::new();
        let mut i = 0;
        let refused = loop {
            match store.begin(&format!("f{i}"), [0; 32], 2) {
                Begin::Fresh(p) => flying.push(p),
                Begin::Full => break format!("f{i}"),
                other => panic!("{other:?}"),
            }
            i += 1;
        };
        assert!(flying.len() <= 64, "{}", flying.len());
        for p in &flying {
            assert!(matches!(store.begin(p.key(), [0; 32], 2), Begin::InFlight));
        }
        drop(flying);
        assert!(matches!(store.begin(&refused, [0; 32], 2), Begin::Fresh(_)));
    }

    /// The attack of a crowd: a thousand fans, each making its share of
    /// 64 keyed answers, fill every shard many times over. Every other
    /// fan's keyed request still has room, and keeps its answer while
    /// the crowd goes on at a smaller pace.
    #[test]
    fn a_crowd_of_fans_cannot_take_the_room_of_others() {
        let store = IdempotencyStore::new(86_400_000, 16 * 1_000, Some(64));
        for fan in 0..1_000 {
            for k in 0..64 {
                answer(&store, &format!("crowd-{fan}\nk{k}"), 1);
            }
        }
        assert_eq!(store.len(), 16_000);
        for fan in 0..500 {
            answer(&store, &format!("fan-{fan}\nbuy"), 2);
        }
        // The crowd goes on, with fresh fans: another 2,000 answers, an
        // eighth of the store.
        for fan in 1_000..1_100 {
            for k in 0..20 {
                answer(&store, &format!("crowd-{fan}\nk{k}"), 3);
            }
        }
        for fan in 0..500 {
            let key = format!("fan-{fan}\nbuy");
            assert!(
                matches!(store.begin(&key, [0; 32], 4), Begin::Replay { .. }),
                "{key}"
            );
        }
    }

    fn answer(store: &Arc<IdempotencyStore>, key: &str, now_ms: u64) {
        match store.begin(key, [0; 32], now_ms) {
            Begin::Fresh(p) => p.complete(201, Bytes::from_static(b"{}"), now_ms),
            other => panic!("{key}: {other:?}"),
        }
    }

    fn replays(store: &Arc<IdempotencyStore>, key: &str) -> bool {
        matches!(store.begin(key, [0; 32], 0), Begin::Replay { .. })
    }

    /// A fan past its bound forgets its own oldest answers; every other
    /// fan, its shard-mates included, keeps all of theirs and has room.
    #[test]
    fn a_fan_that_fills_the_store_forgets_its_own_answers_only() {
        cov_mark::check!(a_scope_forgets_its_oldest_answer);
        // 64 keys per shard in all, 3 per fan.
        let store = IdempotencyStore::new(1_000, 64 * SHARDS, Some(3));
        // Fans of every shard, each with an answer.
        let others: Vec<String> = (0..200).map(|i| format!("fan-{i}")).collect();
        for f in &others {
            answer(&store, &format!("{f}\nk1"), 0);
        }
        for i in 0..1_000 {
            answer(&store, &format!("greedy\nk{i}"), 0);
        }
        assert!(replays(&store, "greedy\nk999"));
        assert!(replays(&store, "greedy\nk997"));
        // (Asking with a forgotten key is a new request: it makes room too.)
        assert!(!replays(&store, "greedy\nk0"), "the oldest went first");
        for f in &others {
            assert!(replays(&store, &format!("{f}\nk1")), "{f}");
            answer(&store, &format!("{f}\nk2"), 0);
        }
        // One in flight is never forgotten to make room.
        let Begin::Fresh(flying) = store.begin("slow\na", [0; 32], 0) else {
            panic!()
        };
        for i in 0..5 {
            answer(&store, &format!("slow\nb{i}"), 0);
        }
        assert!(matches!(
            store.begin("slow\na", [0; 32], 0),
            Begin::InFlight
        ));
        flying.complete(201, Bytes::new(), 0);
        // Scopes whose keys all went leave nothing behind.
        store.prune(1_000);
        assert_eq!(store.len(), 0);
        for shard in &store.shards {
            assert!(shard.lock().unwrap().by_scope.is_empty());
        }
    }

    #[test]
    fn refused_requests_leave_nothing_behind() {
        let store = IdempotencyStore::new(86_400_000, 100_000, Some(8));
        for i in 0..100_000 {
            let Begin::Fresh(p) = store.begin(&format!("k{i}"), [0; 32], 0) else {
                panic!()
            };
            if i % 100 == 0 {
                p.complete(201, Bytes::from_static(b"{}"), 0);
            } else {
                drop(p); // a 409: the key is free again
            }
        }
        assert_eq!(store.len(), 1_000);
        for shard in &store.shards {
            let shard = shard.lock().unwrap();
            assert!(shard.order.len() <= 2 * shard.map.len() + ORDER_STALE_MAX + 1);
            // Every live key is still in the order, once.
            let current = shard
                .order
                .iter()
                .filter(|(seq, _, key)| shard.is_current(*seq, key))
                .count();
            assert_eq!(current, shard.map.len());
        }
    }
}
