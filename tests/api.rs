//! The REST API over a real socket: every endpoint, every error path.
//! Each test starts its own server on port 0 with a fresh data directory and
//! a manual clock.

mod common;

use common::*;
use serde_json::json;

/// Waits (up to a second) until the event's availability is `want`: an
/// expiry nobody waited for is shown once its group commit is durable.
fn availability_becomes(s: &TestServer, want: (u64, u64, u64)) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while availability(s, "demo") != want {
        assert!(
            std::time::Instant::now() < deadline,
            "availability is {:?}, not {want:?}",
            availability(s, "demo")
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn availability(s: &TestServer, event: &str) -> (u64, u64, u64) {
    let e = s.get(&format!("/v1/events/{event}")).body;
    (
        e["free"].as_u64().unwrap(),
        e["held"].as_u64().unwrap(),
        e["sold"].as_u64().unwrap(),
    )
}

#[test]
fn events_and_seat_maps() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let list = s.get("/v1/events");
    assert_eq!(list.status, 200);
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(list.body[0]["id"], "demo");
    assert_eq!(list.body[0]["capacity"], 17_500);

    let e = s.get("/v1/events/demo");
    assert_eq!(e.status, 200);
    assert_eq!(e.body["free"], 17_500);
    assert_eq!(e.body["seats_per_hold_max"], 4);
    let sections = e.body["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 21);
    assert_eq!(sections[0]["id"], "FLOOR");
    assert_eq!(sections[0]["kind"], "standing");
    // Where the page draws what has no seats: the floor, and the stage.
    assert_eq!(
        sections[0]["area"],
        serde_json::json!({"x": -40.0, "y": 4.0, "width": 80.0, "height": 42.0})
    );
    assert_eq!(
        e.body["stage"],
        serde_json::json!({"x": -24.0, "y": -8.0, "width": 48.0, "height": 8.0})
    );
    assert_eq!(sections[1]["capacity"], 720);
    assert!(
        sections[1].get("area").is_none(),
        "seated: drawn from its seats"
    );
    let cats: Vec<&str> = e.body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(cats, ["VIP", "R", "S", "A"]);

    let m = s.get("/v1/events/demo/sections/A/seats");
    assert_eq!(m.status, 200);
    assert_eq!(m.body["ids"].as_array().unwrap().len(), 720);
    assert_eq!(m.body["ids"][0], "A/1/1");
    assert_eq!(m.body["states"].as_str().unwrap(), "f".repeat(720));
    assert_eq!(m.body["x"].as_array().unwrap().len(), 720);
    let f = s.get("/v1/events/demo/sections/FLOOR/seats");
    assert_eq!(f.body["kind"], "standing");
    assert_eq!(f.body["capacity"], 2500);

    check_problem(&s.get("/v1/events/nope"), 404, "event-not-found");
    check_problem(
        &s.get("/v1/events/demo/sections/ZZ/seats"),
        404,
        "section-not-found",
    );
    check_problem(&s.get("/v1/nothing"), 404, "not-found");
    // Every 405 says what is allowed (RFC 9110 requires it).
    for (method, path, allow) in [
        ("PUT", "/v1/events", "GET, POST"),
        ("PATCH", "/v1/holds/x", "GET, DELETE"),
        ("GET", "/v1/holds/x/confirm", "POST"),
        ("DELETE", "/v1/events/demo/sale-phases", "PUT"),
        ("POST", "/healthz", "GET"),
        ("FOO", "/v1/admin/snapshots", "GET, POST"),
    ] {
        let r = s.raw(method, path, None, &[]);
        check_problem(&r, 405, "method-not-allowed");
        assert_eq!(r.allow.as_deref(), Some(allow), "{method} {path}");
    }
}

#[test]
fn hold_get_release() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let h = s.hold("A", &["A/1/1", "A/1/2"]);
    assert_eq!(h["event"], "demo");
    assert_eq!(h["section"], "A");
    assert_eq!(h["seats"], json!(["A/1/1", "A/1/2"]));
    assert_eq!(h["quantity"], 2);
    assert_eq!(h["expires_at"], "2026-11-23T00:07:00.000Z");
    let id = h["id"].as_str().unwrap();
    assert!(id.starts_with("demo.A.h"));
    assert!(s.states("A").starts_with("hhf"));
    assert_eq!(availability(&s, "demo"), (17_498, 2, 0));

    let g = s.get(&format!("/v1/holds/{id}"));
    assert_eq!(g.status, 200);
    assert_eq!(g.body, h);

    // Taken seats are refused, naming them.
    let r = s.post(
        "/v1/events/demo/holds",
        &json!({"section": "A", "seats": ["A/1/2", "A/1/3"]}),
    );
    check_problem(&r, 409, "seats-unavailable");
    assert_eq!(r.body["seats"], json!(["A/1/2"]));

    let d = s.delete(&format!("/v1/holds/{id}"));
    assert_eq!(d.status, 204);
    assert!(s.states("A").starts_with("fff"));
    check_problem(&s.get(&format!("/v1/holds/{id}")), 410, "hold-released");
    check_problem(&s.delete(&format!("/v1/holds/{id}")), 410, "hold-released");
    // A forged secret is just "not found".
    let forged = format!("{}0000000000000000", &id[..id.len() - 16]);
    check_problem(
        &s.get(&format!("/v1/holds/{forged}")),
        404,
        "hold-not-found",
    );
    check_problem(&s.get("/v1/holds/garbage"), 404, "hold-not-found");
    check_problem(
        &s.get("/v1/holds/nope.A.h1.0000000000000000"),
        404,
        "hold-not-found",
    );
    assert_eq!(availability(&s, "demo"), (17_500, 0, 0));
}

#[test]
fn best_available_and_standing() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let r = s.post_with("/v1/events", &small_event("small", &[5, 3], 3, 4), &admin());
    assert_eq!(r.status, 201, "{r:?}");
    // Row 1 (nearest the stage), centred: seats 2-4 of 5.
    let h = s.post(
        "/v1/events/small/holds",
        &json!({"section": "S", "quantity": 3}),
    );
    assert_eq!(h.status, 201, "{h:?}");
    assert_eq!(h.body["seats"], json!(["S/1/2", "S/1/3", "S/1/4"]));
    // Row 1 now has runs of 1: the next pair goes to row 2.
    let h2 = s.post(
        "/v1/events/small/holds",
        &json!({"section": "S", "quantity": 2}),
    );
    assert_eq!(h2.body["seats"], json!(["S/2/1", "S/2/2"]));
    // No 2 together anywhere: 409 naming the largest block, never split.
    let r = s.post(
        "/v1/events/small/holds",
        &json!({"section": "S", "quantity": 2}),
    );
    check_problem(&r, 409, "no-adjacent-seats");
    assert_eq!(r.body["largest_block"], 1);
    assert_eq!(r.body["wanted"], 2);

    // JSON Schema's integers include 2.0; 1.5 is no number of places.
    let r = s.post(
        "/v1/events/small/holds",
        &json!({"section": "F", "quantity": 1.5}),
    );
    check_problem(&r, 422, "invalid-request");
    let f = s.post(
        "/v1/events/small/holds",
        &json!({"section": "F", "quantity": 2.0}),
    );
    assert_eq!(f.status, 201);
    assert_eq!(f.body["seats"], json!([]));
    assert_eq!(f.body["quantity"], 2);
    let r = s.post(
        "/v1/events/small/holds",
        &json!({"section": "F", "quantity": 2}),
    );
    check_problem(&r, 409, "not-enough-places");
    assert_eq!(r.body["available"], 1);
    let r = s.post(
        "/v1/events/small/holds",
        &json!({"section": "F", "seats": ["F/1/1"]}),
    );
    check_problem(&r, 422, "invalid-request");
}

