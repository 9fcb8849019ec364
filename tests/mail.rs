//! Invariant 5. The mailer against a real SMTP server over TCP
//! (tests/common/smtp.rs):
//! what is delivered, and that every confirmation arrives through refusals,
//! stalls, dropped connections, outages and SIGKILL, with duplicates only
//! ever carrying the same Message-ID.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use boxoffice::clock::ManualClock;
use boxoffice::mail::TicketKey;
use common::smtp::{Fault, SmtpSink};
use common::*;
use icalendar::{Component, EventLike};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{json, Value};

const KEY_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const WAIT: Duration = Duration::from_secs(60);

fn mail_args(dir: &Path, sink: &SmtpSink) -> boxoffice::config::ServeArgs {
    let mut a = args(dir);
    a.smtp_url = Some(sink.url());
    a.ticket_key = Some(KEY_HEX.into());
    a.mail_from = "Tickets <tickets@boxoffice.test>".into();
    a.mail_send_timeout_ms = 1_000;
    a.mail_backoff_ms = 100;
    a.mail_backoff_max_ms = 400;
    a.mail_attempts_max = 3;
    a
}

fn start(dir: &Path, sink: &SmtpSink) -> TestServer {
    TestServer::start_with(mail_args(dir, sink), Arc::new(ManualClock::new(T0_MS)))
}

/// Holds `seats` (or a quantity in `F`) and confirms; returns the booking.
fn book(s: &TestServer, section: &str, what: Value, email: &str) -> Value {
    let mut body = json!({"section": section});
    body.as_object_mut()
        .unwrap()
        .extend(what.as_object().unwrap().clone());
    let h = s.post("/v1/events/demo/holds", &body);
    assert_eq!(h.status, 201, "{h:?}");
    let id = h.body["id"].as_str().unwrap();
    let b = s.post(
        &format!("/v1/holds/{id}/confirm"),
        &common::pay(&s.data_dir, &h.body, email),
    );
    assert_eq!(b.status, 201, "{b:?}");
    b.body
}

/// Moves the test clock past any retry backoff.
fn tick(s: &TestServer) -> impl FnMut() + '_ {
    move || s.clock.advance_ms(500)
}

/// The one calendar event a confirmation carries in `show.ics`.
fn calendar_event(msg: &mail_parser::Message) -> icalendar::Event {
    use icalendar::CalendarComponent;
    let part = msg
        .attachments()
        .find(|p| p.attachment_name() == Some("show.ics"))
        .expect("a show.ics attachment");
    let ct = part.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("calendar")));
    let text = std::str::from_utf8(part.contents()).unwrap();
    let calendar: icalendar::Calendar = text.parse().expect("the calendar parses");
    assert_eq!(calendar.property_value("METHOD"), Some("PUBLISH"));
    let events: Vec<_> = calendar
        .components
        .iter()
        .filter_map(|c| match c {
            CalendarComponent::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    events[0].clone()
}

/// `demo.A.b0` from a booking id `demo.A.b0.<secret>`.
fn public_id(booking_id: &str) -> String {
    booking_id.rsplit_once('.').unwrap().0.to_owned()
}

/// Message-ID and X-Boxoffice-Mail of every message.
fn ids(messages: &[Vec<u8>]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| {
            let p = MessageParser::default()
                .parse(m)
                .expect("a parsable message");
            let mid = p.message_id().expect("a Message-ID").to_owned();
            let tag = p
                .header_raw("X-Boxoffice-Mail")
                .expect("the outbox tag")
                .trim()
                .to_owned();
            (mid, tag)
        })
        .collect()
}

/// Each outbox entry maps to exactly one Message-ID, however often it
/// arrived. Returns entry → Message-ID.
fn one_id_per_entry(messages: &[Vec<u8>]) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (mid, tag) in ids(messages) {
        let entry = tag.split_whitespace().nth(1).unwrap().to_owned();
        if let Some(prev) = seen.insert(entry.clone(), mid.clone()) {
            assert_eq!(
                prev, mid,
                "{entry} arrived twice with different Message-IDs"
            );
        }
    }
    seen
}

