//! `boxoffice loadgen`: a flash-sale load generator against a running
//! server, in the spirit of pgbench and redis-benchmark.
//!
//! Fans arrive on an open-loop schedule (all at once, or spread over a
//! ramp), pick a section with a popularity skew (front sections hot), hold
//! the best N seats together, then confirm, release or let the hold
//! expire. A timeout or refused connection is retried with the same
//! `Idempotency-Key`, as a real app would. The report gives throughput,
//! latency percentiles per operation, status counts, time to sell out, and
//! a consistency check read back from the server (no seat sold twice, sold
//! places equal the bookings' places). One seed, printed, repeats a run.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::LoadgenArgs;

/// Retries of one request after a transport failure or a 503.
const RETRIES_MAX: usize = 5;

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

/// What a booking read back from the server holds.
#[derive(Debug, Clone)]
pub struct BookedPlaces {
    pub section: String,
    pub seats: Vec<String>,
    pub quantity: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consistency {
    pub bookings: usize,
    pub places_in_bookings: u64,
    pub places_sold_by_server: u64,
    pub seats_sold_twice: Vec<String>,
    pub ok: bool,
}

/// No seat in two bookings, and the server's sold count equals the
/// places in the bookings.
pub fn check_consistency(bookings: &[BookedPlaces], sold_by_server: u64) -> Consistency {
    let mut seen = HashSet::new();
    let mut twice = Vec::new();
    let mut places = 0u64;
    for b in bookings {
        places += b.quantity;
        for s in &b.seats {
            if !seen.insert(s.clone()) {
                twice.push(s.clone());
            }
        }
    }
    twice.sort();
    Consistency {
        bookings: bookings.len(),
        places_in_bookings: places,
        places_sold_by_server: sold_by_server,
        ok: twice.is_empty() && places == sold_by_server,
        seats_sold_twice: twice,
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    pub fans: usize,
    pub elapsed_s: f64,
    pub requests: u64,
    pub requests_per_s: f64,
    pub statuses: BTreeMap<String, u64>,
    pub latency: BTreeMap<&'static str, Percentiles>,
    pub holds: u64,
    pub confirms: u64,
    pub releases: u64,
    pub expiring: u64,
    pub retries: u64,
    pub sold_out_after_s: Option<f64>,
    pub server_errors: u64,
    pub consistency: Consistency,
}

/// Section weights: front sections (listed first) are hot. Zipf-like with
/// exponent `skew`; 0 is uniform.
pub fn section_weights(n: usize, skew: f64) -> Vec<f64> {
    (0..n).map(|i| 1.0 / ((i + 1) as f64).powf(skew)).collect()
}

fn pick(weights: &[f64], rng: &mut StdRng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random_range(0.0..total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

struct Shared {
    statuses: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<BTreeMap<&'static str, Samples>>,
    requests: AtomicU64,
    retries: AtomicU64,
    holds: AtomicU64,
    confirms: AtomicU64,
    releases: AtomicU64,
    expiring: AtomicU64,
    server_errors: AtomicU64,
    bookings: Mutex<Vec<String>>,
}

impl Shared {
    fn count(&self, status: String) {
        *self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }
}

/// One POST with retries on transport errors and 503 (same key).
fn post(
    agent: &ureq::Agent,
    shared: &Shared,
    op: &'static str,
    url: &str,
    key: &str,
    body: Value,
) -> Option<(u16, Value)> {
    for attempt in 0..=RETRIES_MAX {
        if attempt > 0 {
            shared.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(50 * attempt as u64));
        }
        let started = Instant::now();
        let r = agent
            .post(url)
            .set("Idempotency-Key", key)
            .send_json(body.clone());
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let us = started.elapsed().as_micros() as u64;
        let (code, resp) = match r {
            Ok(resp) => (resp.status(), resp),
            Err(ureq::Error::Status(code, resp)) => (code, resp),
            Err(ureq::Error::Transport(t)) => {
                shared.count(format!("transport:{}", t.kind()));
                continue;
            }
        };
        shared.count(code.to_string());
        shared
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(op)
            .or_default()
            .push(us);
        if code >= 500 {
            if code != 503 {
                shared.server_errors.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        let v: Value = resp.into_json().unwrap_or(Value::Null);
        return Some((code, v));
    }
    None
}

pub fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let seed = args
        .seed
        .unwrap_or_else(|| rand::rngs::StdRng::from_os_rng().random());
    eprintln!("loadgen: seed {seed} (repeat with --seed {seed})");
    let base = args.server.trim_end_matches('/').to_owned();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(args.timeout_secs))
        .max_idle_connections_per_host(args.connections as usize)
        .build();
    let event: Value = agent
        .get(&format!("{base}/v1/events/{}", args.event))
        .call()
        .with_context(|| format!("cannot read event {:?} from {base}", args.event))?
        .into_json()?;
    let sections: Vec<String> = event["sections"]
        .as_array()
        .context("the event lists no sections")?
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    if sections.is_empty() {
        bail!("the event has no sections");
    }
    let per_hold_max = event["seats_per_hold_max"].as_u64().unwrap_or(4) as u32;
    let quantity_max = args.quantity_max.min(per_hold_max).max(1);
    let weights = section_weights(sections.len(), args.skew);

    let shared = Arc::new(Shared {
        statuses: Mutex::default(),
        latency: Mutex::default(),
        requests: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        holds: AtomicU64::new(0),
        confirms: AtomicU64::new(0),
        releases: AtomicU64::new(0),
        expiring: AtomicU64::new(0),
        server_errors: AtomicU64::new(0),
        bookings: Mutex::default(),
    });
    let next_fan = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = args.duration_secs.map(|d| started + Duration::from_secs(d));
    let done = Arc::new(AtomicBool::new(false));
    let sold_out_at: Arc<Mutex<Option<f64>>> = Arc::default();

    // Progress: a line a second, and the sell-out moment.
    let progress = {
        let (shared, done, base, event_id, sold_out_at, agent) = (
            Arc::clone(&shared),
            Arc::clone(&done),
            base.clone(),
            args.event.clone(),
            Arc::clone(&sold_out_at),
            agent.clone(),
        );
        let quiet = args.json;
        std::thread::spawn(move || {
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let ev: Option<Value> = agent
                    .get(&format!("{base}/v1/events/{event_id}"))
                    .call()
                    .ok()
                    .and_then(|r| r.into_json().ok());
                let (free, held, sold) = ev.as_ref().map_or((0, 0, 0), |e| {
                    (
                        e["free"].as_u64().unwrap_or(0),
                        e["held"].as_u64().unwrap_or(0),
                        e["sold"].as_u64().unwrap_or(0),
                    )
                });
                if ev.is_some() && free == 0 && held == 0 {
                    let mut s = sold_out_at.lock().unwrap_or_else(|e| e.into_inner());
                    s.get_or_insert(started.elapsed().as_secs_f64());
                }
                let now = shared.requests.load(Ordering::Relaxed);
                if !quiet {
                    eprint!(
                        "\r{:>6.1} s  {:>7} req/s  sold {sold:>7}  held {held:>6}  free {free:>7}  5xx {:>4}   ",
                        started.elapsed().as_secs_f64(),
                        (now - last) * 4,
                        shared.server_errors.load(Ordering::Relaxed),
                    );
                }
                last = now;
            }
            if !quiet {
                eprintln!();
            }
        })
    };

    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (shared, next_fan, agent, base, sections, weights) = (
                Arc::clone(&shared),
                Arc::clone(&next_fan),
                agent.clone(),
                base.clone(),
                sections.clone(),
                weights.clone(),
            );
            let args = args.clone();
            std::thread::spawn(move || loop {
                let fan = next_fan.fetch_add(1, Ordering::Relaxed);
                if fan >= args.fans || deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                // Open loop: fan k arrives at k * ramp / fans.
                let arrive = started
                    + Duration::from_secs_f64(args.ramp_secs * fan as f64 / args.fans as f64);
                if let Some(wait) = arrive.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let mut rng = StdRng::seed_from_u64(seed ^ (fan as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let section = &sections[pick(&weights, &mut rng)];
                let quantity = rng.random_range(1..=quantity_max);
                let key = format!("lg-{seed:x}-{fan}");
                let Some((code, hold)) = post(
                    &agent,
                    &shared,
                    "hold",
                    &format!("{base}/v1/events/{}/holds", args.event),
                    &format!("{key}-h"),
                    json!({"section": section, "quantity": quantity}),
                ) else {
                    continue;
                };
                if code != 201 {
                    continue;
                }
                shared.holds.fetch_add(1, Ordering::Relaxed);
                let id = hold["id"].as_str().unwrap_or_default().to_owned();
                let roll: f64 = rng.random();
                if roll < args.confirm_ratio {
                    if let Some((201, b)) = post(
                        &agent,
                        &shared,
                        "confirm",
                        &format!("{base}/v1/holds/{id}/confirm"),
                        &format!("{key}-c"),
                        json!({"email": format!("fan{fan}@example.com"), "payment_ref": format!("lg-{fan}")}),
                    ) {
                        shared.confirms.fetch_add(1, Ordering::Relaxed);
                        if let Some(b) = b["id"].as_str() {
                            shared.bookings.lock().unwrap_or_else(|e| e.into_inner()).push(b.to_owned());
                        }
                    }
                } else if roll < args.confirm_ratio + args.release_ratio {
                    let started_at = Instant::now();
                    let r = agent.delete(&format!("{base}/v1/holds/{id}")).call();
                    shared.requests.fetch_add(1, Ordering::Relaxed);
                    let code = match r {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(c, _)) => c,
                        Err(_) => 0,
                    };
                    shared.count(code.to_string());
                    shared
                        .latency
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry("release")
                        .or_default()
                        .push(started_at.elapsed().as_micros() as u64);
                    if code == 204 {
                        shared.releases.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    shared.expiring.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = progress.join();

    // Read back every booking and the server's sold count.
    let ids = shared
        .bookings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut booked = Vec::new();
    for id in &ids {
        let b: Value = agent
            .get(&format!("{base}/v1/bookings/{id}"))
            .call()
            .with_context(|| format!("cannot read back booking {id}"))?
            .into_json()?;
        if b["status"] == "confirmed" {
            booked.push(BookedPlaces {
                section: b["section"].as_str().unwrap_or("").to_owned(),
                seats: b["seats"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                quantity: b["quantity"].as_u64().unwrap_or(0),
            });
        }
    }
    let ev: Value = agent
        .get(&format!("{base}/v1/events/{}", args.event))
        .call()?
        .into_json()?;
    let sold = ev["sold"].as_u64().unwrap_or(0);
    let consistency = check_consistency(&booked, sold.saturating_sub(args.sold_before));
    let requests = shared.requests.load(Ordering::Relaxed);
    let report = Report {
        seed,
        fans: args.fans.min(next_fan.load(Ordering::Relaxed)),
        elapsed_s: elapsed,
        requests,
        requests_per_s: requests as f64 / elapsed,
        statuses: shared
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        latency: shared
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.percentiles()))
            .collect(),
        holds: shared.holds.load(Ordering::Relaxed),
        confirms: shared.confirms.load(Ordering::Relaxed),
        releases: shared.releases.load(Ordering::Relaxed),
        expiring: shared.expiring.load(Ordering::Relaxed),
        retries: shared.retries.load(Ordering::Relaxed),
        sold_out_after_s: *sold_out_at.lock().unwrap_or_else(|e| e.into_inner()),
        server_errors: shared.server_errors.load(Ordering::Relaxed),
        consistency,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if !report.consistency.ok {
        bail!("consistency check failed: {:?}", report.consistency);
    }
    if report.server_errors > 0 {
        bail!("{} answers were 5xx other than 503", report.server_errors);
    }
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "seed {}  fans {}  elapsed {:.2} s",
        r.seed, r.fans, r.elapsed_s
    );
    println!(
        "requests {}  ({:.0}/s)  retries {}",
        r.requests, r.requests_per_s, r.retries
    );
    println!(
        "holds {}  confirms {}  releases {}  left to expire {}",
        r.holds, r.confirms, r.releases, r.expiring
    );
    match r.sold_out_after_s {
        Some(s) => println!("sold out after {s:.2} s"),
        None => println!("not sold out"),
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
        "consistency: {} bookings, {} places booked, {} sold by the server, {} seats sold twice: {}",
        c.bookings,
        c.places_in_bookings,
        c.places_sold_by_server,
        c.seats_sold_twice.len(),
        if c.ok { "OK" } else { "FAILED" }
    );
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

    fn booked(seats: &[&str]) -> BookedPlaces {
        BookedPlaces {
            section: "A".into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            quantity: seats.len() as u64,
        }
    }

    #[test]
    fn consistency_catches_double_sales_and_miscounts() {
        let ok = check_consistency(&[booked(&["A/1/1", "A/1/2"]), booked(&["A/1/3"])], 3);
        assert!(ok.ok, "{ok:?}");
        let twice = check_consistency(&[booked(&["A/1/1"]), booked(&["A/1/1"])], 2);
        assert!(!twice.ok);
        assert_eq!(twice.seats_sold_twice, vec!["A/1/1".to_owned()]);
        let miscount = check_consistency(&[booked(&["A/1/1"])], 2);
        assert!(!miscount.ok);
        let standing = BookedPlaces {
            section: "F".into(),
            seats: vec![],
            quantity: 4,
        };
        assert!(check_consistency(&[standing], 4).ok);
    }

    #[test]
    fn front_sections_are_hot() {
        let w = section_weights(4, 1.0);
        assert_eq!(w, vec![1.0, 0.5, 1.0 / 3.0, 0.25]);
        assert_eq!(section_weights(3, 0.0), vec![1.0, 1.0, 1.0]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut hits = [0usize; 4];
        for _ in 0..10_000 {
            hits[pick(&w, &mut rng)] += 1;
        }
        assert!(
            hits[0] > hits[1] && hits[1] > hits[2] && hits[2] > hits[3],
            "{hits:?}"
        );
    }
}
