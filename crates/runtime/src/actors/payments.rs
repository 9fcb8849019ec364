//! Payment references already used: a receipt books once, ever, across
//! every event and section of the server.
//!
//! Like the fan ledger, shared by the section actors: a section decides a
//! confirmation, checks amount and currency, then claims the receipt's
//! reference (insert-if-absent under one shard's lock, so two sections
//! confirming with one reference at once cannot both win), then applies.
//! A claim is never given back: a booking's reference stays used after a
//! cancellation, and a confirmation the journal then refuses keeps its
//! claim (the journal has failed; the next start counts again). Rebuilt
//! at every start from the bookings (each keeps its `payment_ref`), never
//! persisted on its own.
//!
//! A reference is kept as a 128-bit digest, keyed afresh at every start
//! (the text stays in its booking): 16 bytes in a table, where a copy of
//! the text cost an allocation and ~50 bytes. Two references share a
//! digest with odds of about n²/2¹²⁹ for n references (10⁻²⁹ for a
//! million), and, the key being secret, nobody can pick references that
//! collide; a collision would refuse the second as used, never book
//! twice.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, OnceLock};

use hashbrown::HashTable;

use crate::domain::Section;

const SHARDS: usize = 16;

/// A reference's digest: two SipHash-1-3 of it under independent random
/// keys, drawn once a process.
fn digest(reference: &str) -> u128 {
    static KEYS: OnceLock<[RandomState; 2]> = OnceLock::new();
    let [a, b] = KEYS.get_or_init(|| [RandomState::new(), RandomState::new()]);
    u128::from(a.hash_one(reference)) << 64 | u128::from(b.hash_one(reference))
}

#[derive(Default)]
pub struct PaymentRefs {
    /// Digests, each shard's table hashed by the digest's low bits (random
    /// already) and the shard picked by its high ones.
    shards: [Mutex<HashTable<u128>>; SHARDS],
}

impl PaymentRefs {
    fn shard(&self, digest: u128) -> std::sync::MutexGuard<'_, HashTable<u128>> {
        self.shards[((digest >> 64) % SHARDS as u128) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts `digest` unless present; whether it was absent.
    fn insert(&self, digest: u128) -> bool {
        let mut shard = self.shard(digest);
        let low = digest as u64;
        if shard.find(low, |d| *d == digest).is_some() {
            return false;
        }
        shard.insert_unique(low, digest, |d| *d as u64);
        true
    }

    pub fn add_bookings(&self, section: &Section) {
        for b in section.bookings() {
            self.insert(digest(b.payment_ref()));
        }
    }

    /// Claims `reference`; false if it was claimed before.
    pub fn claim(&self, reference: &str) -> bool {
        self.insert(digest(reference))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_is_claimed_once() {
        let refs = PaymentRefs::default();
        assert!(refs.claim("pay_1"));
        assert!(!refs.claim("pay_1"));
        assert!(refs.claim("pay_2"));
        assert_eq!(refs.len(), 2);
    }

    /// Many threads, one reference: exactly one wins.
    #[test]
    fn one_winner_among_racers() {
        let refs = std::sync::Arc::new(PaymentRefs::default());
        let wins: usize = (0..8)
            .map(|_| {
                let refs = std::sync::Arc::clone(&refs);
                std::thread::spawn(move || (0..50).filter(|i| refs.claim(&format!("r{i}"))).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(wins, 50);
    }
}