fn entries(messages: &[Vec<u8>]) -> BTreeSet<String> {
    one_id_per_entry(messages).into_keys().collect()
}

/// The `n` inline QR codes of a confirmation (`ticket-qr-1` ...), each
/// decoded and verified: (token, ticket) in place order.
fn tickets_of(
    msg: &mail_parser::Message,
    key: &TicketKey,
    n: u32,
) -> Vec<(String, boxoffice::mail::Ticket)> {
    let images = msg
        .attachments()
        .filter(|p| p.content_id().is_some_and(|c| c.starts_with("ticket-qr-")))
        .count();
    assert_eq!(images, n as usize, "one QR code per place");
    (1..=n)
        .map(|i| {
            let qr = msg
                .attachments()
                .find(|p| p.content_id() == Some(format!("ticket-qr-{i}").as_str()))
                .unwrap_or_else(|| panic!("an inline part with Content-ID ticket-qr-{i}"));
            assert_eq!(qr.content_type().unwrap().ctype(), "image");
            let token = qr_token(qr.contents());
            let ticket = key.verify(&token).expect("the ticket verifies");
            (token, ticket)
        })
        .collect()
}

/// Holds `seats` of section A and confirms them as the fan of `token`,
/// with `headers` on the confirm; returns the booking as its fan reads it.
fn book_as(s: &TestServer, token: &str, seats: &[&str], headers: &[(&str, &str)]) -> Value {
    let auth = format!("Bearer {token}");
    let mut h = vec![
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let hold = s.raw(
        "POST",
        "/v1/events/demo/holds",
        Some(json!({"section": "A", "seats": seats}).to_string()),
        &h,
    );
    assert_eq!(hold.status, 201, "{hold:?}");
    let id = hold.body["id"].as_str().unwrap();
    let pay = common::pay(&s.data_dir, &hold.body, "fan@example.com");
    h.extend_from_slice(headers);
    let b = s.raw(
        "POST",
        &format!("/v1/holds/{id}/confirm"),
        Some(pay.to_string()),
        &h,
    );
    assert_eq!(b.status, 201, "{b:?}");
    let read = s.raw(
        "GET",
        &format!("/v1/bookings/{}", b.body["id"].as_str().unwrap()),
        None,
        &h[1..2],
    );
    assert_eq!(read.status, 200, "{read:?}");
    read.body
}

/// A fan's token's `locale` names the language of its emails; without
/// one, the confirm's `Accept-Language` does; else English. The Korean
/// email writes the date, seats and places as Koreans read them, and the
/// language is the booking's: it survives a restart.
#[test]
fn emails_speak_the_fans_language() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &sink);
    let issuer = boxoffice::auth::issuer::LocalIssuer::load_or_create(dir.path()).unwrap();
    let token = |sub: &str, locale: Option<&str>| {
        let fanclub = ["fanclub".to_owned()];
        issuer.mint_in(sub, &fanclub, T0_MS / 1000, TOKEN_TTL_SECS, None, locale)
    };
    let korean = "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7";
    let cases = [
        // (token's locale, Accept-Language, the email's language)
        (Some("ko-KR"), None, "ko"),
        (None, Some(korean), "ko"),
        (Some("en-US"), Some(korean), "en"),
        (Some("ja"), Some(korean), "ko"),
        (None, Some("fr, ja;q=0.5"), "en"),
        (None, None, "en"),
    ];
    let mut bookings = Vec::new();
    for (i, (locale, accept, want)) in cases.into_iter().enumerate() {
        let seat = format!("A/7/{}", i + 1);
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("Accept-Language", a)).into_iter().collect();
        let b = book_as(&s, &token(&format!("lang-{i}"), locale), &[&seat], &headers);
        assert_eq!(b["language"], want, "{locale:?} {accept:?}: {b}");
        bookings.push((b, want));
    }
    let m = sink.wait_for(WAIT, tick(&s), |m| m.len() == 6);
    for raw in &m {
        let msg = MessageParser::default().parse(raw).unwrap();
        let text = msg.body_text(0).unwrap().into_owned();
        let html = msg.body_html(0).unwrap().into_owned();
        let seat = (1..=6)
            .map(|n| format!("A/7/{n}"))
            .find(|seat| text.contains(seat.as_str()))
            .expect("the email names its seat");
        let n = seat.rsplit('/').next().unwrap().to_owned();
        let want = bookings
            .iter()
            .find(|(b, _)| b["seats"][0] == seat.as_str())
            .unwrap()
            .1;
        if want == "ko" {
            let subject = msg.subject().unwrap();
            assert!(subject.contains("티켓"), "{subject}");
            for needle in [
                "예매가 확정되었습니다",
                "2026년 12월 24일 (목) 19:00 KST",
                &format!("7열 {n}번 ({seat})"),
                "합계: 165,000 KRW",
            ] {
                assert!(text.contains(needle), "{needle:?} missing from\n{text}");
            }
            assert!(html.contains("<html lang=\"ko\">"), "{html}");
            assert!(!text.contains("Your booking"), "{text}");
        } else {
            assert!(msg.subject().unwrap().starts_with("Your tickets for"));
            for needle in [
                "Your booking is confirmed",
                "Thu 24 Dec 2026, 19:00 KST",
                &format!("Row 7, Seat {n} ({seat})"),
            ] {
                assert!(text.contains(needle), "{needle:?} missing from\n{text}");
            }
            assert!(html.contains("<html lang=\"en\">"), "{html}");
        }
        // Either way, one QR code and the calendar entry.
        let key = TicketKey::from_hex(KEY_HEX).unwrap();
        assert_eq!(tickets_of(&msg, &key, 1).len(), 1);
        calendar_event(&msg);
    }
    // The language is the booking's: after a restart from the journal,
    // then from a snapshot, the same.
    let first = bookings[1].0["id"].as_str().unwrap().to_owned();
    let fan = format!("Bearer {}", token("lang-1", None));
    let mut s = s;
    for snapshot_first in [false, true] {
        if snapshot_first {
            let r = s.raw("POST", "/v1/admin/snapshots", None, &admin());
            assert_eq!(r.status, 201, "{r:?}");
        }
        s.stop();
        s = start(dir.path(), &sink);
        let read = s.raw(
            "GET",
            &format!("/v1/bookings/{first}"),
            None,
            &[("Authorization", &fan)],
        );
        assert_eq!(read.body["language"], "ko", "{read:?}");
    }
}

