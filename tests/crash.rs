//! Invariants 1 and 2. Crash safety of the real binary: clients hold, confirm and release while
//! the server is killed with SIGKILL at a random moment; after each restart
//! every acknowledged change must be there, nothing unacknowledged may be
//! half there, and no seat may have two owners.
//!
//! Replay a failure with `BOXOFFICE_CRASH_SEED=<seed printed> cargo test
//! --test crash`. `BOXOFFICE_CRASH_CYCLES` sets the number of kills (20).

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{spawn_listening, try_request, Resp, Rng};
use serde_json::json;

const CLIENTS: usize = 4;
const SECTIONS: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S",
    "T",
];

struct Server {
    child: Child,
    base: String,
}

fn start(dir: &Path) -> Server {
    let (child, base) = spawn_listening(
        common::boxoffice()
            // Holds must outlive the whole run: the check counts every
            // acknowledged hold as held (or sold) after the last restart.
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--hold-ttl-secs",
                "3600",
            ])
            // Snapshot and compact all the time, so that kills also land
            // during snapshots and restarts start from one.
            .args(["--snapshot-every-records", "50", "--snapshot-keep", "2"])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn"),
    );
    Server { child, base }
}

#[derive(Debug, Default)]
struct History {
    /// Acknowledged holds: id -> seats.
    holds: HashMap<String, Vec<String>>,
    /// Acknowledged (or since discovered) bookings: hold id -> (booking id, seats).
    confirmed: HashMap<String, (String, Vec<String>)>,
    released: HashSet<String>,
    /// Confirms and releases whose answer never came: hold ids.
    confirm_unknown: HashSet<String>,
    release_unknown: HashSet<String>,
    /// Holds whose answer never came: at most this many seats may be held
    /// by holds nobody knows the id of.
    unknown_hold_seats_max: usize,
    /// The token of each hold's fan (every hold is a fan of its own).
    tokens: HashMap<String, String>,
}

