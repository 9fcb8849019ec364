//! The door: tickets check in once, through `POST /v1/tickets/check-in`
//! with the scanners' own token, on a real socket; many doors racing on
//! one ticket; check-ins surviving SIGKILL of the real binary.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use boxoffice::clock::{rfc3339_ms, ManualClock};
use common::{admin, bearer, check_problem, try_request, Resp, TestServer, T0_MS};
use serde_json::{json, Value};

const SCANNER_TOKEN: &str = "test-scanner-token";
const CHECK_IN: &str = "/v1/tickets/check-in";

fn start(dir: &std::path::Path) -> TestServer {
    let args = boxoffice::config::ServeArgs {
        scanner_token: Some(SCANNER_TOKEN.into()),
        ..common::args(dir)
    };
    TestServer::start_with(args, Arc::new(ManualClock::new(T0_MS)))
}

/// Books `seats` of the demo event for the default fan; returns the
/// booking as its fan reads it (with its tickets).
fn book(s: &TestServer, section: &str, seats: &[&str]) -> Value {
    let hold = s.hold(section, seats);
    let id = hold["id"].as_str().unwrap();
    let r = s.post(
        &format!("/v1/holds/{id}/confirm"),
        &s.pay(id, "fan@example.com"),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let read = s.get(&format!("/v1/bookings/{}", r.body["id"].as_str().unwrap()));
    assert_eq!(read.status, 200, "{read:?}");
    read.body
}

fn tokens(booking: &Value) -> Vec<String> {
    booking["tickets"]
        .as_array()
        .expect("the fan's read has tickets")
        .iter()
        .map(|t| t["token"].as_str().unwrap().to_owned())
        .collect()
}

/// A scan at `base` with the credential `auth` (a bearer token, or none).
fn scan_at(base: &str, token: &str, auth: Option<&str>) -> Result<Resp, String> {
    let auth = auth.map(|a| format!("Bearer {a}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    try_request(
        "POST",
        &format!("{base}{CHECK_IN}"),
        Some(json!({ "token": token }).to_string()),
        &headers,
    )
}

fn scan(s: &TestServer, token: &str) -> Resp {
    scan_at(&s.base, token, Some(SCANNER_TOKEN)).unwrap()
}

fn metric(s: &TestServer, line_start: &str) -> u64 {
    let text = s.metrics();
    text.lines()
        .filter(|l| l.starts_with(line_start))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// The first scan of each ticket admits and says which place; the second
/// is refused with the first's time; the fan's booking shows which of its
/// tickets were used; a retry with the scan's Idempotency-Key gets the
/// first answer again.
#[test]
fn a_ticket_admits_once_and_the_second_scan_says_when() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let booking = book(&s, "A", &["A/3/4", "A/3/5", "A/3/6"]);
    let t = tokens(&booking);
    assert_eq!(t.len(), 3, "one ticket per place");

    s.clock.advance_ms(60_000);
    let first_at = rfc3339_ms(T0_MS + 60_000);
    let r = scan(&s, &t[1]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({
            "event": "demo",
            "section": "A",
            "booking": r.body["booking"],
            "place": 2,
            "seat": "A/3/5",
            "label": "Row 3, Seat 5",
            "category": r.body["category"],
            "checked_in_at": first_at,
        })
    );
    assert!(r.body["category"].as_str().is_some_and(|c| !c.is_empty()));

    s.clock.advance_ms(5_000);
    let again = scan(&s, &t[1]);
    check_problem(&again, 409, "already-checked-in");
    assert_eq!(again.body["checked_in_at"], first_at);

    // The other places are tickets of their own.
    assert_eq!(scan(&s, &t[0]).status, 200);
    let read = s.get(&format!("/v1/bookings/{}", booking["id"].as_str().unwrap()));
    let used: Vec<&Value> = read.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["checked_in_at"])
        .collect();
    assert_eq!(used[1], &json!(first_at));
    assert_eq!(used[0], &json!(rfc3339_ms(T0_MS + 65_000)));
    assert_eq!(used[2], &Value::Null, "{read:?}");

    // A scanner that lost its answer retries with the same key and hears
    // the first answer, not a refusal.
    let keyed = |token: &str| {
        s.unsigned(
            "POST",
            CHECK_IN,
            Some(json!({ "token": token }).to_string()),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &format!("Bearer {SCANNER_TOKEN}")),
                ("Idempotency-Key", "door-7-scan-1"),
            ],
        )
    };
    let first = keyed(&t[2]);
    assert_eq!(first.status, 200, "{first:?}");
    let retry = keyed(&t[2]);
    assert_eq!((retry.status, retry.replayed), (200, true), "{retry:?}");
    assert_eq!(retry.body, first.body);

    assert_eq!(
        metric(
            &s,
            "boxoffice_changes_total{event=\"demo\",kind=\"check_in\""
        ),
        3
    );
    assert_eq!(
        metric(
            &s,
            "boxoffice_check_ins_refused_total{reason=\"already-checked-in\"}"
        ),
        1
    );

    // Inside, the fan cannot hand the booking back for resale; support
    // can cancel it, and its seats return.
    let cancel = format!("/v1/bookings/{}/cancel", booking["id"].as_str().unwrap());
    check_problem(&s.post(&cancel, &json!({})), 409, "booking-used");
    let by_support = s.unsigned("POST", &cancel, None, &admin());
    assert_eq!(by_support.status, 200, "{by_support:?}");
    assert_eq!(by_support.body["status"], "cancelled");
}