#[test]
fn a_confirmation_arrives_with_both_parts_and_a_ticket_per_place() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &sink);
    let b = book(
        &s,
        "A",
        json!({"seats": ["A/3/4", "A/3/5"]}),
        "fan@example.com",
    );
    let booking_id = b["id"].as_str().unwrap();

    let m = sink.wait_for(WAIT, tick(&s), |m| !m.is_empty());
    assert_eq!(m.len(), 1);
    let msg = MessageParser::default().parse(&m[0]).unwrap();
    assert_eq!(
        msg.from().unwrap().first().unwrap().address(),
        Some("tickets@boxoffice.test")
    );
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("fan@example.com")
    );
    let subject = msg.subject().unwrap();
    assert!(
        subject.starts_with("Your tickets for Fan-club presale"),
        "{subject}"
    );
    let mid = msg.message_id().unwrap();
    assert!(
        mid.starts_with(&format!("{}.confirmation.", public_id(booking_id)))
            && mid.ends_with("@boxoffice.test"),
        "{mid}"
    );
    // Both alternatives, each with the facts of the booking.
    let text = msg.body_text(0).unwrap();
    // HTML escapes the slashes of seat ids.
    let html = msg.body_html(0).unwrap().replace("&#x2f;", "/");
    for body in [text.as_ref(), html.as_str()] {
        for needle in [
            "Fan-club presale: Seoul encore night",
            "Thu 24 Dec 2026, 19:00 KST",
            "Seoul Olympic Arena",
            "A/3/4",
            "A/3/5",
            booking_id,
            b["payment_ref"].as_str().unwrap(),
            "330,000 KRW",
        ] {
            assert!(body.contains(needle), "{needle:?} missing from\n{body}");
        }
    }
    assert!(
        text.contains("2 x R seat at 165,000 KRW = 330,000 KRW"),
        "{text}"
    );
    // One inline QR code per place, each decoding to its own ticket the
    // server's key signed, naming its seat.
    let key = TicketKey::from_hex(KEY_HEX).unwrap();
    let tickets = tickets_of(&msg, &key, 2);
    for (n, (t, seat)) in (1..).zip(tickets.iter().zip(["A/3/4", "A/3/5"])) {
        let ticket = &t.1;
        assert_eq!(
            (
                ticket.e.as_str(),
                ticket.s.as_str(),
                ticket.n,
                ticket.seat.as_deref()
            ),
            ("demo", "A", Some(n), Some(seat))
        );
        assert!(html.contains(&format!("cid:ticket-qr-{n}")), "{html}");
        assert!(text.contains(&t.0), "the text part carries each token too");
        assert!(TicketKey::from_bytes([1; 32]).verify(&t.0).is_err());
    }
    assert!(
        text.contains("Ticket 2 of 2, Row 3, Seat 5 (A/3/5):"),
        "{text}"
    );
    assert!(
        text.contains("Seats: Row 3, Seat 4 (A/3/4), Row 3, Seat 5 (A/3/5)"),
        "{text}"
    );
    // The show as a calendar entry, parsed by a calendar library: when
    // (in UTC), where, which seats, and nothing that cancels the booking.
    let event = calendar_event(&msg);
    assert_eq!(
        event.get_summary(),
        Some("Fan-club presale: Seoul encore night")
    );
    assert_eq!(
        event.get_location(),
        Some("Seoul Olympic Arena (demo layout)")
    );
    assert_eq!(
        event.property_value("DTSTART"),
        Some("20261224T100000Z"),
        "19:00 KST"
    );
    // Its stamp is the booking's, not the sender's clock: a resend is
    // the same entry.
    assert_eq!(event.property_value("DTSTAMP"), Some("20261123T000000Z"));
    let description = event.get_description().unwrap();
    assert!(
        description.starts_with("Lower bowl A: Row 3, Seat 4, Row 3, Seat 5\nBooking demo/A/")
            && !description.contains(booking_id),
        "{description}"
    );
    assert_eq!(
        event.get_uid(),
        Some(format!("{}@boxoffice.test", public_id(booking_id)).as_str())
    );

    // Cancelling sends a cancellation, its own message.
    let r = s.post(&format!("/v1/bookings/{booking_id}/cancel"), &json!({}));
    assert_eq!(r.status, 200, "{r:?}");
    let m = sink.wait_for(WAIT, tick(&s), |m| m.len() == 2);
    let msg = MessageParser::default().parse(&m[1]).unwrap();
    assert!(msg.subject().unwrap().contains("cancelled"));
    assert!(msg
        .message_id()
        .unwrap()
        .starts_with(&format!("{}.cancellation.", public_id(booking_id))));
    assert!(msg
        .body_text(0)
        .unwrap()
        .contains("Row 3, Seat 4 (A/3/4), Row 3, Seat 5 (A/3/5)"));

    // Standing bookings name their quantity.
    book(&s, "FLOOR", json!({"quantity": 3}), "floor@example.com");
    let m = sink.wait_for(WAIT, tick(&s), |m| m.len() == 3);
    let msg = MessageParser::default().parse(&m[2]).unwrap();
    let text = msg.body_text(0).unwrap();
    assert!(text.contains("Standing places: 3"), "{text}");
    let tickets = tickets_of(&msg, &key, 3);
    for (n, (_, ticket)) in (1..).zip(&tickets) {
        assert_eq!(
            (ticket.s.as_str(), ticket.n, ticket.seat.as_deref()),
            ("FLOOR", Some(n), None)
        );
    }
    assert_eq!(one_id_per_entry(&m).len(), 3);
}

