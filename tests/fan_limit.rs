//! Invariant 7: no fan ever owns more places of an event than its
//! `tickets_per_fan_max`, whatever the sections, the concurrency or the
//! crashes. Over a real socket: the exact answers at the limit, a model
//! of many fans over several sections with expiries and restarts
//! (proptest), one fan racing itself over every section, and SIGKILL of
//! the real binary under load.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice::clock::Clock;
use common::{admin, token_at, try_request, Resp, Rng, TestServer};
use proptest::prelude::*;
use serde_json::{json, Value};

const LIMIT: u32 = 4;
const TTL_MS: u64 = 60_000;

/// Event `lim`: seated section `S` (two rows of 6) and standing sections
/// `F0`..`F{standing-1}` of `capacity` places each; `LIMIT` places per
/// fan, up to 4 per hold.
fn event(standing: usize, capacity: u32) -> Value {
    let mut sections = vec![
        json!({"id": "S", "name": "Seats", "category": "R", "rows": [
        {"label": "1", "seats": 6, "x": 0.0, "y": 0.0},
        {"label": "2", "seats": 6, "x": 0.0, "y": 1.0}]}),
    ];
    for i in 0..standing {
        sections.push(json!({"id": format!("F{i}"), "name": format!("Floor {i}"),
            "category": "R", "standing": {"capacity": capacity}}));
    }
    json!({
        "format": "boxoffice.event/1", "id": "lim", "name": "Limited", "starts_at": "2026-12-24T10:00:00Z",
        "currency": "KRW", "hold_ttl_secs": TTL_MS / 1000, "seats_per_hold_max": 4,
        "tickets_per_fan_max": LIMIT,
        "categories": [{"id": "R", "name": "R", "price": 1000}],
        "venue": {"name": "V", "sections": sections}
    })
}

fn start(dir: &std::path::Path, standing: usize, capacity: u32) -> TestServer {
    let s = TestServer::start(dir);
    let r = s.post_with("/v1/events", &event(standing, capacity), &admin());
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["tickets_per_fan_max"], LIMIT);
    s
}

fn auth(s: &TestServer, fan: &str) -> String {
    format!(
        "Bearer {}",
        token_at(&s.data_dir, fan, &["fanclub"], s.clock.now_ms())
    )
}

fn hold(s: &TestServer, fan: &str, body: Value) -> Resp {
    s.post_with(
        "/v1/events/lim/holds",
        &body,
        &[("Authorization", &auth(s, fan))],
    )
}

fn as_fan(s: &TestServer, fan: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    s.raw(
        method,
        path,
        body.map(|b| b.to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth(s, fan)),
        ],
    )
}

fn totals(s: &TestServer) -> (u64, u64) {
    let b = s.get("/v1/events/lim").body;
    (b["held"].as_u64().unwrap(), b["sold"].as_u64().unwrap())
}

fn assert_at_limit(r: &Resp, owned: u32) {
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["type"], "urn:boxoffice:problem:fan-limit-reached");
    assert_eq!(r.body["limit"], LIMIT);
    assert_eq!(r.body["owned"], owned, "{r:?}");
}

