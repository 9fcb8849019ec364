//! `Idempotency-Key` bookkeeping: the same key with the same request gets
//! the first answer again; the same key with another request is refused.
//!
//! Only successful changes are remembered, and they are remembered in the
//! journal (the key and request fingerprint ride in the change's own
//! record), so a fan's retry after a crash still finds the first answer.
//! Refusals (4xx) change nothing, so a retry simply asks again.
//!
//! Bounded: at most `entries_max` keys, each kept for `ttl_ms`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::web::Bytes;

const SHARDS: usize = 16;

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
    shards: Vec<Mutex<HashMap<String, Slot>>>,
    ttl_ms: u64,
    entries_max_per_shard: usize,
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
    /// No room for another key right now.
    Full,
}

impl IdempotencyStore {
    pub fn new(ttl_ms: u64, entries_max: usize) -> Arc<IdempotencyStore> {
        Arc::new(IdempotencyStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            ttl_ms,
            entries_max_per_shard: entries_max.div_ceil(SHARDS),
        })
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Slot>> {
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        &self.shards[(h % SHARDS as u64) as usize]
    }

    pub fn begin(self: &Arc<Self>, key: &str, fingerprint: [u8; 32], now_ms: u64) -> Begin {
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
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
            _ => {}
        }
        if map.len() >= self.entries_max_per_shard {
            let ttl = self.ttl_ms;
            map.retain(|_, s| match s {
                Slot::Done { at_ms, .. } => now_ms < at_ms.saturating_add(ttl),
                Slot::InFlight { .. } => true,
            });
            if map.len() >= self.entries_max_per_shard {
                return Begin::Full;
            }
        }
        map.insert(key.to_owned(), Slot::InFlight { fingerprint });
        Begin::Fresh(Pending {
            store: Arc::clone(self),
            key: key.to_owned(),
            fingerprint,
            finished: false,
        })
    }

    /// Every remembered answer still fresh at `now_ms`, sorted by key:
    /// what a snapshot keeps.
    pub fn answers(&self, now_ms: u64) -> Vec<Answer> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let map = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (key, slot) in map.iter() {
                if let Slot::Done {
                    fingerprint,
                    status,
                    body,
                    at_ms,
                } = slot
                {
                    if now_ms < at_ms.saturating_add(self.ttl_ms) {
                        out.push(Answer {
                            key: key.clone(),
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

    /// Puts back an answer found in the journal on start-up.
    pub fn restore(&self, key: &str, fingerprint: [u8; 32], status: u16, body: Bytes, at_ms: u64) {
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            key.to_owned(),
            Slot::Done {
                fingerprint,
                status,
                body,
                at_ms,
            },
        );
    }

    /// Drops every answer older than the TTL.
    pub fn prune(&self, now_ms: u64) {
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, s| match s {
                Slot::Done { at_ms, .. } => now_ms < at_ms.saturating_add(self.ttl_ms),
                Slot::InFlight { .. } => true,
            });
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A key claimed by one request. Dropping it without `complete` frees the
/// key again (the request was refused, or failed before changing anything).
#[derive(Debug)]
pub struct Pending {
    store: Arc<IdempotencyStore>,
    key: String,
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
            .restore(&self.key, self.fingerprint, status, body, at_ms);
        self.finished = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.finished {
            let mut map = self
                .store
                .shard(&self.key)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if matches!(map.get(&self.key), Some(Slot::InFlight { .. })) {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_refuses_and_frees() {
        let store = IdempotencyStore::new(1000, 64);
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
        let store = IdempotencyStore::new(1000, 16);
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
}