#[test]
fn refusals_are_retried_and_dead_letters_wait_for_an_operator() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &sink);

    // Two temporary refusals, then delivered: exactly once.
    sink.set_fault(Fault::Reply(451), Some(2));
    let b1 = book(&s, "A", json!({"quantity": 2}), "one@example.com");
    let m = sink.wait_for(WAIT, tick(&s), |m| !m.is_empty());
    assert_eq!(m.len(), 1);
    assert_eq!(sink.data_received(), 3);
    let want1 = format!("{}.confirmation", public_id(b1["id"].as_str().unwrap()));
    assert_eq!(entries(&m), BTreeSet::from([want1.clone()]));

    // A permanent refusal: after 3 attempts the entry is a dead letter.
    sink.set_fault(Fault::Reply(550), None);
    let b2 = book(&s, "B", json!({"quantity": 1}), "two@example.com");
    let want2 = format!("{}.confirmation", public_id(b2["id"].as_str().unwrap()));
    let dead = |s: &TestServer| s.raw("GET", "/v1/admin/outbox?state=dead", None, &admin());
    let deadline = std::time::Instant::now() + WAIT;
    let listed = loop {
        let r = dead(&s);
        assert_eq!(r.status, 200, "{r:?}");
        if r.body["dead"] == 1 {
            break r.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never dead-lettered: {r:?}"
        );
        s.clock.advance_ms(500);
        std::thread::sleep(Duration::from_millis(20));
    };
    let e = &listed["entries"][0];
    assert_eq!(e["id"], want2.as_str());
    assert_eq!(e["state"], "dead");
    assert_eq!(e["attempts"], 3);
    assert_eq!(e["email"], "two@example.com");
    assert!(e["last_error"].as_str().unwrap().contains("550"), "{e}");
    assert_eq!(sink.messages().len(), 1);

    // Admin errors: no token, bad state, unknown id, malformed id.
    let r = s.get("/v1/admin/outbox");
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (401, "application/problem+json")
    );
    let r = s.raw("GET", "/v1/admin/outbox?state=lost", None, &admin());
    assert_eq!(r.status, 400, "{r:?}");
    let r = s.raw("GET", "/v1/admin/outbox?limit=0", None, &admin());
    assert_eq!(r.status, 400, "{r:?}");
    let r = s.raw("GET", "/v1/admin/outbox?color=red", None, &admin());
    assert_eq!(r.status, 400, "{r:?}");
    let r = s.raw(
        "POST",
        "/v1/admin/outbox/demo.A.b999.confirmation/retry",
        None,
        &admin(),
    );
    assert_eq!(
        r.body["type"], "urn:boxoffice:problem:outbox-entry-not-found",
        "{r:?}"
    );
    let r = s.raw("POST", "/v1/admin/outbox/nonsense/retry", None, &admin());
    assert_eq!(r.status, 404, "{r:?}");
    let r = s.raw(
        "POST",
        &format!("/v1/admin/outbox/{want2}/retry"),
        None,
        &[],
    );
    assert_eq!(r.status, 401, "{r:?}");

    // The server is fixed; the operator retries; the email arrives.
    sink.set_fault(Fault::None, None);
    let r = s.raw(
        "POST",
        &format!("/v1/admin/outbox/{want2}/retry"),
        None,
        &admin(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["id"], want2.as_str());
    assert_eq!(r.body["attempts"], 0);
    let m = sink.wait_for(WAIT, tick(&s), |m| m.len() == 2);
    assert_eq!(entries(&m), BTreeSet::from([want1, want2.clone()]));
    let deadline = std::time::Instant::now() + WAIT;
    while dead(&s).body["dead"] != 0 || dead(&s).body["pending"] != 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // Retrying what is not a dead letter (here: gone, since sent) is refused.
    let r = s.raw(
        "POST",
        &format!("/v1/admin/outbox/{want2}/retry"),
        None,
        &admin(),
    );
    assert_eq!(r.status, 404, "{r:?}");
}

