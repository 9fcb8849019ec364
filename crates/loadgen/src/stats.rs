//! What a load run counts as it goes: latency samples and their
//! percentiles, and each connection's tally of statuses and fans'
//! outcomes (merged at the end, so the hot path takes no lock). The
//! report and each kind of run (queue, doors, watchers) build on these.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

/// Latency samples of one operation, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u64>);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn push(&mut self, us: u64) {
        self.0.push(us);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// Nearest-rank percentiles (the smallest sample with at least p of
    /// the samples at or below it).
    pub fn percentiles(&self) -> Percentiles {
        let mut v = self.0.clone();
        v.sort_unstable();
        let at = |p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1] as f64 / 1000.0
        };
        Percentiles {
            count: v.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: v.last().map_or(0.0, |&m| m as f64 / 1000.0),
        }
    }
}

/// How each fan's visit ended. Every fan that arrived is in exactly one
/// of these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// Held, then confirmed: a booking.
    pub bought: u64,
    /// Held, then released on purpose.
    pub released: u64,
    /// Held, then left to expire (or a confirm or release that was
    /// refused, as when the hold had expired).
    pub held_only: u64,
    /// Told no (409 no seats, 410, 422) on the hold: a clear answer.
    pub refused: u64,
    /// Still 503 after every retry: a clear "try later".
    pub shed: u64,
    /// No HTTP answer after every retry (timeouts, refused connections),
    /// or a 5xx other than 503.
    pub unanswered: u64,
}

impl Outcomes {
    pub fn add(&mut self, o: &Outcomes) {
        self.bought += o.bought;
        self.released += o.released;
        self.held_only += o.held_only;
        self.refused += o.refused;
        self.shed += o.shed;
        self.unanswered += o.unanswered;
    }

    pub fn total(&self) -> u64 {
        self.bought + self.released + self.held_only + self.refused + self.shed + self.unanswered
    }
}

/// Counters one connection keeps while it runs fans; merged at the end,
/// so the hot path takes no lock.
#[derive(Debug, Default)]
pub struct Tally {
    pub statuses: BTreeMap<String, u64>,
    pub latency: BTreeMap<&'static str, Samples>,
    pub retries: u64,
    pub holds: u64,
    pub explicit_holds: u64,
    pub confirms: u64,
    pub releases: u64,
    pub expiring: u64,
    pub outcomes: Outcomes,
    /// Ids of the bookings made, each with its fan's token and the
    /// reference of the receipt it paid with, for the read-back.
    pub bookings: Vec<(String, Arc<str>, String)>,
    /// Greedy fans' holds past their limit: refused, or (a breach) not.
    pub limit_refusals: u64,
    pub limit_breaches: u64,
    /// 503 and 429 answers that did not say when to come back.
    pub refusals_without_retry_after: u64,
}

impl Tally {
    pub fn count(&mut self, status: &str) {
        *self.statuses.entry(status.to_owned()).or_default() += 1;
    }

    pub fn merge(&mut self, other: Tally) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.latency {
            self.latency.entry(k).or_default().extend(v);
        }
        self.retries += other.retries;
        self.holds += other.holds;
        self.explicit_holds += other.explicit_holds;
        self.confirms += other.confirms;
        self.releases += other.releases;
        self.expiring += other.expiring;
        self.outcomes.add(&other.outcomes);
        self.bookings.extend(other.bookings);
        self.limit_refusals += other.limit_refusals;
        self.limit_breaches += other.limit_breaches;
        self.refusals_without_retry_after += other.refusals_without_retry_after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for us in 1..=1000u64 {
            s.push(us * 1000);
        }
        let p = s.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_ms, 500.0);
        assert_eq!(p.p90_ms, 900.0);
        assert_eq!(p.p99_ms, 990.0);
        assert_eq!(p.p999_ms, 999.0);
        assert_eq!(p.max_ms, 1000.0);
        assert_eq!(Samples::default().percentiles().p99_ms, 0.0);
        let mut one = Samples::default();
        one.push(2500);
        assert_eq!(one.percentiles().p50_ms, 2.5);
    }

    #[test]
    fn tallies_merge_without_losing_a_count() {
        let mut a = Tally::default();
        a.count("201");
        a.latency.entry("hold").or_default().push(1_000);
        a.outcomes.bought = 1;
        a.bookings
            .push(("b1".into(), "Bearer t".into(), "r1".into()));
        let mut b = Tally::default();
        b.count("201");
        b.count("409");
        b.latency.entry("hold").or_default().push(3_000);
        b.outcomes.refused = 1;
        b.retries = 2;
        a.merge(b);
        assert_eq!(a.statuses["201"], 2);
        assert_eq!(a.statuses["409"], 1);
        assert_eq!(a.latency["hold"].percentiles().count, 2);
        assert_eq!(a.latency["hold"].percentiles().max_ms, 3.0);
        assert_eq!(a.outcomes.total(), 2);
        assert_eq!(a.retries, 2);
        assert_eq!(
            a.bookings,
            vec![("b1".to_owned(), "Bearer t".into(), "r1".to_owned())]
        );
    }
}
