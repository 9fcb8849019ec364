//! Invariant 8 for seat maps and availability: readers see each section's
//! published view, which holds a change only once it is durable, and a
//! read never waits in (or is refused by) the section's in-flight bound.
//! Over a real socket, with the journal's group commit slowed down so a
//! change sits applied in memory, not yet durable, long enough to look.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Whether the section's actor has applied `n` holds in memory (its
/// change counter moves at apply time, before durability).
fn applied_holds(s: &TestServer, section: &str, n: u64) -> bool {
    let text = s.metrics();
    let key =
        format!(r#"boxoffice_changes_total{{event="demo",kind="hold",section="{section}"}} {n}"#);
    text.lines().any(|l| l == key)
}

fn held(s: &TestServer) -> u64 {
    s.get("/v1/events/demo").body["held"].as_u64().unwrap()
}

#[test]
fn a_change_is_shown_once_durable_and_reads_pass_a_full_section() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    // Every group commit takes 600 ms longer; the section admits one
    // request in flight.
    a.journal_delay_ms = 600;
    a.mailbox_capacity = 1;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    assert!(s.states("A").starts_with("fff"));
    std::thread::scope(|scope| {
        let holding = scope.spawn(|| s.hold("A", &["A/1/1"]));
        let began = Instant::now();
        while !applied_holds(&s, "A", 1) {
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "the hold never applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Applied in memory, not durable: nobody is shown it.
        let map = s.get("/v1/events/demo/sections/A/seats");
        assert_eq!(map.status, 200, "a read passes the full section: {map:?}");
        assert!(map.body["states"].as_str().unwrap().starts_with("fff"));
        assert_eq!(map.body["held"], 0);
        assert_eq!(held(&s), 0);
        // The section's one place in flight is taken: a change is refused.
        let second = s.post(
            "/v1/events/demo/holds",
            &json!({"section": "A", "seats": ["A/1/2"]}),
        );
        assert_eq!(second.status, 503, "{second:?}");
        let first = holding.join().unwrap();
        assert_eq!(first["seats"], json!(["A/1/1"]));
    });
    // Told it is durable, the fan's next read shows it.
    assert!(s.states("A").starts_with("hff"));
    assert_eq!(held(&s), 1);
}

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    event: String,
    id: u64,
    data: serde_json::Value,
}

/// A section's seat stream, read as it comes.
struct SeatStream(std::io::BufReader<Box<dyn std::io::Read + Send + Sync>>);

impl SeatStream {
    /// Opens section `section`'s stream, resuming after `last` if given;
    /// the status and body of a refusal.
    fn open(
        s: &TestServer,
        section: &str,
        last: Option<&str>,
    ) -> Result<SeatStream, (u16, String)> {
        SeatStream::open_as(s, section, last, None)
    }