#[test]
fn a_stalled_server_never_blocks_confirms_and_gets_everything_later() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &sink);
    sink.set_fault(Fault::Stall, None);
    let mut want = BTreeSet::new();
    let first = book(&s, "C", json!({"quantity": 1}), "c0@example.com");
    want.insert(format!(
        "{}.confirmation",
        public_id(first["id"].as_str().unwrap())
    ));
    // Wait until the mail server really hangs on a message...
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stalled() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mailer never reached the sink"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...then every confirm still answers while it hangs.
    for i in 1..12 {
        let b = book(
            &s,
            "C",
            json!({"quantity": 1}),
            &format!("c{i}@example.com"),
        );
        want.insert(format!(
            "{}.confirmation",
            public_id(b["id"].as_str().unwrap())
        ));
    }
    assert!(sink.stalled() >= 1, "the server was still hanging");
    assert!(sink.messages().is_empty());
    // The server recovers: every confirmation arrives.
    sink.set_fault(Fault::None, None);
    let m = sink.wait_for(WAIT, tick(&s), |m| entries(m) == want);
    assert!(m.len() >= want.len());
}

#[test]
fn a_connection_dropped_after_data_resends_the_same_message() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &sink);
    sink.set_fault(Fault::DropAfterData, Some(1));
    book(&s, "D", json!({"quantity": 2}), "d@example.com");
    let m = sink.wait_for(WAIT, tick(&s), |m| m.len() == 2);
    // The same email twice: same Message-ID, same bytes but for the
    // transport's multipart boundaries.
    let ids = ids(&m);
    assert_eq!(ids[0], ids[1]);
    assert_eq!(one_id_per_entry(&m).len(), 1);
}