fn post(base: &str, token: &str, path: &str, body: serde_json::Value) -> Result<Resp, String> {
    let auth = format!("Bearer {token}");
    try_request(
        "POST",
        &format!("{base}{path}"),
        Some(body.to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
    )
}

fn seats_of(r: &Resp) -> Vec<String> {
    r.body["seats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// One client until the server dies: every acknowledged change goes into
/// the history, every unanswered one into its "unknown" sets.
fn client(dir: &Path, base: &str, seed: u64, history: &Mutex<History>, stop: &AtomicBool) {
    let mut rng = Rng(seed);
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let section = SECTIONS[(rng.next() % SECTIONS.len() as u64) as usize];
        let qty = 1 + rng.next() % 4;
        n += 1;
        let token = common::token(dir, &format!("crash-{seed:x}-{n}"));
        let r = match post(
            base,
            &token,
            "/v1/events/demo/holds",
            json!({"section": section, "quantity": qty}),
        ) {
            Ok(r) => r,
            Err(_) => {
                history.lock().unwrap().unknown_hold_seats_max += qty as usize;
                return;
            }
        };
        if r.status != 201 {
            assert!(matches!(r.status, 409 | 503), "{r:?}");
            continue;
        }
        let id = r.body["id"].as_str().unwrap().to_owned();
        {
            let mut h = history.lock().unwrap();
            h.holds.insert(id.clone(), seats_of(&r));
            h.tokens.insert(id.clone(), token.clone());
        }
        match rng.next() % 10 {
            0..=4 => {
                history.lock().unwrap().confirm_unknown.insert(id.clone());
                match post(
                    base,
                    &token,
                    &format!("/v1/holds/{id}/confirm"),
                    common::pay(dir, &r.body, "fan@example.com"),
                ) {
                    Ok(b) => {
                        assert_eq!(b.status, 201, "{b:?}");
                        let mut h = history.lock().unwrap();
                        h.confirm_unknown.remove(&id);
                        h.confirmed.insert(
                            id,
                            (b.body["id"].as_str().unwrap().to_owned(), seats_of(&b)),
                        );
                    }
                    Err(_) => return,
                }
            }
            5..=6 => {
                history.lock().unwrap().release_unknown.insert(id.clone());
                let auth = format!("Bearer {token}");
                let delete = try_request(
                    "DELETE",
                    &format!("{base}/v1/holds/{id}"),
                    None,
                    &[("Authorization", &auth)],
                );
                match delete {
                    Ok(d) => {
                        assert_eq!(d.status, 204, "{d:?}");
                        let mut h = history.lock().unwrap();
                        h.release_unknown.remove(&id);
                        h.released.insert(id);
                    }
                    Err(_) => return,
                }
            }
            _ => {}
        }
    }
}

fn get(base: &str, token: &str, path: &str) -> Resp {
    let auth = format!("Bearer {token}");
    try_request(
        "GET",
        &format!("{base}{path}"),
        None,
        &[("Authorization", &auth)],
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Checks the restarted server against everything acknowledged so far, and
/// settles the unanswered changes one way or the other.
fn verify(base: &str, h: &mut History) {
    let mut expected: HashMap<String, char> = HashMap::new();
    let mut own = |seat: &String, state: char, who: &str| {
        assert!(
            expected.insert(seat.clone(), state).is_none(),
            "seat {seat} has two owners (second: {who})"
        );
    };
    let ids: Vec<String> = h.holds.keys().cloned().collect();
    for id in ids {
        let seats = h.holds[&id].clone();
        let token = h.tokens[&id].clone();
        if let Some((bid, bseats)) = h.confirmed.get(&id) {
            let b = get(base, &token, &format!("/v1/bookings/{bid}"));
            assert_eq!(b.status, 200, "acknowledged booking {bid} lost: {b:?}");
            assert_eq!(&seats_of(&b), bseats);
            assert_eq!(b.body["status"], "confirmed");
            bseats.iter().for_each(|s| own(s, 's', bid));
            continue;
        }
        if h.released.contains(&id) {
            let r = get(base, &token, &format!("/v1/holds/{id}"));
            assert_eq!(
                (r.status, r.body["type"].as_str()),
                (410, Some("urn:boxoffice:problem:hold-released")),
                "acknowledged release of {id} lost"
            );
            continue;
        }
        let r = get(base, &token, &format!("/v1/holds/{id}"));
        match (r.status, r.body["status"].as_str()) {
            (200, Some("held")) => {
                assert_eq!(seats_of(&r), seats, "hold {id} changed seats");
                h.confirm_unknown.remove(&id);
                h.release_unknown.remove(&id);
                seats.iter().for_each(|s| own(s, 'h', &id));
            }
            (200, Some("confirmed")) if h.confirm_unknown.remove(&id) => {
                // The unanswered confirm was made durable: whole booking.
                let bid = r.body["booking_id"].as_str().unwrap().to_owned();
                let b = get(base, &token, &format!("/v1/bookings/{bid}"));
                assert_eq!(b.status, 200);
                assert_eq!(seats_of(&b), seats);
                seats.iter().for_each(|s| own(s, 's', &bid));
                h.confirmed.insert(id.clone(), (bid, seats));
            }
            (410, _) if h.release_unknown.remove(&id) => {
                h.released.insert(id.clone());
            }
            _ => panic!("acknowledged hold {id} is in an unexpected state: {r:?}"),
        }
    }
    // Seat maps: every known owner shows; unknown holds hold at most what
    // was asked by requests that never got an answer.
    let mut unknown_held = 0;
    for section in SECTIONS {
        let m = get(
            base,
            "",
            &format!("/v1/events/demo/sections/{section}/seats"),
        )
        .body;
        let ids = m["ids"].as_array().unwrap();
        for (seat, st) in ids.iter().zip(m["states"].as_str().unwrap().chars()) {
            let seat = seat.as_str().unwrap();
            match (expected.get(seat), st) {
                (Some(&want), got) => assert_eq!(got, want, "seat {seat}"),
                (None, 'f') => {}
                (None, 'h') => unknown_held += 1,
                (None, got) => panic!("seat {seat} is {got} with no acknowledged owner"),
            }
        }
    }
    assert!(
        unknown_held <= h.unknown_hold_seats_max,
        "{unknown_held} seats held by unknown holds, but only {} seats were asked for without an answer",
        h.unknown_hold_seats_max
    );
    let e = get(base, "", "/v1/events/demo").body;
    assert_eq!(
        e["free"].as_u64().unwrap() + e["held"].as_u64().unwrap() + e["sold"].as_u64().unwrap(),
        17_500
    );
}

#[test]
fn acknowledged_changes_survive_sigkill() {
    let seed = common::seed("BOXOFFICE_CRASH_SEED");
    let cycles: usize = std::env::var("BOXOFFICE_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("crash test: {cycles} cycles");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let history = Mutex::new(History::default());
    let mut server = start(dir.path());
    let started = Instant::now();
    for cycle in 0..cycles {
        let stop = AtomicBool::new(false);
        let kill_after = Duration::from_millis(50 + rng.next() % 350);
        let client_seeds: Vec<u64> = (0..CLIENTS).map(|_| rng.next()).collect();
        std::thread::scope(|scope| {
            for s in &client_seeds {
                let (base, history, stop) = (&server.base, &history, &stop);
                let dir = dir.path();
                scope.spawn(move || client(dir, base, *s, history, stop));
            }
            std::thread::sleep(kill_after);
            // SIGKILL: no chance to flush, close or say goodbye.
            server.child.kill().unwrap();
            server.child.wait().unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        server = start(dir.path());
        let mut h = history.lock().unwrap();
        verify(&server.base, &mut h);
        eprintln!(
            "cycle {cycle}: killed after {kill_after:?}; {} holds, {} bookings, {} releases acknowledged so far",
            h.holds.len(),
            h.confirmed.len(),
            h.released.len()
        );
    }
    let h = history.lock().unwrap();
    assert!(
        h.holds.len() >= cycles,
        "the clients barely got through: {} holds",
        h.holds.len()
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The kills fell among snapshots: restarts started from them.
    let snapshots = boxoffice::snapshot::list(dir.path()).unwrap();
    assert!(
        !snapshots.is_empty() || cycles < 5,
        "no snapshot was taken during the run"
    );
    eprintln!(
        "crash test: {cycles} kills in {:?}; newest snapshot at journal position {:?}",
        started.elapsed(),
        snapshots.first().map(|s| s.0)
    );
}