#[test]
fn confirm_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let h = s.hold("A", &["A/1/1", "A/11/1"]);
    assert_eq!(h["status"], "held");
    assert!(h["expires_at"].is_string() && h.get("booking_id").is_none());
    let id = h["id"].as_str().unwrap();
    let body = common::pay(&s.data_dir, &h, "fan@example.com");
    let b = s.post(&format!("/v1/holds/{id}/confirm"), &body);
    assert_eq!(b.status, 201, "{b:?}");
    assert_eq!(b.body["seats"], json!(["A/1/1", "A/11/1"]));
    assert_eq!(b.body["email"], "fan@example.com");
    assert_eq!(b.body["status"], "confirmed");
    assert_eq!(b.body["currency"], "KRW");
    // Row 1 is category R (165,000), row 11 category S (143,000).
    assert_eq!(b.body["total_price"], 308_000);
    let bid = b.body["id"].as_str().unwrap().to_owned();
    assert!(bid.starts_with("demo.A.b"));
    assert_eq!(availability(&s, "demo"), (17_498, 0, 2));
    assert!(s.states("A").starts_with('s'));

    let again = s.post(&format!("/v1/holds/{id}/confirm"), &body);
    check_problem(&again, 409, "hold-confirmed");
    assert_eq!(again.body["booking_id"], bid.as_str());
    check_problem(&s.delete(&format!("/v1/holds/{id}")), 409, "hold-confirmed");

    let g = s.get(&format!("/v1/bookings/{bid}"));
    assert_eq!(g.status, 200);
    // Its own fan reads it with a ticket per place, each signed on its own.
    let mut without_tickets = g.body.clone();
    let tickets = without_tickets
        .as_object_mut()
        .unwrap()
        .remove("tickets")
        .unwrap();
    assert_eq!(without_tickets, b.body);
    let key = boxoffice::mail::TicketKey::load_or_create(&s.data_dir).unwrap();
    let tickets = tickets.as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    for (n, (t, seat)) in (1..).zip(tickets.iter().zip(["A/1/1", "A/11/1"])) {
        assert_eq!(t["place"], seat);
        let ticket = key.verify(t["token"].as_str().unwrap()).unwrap();
        assert_eq!((ticket.n, ticket.seat.as_deref()), (Some(n), Some(seat)));
        assert_eq!((ticket.e.as_str(), ticket.s.as_str()), ("demo", "A"));
    }
    assert_ne!(tickets[0]["token"], tickets[1]["token"]);
    // Support reads the booking, not its tickets.
    let support = s.raw("GET", &format!("/v1/bookings/{bid}"), None, &admin());
    assert_eq!(support.status, 200);
    assert_eq!(support.body, b.body);

    // Reading a confirmed hold is history, not a conflict: what it became.
    let read_hold = |s: &TestServer| {
        let r = s.get(&format!("/v1/holds/{id}"));
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    };
    assert_eq!(
        read_hold(&s),
        json!({
            "id": id, "event": "demo", "section": "A",
            "seats": ["A/1/1", "A/11/1"], "quantity": 2,
            "status": "confirmed", "booking_id": bid,
            "currency": "KRW", "total_price": 308_000,
        })
    );
    // Another fan still finds nothing there.
    let other = common::bearer(&s.token_for("someone-else"));
    let r = s.raw(
        "GET",
        &format!("/v1/holds/{id}"),
        None,
        &[(other.0, &other.1)],
    );
    check_problem(&r, 404, "hold-not-found");

    let c = s.raw("POST", &format!("/v1/bookings/{bid}/cancel"), None, &[]);
    assert_eq!(c.status, 200, "{c:?}");
    assert_eq!(c.body["status"], "cancelled");
    assert!(c.body["cancelled_at"].is_string());
    // A cancelled booking's tickets are void: not shown.
    let g = s.get(&format!("/v1/bookings/{bid}"));
    assert!(g.body.get("tickets").is_none(), "{g:?}");
    // The hold's history stays what it was: confirmed into that booking.
    let after = read_hold(&s);
    assert_eq!(
        (&after["status"], &after["booking_id"]),
        (&json!("confirmed"), &json!(bid))
    );
    assert_eq!(availability(&s, "demo"), (17_500, 0, 0));
    check_problem(
        &s.raw("POST", &format!("/v1/bookings/{bid}/cancel"), None, &[]),
        409,
        "booking-cancelled",
    );
    check_problem(
        &s.get("/v1/bookings/demo.A.b9.0000000000000000"),
        404,
        "booking-not-found",
    );
    check_problem(
        &s.post("/v1/bookings/x/cancel", &json!({})),
        404,
        "booking-not-found",
    );
    check_problem(
        &s.post(&format!("/v1/bookings/{bid}/cancel"), &json!({"why": 1})),
        422,
        "invalid-request",
    );
}