#[test]
fn a_server_that_was_down_gets_every_email_once_back() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = mail_args(dir.path(), &sink);
    a.mail_attempts_max = 1000;
    let s = TestServer::start_with(a, Arc::new(ManualClock::new(T0_MS)));
    sink.down();
    let mut want = BTreeSet::new();
    for i in 0..5 {
        let b = book(
            &s,
            "E",
            json!({"quantity": 1}),
            &format!("e{i}@example.com"),
        );
        want.insert(format!(
            "{}.confirmation",
            public_id(b["id"].as_str().unwrap())
        ));
    }
    // A while of refused connections (the clock runs past several retries).
    for _ in 0..10 {
        s.clock.advance_ms(200);
        std::thread::sleep(Duration::from_millis(30));
    }
    let r = s.raw("GET", "/v1/admin/outbox?state=pending", None, &admin());
    assert_eq!(r.body["pending"], 5, "{r:?}");
    assert!(r.body["entries"][0]["last_error"].is_string(), "{r:?}");
    sink.up();
    let m = sink.wait_for(WAIT, tick(&s), |m| entries(m) == want);
    assert_eq!(m.len(), 5, "each delivered once");
}

#[test]
fn emails_survive_a_restart_with_the_outbox_full() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut want = BTreeSet::new();
    {
        let s = start(dir.path(), &sink);
        sink.down();
        for i in 0..4 {
            let b = book(
                &s,
                "G",
                json!({"quantity": 1}),
                &format!("g{i}@example.com"),
            );
            want.insert(format!(
                "{}.confirmation",
                public_id(b["id"].as_str().unwrap())
            ));
        }
        s.stop();
    }
    sink.up();
    let s = start(dir.path(), &sink);
    let m = sink.wait_for(WAIT, tick(&s), |m| entries(m) == want);
    assert_eq!(m.len(), 4);
}

/// The real binary, killed with SIGKILL while the outbox has unsent
/// entries and sends are in flight: after the restart every booking's
/// email arrives, duplicates carrying the same Message-ID.
#[test]
fn every_email_arrives_after_sigkill() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    sink.set_fault(Fault::Stall, None);
    let (mut child, base) = spawn_server(dir.path(), &sink);
    let mut want = BTreeSet::new();
    for i in 0..10 {
        let auth = format!("Bearer {}", common::token(dir.path(), &format!("fan-{i}")));
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ];
        let h = request(
            "POST",
            &format!("{base}/v1/events/demo/holds"),
            Some(json!({"section": "H", "quantity": 1}).to_string()),
            &headers,
        );
        assert_eq!(h.status, 201, "{h:?}");
        let b = request(
            "POST",
            &format!("{base}/v1/holds/{}/confirm", h.body["id"].as_str().unwrap()),
            Some(common::pay(dir.path(), &h.body, &format!("h{i}@example.com")).to_string()),
            &headers,
        );
        assert_eq!(b.status, 201, "{b:?}");
        want.insert(format!(
            "{}.confirmation",
            public_id(b.body["id"].as_str().unwrap())
        ));
    }
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stalled() == 0 {
        assert!(std::time::Instant::now() < deadline, "no send in flight");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(sink.messages().is_empty());
    sink.set_fault(Fault::None, None);
    let (mut child, _) = spawn_server(dir.path(), &sink);
    let m = sink.wait_for(WAIT, || {}, |m| entries(m) == want);
    assert!(m.len() >= want.len());
    child.kill().unwrap();
    child.wait().unwrap();
}

