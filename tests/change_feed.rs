//! The change feed (`GET /v1/events/{event}/changes`) over a real socket:
//! every durable change of the event, in journal order, each with its
//! journal position; exact resumption; `410` past what the journal keeps;
//! only the feed's or the admin's token; and, against the real binary,
//! SIGKILL under load: the feed resumes with no gap, and everything it
//! sent before the kill is in the journal (invariants 2 and 8).

mod common;

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use boxoffice::clock::rfc3339;
use common::*;
use serde_json::{json, Value};

const FEED_TOKEN: &str = "feed-token-0123456789";

/// One change as the feed sent it.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    id: String,
    kind: String,
    data: Value,
}

/// The batch and record of a feed id, for ordering.
fn position(id: &str) -> (u64, u32) {
    let (b, r) = id.split_once('.').unwrap();
    (b.parse().unwrap(), r.parse().unwrap())
}

/// Opens the feed at `base` with `query` and `headers`; the changes come
/// through the returned channel as they arrive (it closes when the stream
/// ends). A refusal is its status and body.
fn open(
    base: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<mpsc::Receiver<Change>, (u16, Value)> {
    let mut r = agent()
        .get(&format!("{base}/v1/events/demo/changes{query}"))
        .timeout(Duration::from_secs(120));
    for (k, v) in headers {
        r = r.set(k, v);
    }
    let r = match r.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(status, r)) => {
            return Err((
                status,
                serde_json::from_str(&r.into_string().unwrap()).unwrap(),
            ))
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(r.content_type(), "text/event-stream");
    let (tx, rx) = mpsc::channel();
    let mut reader = std::io::BufReader::new(r.into_reader());
    std::thread::spawn(move || {
        let (mut id, mut kind) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            // A reset connection (the server killed) ends it too.
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_owned();
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                let data: Value = serde_json::from_str(v).unwrap();
                let change = Change {
                    id: std::mem::take(&mut id),
                    kind: std::mem::take(&mut kind),
                    data,
                };
                if tx.send(change).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

fn feed_auth() -> [(&'static str, String); 1] {
    [("Authorization", format!("Bearer {FEED_TOKEN}"))]
}

fn open_feed(
    base: &str,
    query: &str,
    extra: &[(&str, &str)],
) -> Result<mpsc::Receiver<Change>, (u16, Value)> {
    let auth = feed_auth();
    let mut h: Vec<(&str, &str)> = vec![(auth[0].0, auth[0].1.as_str())];
    h.extend_from_slice(extra);
    open(base, query, &h)
}

/// Takes `n` changes, each within 5 s.
fn take(rx: &mpsc::Receiver<Change>, n: usize) -> Vec<Change> {
    (0..n)
        .map(|i| {
            rx.recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("change {i} of {n} never came: {e}"))
        })
        .collect()
}

/// Every change until none came for `idle`.
fn drain(rx: &mpsc::Receiver<Change>, idle: Duration) -> Vec<Change> {
    let mut out = Vec::new();
    while let Ok(c) = rx.recv_timeout(idle) {
        out.push(c);
    }
    out
}

fn server(dir: &std::path::Path) -> TestServer {
    let mut a = args(dir);
    a.feed_token = Some(FEED_TOKEN.into());
    a.hold_ttl_secs = 60;
    TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    )
}

/// The section and number of a hold or booking id (`demo.A.h2a.<secret>`,
/// the number in hex).
fn number(id: &str) -> (String, u64) {
    let parts: Vec<&str> = id.split('.').collect();
    (
        parts[1].to_owned(),
        u64::from_str_radix(&parts[2][1..], 16).unwrap(),
    )
}

#[test]
fn the_feed_sends_every_durable_change_in_order_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());

    // A service credential only; a fan's token proves nothing here.
    let fan = format!("Bearer {}", s.token_for("fan-1"));
    for auth in [
        None,
        Some(fan.as_str()),
        Some("Bearer not-the-feed-token-at-all"),
    ] {
        let h: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let refused = open(&s.base, "", &h).err().unwrap();
        assert_eq!(refused.0, 401, "{auth:?}");
        assert_eq!(refused.1["type"], "urn:boxoffice:problem:unauthorized");
    }

    let live = open_feed(&s.base, "", &[]).unwrap();
    let admin_live = open(&s.base, "", &[("Authorization", "Bearer test-admin-token")]).unwrap();

    let first = s.hold("A", &["A/1/1", "A/1/2"]);
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(s.delete(&format!("/v1/holds/{first_id}")).status, 204);
    let second = s.hold("A", &["A/1/3"]);
    let second_id = second["id"].as_str().unwrap();
    let booked = s.post(
        &format!("/v1/holds/{second_id}/confirm"),
        &s.pay(second_id, "fan@example.com"),
    );
    assert_eq!(booked.status, 201, "{booked:?}");
    let booking_id = booked.body["id"].as_str().unwrap();
    let cancelled = s.raw(
        "POST",
        &format!("/v1/bookings/{booking_id}/cancel"),
        None,
        &[],
    );
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let third = s.hold("B", &["B/1/1"]);
    s.clock.advance_ms(61_000);
    let began = std::time::Instant::now();
    while s.get("/v1/events/demo").body["held"] != 0 {
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "the hold never expired"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let phases = json!([{"name": "General sale", "opens_at": rfc3339(T0_MS)}]);
    let moved = s.raw(
        "PUT",
        "/v1/events/demo/sale-phases",
        Some(json!({ "sale_phases": phases }).to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer test-admin-token"),
        ],
    );
    assert_eq!(moved.status, 200, "{moved:?}");

    let got = take(&live, 8);
    let kinds: Vec<&str> = got.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "hold",
            "release",
            "hold",
            "confirm",
            "cancel",
            "hold",
            "expiry",
            "sale-phases"
        ]
    );
    for pair in got.windows(2) {
        assert!(
            position(&pair[0].id) < position(&pair[1].id),
            "journal order: {pair:?}"
        );
    }
    for c in &got {
        assert_eq!(c.data["position"], c.id.as_str());
        assert_eq!(c.data["kind"], c.kind.as_str());
        assert_eq!(c.data["event"], "demo");
    }
    let (section, hold) = number(first_id);
    assert_eq!(
        got[0].data,
        json!({"position": got[0].id, "event": "demo", "kind": "hold", "section": section,
               "hold": hold, "fan": "fan-1", "seats": ["A/1/1", "A/1/2"], "quantity": 2,
               "at": first["created_at"], "expires_at": first["expires_at"]})
    );
    assert_eq!(got[1].data["hold"], hold);
    assert_eq!(got[3].data["hold"], number(second_id).1);
    assert_eq!(got[3].data["booking"], number(booking_id).1);
    assert_eq!(got[3].data["email"], "fan@example.com");
    assert_eq!(got[4].data["booking"], number(booking_id).1);
    assert_eq!(got[6].data["section"], "B");
    assert_eq!(got[6].data["hold"], number(third["id"].as_str().unwrap()).1);
    assert_eq!(got[7].data["sale_phases"], phases);
    // No secret of any hold or booking goes out.
    let text = serde_json::to_string(&got.iter().map(|c| &c.data).collect::<Vec<_>>()).unwrap();
    for id in [first_id, second_id, booking_id] {
        assert!(
            !text.contains(id.rsplit('.').next().unwrap()),
            "a secret in the feed"
        );
    }
    assert_eq!(take(&admin_live, 8), got, "the admin token reads the same");

    // Resuming right after the third change gets exactly the rest.
    let resumed = open_feed(&s.base, "", &[("Last-Event-ID", &got[2].id)]).unwrap();
    assert_eq!(take(&resumed, 5), got[3..]);
    // From the first batch: the event's creation, then the same.
    let all = open_feed(&s.base, "?from=0", &[]).unwrap();
    let from_start = take(&all, 9);
    assert_eq!(from_start[0].kind, "event-created");
    assert_eq!(from_start[1..], got[..]);
    assert!(
        drain(&all, Duration::from_millis(300)).is_empty(),
        "nothing else of demo"
    );

    // Positions that are not, or not yet, this journal's.
    for (query, headers, status) in [
        ("", vec![("Last-Event-ID", "12")], 400),
        ("", vec![("Last-Event-ID", "x.1")], 400),
        ("?from=99999999", vec![], 400),
        ("?from=-1", vec![], 400),
        ("?from=0&since=1", vec![], 400),
        ("?from=0", vec![("Last-Event-ID", "0.0")], 400),
    ] {
        let refused = open_feed(&s.base, query, &headers).err().unwrap();
        assert_eq!(refused.0, status, "{query} {headers:?}: {:?}", refused.1);
    }
    let missing = agent()
        .get(&format!("{}/v1/events/nope/changes", s.base))
        .set("Authorization", &format!("Bearer {FEED_TOKEN}"))
        .call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
}

