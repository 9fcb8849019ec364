//! What clients were told during a run the server may not survive (a
//! SIGKILL, a power cut), and the check that a restarted server keeps all
//! of it: every acknowledged change there, nothing unacknowledged half
//! there, no seat with two owners. Shared by tests/crash.rs and
//! tests/power_cut.rs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::json;

use super::{try_request, Resp, Rng};

pub const CLIENTS: usize = 4;

/// Whether the check after run `n` of `runs` asks about every acknowledged
/// change, not only those since the last check: every 25th and the last.
pub fn check_all(n: usize, runs: usize) -> bool {
    n + 1 == runs || n % 25 == 24
}
pub const SECTIONS: &[&str] = &[
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S",
    "T",
];

#[derive(Debug, Default)]
pub struct History {
    /// Acknowledged holds: id -> seats.
    pub holds: HashMap<String, Vec<String>>,
    /// Acknowledged (or since discovered) bookings: hold id -> (booking id, seats).
    pub confirmed: HashMap<String, (String, Vec<String>)>,
    pub released: HashSet<String>,
    /// Acknowledged cancels, and cancels whose answer never came: booking
    /// ids.
    pub cancelled: HashSet<String>,
    pub cancel_unknown: HashSet<String>,
    /// Confirms and releases whose answer never came: hold ids.
    pub confirm_unknown: HashSet<String>,
    pub release_unknown: HashSet<String>,
    /// Holds whose answer never came: at most this many seats may be held
    /// by holds nobody knows the id of.
    pub unknown_hold_seats_max: usize,
    /// The token of each hold's fan (every hold is a fan of its own).
    pub tokens: HashMap<String, String>,
    /// Holds asked about or changed since the last check.
    pub dirty: HashSet<String>,
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

/// How a client's request ended: answered (and recorded), or the server
/// is gone (the client stops).
type Answered = Result<(), ()>;

/// Releases a hold, recording the release as unknown until it is answered.
fn release(base: &str, token: &str, id: &str, history: &Mutex<History>) -> Answered {
    {
        let mut h = history.lock().unwrap();
        h.dirty.insert(id.to_owned());
        h.release_unknown.insert(id.to_owned());
    }
    let auth = format!("Bearer {token}");
    let d = try_request(
        "DELETE",
        &format!("{base}/v1/holds/{id}"),
        None,
        &[("Authorization", &auth)],
    )
    .map_err(drop)?;
    assert_eq!(d.status, 204, "{d:?}");
    let mut h = history.lock().unwrap();
    h.release_unknown.remove(id);
    h.released.insert(id.to_owned());
    Ok(())
}

/// Cancels the booking made from hold `id`: its seats go back on sale.
fn cancel(base: &str, token: &str, id: &str, bid: &str, history: &Mutex<History>) -> Answered {
    {
        let mut h = history.lock().unwrap();
        h.dirty.insert(id.to_owned());
        h.cancel_unknown.insert(bid.to_owned());
    }
    let auth = format!("Bearer {token}");
    let c = try_request(
        "POST",
        &format!("{base}/v1/bookings/{bid}/cancel"),
        None,
        &[("Authorization", &auth)],
    )
    .map_err(drop)?;
    assert_eq!(c.status, 200, "{c:?}");
    let mut h = history.lock().unwrap();
    h.cancel_unknown.remove(bid);
    h.cancelled.insert(bid.to_owned());
    Ok(())
}

/// A section had no seats for a hold: give back seats a known fan owns
/// there (a hold released or a booking cancelled, chosen by `pick`), so
/// that a long run never sells the arena out and every cut falls among
/// changes.
/// Whether anything was there to give back.
fn recycle(base: &str, section: &str, pick: u64, history: &Mutex<History>) -> Result<bool, ()> {
    let prefix = format!("{section}/");
    let chosen = {
        let h = history.lock().unwrap();
        let settled = |id: &String| {
            !h.released.contains(id)
                && !h.confirm_unknown.contains(id)
                && !h.release_unknown.contains(id)
        };
        let live: Vec<(&String, Option<&String>)> = h
            .holds
            .iter()
            .filter(|(id, seats)| {
                settled(id) && seats.first().is_some_and(|s| s.starts_with(&prefix))
            })
            .map(|(id, _)| id)
            .filter_map(|id| match h.confirmed.get(id) {
                None => Some((id, None)),
                Some((bid, _)) if h.cancelled.contains(bid) || h.cancel_unknown.contains(bid) => {
                    None
                }
                Some((bid, _)) => Some((id, Some(bid))),
            })
            .collect();
        if live.is_empty() {
            return Ok(false);
        }
        let (id, bid) = live[(pick % live.len() as u64) as usize];
        (id.clone(), bid.cloned(), h.tokens[id].clone())
    };
    match chosen {
        (id, None, token) => release(base, &token, &id, history)?,
        (id, Some(bid), token) => cancel(base, &token, &id, &bid, history)?,
    }
    Ok(true)
}

/// One client until the server dies: every acknowledged change goes into
/// the history, every unanswered one into its "unknown" sets.
pub fn client(dir: &Path, base: &str, seed: u64, history: &Mutex<History>, stop: &AtomicBool) {
    let mut rng = Rng(seed);
    let mut n = 0;
    // A hold refused for want of seats is asked again once some are given
    // back.
    let mut again = None;
    while !stop.load(Ordering::Relaxed) {
        let (section, qty) = again.take().unwrap_or_else(|| {
            (
                SECTIONS[(rng.next() % SECTIONS.len() as u64) as usize],
                1 + rng.next() % 4,
            )
        });
        n += 1;
        let token = super::token(dir, &format!("crash-{seed:x}-{n}"));
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
        if r.status == 409 {
            match recycle(base, section, rng.next(), history) {
                Ok(true) => again = Some((section, qty)),
                Ok(false) => {}
                Err(()) => return,
            }
            continue;
        }
        if r.status != 201 {
            assert_eq!(r.status, 503, "{r:?}");
            continue;
        }
        let id = r.body["id"].as_str().unwrap().to_owned();
        {
            let mut h = history.lock().unwrap();
            h.holds.insert(id.clone(), seats_of(&r));
            h.tokens.insert(id.clone(), token.clone());
            h.dirty.insert(id.clone());
        }
        let answered = match rng.next() % 10 {
            0..=4 => {
                history.lock().unwrap().confirm_unknown.insert(id.clone());
                match post(
                    base,
                    &token,
                    &format!("/v1/holds/{id}/confirm"),
                    super::pay(dir, &r.body, "fan@example.com"),
                ) {
                    Ok(b) => {
                        assert_eq!(b.status, 201, "{b:?}");
                        let bid = b.body["id"].as_str().unwrap().to_owned();
                        {
                            let mut h = history.lock().unwrap();
                            h.confirm_unknown.remove(&id);
                            h.confirmed.insert(id.clone(), (bid.clone(), seats_of(&b)));
                        }
                        if rng.next().is_multiple_of(4) {
                            cancel(base, &token, &id, &bid, history)
                        } else {
                            Ok(())
                        }
                    }
                    Err(_) => Err(()),
                }
            }
            5..=6 => release(base, &token, &id, history),
            _ => Ok(()),
        };
        if answered.is_err() {
            return;
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
/// settles the unanswered changes one way or the other. With `all` false
/// only the holds changed since the last check are asked about one by one
/// (every change not yet answered is among them); the seat maps are always
/// checked against the whole history.
pub fn verify(base: &str, h: &mut History, all: bool) {
    let ids: Vec<String> = if all {
        h.holds.keys().cloned().collect()
    } else {
        h.dirty
            .iter()
            .filter(|id| h.holds.contains_key(*id))
            .cloned()
            .collect()
    };
    h.dirty.clear();
    // What the server says of each: its booking if one was acknowledged,
    // else the hold; asked over eight connections at once (thousands of
    // holds after a long run).
    let paths: Vec<(String, String)> = ids
        .iter()
        .map(|id| match h.confirmed.get(id) {
            Some((bid, _)) => (h.tokens[id].clone(), format!("/v1/bookings/{bid}")),
            None => (h.tokens[id].clone(), format!("/v1/holds/{id}")),
        })
        .collect();
    let mut said: Vec<Option<Resp>> = vec![None; paths.len()];
    std::thread::scope(|scope| {
        for (chunk, out) in paths
            .chunks(paths.len().div_ceil(8).max(1))
            .zip(said.chunks_mut(paths.len().div_ceil(8).max(1)))
        {
            scope.spawn(move || {
                for ((token, path), slot) in chunk.iter().zip(out) {
                    *slot = Some(get(base, token, path));
                }
            });
        }
    });
    for (id, said) in ids.into_iter().zip(said) {
        let said = said.expect("asked");
        let seats = h.holds[&id].clone();
        let token = h.tokens[&id].clone();
        if let Some((bid, bseats)) = h.confirmed.get(&id).cloned() {
            let b = said;
            assert_eq!(b.status, 200, "acknowledged booking {bid} lost: {b:?}");
            assert_eq!(seats_of(&b), bseats);
            match b.body["status"].as_str() {
                Some("cancelled") if h.cancel_unknown.remove(&bid) => {
                    // The unanswered cancel was made durable.
                    h.cancelled.insert(bid.clone());
                }
                Some("cancelled") => assert!(
                    h.cancelled.contains(&bid),
                    "booking {bid} cancelled unasked"
                ),
                Some("confirmed") => {
                    assert!(
                        !h.cancelled.contains(&bid),
                        "acknowledged cancel of {bid} lost"
                    );
                    h.cancel_unknown.remove(&bid);
                }
                other => panic!("booking {bid} is {other:?}"),
            }
            continue;
        }
        if h.released.contains(&id) {
            let r = said;
            assert_eq!(
                (r.status, r.body["type"].as_str()),
                (410, Some("urn:boxoffice:problem:hold-released")),
                "acknowledged release of {id} lost"
            );
            continue;
        }
        let r = said;
        match (r.status, r.body["status"].as_str()) {
            (200, Some("held")) => {
                assert_eq!(seats_of(&r), seats, "hold {id} changed seats");
                h.confirm_unknown.remove(&id);
                h.release_unknown.remove(&id);
            }
            (200, Some("confirmed")) if h.confirm_unknown.remove(&id) => {
                // The unanswered confirm was made durable: whole booking.
                let bid = r.body["booking_id"].as_str().unwrap().to_owned();
                let b = get(base, &token, &format!("/v1/bookings/{bid}"));
                assert_eq!(b.status, 200);
                assert_eq!(seats_of(&b), seats);
                h.confirmed.insert(id.clone(), (bid, seats));
            }
            (410, _) if h.release_unknown.remove(&id) => {
                h.released.insert(id.clone());
            }
            _ => panic!("acknowledged hold {id} is in an unexpected state: {r:?}"),
        }
    }
    assert!(
        h.confirm_unknown.is_empty() && h.release_unknown.is_empty() && h.cancel_unknown.is_empty(),
        "every unanswered change was asked about"
    );
    // Who owns each seat now, by the (settled) history.
    let mut expected: HashMap<&str, char> = HashMap::new();
    for (id, seats) in &h.holds {
        let (state, who) = match h.confirmed.get(id) {
            Some((bid, _)) if h.cancelled.contains(bid) => continue,
            Some((bid, _)) => ('s', bid),
            None if h.released.contains(id) => continue,
            None => ('h', id),
        };
        for seat in seats {
            assert!(
                expected.insert(seat.as_str(), state).is_none(),
                "seat {seat} has two owners (second: {who})"
            );
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

/// The real binary for a run it may not survive, on `dir`: holds outlive
/// the whole run (the check counts every acknowledged hold as held or
/// sold after the last restart), and it snapshots and compacts all the
/// time, so that kills land during snapshots and restarts start from one.
pub fn start_server(dir: &Path) -> (std::process::Child, String) {
    super::spawn_listening(
        super::boxoffice()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--hold-ttl-secs",
                "3600",
            ])
            .args(["--snapshot-every-records", "50", "--snapshot-keep", "2"])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn"),
    )
}