/// "My tickets" on any device: a fan's bookings of an event, from the
/// server, newest first, each as its own read says (cancelled ones as
/// cancelled), nobody else's, the same after a restart.
#[test]
fn a_fan_lists_its_own_bookings_newest_first_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let book = |s: &TestServer, who: &(&'static str, String), hold: serde_json::Value| -> String {
        let id = hold["id"].as_str().unwrap();
        let body = common::pay(&s.data_dir, &hold, "fan@example.com");
        let b = s.post_with(
            &format!("/v1/holds/{id}/confirm"),
            &body,
            &[(who.0, &who.1)],
        );
        assert_eq!(b.status, 201, "{b:?}");
        b.body["id"].as_str().unwrap().to_owned()
    };
    let fan1 = common::bearer(&token(dir.path(), "fan-1"));
    let mine = |s: &TestServer, who: &(&'static str, String)| {
        let r = s.raw(
            "GET",
            "/v1/events/demo/me/bookings",
            None,
            &[(who.0, &who.1)],
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    };
    let listed = {
        let s = TestServer::start(dir.path());
        let fan2 = common::bearer(&s.token_for("fan-2"));
        assert_eq!(mine(&s, &fan1), json!({"bookings": [], "total": 0}));
        let b1 = book(&s, &fan1, s.hold("E", &["E/1/1"]));
        s.clock.advance_ms(1_000);
        let floor = s.post(
            "/v1/events/demo/holds",
            &json!({"section": "FLOOR", "quantity": 2}),
        );
        let b2 = book(&s, &fan1, floor.body);
        s.clock.advance_ms(1_000);
        let theirs = s.post_with(
            "/v1/events/demo/holds",
            &json!({"section": "E", "seats": ["E/5/1"]}),
            &[(fan2.0, &fan2.1)],
        );
        let c1 = book(&s, &fan2, theirs.body);
        s.clock.advance_ms(1_000);
        let b3 = book(&s, &fan1, s.hold("A", &["A/1/1"]));
        // The body may be empty, `{}` or `null` (what the OpenAPI's
        // optional body allows; schemathesis sent it).
        let c = s.raw(
            "POST",
            &format!("/v1/bookings/{b3}/cancel"),
            Some("null".into()),
            &[("Content-Type", "application/json")],
        );
        assert_eq!(c.status, 200, "{c:?}");

        let list = mine(&s, &fan1);
        assert_eq!(list["total"], 3);
        let bookings = list["bookings"].as_array().unwrap();
        let ids: Vec<&str> = bookings.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [&b3, &b2, &b1], "newest first");
        // Each as the booking's own read has it now, without its tickets
        // (the booking's read has them).
        for b in bookings {
            let mut read = s
                .get(&format!("/v1/bookings/{}", b["id"].as_str().unwrap()))
                .body;
            read.as_object_mut().unwrap().remove("tickets");
            assert_eq!(*b, read);
        }
        assert_eq!(bookings[0]["status"], "cancelled");
        assert_eq!(
            (&bookings[1]["section"], &bookings[1]["quantity"]),
            (&json!("FLOOR"), &json!(2))
        );
        let theirs = mine(&s, &fan2);
        assert_eq!(theirs["total"], 1);
        assert_eq!(theirs["bookings"][0]["id"], c1.as_str());
        let nobody = common::bearer(&s.token_for("fan-3"));
        assert_eq!(mine(&s, &nobody), json!({"bookings": [], "total": 0}));

        check_problem(
            &s.unsigned("GET", "/v1/events/demo/me/bookings", None, &[]),
            401,
            "unauthorized",
        );
        // Support's token names no fan.
        check_problem(
            &s.unsigned("GET", "/v1/events/demo/me/bookings", None, &admin()),
            401,
            "invalid-token",
        );
        check_problem(
            &s.get("/v1/events/nope/me/bookings"),
            404,
            "event-not-found",
        );
        s.stop();
        list
    };
    // Rebuilt from the journal at start: the same list.
    let s = TestServer::start(dir.path());
    assert_eq!(mine(&s, &fan1), listed);
}