/// Once a snapshot lets the journal drop its old batches, a position
/// before them is `410`, naming the oldest kept; reading from there works.
#[test]
fn a_position_the_journal_no_longer_keeps_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    s.hold("A", &["A/1/1"]);
    let snap = s.raw("POST", "/v1/admin/snapshots", None, &admin());
    assert_eq!(snap.status, 201, "{snap:?}");
    let at = snap.body["journal_position"].as_u64().unwrap();
    assert!(at > 0);
    // The flusher drops the covered batches while idle.
    let began = std::time::Instant::now();
    let gone = loop {
        match open_feed(&s.base, "?from=0", &[]) {
            Err(refused) => break refused,
            Ok(_) if began.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(_) => panic!("batches below the snapshot were never dropped"),
        }
    };
    assert_eq!(gone.0, 410, "{:?}", gone.1);
    assert_eq!(gone.1["type"], "urn:boxoffice:problem:position-gone");
    assert_eq!(gone.1["oldest"], at);
    let from = open_feed(&s.base, &format!("?from={at}"), &[]).unwrap();
    s.hold("A", &["A/1/2"]);
    let c = take(&from, 1);
    assert_eq!(c[0].data["seats"], json!(["A/1/2"]));
    assert!(position(&c[0].id).0 >= at);
}