/// Polls until the event's (held, sold) is `want` (expiries are swept
/// within the sweep interval).
fn settle(s: &TestServer, want: (u64, u64)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while totals(s) != want {
        assert!(Instant::now() < deadline, "{:?} != {want:?}", totals(s));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_limit_counts_holds_and_bookings_across_sections() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), 2, 10);
    let a = hold(
        &s,
        "a",
        json!({"section": "S", "seats": ["S/1/1", "S/1/2"]}),
    );
    assert_eq!(a.status, 201);
    assert_eq!(
        hold(&s, "a", json!({"section": "F0", "quantity": 1})).status,
        201
    );
    // 3 owned: a hold of 2 is refused, whole, and changes nothing.
    let seats = |s: &TestServer| s.get("/v1/events/lim/sections/S/seats").body["states"].clone();
    let before = (seats(&s), totals(&s));
    assert_at_limit(&hold(&s, "a", json!({"section": "F1", "quantity": 2})), 3);
    assert_at_limit(
        &hold(
            &s,
            "a",
            json!({"section": "S", "seats": ["S/2/1", "S/2/2"]}),
        ),
        3,
    );
    assert_eq!(before, (seats(&s), totals(&s)));
    // Another fan is not counted against it.
    assert_eq!(
        hold(&s, "b", json!({"section": "F1", "quantity": 4})).status,
        201
    );
    // The fourth place fits.
    let f1 = hold(&s, "a", json!({"section": "F1", "quantity": 1}));
    assert_eq!(f1.status, 201);
    assert_at_limit(&hold(&s, "a", json!({"section": "F1", "quantity": 1})), 4);

    // A booking still counts; cancelling it gives its places back.
    let id = a.body["id"].as_str().unwrap();
    let booking = as_fan(
        &s,
        "a",
        "POST",
        &format!("/v1/holds/{id}/confirm"),
        Some(common::pay(&s.data_dir, &a.body, "a@example.com")),
    );
    assert_eq!(booking.status, 201, "{booking:?}");
    assert_at_limit(&hold(&s, "a", json!({"section": "F1", "quantity": 1})), 4);
    let bid = booking.body["id"].as_str().unwrap();
    let c = as_fan(&s, "a", "POST", &format!("/v1/bookings/{bid}/cancel"), None);
    assert_eq!(c.status, 200, "{c:?}");
    assert_eq!(
        hold(&s, "a", json!({"section": "F1", "quantity": 2})).status,
        201
    );
    // A release gives its places back.
    let id = f1.body["id"].as_str().unwrap();
    assert_eq!(
        as_fan(&s, "a", "DELETE", &format!("/v1/holds/{id}"), None).status,
        204
    );
    assert_eq!(
        hold(&s, "a", json!({"section": "F0", "quantity": 1})).status,
        201
    );
    assert_at_limit(&hold(&s, "a", json!({"section": "F0", "quantity": 1})), 4);
    // Expiry gives everything back.
    s.clock.advance_ms(TTL_MS);
    settle(&s, (0, 0));
    assert_eq!(
        hold(&s, "a", json!({"section": "F0", "quantity": 4})).status,
        201
    );
    let metrics = s.metrics();
    assert!(
        metrics.contains(r#"boxoffice_holds_refused_total{event="lim",reason="fan_limit"} 5"#),
        "{metrics}"
    );
}

#[test]
fn support_cancelling_a_booking_gives_its_places_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), 1, 10);
    let h = hold(&s, "a", json!({"section": "F0", "quantity": 4}));
    let id = h.body["id"].as_str().unwrap();
    let b = as_fan(
        &s,
        "a",
        "POST",
        &format!("/v1/holds/{id}/confirm"),
        Some(common::pay(&s.data_dir, &h.body, "a@example.com")),
    );
    assert_eq!(b.status, 201);
    assert_at_limit(&hold(&s, "a", json!({"section": "F0", "quantity": 1})), 4);
    let bid = b.body["id"].as_str().unwrap();
    let c = s.raw(
        "POST",
        &format!("/v1/bookings/{bid}/cancel"),
        None,
        &admin(),
    );
    assert_eq!(c.status, 200, "{c:?}");
    assert_eq!(
        hold(&s, "a", json!({"section": "F0", "quantity": 4})).status,
        201
    );
}