/// A fan's live holds, from any device: listed once held, newest first,
/// each as its own read says, nobody else's; gone once released,
/// confirmed or expired; the same after a restart.
#[test]
fn a_fan_finds_its_live_holds_on_any_device() {
    let dir = tempfile::tempdir().unwrap();
    let mine = |s: &TestServer| {
        let r = s.get("/v1/events/demo/me/holds");
        assert_eq!(r.status, 200, "{r:?}");
        r.body["holds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (kept, floor);
    {
        let s = TestServer::start(dir.path());
        assert!(mine(&s).is_empty());
        let released = s.hold("E", &["E/1/1"])["id"].as_str().unwrap().to_owned();
        s.clock.advance_ms(1_000);
        kept = s.hold("E", &["E/1/2", "E/1/3"]);
        s.clock.advance_ms(1_000);
        let f = s.post(
            "/v1/events/demo/holds",
            &json!({"section": "FLOOR", "quantity": 2}),
        );
        assert_eq!(f.status, 201, "{f:?}");
        floor = f.body;
        s.clock.advance_ms(1_000);
        let booked = s.hold("A", &["A/1/1"]);
        let kept_id = kept["id"].as_str().unwrap().to_owned();
        let floor_id = floor["id"].as_str().unwrap().to_owned();
        let booked_id = booked["id"].as_str().unwrap().to_owned();
        // Listed as soon as answered, newest first.
        assert_eq!(mine(&s), [&*booked_id, &floor_id, &kept_id, &released]);
        let list = s.get("/v1/events/demo/me/holds").body;
        assert_eq!(list["holds"][2], kept, "as the hold's own read has it");
        assert_eq!(list["holds"][1], floor);
        // Another fan's list has none of them.
        let other = common::bearer(&s.token_for("fan-2"));
        let theirs = s.raw(
            "GET",
            "/v1/events/demo/me/holds",
            None,
            &[(other.0, &other.1)],
        );
        assert_eq!(theirs.body, json!({"holds": []}));
        check_problem(
            &s.unsigned("GET", "/v1/events/demo/me/holds", None, &[]),
            401,
            "unauthorized",
        );
        check_problem(&s.get("/v1/events/nope/me/holds"), 404, "event-not-found");

        assert_eq!(s.delete(&format!("/v1/holds/{released}")).status, 204);
        let b = s.post(
            &format!("/v1/holds/{booked_id}/confirm"),
            &common::pay(&s.data_dir, &booked, "fan@example.com"),
        );
        assert_eq!(b.status, 201, "{b:?}");
        assert_eq!(
            mine(&s),
            [&*floor_id, &kept_id],
            "released and confirmed: gone"
        );
        s.stop();
    }
    // Rebuilt at start from the sections' live holds.
    let s = TestServer::start(dir.path());
    let (kept_id, floor_id) = (kept["id"].as_str().unwrap(), floor["id"].as_str().unwrap());
    assert_eq!(mine(&s), [floor_id, kept_id]);
    // Expired (the sweep, nobody asking): gone. (This server's clock
    // starts again at T0; the holds were made up to 3 s after it.)
    s.clock.advance_ms(430_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !mine(&s).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "expired holds still listed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    availability_becomes(&s, (17_499, 0, 1));
}

/// A fan who cancels and books again past the list's bound sees its
/// newest 50, and how many there are in all.
#[test]
fn a_fans_list_of_bookings_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let mut ids = Vec::new();
    for n in 0..52 {
        let h = s.hold("B", &[&format!("B/{}/{}", 1 + n / 36, 1 + n % 36)]);
        let id = h["id"].as_str().unwrap();
        let b = s.post(
            &format!("/v1/holds/{id}/confirm"),
            &s.pay(id, "fan@example.com"),
        );
        assert_eq!(b.status, 201, "{b:?}");
        ids.push(b.body["id"].as_str().unwrap().to_owned());
    }
    let list = s.get("/v1/events/demo/me/bookings").body;
    assert_eq!(list["total"], 52);
    let listed: Vec<&str> = list["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    let newest: Vec<&str> = ids.iter().rev().take(50).map(String::as_str).collect();
    assert_eq!(listed, newest);
}

/// Invariant 3: a hold expires on time and its seats return.
#[test]
fn holds_expire_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let h = s.hold("B", &["B/3/3"]);
    let id = h["id"].as_str().unwrap();
    s.clock.advance_ms(420_000 - 1);
    assert_eq!(s.get(&format!("/v1/holds/{id}")).status, 200);
    s.clock.advance_ms(1);
    // The sweep runs every 50 ms; a request that looks expires it at once.
    let r = s.post(
        &format!("/v1/holds/{id}/confirm"),
        &common::pay(&s.data_dir, &h, "fan@example.com"),
    );
    check_problem(&r, 410, "hold-expired");
    // The seat map shows durable changes only: the expiry, queued to the
    // journal as the confirm was refused (a refusal waits for nothing),
    // is in it within a group commit.
    availability_becomes(&s, (17_500, 0, 0));
    // And the seat is free for the next fan.
    s.hold("B", &["B/3/3"]);

    // Without any request, the sweep returns seats within its interval.
    let h2 = s.hold("C", &["C/1/1"]);
    s.clock.advance_ms(420_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while availability(&s, "demo").1 > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "sweep did not expire the hold"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    check_problem(
        &s.get(&format!("/v1/holds/{}", h2["id"].as_str().unwrap())),
        410,
        "hold-expired",
    );
}

/// Invariant 4: every kind of bad input is a 4xx problem and changes
/// nothing.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let h = s.hold("A", &["A/2/1"]);
    let hold_id = h["id"].as_str().unwrap().to_owned();
    let before = (availability(&s, "demo"), s.states("A"));
    let json_ct = [("Content-Type", "application/json")];
    let post = |path: &str, body: &str| s.raw("POST", path, Some(body.to_owned()), &json_ct);

    let cases: Vec<(Resp, u16, &str)> = vec![
        (
            post("/v1/events/demo/holds", "{\"section\": \"A\", "),
            400,
            "bad-request",
        ),
        (
            post("/v1/events/demo/holds", "not json"),
            400,
            "bad-request",
        ),
        (
            post(
                "/v1/events/demo/holds",
                r#"{"section":"A","seats":["A/1/1"],"vip":true}"#,
            ),
            422,
            "invalid-request",
        ),
        (
            post(
                "/v1/events/demo/holds",
                r#"{"section":"A","seats":"A/1/1"}"#,
            ),
            422,
            "invalid-request",
        ),
        (
            post("/v1/events/demo/holds", r#"{"seats":["A/1/1"]}"#),
            422,
            "invalid-request",
        ),
        (
            post("/v1/events/demo/holds", r#"{"section":"A","quantity":-1}"#),
            422,
            "invalid-request",
        ),
        (
            s.raw(
                "POST",
                "/v1/events/demo/holds",
                Some(r#"{"section":"A","quantity":1}"#.into()),
                &[("Content-Type", "text/plain")],
            ),
            415,
            "unsupported-media-type",
        ),
        (
            s.raw(
                "POST",
                "/v1/events/demo/holds",
                Some(r#"{"section":"A","quantity":1}"#.into()),
                &[],
            ),
            415,
            "unsupported-media-type",
        ),
        (
            post(
                "/v1/events/demo/holds",
                &format!(r#"{{"section":"A","seats":["{}"]}}"#, "A/1/1".repeat(5000)),
            ),
            413,
            "payload-too-large",
        ),
        (
            post("/v1/events/nope/holds", r#"{"section":"A","quantity":1}"#),
            404,
            "event-not-found",
        ),
        (
            post("/v1/events/demo/holds", r#"{"section":"ZZ","quantity":1}"#),
            422,
            "unknown-section",
        ),
        (
            post(
                "/v1/events/demo/holds",
                r#"{"section":"A","seats":["B/1/1"]}"#,
            ),
            422,
            "unknown-seat",
        ),
        (
            post(
                "/v1/events/demo/holds",
                r#"{"section":"A","seats":["A/99/1"]}"#,
            ),
            422,
            "unknown-seat",
        ),
        (
            post(
                "/v1/events/demo/holds",
                r#"{"section":"A","seats":["A/1/1","A/1/1"]}"#,
            ),
            422,
            "invalid-request",
        ),
        (
            post("/v1/events/demo/holds", r#"{"section":"A","seats":[]}"#),
            422,
            "invalid-request",
        ),
        (
            post(
                "/v1/events/demo/holds",
                r#"{"section":"A","seats":["A/1/1"],"quantity":1}"#,
            ),
            422,
            "invalid-request",
        ),
        (
            post("/v1/events/demo/holds", r#"{"section":"A"}"#),
            422,
            "invalid-request",
        ),
        (
            post("/v1/events/demo/holds", r#"{"section":"A","quantity":0}"#),
            422,
            "invalid-request",
        ),
        (
            post("/v1/events/demo/holds", r#"{"section":"A","quantity":5}"#),
            422,
            "invalid-request",
        ),
        (
            post(
                "/v1/events/demo/holds",
                r#"{"section":"A","seats":["A/1/1","A/1/2","A/1/3","A/1/4","A/1/5"]}"#,
            ),
            422,
            "invalid-request",
        ),
        (
            post(
                &format!("/v1/holds/{hold_id}/confirm"),
                r#"{"email":"nope","receipt":"r"}"#,
            ),
            422,
            "invalid-request",
        ),
        (
            post(
                &format!("/v1/holds/{hold_id}/confirm"),
                r#"{"email":"a@b.c","receipt":""}"#,
            ),
            422,
            "receipt-invalid",
        ),
        (
            post(
                &format!("/v1/holds/{hold_id}/confirm"),
                r#"{"email":"a@b.c"}"#,
            ),
            422,
            "invalid-request",
        ),
        (
            post(
                "/v1/holds/demo.A.h77.0000000000000001/confirm",
                // Paid, even: the hold does not exist.
                &common::pay(
                    &s.data_dir,
                    &json!({"id": "demo.A.h77.0000000000000001", "total_price": 1, "currency": "KRW"}),
                    "a@b.co",
                )
                .to_string(),
            ),
            404,
            "hold-not-found",
        ),
        (
            s.raw(
                "POST",
                "/v1/events/demo/holds",
                Some(r#"{"section":"A","quantity":1}"#.into()),
                &[
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", ""),
                ],
            ),
            400,
            "bad-request",
        ),
        (
            s.raw(
                "POST",
                "/v1/events/demo/holds",
                Some(r#"{"section":"A","quantity":1}"#.into()),
                &[
                    ("Content-Type", "application/json"),
                    ("Idempotency-Key", &"k".repeat(300)),
                ],
            ),
            400,
            "bad-request",
        ),
        (
            s.raw("DELETE", "/v1/events/demo", None, &[]),
            405,
            "method-not-allowed",
        ),
        // A path segment that is not UTF-8 once decoded.
        (
            post(
                "/v1/holds/%FF%FE/confirm",
                r#"{"email":"a@b.c","receipt":"r"}"#,
            ),
            404,
            "hold-not-found",
        ),
        (s.get("/v1/events/%C3%28"), 404, "event-not-found"),
    ];
    for (i, (r, status, kind)) in cases.iter().enumerate() {
        assert!(r.status < 500, "case {i}: {r:?}");
        assert_eq!(
            (r.status, r.body["type"].as_str().unwrap_or("")),
            (*status, format!("urn:boxoffice:problem:{kind}").as_str()),
            "case {i}: {r:?}"
        );
        check_problem(r, *status, kind);
    }
    assert_eq!(
        (availability(&s, "demo"), s.states("A")),
        before,
        "bad input changed state"
    );
    // The hold is untouched and still confirms.
    let ok = post(
        &format!("/v1/holds/{hold_id}/confirm"),
        &s.pay(&hold_id, "a@b.co").to_string(),
    );
    assert_eq!(ok.status, 201);
}

#[test]
fn idempotency_keys_replay_refuse_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let body = json!({"section": "D", "quantity": 2});
    let key = [("Idempotency-Key", "fan-42-attempt")];
    let first;
    {
        let s = TestServer::start(dir.path());
        first = s.post_with("/v1/events/demo/holds", &body, &key);
        assert_eq!(first.status, 201);
        assert!(!first.replayed);
        let again = s.post_with("/v1/events/demo/holds", &body, &key);
        assert_eq!(again.status, 201);
        assert!(again.replayed);
        assert_eq!(again.text, first.text);
        assert_eq!(availability(&s, "demo").1, 2, "a retry must not hold twice");
        let other = s.post_with(
            "/v1/events/demo/holds",
            &json!({"section": "D", "quantity": 3}),
            &key,
        );
        check_problem(&other, 422, "idempotency-key-reused");
        // A refused request does not use up its key.
        let k2 = [("Idempotency-Key", "k2")];
        check_problem(
            &s.post_with(
                "/v1/events/demo/holds",
                &json!({"section": "D", "quantity": 9}),
                &k2,
            ),
            422,
            "invalid-request",
        );
        assert_eq!(
            s.post_with(
                "/v1/events/demo/holds",
                &json!({"section": "D", "quantity": 1}),
                &k2
            )
            .status,
            201
        );
        // Confirm is idempotent too.
        let id = first.body["id"].as_str().unwrap();
        let ck = [("Idempotency-Key", "confirm-1")];
        let cb = common::pay(&s.data_dir, &first.body, "fan@example.com");
        let c1 = s.post_with(&format!("/v1/holds/{id}/confirm"), &cb, &ck);
        let c2 = s.post_with(&format!("/v1/holds/{id}/confirm"), &cb, &ck);
        assert_eq!((c1.status, c2.status), (201, 201));
        assert!(c2.replayed);
        assert_eq!(c1.text, c2.text);
        s.stop();
    }
    // After a restart the journal still knows the key.
    let s = TestServer::start(dir.path());
    let after = s.post_with("/v1/events/demo/holds", &body, &key);
    assert_eq!(after.status, 201);
    assert!(after.replayed);
    assert_eq!(after.text, first.text);
    assert_eq!(availability(&s, "demo"), (17_500 - 3, 1, 2));
}

#[test]
fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (hold, booking, released, cancelled);
    {
        let s = TestServer::start(dir.path());
        hold = s.hold("E", &["E/1/1", "E/1/2"]);
        let h2 = s.hold("E", &["E/2/1"]);
        booking = s
            .post(
                &format!("/v1/holds/{}/confirm", h2["id"].as_str().unwrap()),
                &common::pay(&s.data_dir, &h2, "a@b.co"),
            )
            .body;
        released = s.hold("E", &["E/3/1"]);
        assert_eq!(
            s.delete(&format!("/v1/holds/{}", released["id"].as_str().unwrap()))
                .status,
            204
        );
        let h4 = s
            .post(
                "/v1/events/demo/holds",
                &json!({"section": "FLOOR", "quantity": 4}),
            )
            .body;
        cancelled = s
            .post(
                &format!("/v1/holds/{}/confirm", h4["id"].as_str().unwrap()),
                &common::pay(&s.data_dir, &h4, "b@b.co"),
            )
            .body;
        let c = s.raw(
            "POST",
            &format!("/v1/bookings/{}/cancel", cancelled["id"].as_str().unwrap()),
            None,
            &[],
        );
        assert_eq!(c.status, 200);
        s.stop();
    }
    let s = TestServer::start(dir.path());
    assert_eq!(
        s.get(&format!("/v1/holds/{}", hold["id"].as_str().unwrap()))
            .body,
        hold
    );
    // The booking as it was, and its fan's tickets (one per place) with it.
    let mut read = s
        .get(&format!("/v1/bookings/{}", booking["id"].as_str().unwrap()))
        .body;
    let tickets = read.as_object_mut().unwrap().remove("tickets").unwrap();
    assert_eq!(read, booking);
    assert_eq!(
        tickets.as_array().unwrap().len() as u64,
        booking["quantity"].as_u64().unwrap()
    );
    check_problem(
        &s.get(&format!("/v1/holds/{}", released["id"].as_str().unwrap())),
        410,
        "hold-released",
    );
    assert_eq!(
        s.get(&format!(
            "/v1/bookings/{}",
            cancelled["id"].as_str().unwrap()
        ))
        .body["status"],
        "cancelled"
    );
    assert!(s.states("E").starts_with("hhf"));
    assert_eq!(availability(&s, "demo"), (17_497, 2, 1));
    // Holds that expired while the server was down are released at start.
    s.stop();
    let clock = std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS + 3_600_000));
    let s = TestServer::start_with(args(dir.path()), clock);
    availability_becomes(&s, (17_499, 0, 1));
    check_problem(
        &s.get(&format!("/v1/holds/{}", hold["id"].as_str().unwrap())),
        410,
        "hold-expired",
    );
}

#[test]
fn admin_creates_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let ev = small_event("tour-1", &[10], 5, 4);
    check_problem(&s.post("/v1/events", &ev), 401, "unauthorized");
    check_problem(
        &s.post_with("/v1/events", &ev, &[("Authorization", "Bearer wrong")]),
        401,
        "unauthorized",
    );
    let r = s.post_with("/v1/events", &ev, &admin());
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["capacity"], 15);
    check_problem(
        &s.post_with("/v1/events", &ev, &admin()),
        409,
        "event-exists",
    );
    let mut bad = small_event("tour-2", &[10], 5, 4);
    bad["venue"]["sections"][1]["id"] = "S".into();
    let r = s.post_with("/v1/events", &bad, &admin());
    check_problem(&r, 422, "invalid-request");
    assert_eq!(r.body["field"], "venue.sections[1].id");
    let mut bad = small_event("tour-2", &[10], 5, 4);
    bad["format"] = "boxoffice.event/9".into();
    check_problem(
        &s.post_with("/v1/events", &bad, &admin()),
        422,
        "invalid-request",
    );
    assert_eq!(s.get("/v1/events").body.as_array().unwrap().len(), 2);
    s.stop();

    // Without a configured token the admin API is off.
    let dir2 = tempfile::tempdir().unwrap();
    let mut a = args(dir2.path());
    a.admin_token = None;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    check_problem(
        &s.post_with("/v1/events", &ev, &admin()),
        403,
        "admin-disabled",
    );
}

#[test]
fn openapi_document_describes_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let r = s.get("/v1/openapi.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["openapi"], "3.1.0");
    let paths: Vec<&String> = r.body["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/v1/events",
        "/v1/events/{event}",
        "/v1/events/{event}/sections/{section}/seats",
        "/v1/events/{event}/holds",
        "/v1/holds/{id}",
        "/v1/holds/{id}/confirm",
        "/v1/bookings/{id}",
        "/v1/bookings/{id}/cancel",
    ] {
        assert!(
            paths.iter().any(|k| k.as_str() == p),
            "{p} missing from {paths:?}"
        );
    }
    assert!(r.body["components"]["schemas"]["HoldRequest"].is_object());
    // Every operation that takes a body says what an over-long one and
    // one of another type get.
    let mut with_body = 0;
    for (path, item) in r.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_none() {
                continue;
            }
            with_body += 1;
            for status in ["413", "415"] {
                assert!(
                    op["responses"].get(status).is_some(),
                    "{method} {path} does not document {status}"
                );
            }
        }
    }
    assert_eq!(with_body, 9, "the operations that take a body");
    // What schemathesis found: an over-long receipt is a 413, and says so.
    let hold = s.hold("A", &["A/1/1"]);
    let r = s.post(
        &format!("/v1/holds/{}/confirm", hold["id"].as_str().unwrap()),
        &json!({"email": "fan@example.com", "receipt": "x".repeat(20_000)}),
    );
    check_problem(&r, 413, "payload-too-large");
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
}

/// Invariant 6: a saturated section refuses at once, with Retry-After.
#[test]
fn saturated_section_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.mailbox_capacity = 1;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let s = &s;
    let results: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..48)
            .map(|i| {
                scope.spawn(move || {
                    let seat = format!("G/{}/{}", i / 30 + 1, i % 30 + 1);
                    s.post(
                        "/v1/events/demo/holds",
                        &json!({"section": "G", "seats": [seat]}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = results.iter().filter(|r| r.status == 201).count();
    let shed: Vec<&Resp> = results.iter().filter(|r| r.status == 503).collect();
    assert_eq!(created + shed.len(), 48, "only 201 or 503: {results:?}");
    assert!(
        !shed.is_empty(),
        "48 concurrent requests against capacity 1 shed none"
    );
    for r in shed {
        check_problem(r, 503, "overloaded");
        assert_eq!(r.retry_after.as_deref(), Some("1"));
    }
    // Exactly the acknowledged holds are held.
    assert_eq!(availability(s, "demo").1, created as u64);
}

#[test]
fn a_second_process_on_the_same_data_dir_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let _s = TestServer::start(dir.path());
    let mut child = common::boxoffice()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("a second server on the same data directory kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("is in use by another boxoffice process"),
        "{stderr}"
    );
}

#[test]
fn a_failed_journal_write_stops_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut a = args(dir.path());
        // Batch 0 creates the demo event; every write after it fails.
        a.journal_fail_after_batches = Some(1);
        let s = TestServer::start_with(
            a,
            std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
        );
        let r = s.post(
            "/v1/events/demo/holds",
            &json!({"section": "A", "seats": ["A/1/1"]}),
        );
        check_problem(&r, 503, "unavailable");
        assert!(r.retry_after.is_some());
        // Fail-stop: nothing is acknowledged any more, not even elsewhere.
        let r = s.post(
            "/v1/events/demo/holds",
            &json!({"section": "B", "quantity": 1}),
        );
        check_problem(&r, 503, "unavailable");
        assert_eq!(s.get("/readyz").status, 503);
        s.stop();
    }
    // What was never acknowledged is not there after a restart.
    let s = TestServer::start(dir.path());
    assert_eq!(availability(&s, "demo"), (17_500, 0, 0));
    s.hold("A", &["A/1/1"]);
}

/// A booking whose record never became durable is never listed among
/// its fan's bookings, though the section applied it in memory.
#[test]
fn a_booking_the_journal_failed_to_keep_is_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    // Batch 0 creates the demo event, batch 1 the hold; the confirm fails.
    a.journal_fail_after_batches = Some(2);
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let h = s.hold("A", &["A/1/1"]);
    let id = h["id"].as_str().unwrap();
    let r = s.post(
        &format!("/v1/holds/{id}/confirm"),
        &common::pay(&s.data_dir, &h, "fan@example.com"),
    );
    check_problem(&r, 503, "unavailable");
    let list = s.get("/v1/events/demo/me/bookings");
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.body, json!({"bookings": [], "total": 0}));
}