fn spawn_server(dir: &Path, sink: &SmtpSink) -> (Child, String) {
    spawn_listening(
        common::boxoffice()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--smtp-url",
                &sink.url(),
            ])
            .args(["--mail-send-timeout-ms", "500", "--mail-backoff-ms", "50"])
            .args(["--mail-backoff-max-ms", "200", "--mail-concurrency", "2"])
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "warn"),
    )
}

/// Runs the binary with `args` and expects it to refuse to start, naming
/// the setting.
fn refuses(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = common::boxoffice()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} started");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
}

#[test]
fn bad_mail_settings_are_refused_at_start_by_name() {
    refuses(&["--mail-from", "not an address"], "--mail-from");
    refuses(&["--smtp-url", "gopher://mail"], "--smtp-url");
    refuses(&["--smtp-url", "::"], "--smtp-url");
    refuses(&["--ticket-key", "abc"], "--ticket-key");
    refuses(&["--mail-concurrency", "0"], "--mail-concurrency");
    refuses(&["--mail-attempts-max", "0"], "--mail-attempts-max");
}

#[test]
fn ticket_verify_checks_tokens_against_the_data_dir_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = TicketKey::load_or_create(dir.path()).unwrap();
    let token = key.sign(&boxoffice::mail::Ticket {
        e: "demo".into(),
        s: "A".into(),
        b: 7,
        n: None,
        seat: None,
        seats: vec!["A/1/1".into()],
        qty: None,
        k: None,
        d: None,
    });
    let verify = |token: &str| {
        common::boxoffice()
            .args(["ticket", "verify", token, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let ok = verify(&token);
    assert!(ok.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "valid: event demo, section A, booking 7, seats A/1/1"
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("only the server knows"));
    // A ticket of one place names it.
    let lineage = boxoffice::data_dir::Lineage {
        id: 0xabc,
        since_ms: 0,
    };
    let place =
        boxoffice::mail::Ticket::per_place("demo", "A", (7, 1), lineage, &["A/1/1".into()], 1);
    let ok = verify(&key.sign(&place[0]));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "valid: event demo, section A, booking 7, seat A/1/1 (place 1 of the booking)"
    );
    let standing = boxoffice::mail::Ticket::per_place("demo", "FLOOR", (9, 1), lineage, &[], 2);
    let ok = verify(&key.sign(&standing[1]));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "valid: event demo, section FLOOR, booking 9, standing place 2 of the booking"
    );
    let forged = verify(&token.replace("BXT1.ey", "BXT1.ez"));
    assert!(!forged.status.success());
    let bad = verify("hello");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a boxoffice ticket"));
}