/// Only the scanners' token checks in: not the admin's, not a fan's,
/// not none; a server without one has check-in disabled. Forged, altered
/// and cancelled tickets are refused, and nothing is checked in by any
/// refusal.
#[test]
fn only_scanners_check_in_and_only_good_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let t = tokens(&book(&s, "B", &["B/1/1", "B/1/2"]));
    let fan = s.token.clone();
    for auth in [None, Some(common::ADMIN_TOKEN), Some(fan.as_str())] {
        let r = scan_at(&s.base, &t[0], auth).unwrap();
        check_problem(&r, 401, "unauthorized");
    }
    // Altered: a byte of the payload, or the signature, or another key's.
    let (signed, mac) = t[0].rsplit_once('.').unwrap();
    let mut payload = signed.to_owned().into_bytes();
    let i = payload.len() - 3;
    payload[i] = if payload[i] == b'A' { b'B' } else { b'A' };
    let altered = format!("{}.{mac}", String::from_utf8(payload).unwrap());
    let lineage = boxoffice::data_dir::Lineage::load(dir.path())
        .unwrap()
        .expect("the server began a lineage");
    let secret_of = |booking: &Value| {
        let id = booking["id"].as_str().unwrap();
        u64::from_str_radix(id.rsplit('.').next().unwrap(), 16).unwrap()
    };
    let first = book(&s, "B", &["B/1/3"]);
    let other_key = boxoffice::mail::TicketKey::from_bytes([9; 32]);
    let forged = other_key.sign(
        &boxoffice::mail::Ticket::per_place(
            "demo",
            "B",
            (0, secret_of(&first)),
            lineage,
            &["B/1/3".into()],
            1,
        )[0],
    );
    for (token, reason) in [
        (altered.as_str(), "bad-signature"),
        (forged.as_str(), "bad-signature"),
        ("BXT1.e30", "malformed"),
        ("", "malformed"),
    ] {
        let r = scan(&s, token);
        check_problem(&r, 422, "ticket-invalid");
        assert_eq!(r.body["reason"], reason, "{token}: {r:?}");
    }
    // A whole-booking ticket (as emails before per-place tickets carried).
    let key = boxoffice::mail::TicketKey::load_or_create(dir.path()).unwrap();
    let whole = key.sign(&boxoffice::mail::Ticket {
        e: "demo".into(),
        s: "B".into(),
        b: 0,
        n: None,
        seat: None,
        seats: vec!["B/1/3".into()],
        qty: None,
        k: None,
        d: None,
    });
    check_problem(&scan(&s, &whole), 422, "ticket-superseded");
    // Genuine signatures over places no booking has, or of another
    // booking than the one with the number now (another secret), or of
    // another lineage of the data.
    let (b0, b1) = (secret_of(&first), secret_of(&first) ^ 1);
    let elsewhere = boxoffice::data_dir::Lineage {
        id: lineage.id ^ 1,
        ..lineage
    };
    // (`first` is booking 1 of section B.)
    for (event, section, booking, lineage, seat) in [
        ("demo", "B", (1, b0), lineage, "B/1/1"),
        ("demo", "B", (5, b0), lineage, "B/1/3"),
        ("demo", "Z", (1, b0), lineage, "Z/1/1"),
        ("gone", "B", (1, b0), lineage, "B/1/3"),
        ("demo", "B", (1, b1), lineage, "B/1/3"),
        ("demo", "B", (1, b0), elsewhere, "B/1/3"),
    ] {
        let ticket =
            boxoffice::mail::Ticket::per_place(event, section, booking, lineage, &[seat.into()], 1);
        check_problem(&scan(&s, &key.sign(&ticket[0])), 404, "ticket-not-found");
    }
    // A bad body.
    let r = s.unsigned(
        "POST",
        CHECK_IN,
        Some(r#"{"ticket": "x"}"#.into()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {SCANNER_TOKEN}")),
        ],
    );
    check_problem(&r, 422, "invalid-request");
    // Nothing above checked anything in.
    assert_eq!(
        metric(
            &s,
            "boxoffice_changes_total{event=\"demo\",kind=\"check_in\""
        ),
        0
    );
    // The same ticket, its own booking's and of this lineage, admits.
    let own =
        boxoffice::mail::Ticket::per_place("demo", "B", (1, b0), lineage, &["B/1/3".into()], 1);
    assert_eq!(scan(&s, &key.sign(&own[0])).status, 200);
    assert_eq!(scan(&s, &key.sign(&own[0])).status, 409);
    // A cancelled booking's tickets are void.
    let booking = book(&s, "B", &["B/2/1"]);
    let void = tokens(&booking);
    let c = s.unsigned(
        "POST",
        &format!("/v1/bookings/{}/cancel", booking["id"].as_str().unwrap()),
        None,
        &admin(),
    );
    assert_eq!(c.status, 200, "{c:?}");
    check_problem(&scan(&s, &void[0]), 409, "ticket-cancelled");
    // The good ticket still admits, once.
    assert_eq!(scan(&s, &t[0]).status, 200);
    let refused = |reason: &str| {
        metric(
            &s,
            &format!("boxoffice_check_ins_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("unauthorized"), 3);
    assert_eq!(refused("ticket-invalid"), 4);
    assert_eq!(refused("ticket-superseded"), 1);
    assert_eq!(refused("ticket-not-found"), 6);
    assert_eq!(refused("ticket-cancelled"), 1);
    assert_eq!(refused("other"), 1);
    s.stop();

    // Without --scanner-token, there is no door.
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let t = tokens(&book(&s, "B", &["B/1/1"]));
    for auth in [None, Some(common::ADMIN_TOKEN)] {
        check_problem(
            &scan_at(&s.base, &t[0], auth).unwrap(),
            403,
            "check-in-disabled",
        );
    }
}

/// 32 doors scan one ticket at the same instant: exactly one admits, and
/// every other door is told when it did.
#[test]
fn thirty_two_doors_scan_one_ticket_and_exactly_one_admits() {
    const DOORS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let t = tokens(&book(&s, "C", &["C/1/1", "C/1/2"]));
    for token in &t {
        let barrier = Arc::new(Barrier::new(DOORS));
        let doors: Vec<_> = (0..DOORS)
            .map(|_| {
                let (base, token, barrier) = (s.base.clone(), token.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    scan_at(&base, &token, Some(SCANNER_TOKEN)).unwrap()
                })
            })
            .collect();
        let answers: Vec<Resp> = doors.into_iter().map(|d| d.join().unwrap()).collect();
        let admitted: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
        assert_eq!(admitted.len(), 1, "{answers:?}");
        let at = &admitted[0].body["checked_in_at"];
        for r in answers.iter().filter(|r| r.status != 200) {
            check_problem(r, 409, "already-checked-in");
            assert_eq!(&r.body["checked_in_at"], at);
        }
    }
}

/// Scanners check tickets in while the real binary is killed with
/// SIGKILL (after a snapshot, so both the snapshot and the journal after
/// it carry check-ins): after a restart, every acknowledged check-in is
/// there with its time, and every ticket still admits at most once.
#[test]
fn check_ins_survive_sigkill() {
    const FANS: usize = 8;
    const DOORS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--scanner-token",
        SCANNER_TOKEN,
        "--admin-token",
        common::ADMIN_TOKEN,
        "--fan-holds-per-sec",
        "0",
        "--demo-presale-secs",
        "0",
    ];
    let (mut child, base) = common::serve(dir.path(), &flags);
    // Each fan books 4 places of a standing section: 32 tickets.
    let mut tickets = Vec::new();
    for f in 0..FANS {
        let auth = bearer(&common::token(dir.path(), &format!("door-fan-{f}")));
        let headers = [
            ("Content-Type", "application/json"),
            (auth.0, auth.1.as_str()),
        ];
        let hold = common::request(
            "POST",
            &format!("{base}/v1/events/demo/holds"),
            Some(json!({"section": "FLOOR", "quantity": 4}).to_string()),
            &headers,
        );
        assert_eq!(hold.status, 201, "{hold:?}");
        let pay = common::pay(dir.path(), &hold.body, "door@example.com");
        let id = hold.body["id"].as_str().unwrap();
        let b = common::request(
            "POST",
            &format!("{base}/v1/holds/{id}/confirm"),
            Some(pay.to_string()),
            &headers,
        );
        assert_eq!(b.status, 201, "{b:?}");
        let read = common::request(
            "GET",
            &format!("{base}/v1/bookings/{}", b.body["id"].as_str().unwrap()),
            None,
            &headers,
        );
        tickets.extend(tokens(&read.body));
    }
    // A few before the snapshot, so that it carries check-ins.
    let mut acked: HashMap<String, Value> = HashMap::new();
    for token in &tickets[..4] {
        let r = scan_at(&base, token, Some(SCANNER_TOKEN)).unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        acked.insert(token.clone(), r.body["checked_in_at"].clone());
    }
    let snap = common::request(
        "POST",
        &format!("{base}/v1/admin/snapshots"),
        None,
        &admin(),
    );
    assert_eq!(snap.status, 201, "{snap:?}");
    // The doors scan the rest, each ticket twice over, until the kill.
    let stop = Arc::new(AtomicBool::new(false));
    let doors: Vec<_> = (0..DOORS)
        .map(|d| {
            let (base, stop) = (base.clone(), Arc::clone(&stop));
            let mine: Vec<String> = tickets[4..]
                .iter()
                .enumerate()
                .filter(|(i, _)| i % DOORS == d || (i + 1) % DOORS == d)
                .map(|(_, t)| t.clone())
                .collect();
            std::thread::spawn(move || {
                let mut acked = HashMap::new();
                for token in mine {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match scan_at(&base, &token, Some(SCANNER_TOKEN)) {
                        Ok(r) if r.status == 200 => {
                            acked.insert(token, r.body["checked_in_at"].clone());
                        }
                        Ok(r) => check_problem(&r, 409, "already-checked-in"),
                        Err(_) => break,
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(60));
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for d in doors {
        acked.extend(d.join().unwrap());
    }
    assert!(
        acked.len() > 4,
        "the doors checked tickets in before the kill"
    );

    let (mut child, base) = common::serve(dir.path(), &flags);
    for token in &tickets {
        let r = scan_at(&base, token, Some(SCANNER_TOKEN)).unwrap();
        match acked.get(token) {
            Some(at) => {
                check_problem(&r, 409, "already-checked-in");
                assert_eq!(&r.body["checked_in_at"], at, "{r:?}");
            }
            // Unacknowledged: checked in before the kill, or not yet.
            None if r.status == 409 => check_problem(&r, 409, "already-checked-in"),
            None => assert_eq!(r.status, 200, "{r:?}"),
        }
    }
    // And now every ticket is used.
    for token in &tickets {
        let r = scan_at(&base, token, Some(SCANNER_TOKEN)).unwrap();
        check_problem(&r, 409, "already-checked-in");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `boxoffice ticket verify --server` is a door: it admits once, then
/// refuses with exit status 1 and the first scan's time.
#[test]
fn the_command_line_checks_in_at_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path());
    let t = tokens(&book(&s, "D", &["D/2/7"]));
    let verify = |scanner: &str| {
        common::boxoffice()
            .args(["ticket", "verify", &t[0], "--server", &s.base])
            .args(["--scanner-token", scanner])
            .output()
            .unwrap()
    };
    let at = rfc3339_ms(T0_MS);
    let first = verify(SCANNER_TOKEN);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        format!("admit: Row 2, Seat 7 in section D of event demo, checked in at {at}")
    );
    let second = verify(SCANNER_TOKEN);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("do not admit: 409 already-checked-in") && stderr.contains(&at),
        "{stderr}"
    );
    let admin = verify(common::ADMIN_TOKEN);
    assert_eq!(admin.status.code(), Some(1), "{admin:?}");
    assert!(String::from_utf8_lossy(&admin.stderr).contains("401 unauthorized"));
}

/// `boxoffice snapshot ...` on the real binary; it must succeed.
fn snapshot_cli(args: &[&std::ffi::OsStr]) {
    let out = common::boxoffice()
        .arg("snapshot")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A ticket names its booking, not only the booking's number: the ticket
/// of a booking that was lost admits nobody into the booking that has its
/// number now, after a restore of a snapshot older than the booking, or
/// on a fresh volume that reuses the event's id and the ticket key. The
/// tickets of the bookings the snapshot holds still admit after the
/// restore (it goes on with their lineage).
#[test]
fn a_ticket_of_a_lost_booking_admits_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("before.snap");
    let s = start(&data);
    let kept = tokens(&book(&s, "A", &["A/1/1"]));
    s.stop();
    snapshot_cli(&[
        "create".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
    ]);
    // Booking 1 of A: its ticket is mailed, then the disk is lost.
    let s = start(&data);
    let lost = tokens(&book(&s, "A", &["A/1/2"]));
    s.stop();
    snapshot_cli(&[
        "restore".as_ref(),
        file.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--force".as_ref(),
    ]);
    let s = start(&data);
    // Booking 1 again, on the very seat: only what ties the ticket to its
    // booking tells the two apart.
    let new = book(&s, "A", &["A/1/2"]);
    assert_eq!(new["id"].as_str().unwrap().split('.').nth(2), Some("b1"));
    check_problem(&scan(&s, &lost[0]), 404, "ticket-not-found");
    assert_eq!(scan(&s, &kept[0]).status, 200);
    assert_eq!(scan(&s, &tokens(&new)[0]).status, 200);
    let key = std::fs::read_to_string(data.join("ticket.key")).unwrap();
    s.stop();

    // A fresh volume, the same event id and ticket key: booking 0 again.
    let args = boxoffice::config::ServeArgs {
        scanner_token: Some(SCANNER_TOKEN.into()),
        ticket_key: Some(key.trim().to_owned()),
        ..common::args(&dir.path().join("fresh"))
    };
    let s = TestServer::start_with(args, Arc::new(ManualClock::new(T0_MS)));
    let again = book(&s, "A", &["A/1/1"]);
    assert_eq!(again["id"].as_str().unwrap().split('.').nth(2), Some("b0"));
    check_problem(&scan(&s, &kept[0]), 404, "ticket-not-found");
    assert_eq!(scan(&s, &tokens(&again)[0]).status, 200);
}
