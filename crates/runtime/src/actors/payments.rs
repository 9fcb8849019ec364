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

use std::collections::HashSet;
use std::sync::Mutex;

use crate::domain::{fan_tag, Section};

const SHARDS: usize = 16;

#[derive(Default)]
pub struct PaymentRefs {
    shards: [Mutex<HashSet<Box<str>>>; SHARDS],
}

impl PaymentRefs {
    fn shard(&self, reference: &str) -> std::sync::MutexGuard<'_, HashSet<Box<str>>> {
        self.shards[(fan_tag(reference) % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts every booking of `section` (cancelled ones too) as used.
    pub fn add_bookings(&self, section: &Section) {
        for b in section.bookings() {
            self.shard(&b.payment_ref)
                .insert(b.payment_ref.as_str().into());
        }
    }

    /// Claims `reference` for a booking: `false` if it was used before.
    pub fn claim(&self, reference: &str) -> bool {
        let mut shard = self.shard(reference);
        if shard.contains(reference) {
            return false;
        }
        shard.insert(reference.into())
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