/// SIGKILL of the real binary while fans hold and release and a service
/// reads the feed: resumed after the restart with its last id, the feed
/// goes on with no gap and nothing twice, and every change it sent before
/// the kill is in the journal as sent (it never sent one that was not
/// durable); every hold a fan was told of is in it.
#[test]
fn the_feed_resumes_after_sigkill_with_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--feed-token",
        FEED_TOKEN,
        "--demo-tickets-per-fan-max",
        "0",
        "--fan-holds-per-sec",
        "0",
    ];
    let (mut child, base) = serve(dir.path(), &flags);
    let before = open_feed(&base, "", &[]).unwrap();
    let stop = AtomicBool::new(false);
    let acknowledged: Vec<(String, u64)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (base, stop, dir) = (&base, &stop, dir.path());
                scope.spawn(move || {
                    let auth = format!("Bearer {}", token(dir, &format!("fan-{c}")));
                    let h = [
                        ("Content-Type", "application/json"),
                        ("Authorization", auth.as_str()),
                    ];
                    let mut held = Vec::new();
                    for i in 0u64.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let section = ["A", "B", "C", "D"][c];
                        let body = json!({"section": section, "quantity": 1 + i % 2});
                        let Ok(r) = try_request(
                            "POST",
                            &format!("{base}/v1/events/demo/holds"),
                            Some(body.to_string()),
                            &h,
                        ) else {
                            break;
                        };
                        if r.status != 201 {
                            continue;
                        }
                        let id = r.body["id"].as_str().unwrap().to_owned();
                        held.push(number(&id));
                        if i % 3 == 0 {
                            let _ = try_request(
                                "DELETE",
                                &format!("{base}/v1/holds/{id}"),
                                None,
                                &h[1..],
                            );
                        }
                    }
                    held
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        child.kill().unwrap();
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let sent = drain(&before, Duration::from_secs(2));
    assert!(
        sent.len() > 20,
        "the feed sent {} changes under load",
        sent.len()
    );
    assert!(!acknowledged.is_empty());

    let (mut child, base) = serve(dir.path(), &flags);
    let last = &sent.last().unwrap().id;
    let resumed = drain(
        &open_feed(&base, "", &[("Last-Event-ID", last)]).unwrap(),
        Duration::from_secs(2),
    );
    let first_batch = position(&sent[0].id).0;
    let whole: Vec<Change> = drain(
        &open_feed(&base, &format!("?from={first_batch}"), &[]).unwrap(),
        Duration::from_secs(2),
    )
    .into_iter()
    .filter(|c| position(&c.id) >= position(&sent[0].id))
    .collect();
    assert!(whole.len() >= sent.len());
    assert_eq!(
        whole[..sent.len()],
        sent[..],
        "sent before the kill, as it is in the journal"
    );
    assert_eq!(
        whole[sent.len()..],
        resumed[..],
        "resumed with no gap and nothing twice"
    );
    for (section, hold) in &acknowledged {
        assert!(
            whole.iter().any(|c| c.kind == "hold"
                && c.data["section"] == section.as_str()
                && c.data["hold"] == *hold),
            "acknowledged hold {section} {hold} is not in the feed"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Invariant 8 where it could break: each group commit's batch sits in
/// sled, readable beside the flusher, for 600 ms before it is flushed and
/// synced. Meanwhile neither the feed nor the seat map shows it; once the
/// fan is answered, both do.
#[test]
fn a_batch_readable_but_not_durable_is_shown_to_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.feed_token = Some(FEED_TOKEN.into());
    a.journal_unsynced_delay_ms = 600;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let live = open_feed(&s.base, "", &[]).unwrap();
    std::thread::scope(|scope| {
        let holding = scope.spawn(|| s.hold("A", &["A/1/1"]));
        let applied = r#"boxoffice_changes_total{event="demo",kind="hold",section="A"} 1"#;
        let began = std::time::Instant::now();
        while !s.metrics().lines().any(|l| l == applied) {
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "the hold never applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Its batch is in sled now, not yet synced.
        std::thread::sleep(Duration::from_millis(150));
        assert!(
            live.recv_timeout(Duration::from_millis(150)).is_err(),
            "the feed sent a change that was not durable"
        );
        assert!(s.states("A").starts_with('f'), "the seat map showed it");
        holding.join().unwrap();
    });
    let c = take(&live, 1);
    assert_eq!(c[0].kind, "hold");
    assert_eq!(c[0].data["seats"], json!(["A/1/1"]));
    assert!(s.states("A").starts_with('h'));
}