#[test]
fn outbox_commands_list_and_retry_over_the_admin_api() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &sink);
    sink.down();
    let b = book(&s, "J", json!({"quantity": 1}), "j@example.com");
    let id = format!("{}.confirmation", public_id(b["id"].as_str().unwrap()));
    let cli = |args: &[&str]| {
        common::boxoffice()
            .args(["outbox"])
            .args(args)
            .args(["--server", &s.base, "--admin-token", ADMIN_TOKEN])
            .output()
            .unwrap()
    };
    let out = cli(&["list", "--state", "pending"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("1 pending, 0 dead"), "{stdout}");
    assert!(
        stdout.contains(&id) && stdout.contains("j@example.com"),
        "{stdout}"
    );
    let out = cli(&["list", "--state", "dead", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["entries"], json!([]));
    // Only dead letters can be retried: the server's reason is shown.
    let out = cli(&["retry", &id]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("409"),
        "{out:?}"
    );
    let out = common::boxoffice()
        .args([
            "outbox",
            "list",
            "--server",
            &s.base,
            "--admin-token",
            "wrong",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{out:?}"
    );
    sink.up();
}

#[test]
fn without_smtp_emails_are_eml_files_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let b = book(&s, "K", json!({"quantity": 2}), "k@example.com");
    let mail_dir = dir.path().join("mail");
    let deadline = std::time::Instant::now() + WAIT;
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&mail_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        if !files.is_empty() {
            break files;
        }
        assert!(std::time::Instant::now() < deadline, "no .eml written");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(files.len(), 1);
    // Named by its outbox key, and whole once it has that name.
    assert_eq!(
        files[0].file_name().unwrap().to_string_lossy(),
        format!("{}.confirmation.eml", public_id(b["id"].as_str().unwrap()))
    );
    let raw = std::fs::read(&files[0]).unwrap();
    let msg = MessageParser::default().parse(&raw).unwrap();
    let mid = msg.message_id().unwrap();
    assert!(
        mid.starts_with(&format!(
            "{}.confirmation.",
            public_id(b["id"].as_str().unwrap())
        )),
        "{mid}"
    );
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("k@example.com")
    );
}

/// The `boxoffice_mail_outbox{state="yielding"}` gauge: 1 while the
/// mailer steps aside for a busy sale.
fn yielding(s: &TestServer) -> u64 {
    let text = s.metrics();
    text.lines()
        .find_map(|l| l.strip_prefix("boxoffice_mail_outbox{state=\"yielding\"} "))
        .expect("the yielding gauge")
        .parse()
        .unwrap()
}

/// Polls `f` every 20 ms for up to 30 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// While the sale is busy the mailer steps aside: one send at a time
/// (`--mail-busy-concurrency`), emails wait for the rush. Once the
/// oldest email due has waited `--mail-delay-max-secs`, it sends at full
/// concurrency again, busy or not; and every email arrives.
#[test]
fn the_mailer_steps_aside_for_a_busy_sale() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut a = mail_args(dir.path(), &sink);
    a.mail_concurrency = 4;
    a.mail_busy_changes_per_sec = 20;
    a.mail_busy_concurrency = 1;
    a.mail_delay_max_secs = 600;
    a.mail_send_timeout_ms = 60_000;
    let s = TestServer::start_with(a, Arc::new(ManualClock::new(T0_MS)));
    // Sends hang, so what is in flight shows at the sink.
    sink.set_fault(Fault::Stall, None);
    // The rush: fans holding and releasing standing places, fast.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..3)
        .map(|_| {
            let (base, token, stop) = (s.base.clone(), s.token.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let auth = format!("Bearer {token}");
                let h = [
                    ("Content-Type", "application/json"),
                    ("Authorization", auth.as_str()),
                ];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let hold = common::request(
                        "POST",
                        &format!("{base}/v1/events/demo/holds"),
                        Some(json!({"section": "FLOOR", "quantity": 1}).to_string()),
                        &h,
                    );
                    let id = hold.body["id"].as_str().unwrap();
                    common::request("DELETE", &format!("{base}/v1/holds/{id}"), None, &h);
                }
            })
        })
        .collect();
    // The mailer measures the pace four times a second.
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..4 {
        book(
            &s,
            "B",
            json!({"seats": [format!("B/1/{}", i + 1)]}),
            "rush@example.com",
        );
    }
    eventually("one send in flight", || sink.stalled() == 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.stalled(), 1, "one send at a time while busy");
    assert_eq!(yielding(&s), 1);

    // Ten minutes on, the emails have waited long enough: full pace,
    // though the rush goes on (the next booking wakes the mailer).
    s.clock.advance_ms(601_000);
    book(&s, "B", json!({"seats": ["B/1/9"]}), "rush@example.com");
    eventually("four sends in flight", || sink.stalled() == 4);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    // The stalled sends fail when the sink lets go, and are retried.
    sink.set_fault(Fault::None, None);
    let m = sink.wait_for(WAIT, tick(&s), |m| one_id_per_entry(m).len() == 5);
    assert_eq!(one_id_per_entry(&m).len(), 5);
}