    /// The stream, sent with a fan's `token` when there is one.
    fn open_as(
        s: &TestServer,
        section: &str,
        last: Option<&str>,
        token: Option<&str>,
    ) -> Result<SeatStream, (u16, String)> {
        let mut r = agent().get(&format!(
            "{}/v1/events/demo/sections/{section}/stream",
            s.base
        ));
        if let Some(last) = last {
            r = r.set("Last-Event-ID", last);
        }
        if let Some(token) = token {
            r = r.set("Authorization", &format!("Bearer {token}"));
        }
        match r.call() {
            Ok(r) => {
                assert_eq!(r.content_type(), "text/event-stream");
                Ok(SeatStream(std::io::BufReader::new(r.into_reader())))
            }
            Err(ureq::Error::Status(status, r)) => {
                let refused = matches!(status, 503 | 429);
                assert_eq!(
                    r.header("Retry-After").filter(|_| refused),
                    refused.then_some("5")
                );
                Err((status, r.into_string().unwrap()))
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// The next event (comments and `retry:` skipped), `None` once the
    /// stream ended.
    fn next(&mut self) -> Option<Sse> {
        use std::io::BufRead;
        let (mut event, mut id, mut data) = (String::new(), None, None);
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                if let Some(data) = data.take() {
                    return Some(Sse {
                        event,
                        id: id.expect("every event has an id"),
                        data,
                    });
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event: ") {
                event = v.to_owned();
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            }
        }
    }
}

fn indices(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// The whole state first, then each durable change with its journal
/// position; a reconnect with `Last-Event-ID` gets exactly what it
/// missed, and an id the server does not keep gets the whole state.
#[test]
fn a_seat_stream_sends_each_change_and_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let mut stream = SeatStream::open(&s, "A", None).unwrap();
    let first = stream.next().unwrap();
    assert_eq!(first.event, "seats");
    assert_eq!(first.data["position"], first.id);
    let states = first.data["states"].as_str().unwrap();
    assert_eq!(states.len(), 720);
    assert!(states.bytes().all(|b| b == b'f'));
    assert_eq!(first.data["availability"]["free"], 720);
    assert_eq!(first.data["availability"]["held"], 0);

    // Seats A/1/1 and A/1/2 are the map's first two.
    let hold = s.hold("A", &["A/1/1", "A/1/2"]);
    let changed = stream.next().unwrap();
    assert_eq!(changed.event, "changes");
    assert!(changed.id > first.id);
    assert_eq!(changed.data["since"], first.id);
    assert_eq!(indices(&changed.data["held"]), [0, 1]);
    assert_eq!(indices(&changed.data["free"]), Vec::<u64>::new());
    assert_eq!(changed.data["availability"]["held"], 2);
    assert_eq!(changed.data["availability"]["free"], 718);
    drop(stream);

    // Missed while away: the release and another hold.
    let released = s.delete(&format!("/v1/holds/{}", hold["id"].as_str().unwrap()));
    assert_eq!(released.status, 204, "{released:?}");
    s.hold("A", &["A/1/3"]);
    let mut resumed = SeatStream::open(&s, "A", Some(&changed.id.to_string())).unwrap();
    let (mut freed, mut held) = (Vec::new(), Vec::new());
    let mut since = changed.id;
    while held.is_empty() {
        let e = resumed.next().unwrap();
        assert_eq!(e.event, "changes", "only what was missed: {e:?}");
        assert_eq!(e.data["since"], since, "no gap, nothing twice");
        since = e.id;
        freed.extend(indices(&e.data["free"]));
        held.extend(indices(&e.data["held"]));
    }
    assert_eq!((freed, held), (vec![0, 1], vec![2]));
    drop(resumed);

    // An id it never sent, or garbage: the whole state, as it is now.
    for last in ["999999999", "not a number"] {
        let mut again = SeatStream::open(&s, "A", Some(last)).unwrap();
        let e = again.next().unwrap();
        assert_eq!(e.event, "seats");
        assert_eq!(e.id, since);
        assert!(e.data["states"].as_str().unwrap().starts_with("ffhf"));
        assert_eq!(e.data["availability"]["held"], 1);
    }

    let none = SeatStream::open(&s, "NOPE", None).err().unwrap();
    assert_eq!(none.0, 404);
}

/// No more streams than `--seat-streams-max`; a closed one gives its
/// place back (the server learns of it when it next writes to it: at the
/// section's next change, or the keep-alive).
#[test]
fn seat_streams_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.seat_streams_max = 1;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let mut one = SeatStream::open(&s, "B", None).unwrap();
    assert_eq!(one.next().unwrap().event, "seats");
    let refused = SeatStream::open(&s, "A", None).err().unwrap();
    assert_eq!(refused.0, 503);
    assert!(
        refused.1.contains("urn:boxoffice:problem:overloaded"),
        "{}",
        refused.1
    );
    drop(one);
    let began = Instant::now();
    for seat in 1.. {
        match SeatStream::open(&s, "A", None) {
            Ok(mut s) => {
                assert_eq!(s.next().unwrap().event, "seats");
                break;
            }
            Err((503, _)) if began.elapsed() < Duration::from_secs(5) => {
                s.hold("B", &[&format!("B/1/{seat}")]);
                std::thread::sleep(Duration::from_millis(30));
            }
            Err(e) => panic!("the closed stream's place never came back: {e:?}"),
        }
    }
}

/// Anonymous clients get at most `--seat-streams-anonymous-max` streams:
/// the other places stay for fans who send their token, four a fan.
#[test]
fn seat_streams_keep_places_for_fans() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.seat_streams_max = 8;
    a.seat_streams_anonymous_max = 2;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let open = |token: Option<&str>| SeatStream::open_as(&s, "A", None, token);
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(open(None).unwrap());
    }
    let (status, body) = open(None).err().unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("without sign-in"), "{body}");
    // A crowd without tokens is full; a fan still gets in, four times.
    let fan = s.token_for("fan-a");
    for _ in 0..4 {
        let mut stream = open(Some(&fan)).unwrap();
        assert_eq!(stream.next().unwrap().event, "seats");
        kept.push(stream);
    }
    let (status, body) = open(Some(&fan)).err().unwrap();
    assert_eq!(status, 429);
    assert!(
        body.contains("urn:boxoffice:problem:too-many-streams"),
        "{body}"
    );
    // A bad token is refused as such, and takes no place.
    let (status, _) = open(Some("not-a-token")).err().unwrap();
    assert_eq!(status, 401);
    let other = s.token_for("fan-b");
    for _ in 0..2 {
        kept.push(open(Some(&other)).unwrap());
    }
    // Every place taken: 2 anonymous and 6 of fans.
    let (status, body) = open(Some(&s.token_for("fan-c"))).err().unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("read GET .../seats instead"), "{body}");
    assert!(!body.contains("without sign-in"), "{body}");
    assert_eq!(kept.len(), 8);
}