/// One fan, many concurrent holds of one place over every section: never
/// more than the limit, and exactly as many succeed as fit. Several
/// rounds, releasing everything in between.
#[test]
fn one_fan_racing_itself_over_every_section_gets_exactly_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(start(dir.path(), 4, 50));
    for round in 0..5 {
        let barrier = Arc::new(std::sync::Barrier::new(32));
        let answers: Vec<Resp> = (0..32)
            .map(|i| {
                let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
                let token = auth(&s, "racer");
                std::thread::spawn(move || {
                    let body = json!({"section": format!("F{}", i % 4), "quantity": 1});
                    barrier.wait();
                    s.post_with("/v1/events/lim/holds", &body, &[("Authorization", &token)])
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let won: Vec<&Resp> = answers.iter().filter(|r| r.status == 201).collect();
        assert_eq!(won.len(), LIMIT as usize, "round {round}");
        for r in answers.iter().filter(|r| r.status != 201) {
            assert_at_limit(r, LIMIT);
        }
        assert_eq!(totals(&s), (u64::from(LIMIT), 0));
        for r in won {
            let id = r.body["id"].as_str().unwrap();
            let del = as_fan(&s, "racer", "DELETE", &format!("/v1/holds/{id}"), None);
            assert_eq!(del.status, 204);
        }
    }
}

// ---- the model ----

const FANS: usize = 4;
const FLOORS: usize = 3;
const CAPACITY: u32 = 6;

#[derive(Debug, Clone)]
enum Op {
    /// (fan, floor, quantity)
    Hold(usize, usize, u32),
    /// (fan, which of its holds)
    Release(usize, usize),
    Confirm(usize, usize),
    /// (fan, which of its bookings, by support)
    Cancel(usize, usize, bool),
    Expire,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..FANS, 0..FLOORS, 1..=4u32).prop_map(|(f, s, q)| Op::Hold(f, s, q)),
        2 => (0..FANS, 0..8usize).prop_map(|(f, i)| Op::Release(f, i)),
        2 => (0..FANS, 0..8usize).prop_map(|(f, i)| Op::Confirm(f, i)),
        1 => (0..FANS, 0..8usize, any::<bool>()).prop_map(|(f, i, s)| Op::Cancel(f, i, s)),
        1 => Just(Op::Expire),
        1 => Just(Op::Restart),
    ]
}

/// What the server should hold: per fan, its holds (id, floor, places)
/// and live bookings (id, floor, places).
#[derive(Default)]
struct Model {
    holds: Vec<Vec<(String, usize, u32)>>,
    bookings: Vec<Vec<(String, usize, u32)>>,
}

impl Model {
    fn owned(&self, fan: usize) -> u32 {
        self.holds[fan].iter().map(|h| h.2).sum::<u32>()
            + self.bookings[fan].iter().map(|b| b.2).sum::<u32>()
    }

    fn taken(&self, floor: usize) -> u32 {
        self.holds
            .iter()
            .chain(&self.bookings)
            .flatten()
            .filter(|x| x.1 == floor)
            .map(|x| x.2)
            .sum()
    }

    fn totals(&self) -> (u64, u64) {
        let sum = |v: &Vec<Vec<(String, usize, u32)>>| {
            v.iter().flatten().map(|x| u64::from(x.2)).sum::<u64>()
        };
        (sum(&self.holds), sum(&self.bookings))
    }
}

fn fan_name(f: usize) -> String {
    format!("fan-{f}")
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), FLOORS, CAPACITY);
    let mut m = Model {
        holds: vec![Vec::new(); FANS],
        bookings: vec![Vec::new(); FANS],
    };
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Hold(f, floor, q) => {
                let r = hold(
                    &s,
                    &fan_name(f),
                    json!({"section": format!("F{floor}"), "quantity": q}),
                );
                if m.taken(floor) + q > CAPACITY {
                    assert_eq!(r.status, 409, "{ctx}: {r:?}");
                    assert_eq!(r.body["type"], "urn:boxoffice:problem:not-enough-places");
                } else if m.owned(f) + q > LIMIT {
                    assert_at_limit(&r, m.owned(f));
                } else {
                    assert_eq!(r.status, 201, "{ctx}: {r:?}");
                    m.holds[f].push((r.body["id"].as_str().unwrap().to_owned(), floor, q));
                }
            }
            Op::Release(f, i) if i < m.holds[f].len() => {
                let (id, ..) = m.holds[f].remove(i);
                let r = as_fan(&s, &fan_name(f), "DELETE", &format!("/v1/holds/{id}"), None);
                assert_eq!(r.status, 204, "{ctx}: {r:?}");
            }
            Op::Confirm(f, i) if i < m.holds[f].len() => {
                let (id, floor, q) = m.holds[f].remove(i);
                let r = as_fan(
                    &s,
                    &fan_name(f),
                    "POST",
                    &format!("/v1/holds/{id}/confirm"),
                    // Every place costs 1,000 won.
                    Some(common::pay(
                        &s.data_dir,
                        &json!({"id": id, "total_price": q * 1000, "currency": "KRW"}),
                        "f@example.com",
                    )),
                );
                assert_eq!(r.status, 201, "{ctx}: {r:?}");
                m.bookings[f].push((r.body["id"].as_str().unwrap().to_owned(), floor, q));
            }
            Op::Cancel(f, i, support) if i < m.bookings[f].len() => {
                let (id, ..) = m.bookings[f].remove(i);
                let path = format!("/v1/bookings/{id}/cancel");
                let r = if support {
                    s.raw("POST", &path, None, &admin())
                } else {
                    as_fan(&s, &fan_name(f), "POST", &path, None)
                };
                assert_eq!(r.status, 200, "{ctx}: {r:?}");
            }
            Op::Release(..) | Op::Confirm(..) | Op::Cancel(..) => continue,
            Op::Expire => {
                s.clock.advance_ms(TTL_MS);
                m.holds.iter_mut().for_each(Vec::clear);
                settle(&s, m.totals());
            }
            Op::Restart => {
                let clock = Arc::clone(&s.clock);
                s.stop();
                s = TestServer::start_with(common::args(dir.path()), clock);
            }
        }
        assert_eq!(totals(&s), m.totals(), "{ctx}");
    }
    // At the end every fan can take what it has left, and no more.
    for f in 0..FANS {
        let left = LIMIT - m.owned(f);
        let floor = (0..FLOORS).find(|&fl| m.taken(fl) + left <= CAPACITY);
        if let (Some(floor), true) = (floor, left > 0) {
            let r = hold(
                &s,
                &fan_name(f),
                json!({"section": format!("F{floor}"), "quantity": left}),
            );
            assert_eq!(r.status, 201, "fan {f} tops up {left}: {r:?}");
            m.holds[f].push((String::new(), floor, left));
        }
        let r = hold(&s, &fan_name(f), json!({"section": "S", "quantity": 1}));
        if m.owned(f) == LIMIT {
            assert_at_limit(&r, LIMIT);
        } else {
            // No floor had room for all it has left: one seat still fits.
            assert_eq!(r.status, 201, "fan {f} owns {}: {r:?}", m.owned(f));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn many_fans_over_several_sections_never_pass_their_limit(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

// ---- SIGKILL ----

/// Fans hold and release over the demo event's sections (limit 4 by
/// default), two threads per fan, while the real binary is killed with
/// SIGKILL. After the restart: every acknowledged hold is there, and no
/// fan is over its limit: each can top up to exactly its limit, and the
/// event then holds exactly fans x limit places.
#[test]
fn after_sigkill_no_fan_is_over_its_limit_and_every_acknowledged_hold_is_there() {
    const KILL_FANS: usize = 12;
    const SECTIONS: [&str; 4] = ["FLOOR", "A", "B", "C"];
    let seed = common::seed("BOXOFFICE_LIMIT_SEED");
    let dir = tempfile::tempdir().unwrap();
    // Each fan hammers as fast as it can: no rate limit in the way.
    let flags = [
        "--hold-ttl-secs",
        "3600",
        "--demo-presale-secs",
        "0",
        "--fan-holds-per-sec",
        "0",
    ];
    let (mut child, base) = common::serve(dir.path(), &flags);
    let tokens: Vec<String> = (0..KILL_FANS)
        .map(|f| common::token(dir.path(), &format!("k-{f}")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Per fan: acknowledged live holds (id -> places), answered or not.
    let workers: Vec<_> = (0..KILL_FANS * 2)
        .map(|w| {
            let (base, stop) = (base.clone(), Arc::clone(&stop));
            let token = tokens[w % KILL_FANS].clone();
            let mut rng = Rng(seed ^ (w as u64 + 1));
            std::thread::spawn(move || {
                let auth = format!("Bearer {token}");
                let headers = [
                    ("Content-Type", "application/json"),
                    ("Authorization", auth.as_str()),
                ];
                let mut live: HashMap<String, u32> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let section = SECTIONS[(rng.next() % 4) as usize];
                    let q = 1 + (rng.next() % 2) as u32;
                    let body = json!({"section": section, "quantity": q}).to_string();
                    let url = format!("{base}/v1/events/demo/holds");
                    match try_request("POST", &url, Some(body), &headers) {
                        Ok(r) if r.status == 201 => {
                            live.insert(r.body["id"].as_str().unwrap().to_owned(), q);
                        }
                        Ok(r) if r.status == 409 => {
                            // At the limit: let one go, sometimes.
                            assert_eq!(r.body["type"], "urn:boxoffice:problem:fan-limit-reached");
                            let Some(id) = live.keys().next().cloned() else {
                                continue;
                            };
                            if rng.next().is_multiple_of(2) {
                                continue;
                            }
                            let url = format!("{base}/v1/holds/{id}");
                            match try_request("DELETE", &url, None, &headers) {
                                Ok(r) if r.status == 204 => {
                                    live.remove(&id);
                                }
                                Ok(r) => panic!("release: {r:?}"),
                                // Unknown: the hold may or may not be there.
                                Err(_) => {
                                    live.remove(&id);
                                }
                            }
                        }
                        Ok(r) => panic!("hold: {r:?}"),
                        Err(_) => break,
                    }
                }
                live
            })
        })
        .collect();
    let mut rng = Rng(seed);
    std::thread::sleep(Duration::from_millis(300 + rng.next() % 700));
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<HashMap<String, u32>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let total_acked: usize = acked.iter().map(HashMap::len).sum();
    assert!(total_acked > 0, "the fans did work before the kill");

    let (mut child, base) = common::serve(dir.path(), &flags);
    let mut owned_acked = [0u32; KILL_FANS];
    for (w, live) in acked.iter().enumerate() {
        let auth = format!("Bearer {}", tokens[w % KILL_FANS]);
        for (id, q) in live {
            let r = common::request(
                "GET",
                &format!("{base}/v1/holds/{id}"),
                None,
                &[("Authorization", &auth)],
            );
            assert_eq!(
                r.status, 200,
                "acknowledged hold {id} after the restart: {r:?}"
            );
            owned_acked[w % KILL_FANS] += q;
        }
    }
    for (f, token) in tokens.iter().enumerate() {
        assert!(
            owned_acked[f] <= LIMIT,
            "fan {f} acknowledged {}",
            owned_acked[f]
        );
        let auth = format!("Bearer {token}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ];
        let mut topped = 0;
        loop {
            let r = common::request(
                "POST",
                &format!("{base}/v1/events/demo/holds"),
                Some(json!({"section": "FLOOR", "quantity": 1}).to_string()),
                &headers,
            );
            if r.status == 409 {
                assert_eq!(r.body["type"], "urn:boxoffice:problem:fan-limit-reached");
                assert_eq!(r.body["owned"], LIMIT, "{r:?}");
                break;
            }
            assert_eq!(r.status, 201, "{r:?}");
            topped += 1;
        }
        assert!(owned_acked[f] + topped <= LIMIT, "fan {f}");
    }
    let held = common::request("GET", &format!("{base}/v1/events/demo"), None, &[]).body["held"]
        .as_u64()
        .unwrap();
    assert_eq!(held, (KILL_FANS as u64) * u64::from(LIMIT));
    child.kill().unwrap();
    child.wait().unwrap();
}

// ---- the rate limit ----

/// A fan trying holds faster than `--fan-holds-per-sec` (after its burst)
/// gets `429` with `Retry-After`, and nothing changes; other fans go on;
/// once the time has passed, the fan may try again.
#[test]
fn a_fan_too_fast_is_told_to_wait_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = common::args(dir.path());
    a.fan_holds_per_sec = 1;
    a.fan_holds_burst = 3;
    let s = TestServer::start_with(
        a,
        Arc::new(boxoffice::clock::ManualClock::new(common::T0_MS)),
    );
    let r = s.post_with("/v1/events", &event(1, 100), &admin());
    assert_eq!(r.status, 201);
    let one = || json!({"section": "F0", "quantity": 1});
    for _ in 0..3 {
        assert_eq!(hold(&s, "quick", one()).status, 201);
    }
    let r = hold(&s, "quick", one());
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.body["type"], "urn:boxoffice:problem:rate-limited");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    assert_eq!(totals(&s), (3, 0), "a refused attempt holds nothing");
    assert_eq!(hold(&s, "calm", one()).status, 201);
    // The limiter keeps real time (a fan's pace is the wall clock's).
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(hold(&s, "quick", one()).status, 201);
    let metrics = s.metrics();
    assert!(
        metrics.contains("boxoffice_fan_rate_limited_total 1"),
        "{metrics}"
    );
}
