//! Invariant 1. Many clients fight over the same few seats at once.
//! Whatever the interleaving: no seat is held or sold twice, and free + held + sold is
//! the capacity, with every count matching what clients were told.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;

use common::*;
use serde_json::json;

const CLIENTS: u64 = 32;
const ROUNDS: u64 = 25;

#[derive(Default)]
struct Outcome {
    /// Live holds as acknowledged: id -> seats.
    holds: HashMap<String, Vec<String>>,
    /// Bookings as acknowledged: id -> seats.
    bookings: HashMap<String, Vec<String>>,
}

fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn concurrent_fans_never_double_book() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    assert_eq!(
        s.post_with(
            "/v1/events",
            &small_event("race", &[8, 8, 8], 6, 4),
            &admin()
        )
        .status,
        201
    );
    let base = s.base.clone();
    let outcome = Mutex::new(Outcome::default());
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let base = &base;
            let outcome = &outcome;
            let data_dir = &s.data_dir;
            // Each client is a fan of its own.
            let auth = format!("Bearer {}", s.token_for(&format!("racer-{c}")));
            scope.spawn(move || {
                let mut rng = 0x9E37_79B9_7F4A_7C15 ^ (c + 1).wrapping_mul(0xA24B_AED4_963E_E407);
                let post = |path: &str, body: serde_json::Value| {
                    request(
                        "POST",
                        &format!("{base}{path}"),
                        Some(body.to_string()),
                        &[
                            ("Content-Type", "application/json"),
                            ("Authorization", &auth),
                        ],
                    )
                };
                for _ in 0..ROUNDS {
                    let r = match next(&mut rng) % 3 {
                        0 => post(
                            "/v1/events/race/holds",
                            json!({"section": "S", "quantity": 1 + next(&mut rng) % 3}),
                        ),
                        1 => {
                            let a = next(&mut rng) % 24;
                            let seats: Vec<String> = (0..2)
                                .map(|k| format!("S/{}/{}", (a + k) % 24 / 8 + 1, (a + k) % 8 + 1))
                                .collect();
                            post(
                                "/v1/events/race/holds",
                                json!({"section": "S", "seats": seats}),
                            )
                        }
                        _ => post(
                            "/v1/events/race/holds",
                            json!({"section": "F", "quantity": 1 + next(&mut rng) % 2}),
                        ),
                    };
                    assert!(matches!(r.status, 201 | 409), "{r:?}");
                    if r.status != 201 {
                        continue;
                    }
                    let id = r.body["id"].as_str().unwrap().to_owned();
                    let seats: Vec<String> = if r.body["section"] == "F" {
                        (0..r.body["quantity"].as_u64().unwrap())
                            .map(|i| format!("F#{id}#{i}"))
                            .collect()
                    } else {
                        r.body["seats"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_str().unwrap().to_owned())
                            .collect()
                    };
                    match next(&mut rng) % 4 {
                        0 | 1 => {
                            let b = post(
                                &format!("/v1/holds/{id}/confirm"),
                                common::pay(data_dir, &r.body, "f@x.io"),
                            );
                            assert_eq!(b.status, 201, "{b:?}");
                            outcome
                                .lock()
                                .unwrap()
                                .bookings
                                .insert(b.body["id"].as_str().unwrap().to_owned(), seats);
                        }
                        2 => {
                            let d = request(
                                "DELETE",
                                &format!("{base}/v1/holds/{id}"),
                                None,
                                &[("Authorization", &auth)],
                            );
                            assert_eq!(d.status, 204);
                        }
                        _ => {
                            outcome.lock().unwrap().holds.insert(id, seats);
                        }
                    }
                }
            });
        }
    });
    let o = outcome.into_inner().unwrap();
    // No seat in two live holds or bookings.
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (id, seats) in o.holds.iter().chain(o.bookings.iter()) {
        for seat in seats {
            if let Some(other) = owner.insert(seat, id) {
                panic!("seat {seat} owned by {other} and {id}");
            }
        }
    }
    // The server agrees seat by seat and in its counts.
    let map = s.get("/v1/events/race/sections/S/seats").body;
    let ids: Vec<&str> = map["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let states = map["states"].as_str().unwrap();
    for (id, st) in ids.iter().zip(states.chars()) {
        let expected = match owner.get(id) {
            Some(o) if o.split('.').nth(2).is_some_and(|p| p.starts_with('b')) => 's',
            Some(_) => 'h',
            None => 'f',
        };
        assert_eq!(st, expected, "seat {id}");
    }
    let e = s.get("/v1/events/race").body;
    let seated = |k: &str| -> u64 { e["sections"][0][k].as_u64().unwrap() };
    let standing = |k: &str| -> u64 { e["sections"][1][k].as_u64().unwrap() };
    assert_eq!(seated("free") + seated("held") + seated("sold"), 24);
    assert_eq!(standing("free") + standing("held") + standing("sold"), 6);
    let count = |m: &HashMap<String, Vec<String>>, floor: bool| -> u64 {
        m.values()
            .flatten()
            .filter(|s| s.starts_with("F#") == floor)
            .count() as u64
    };
    assert_eq!(seated("held"), count(&o.holds, false));
    assert_eq!(seated("sold"), count(&o.bookings, false));
    assert_eq!(standing("held"), count(&o.holds, true));
    assert_eq!(standing("sold"), count(&o.bookings, true));
    assert!(seated("sold") > 0, "the race should sell something");
}