/// A section's stream opened without a token, as the client `forwarded`
/// says it is (`X-Forwarded-For`): its status.
fn open_from(s: &TestServer, forwarded: &str) -> Result<SeatStream, (u16, String)> {
    let r = agent()
        .get(&format!("{}/v1/events/demo/sections/A/stream", s.base))
        .set("X-Forwarded-For", forwarded);
    match r.call() {
        Ok(r) => Ok(SeatStream(std::io::BufReader::new(r.into_reader()))),
        Err(ureq::Error::Status(status, r)) => Err((status, r.into_string().unwrap())),
        Err(e) => panic!("{e}"),
    }
}

/// Without a token, one client address gets at most
/// `--seat-streams-per-address-max` streams (`429` past it); another
/// address still gets its own. The address is the TCP peer, unless it is
/// a proxy the server trusts: then the hop it names. What a client writes
/// into `X-Forwarded-For` itself changes nothing.
#[test]
fn anonymous_seat_streams_are_bounded_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path, trusted: Option<&str>| {
        let mut a = args(dir);
        a.seat_streams_anonymous_max = 10;
        a.seat_streams_per_address_max = 2;
        a.trusted_proxies = trusted.map(str::to_owned);
        TestServer::start_with(
            a,
            std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
        )
    };
    // Behind a proxy (here, the test itself on 127.0.0.1).
    let s = start(&dir.path().join("proxied"), Some("127.0.0.0/8"));
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(open_from(&s, "198.51.100.7").unwrap());
    }
    let (status, body) = open_from(&s, "198.51.100.7").err().unwrap();
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("from your address"), "{body}");
    // The client's own entry, left of the proxy's, is not believed.
    let (status, _) = open_from(&s, "203.0.113.1, 198.51.100.7").err().unwrap();
    assert_eq!(status, 429);
    kept.push(open_from(&s, "198.51.100.8").unwrap());
    // An IPv6 client counts by its /64.
    kept.push(open_from(&s, "2001:db8::1").unwrap());
    kept.push(open_from(&s, "2001:db8::2").unwrap());
    assert_eq!(open_from(&s, "2001:db8::3").err().unwrap().0, 429);
    kept.push(open_from(&s, "2001:db8:0:1::1").unwrap());
    // A fan signed in is counted as a fan, not by its address.
    let fan = s.token_for("fan-a");
    kept.push(SeatStream::open_as(&s, "A", None, Some(&fan)).unwrap());
    // A stream closed gives its address's place back (once the server
    // next writes to it: at the section's next change).
    drop(kept.remove(0));
    let began = Instant::now();
    for seat in 1.. {
        match open_from(&s, "198.51.100.7") {
            Ok(k) => {
                kept.push(k);
                break;
            }
            Err((429, _)) if began.elapsed() < Duration::from_secs(5) => {
                s.hold("A", &[&format!("A/2/{seat}")]);
                std::thread::sleep(Duration::from_millis(30));
            }
            Err(e) => panic!("the closed stream's place never came back: {e:?}"),
        }
    }
    s.stop();
    // No trusted proxy: every client is its peer, whatever it claims.
    let s = start(&dir.path().join("direct"), None);
    let a = open_from(&s, "198.51.100.1").unwrap();
    let b = open_from(&s, "198.51.100.2").unwrap();
    assert_eq!(open_from(&s, "198.51.100.3").err().unwrap().0, 429);
    drop((a, b, kept));
}

/// A standing section has no seats to name: its stream sends the counts
/// as they change.
#[test]
fn a_standing_section_streams_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let mut stream = SeatStream::open(&s, "FLOOR", None).unwrap();
    let first = stream.next().unwrap();
    assert_eq!(first.event, "seats");
    assert_eq!(first.data["states"], "");
    let free = first.data["availability"]["free"].as_u64().unwrap();
    let r = s.post(
        "/v1/events/demo/holds",
        &json!({"section": "FLOOR", "quantity": 3}),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let changed = stream.next().unwrap();
    assert_eq!(changed.event, "changes");
    assert_eq!(changed.data["availability"]["held"], 3);
    assert_eq!(changed.data["availability"]["free"], free - 3);
    for state in ["free", "held", "sold"] {
        assert_eq!(changed.data[state], json!([]));
    }
}
