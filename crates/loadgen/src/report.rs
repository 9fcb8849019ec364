//! What a load run reports: the counts and percentiles of `stats`, the
//! reports of the queue, the doors and the watchers, and the consistency
//! check read back from the server. Pure functions, unit-tested.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

pub use super::stats::{Outcomes, Percentiles, Samples, Tally};

/// What a booking read back from the server holds.
#[derive(Debug, Clone)]
pub struct BookedPlaces {
    pub section: String,
    pub seats: Vec<String>,
    pub quantity: u64,
    /// The fan who booked (its `Authorization`).
    pub fan: Arc<str>,
    /// The reference the booking keeps, and the one of the receipt its
    /// fan paid with.
    pub payment_ref: String,
    pub paid_ref: String,
    /// Its tickets' tokens, one per place.
    pub tickets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consistency {
    pub bookings: usize,
    pub places_in_bookings: u64,
    pub places_sold_by_server: u64,
    pub seats_sold_twice: Vec<String>,
    /// The event's `tickets_per_fan_max`, if it has one.
    pub tickets_per_fan_max: Option<u64>,
    /// Fans whose bookings hold more places than that.
    pub fans_over_limit: usize,
    /// Holds that took a fan past its limit (a greedy fan's second hold
    /// that was not refused).
    pub limit_breaches: u64,
    /// Bookings whose reference is not the one of the receipt their fan
    /// paid with, or that another booking has too.
    pub bookings_without_receipt: usize,
    pub ok: bool,
}

/// No seat in two bookings; the server's sold count equals the places in
/// the bookings; no fan over its limit; every booking paid by its own
/// receipt.
pub fn check_consistency(
    bookings: &[BookedPlaces],
    sold_by_server: u64,
    tickets_per_fan_max: Option<u64>,
    limit_breaches: u64,
) -> Consistency {
    let mut seen = HashSet::new();
    let mut twice = Vec::new();
    let mut places = 0u64;
    let mut by_fan: BTreeMap<&str, u64> = BTreeMap::new();
    let mut refs = HashSet::new();
    let mut unpaid = 0;
    for b in bookings {
        places += b.quantity;
        for s in &b.seats {
            if !seen.insert(s.clone()) {
                twice.push(s.clone());
            }
        }
        *by_fan.entry(&b.fan).or_default() += b.quantity;
        if b.payment_ref != b.paid_ref || !refs.insert(b.payment_ref.as_str()) {
            unpaid += 1;
        }
    }
    twice.sort();
    let over = tickets_per_fan_max.map_or(0, |max| by_fan.values().filter(|&&n| n > max).count());
    Consistency {
        bookings: bookings.len(),
        places_in_bookings: places,
        places_sold_by_server: sold_by_server,
        ok: twice.is_empty()
            && places == sold_by_server
            && over == 0
            && limit_breaches == 0
            && unpaid == 0,
        seats_sold_twice: twice,
        tickets_per_fan_max,
        fans_over_limit: over,
        limit_breaches,
        bookings_without_receipt: unpaid,
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    /// Fans that arrived (fewer than asked when a deadline or the
    /// sell-out stopped arrivals).
    pub fans: usize,
    pub connections: u64,
    pub elapsed_s: f64,
    pub requests: u64,
    pub requests_per_s: f64,
    pub statuses: BTreeMap<String, u64>,
    pub latency: BTreeMap<&'static str, Percentiles>,
    pub holds: u64,
    /// Holds of explicit seats picked from the seat map.
    pub explicit_holds: u64,
    pub confirms: u64,
    pub releases: u64,
    pub expiring: u64,
    pub retries: u64,
    pub outcomes: Outcomes,
    /// When no place was left to hold, as the progress task saw it (every
    /// 250 ms): the sell-out a fan sees. Held places may still return.
    pub sold_out_after_s: Option<f64>,
    /// When every place was sold (none free, none held).
    pub all_sold_after_s: Option<f64>,
    pub server_errors: u64,
    /// Greedy fans' holds past their limit, refused as they must be.
    pub limit_refusals: u64,
    /// 503 and 429 answers without a `Retry-After`: each a failure.
    pub refusals_without_retry_after: u64,
    pub consistency: Consistency,
    /// The doors, when they opened (`--doors`).
    pub doors: Option<super::doors::DoorsReport>,
    /// The waiting room, when fans went through it (`--queue`).
    pub queue: Option<super::queue::QueueReport>,
    /// The seat streams watched meanwhile (`--watchers`).
    pub watch: Option<super::watchers::WatchReport>,
}

impl Report {
    /// Why the run failed, if it did: a double sale or miscount, a 5xx
    /// other than 503, or a fan left without an answer.
    pub fn failure(&self) -> Option<String> {
        if !self.consistency.ok {
            return Some(format!("consistency check failed: {:?}", self.consistency));
        }
        if self.refusals_without_retry_after > 0 {
            return Some(format!(
                "{} answers were 503 or 429 without Retry-After",
                self.refusals_without_retry_after
            ));
        }
        if self.server_errors > 0 {
            return Some(format!(
                "{} answers were 5xx other than 503",
                self.server_errors
            ));
        }
        if let Some(w) = self.watch.as_ref().filter(|w| !w.replica_matches_map) {
            return Some(format!(
                "watchers: the seat states rebuilt from section {}'s stream differ from its seat map",
                w.section
            ));
        }
        if let Some(d) = self.doors.as_ref().filter(|d| !d.ok) {
            return Some(format!(
                "doors: {} tickets not admitted exactly once, {} wrong answers",
                d.tickets_not_admitted_once, d.wrong_answers
            ));
        }
        if let Some(q) = self.queue.as_ref().filter(|q| !q.ok) {
            return Some(format!(
                "waiting room: {} fans told to wait after one behind them was admitted, {} joins failed",
                q.out_of_order, q.join_failures
            ));
        }
        if self.outcomes.unanswered > 0 {
            return Some(format!(
                "{} fans got no answer after every retry",
                self.outcomes.unanswered
            ));
        }
        None
    }
}

/// Section weights: front sections (listed first) are hot. Zipf-like with
/// exponent `skew`; 0 is uniform.
pub fn section_weights(n: usize, skew: f64) -> Vec<f64> {
    (0..n).map(|i| 1.0 / ((i + 1) as f64).powf(skew)).collect()
}

pub fn print_report(r: &Report) {
    println!(
        "seed {}  fans {}  connections {}  elapsed {:.2} s",
        r.seed, r.fans, r.connections, r.elapsed_s
    );
    println!(
        "requests {}  ({:.0}/s)  retries {}",
        r.requests, r.requests_per_s, r.retries
    );
    println!(
        "holds {} ({} of picked seats)  confirms {}  releases {}  left to expire {}",
        r.holds, r.explicit_holds, r.confirms, r.releases, r.expiring
    );
    let o = &r.outcomes;
    println!(
        "fans: bought {}  released {}  held only {}  refused {}  shed (503) {}  unanswered {}",
        o.bought, o.released, o.held_only, o.refused, o.shed, o.unanswered
    );
    match (r.sold_out_after_s, r.all_sold_after_s) {
        (Some(s), Some(a)) => println!("sold out after {s:.2} s (every place sold after {a:.2} s)"),
        (Some(s), None) => println!("sold out after {s:.2} s (some places still held)"),
        _ => println!("not sold out"),
    }
    println!("statuses: {:?}", r.statuses);
    println!(
        "{:<8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "op", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (op, p) in &r.latency {
        println!(
            "{:<8} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            op, p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
        );
    }
    let c = &r.consistency;
    println!(
        "consistency: {} bookings, {} places booked, {} sold by the server, {} seats sold twice, \
         {} fans over their limit of {}, {} holds past it, {} bookings without their receipt: {}",
        c.bookings,
        c.places_in_bookings,
        c.places_sold_by_server,
        c.seats_sold_twice.len(),
        c.fans_over_limit,
        c.tickets_per_fan_max
            .map_or_else(|| "none".to_owned(), |n| n.to_string()),
        c.limit_breaches,
        c.bookings_without_receipt,
        if c.ok { "OK" } else { "FAILED" }
    );
    println!("greedy fans refused at their limit: {}", r.limit_refusals);
    if let Some(q) = &r.queue {
        println!(
            "waiting room: {} joined (join p50 {:.2} ms, p99 {:.2} ms), {} admitted at {:.0}/s ({} on their own stream), \
             in queue p50 {:.2} s, p99 {:.2} s, {} gave up, {} told to wait out of order: {}",
            q.joined,
            q.join_latency.p50_ms,
            q.join_latency.p99_ms,
            q.admitted,
            q.admitted_per_s,
            q.admitted_on_streams,
            q.time_in_queue.p50_ms / 1000.0,
            q.time_in_queue.p99_ms / 1000.0,
            q.gave_up,
            q.out_of_order,
            if q.ok { "OK" } else { "FAILED" }
        );
    }
    if let Some(w) = &r.watch {
        println!(
            "watchers: {} on section {} ({} open at most, {} opened, {} ended by the server, {} refused), \
             {} frames, {} bytes; hold answered to stream shown p50 {:.1} ms, p99 {:.1} ms ({} samples, {} shown before the answer); \
             states rebuilt from the stream match the map: {}",
            w.watchers,
            w.section,
            w.open_max,
            w.opened,
            w.ended_by_server,
            w.refused,
            w.frames,
            w.bytes,
            w.delay.p50_ms,
            w.delay.p99_ms,
            w.delay.count,
            w.ahead_of_answer,
            if w.replica_matches_map { "OK" } else { "FAILED" }
        );
    }
    if let Some(d) = &r.doors {
        let p = &d.latency;
        println!(
            "doors: {} doors, {} tickets, {} scans in {:.2} s: {:.0} check-ins/s (p50 {:.2} ms, p99 {:.2} ms), \
             {} rescans refused, {} retries, {} tickets not admitted once, {} wrong answers: {}",
            d.doors,
            d.tickets,
            d.scans,
            d.elapsed_s,
            d.check_ins_per_s,
            p.p50_ms,
            p.p99_ms,
            d.refused_as_used,
            d.retries,
            d.tickets_not_admitted_once,
            d.wrong_answers,
            if d.ok { "OK" } else { "FAILED" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A booking of `seats` by fan `fan`, paid with its own receipt.
    fn by(fan: &str, seats: &[&str]) -> BookedPlaces {
        let r = format!("ref-{}", seats.join(","));
        BookedPlaces {
            section: "A".into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            quantity: seats.len() as u64,
            fan: fan.into(),
            payment_ref: r.clone(),
            paid_ref: r,
            tickets: Vec::new(),
        }
    }

    fn booked(seats: &[&str]) -> BookedPlaces {
        by("fan", seats)
    }

    fn check(bookings: &[BookedPlaces], sold: u64) -> Consistency {
        check_consistency(bookings, sold, None, 0)
    }

    #[test]
    fn consistency_catches_double_sales_and_miscounts() {
        let ok = check(&[booked(&["A/1/1", "A/1/2"]), booked(&["A/1/3"])], 3);
        assert!(ok.ok, "{ok:?}");
        let twice = check(&[booked(&["A/1/1"]), booked(&["A/1/1"])], 2);
        assert!(!twice.ok);
        assert_eq!(twice.seats_sold_twice, vec!["A/1/1".to_owned()]);
        let miscount = check(&[booked(&["A/1/1"])], 2);
        assert!(!miscount.ok);
        let standing = BookedPlaces {
            seats: vec![],
            quantity: 4,
            ..booked(&[])
        };
        assert!(check(&[standing], 4).ok);
    }

    #[test]
    fn consistency_catches_fans_over_their_limit_and_unpaid_bookings() {
        let two = [
            by("a", &["A/1/1", "A/1/2"]),
            by("a", &["A/1/3"]),
            by("b", &["A/1/4"]),
        ];
        assert!(check_consistency(&two, 4, Some(3), 0).ok);
        let over = check_consistency(&two, 4, Some(2), 0);
        assert_eq!((over.ok, over.fans_over_limit), (false, 1));
        assert!(
            !check_consistency(&two, 4, Some(3), 1).ok,
            "a breach fails the run"
        );
        let mut wrong = by("c", &["A/2/1"]);
        wrong.payment_ref = "someone-else's".into();
        let unpaid = check(&[wrong], 1);
        assert_eq!((unpaid.ok, unpaid.bookings_without_receipt), (false, 1));
        let mut same = by("d", &["A/2/2"]);
        same.payment_ref = two[2].payment_ref.clone();
        same.paid_ref = same.payment_ref.clone();
        let reused = check(&[two[2].clone(), same], 2);
        assert_eq!((reused.ok, reused.bookings_without_receipt), (false, 1));
    }

    fn report(consistency: Consistency, server_errors: u64, unanswered: u64) -> Report {
        Report {
            seed: 1,
            fans: 1,
            connections: 1,
            elapsed_s: 1.0,
            requests: 1,
            requests_per_s: 1.0,
            statuses: BTreeMap::new(),
            latency: BTreeMap::new(),
            holds: 0,
            explicit_holds: 0,
            confirms: 0,
            releases: 0,
            expiring: 0,
            retries: 0,
            outcomes: Outcomes {
                unanswered,
                ..Outcomes::default()
            },
            sold_out_after_s: None,
            all_sold_after_s: None,
            server_errors,
            limit_refusals: 0,
            refusals_without_retry_after: 0,
            consistency,
            doors: None,
            queue: None,
            watch: None,
        }
    }

    #[test]
    fn a_run_fails_on_double_sales_5xx_or_unanswered_fans() {
        let ok = check(&[booked(&["A/1/1"])], 1);
        assert_eq!(report(ok.clone(), 0, 0).failure(), None);
        let twice = check(&[booked(&["A/1/1"]), booked(&["A/1/1"])], 2);
        assert!(report(twice, 0, 0)
            .failure()
            .is_some_and(|f| f.starts_with("consistency check failed")));
        let mut silent = report(ok.clone(), 0, 0);
        silent.refusals_without_retry_after = 2;
        assert_eq!(
            silent.failure().as_deref(),
            Some("2 answers were 503 or 429 without Retry-After")
        );
        assert_eq!(
            report(ok.clone(), 3, 0).failure().as_deref(),
            Some("3 answers were 5xx other than 503")
        );
        assert_eq!(
            report(ok, 0, 2).failure().as_deref(),
            Some("2 fans got no answer after every retry")
        );
    }
}
