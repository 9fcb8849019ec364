//! The waiting room over a real socket (invariant 9: admission is fair):
//! an operator switches it on, fans join, the pre-queue is shuffled at
//! the opening by the seed the room publishes, fans are admitted in queue
//! order at the set rate, and holds need a valid admission of their own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const SEC: u64 = 1000;

fn put_room(s: &TestServer, body: &Value) -> Resp {
    s.raw(
        "PUT",
        "/v1/events/demo/waiting-room",
        Some(body.to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer test-admin-token"),
        ],
    )
}

fn as_fan(s: &TestServer, fan: &str, method: &str, path: &str, extra: &[(&str, &str)]) -> Resp {
    let token = s.token_for(fan);
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    s.raw(method, path, None, &headers)
}

fn me(s: &TestServer, fan: &str) -> Resp {
    as_fan(s, fan, "GET", "/v1/events/demo/queue/me", &[])
}

/// A hold of one standing place as `fan`, with `admission` if given.
fn hold(s: &TestServer, fan: &str, admission: Option<&str>) -> Resp {
    let token = s.token_for(fan);
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(a) = admission {
        headers.push(("Boxoffice-Admission", a));
    }
    s.raw(
        "POST",
        "/v1/events/demo/holds",
        Some(json!({"section": "FLOOR", "quantity": 1}).to_string()),
        &headers,
    )
}

/// The public view once `done` says it is what the test waits for (the
/// ticker runs every 50 ms on real time; the clock is the test's).
fn room_when(s: &TestServer, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.get("/v1/events/demo/waiting-room");
        assert_eq!(r.status, 200, "{r:?}");
        if done(&r.body) {
            return r.body;
        }
        assert!(Instant::now() < deadline, "the room never got there: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn fans_are_admitted_in_queue_order_and_holds_need_their_own_admission() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let fans: Vec<String> = (0..12).map(|i| format!("fan-q{i}")).collect();

    // Off: the demo sells without a queue.
    let r = s.get("/v1/events/demo/waiting-room");
    assert_eq!((r.status, &r.body["enabled"]), (200, &json!(false)));
    assert_eq!(hold(&s, "fan-early", None).status, 201);
    check_problem(&me(&s, &fans[0]), 404, "waiting-room-off");

    // Only the admin switches it on, with settings a room runs by.
    let opens = T0_MS + 60 * SEC;
    let on = json!({"enabled": true, "opens_at": clock_text(opens), "rate_per_sec": 2,
                    "admission_ttl_secs": 30});
    let r = s.raw(
        "PUT",
        "/v1/events/demo/waiting-room",
        Some(on.to_string()),
        &[("Content-Type", "application/json")],
    );
    check_problem(&r, 401, "unauthorized");
    let mut bad = on.clone();
    bad["rate_per_sec"] = 0.into();
    let r = put_room(&s, &bad);
    check_problem(&r, 422, "invalid-request");
    assert_eq!(r.body["field"], "waiting_room.rate_per_sec");
    let r = put_room(&s, &on);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["settings"]["opens_at"], clock_text(opens));
    assert_eq!(r.body["settings"]["rate_per_sec"], 2);

    // On: a hold needs an admission, and says where to queue.
    let r = hold(&s, "fan-early", None);
    check_problem(&r, 403, "admission-required");
    assert_eq!(r.body["reason"], "missing");
    assert_eq!(r.body["queue"], "/v1/events/demo/queue");
    check_problem(&me(&s, &fans[0]), 404, "not-in-queue");

    // Ten fans join before the opening: a pre-queue, no numbers yet;
    // joining again keeps the place.
    s.clock.advance_ms(SEC);
    for f in &fans[..10] {
        let r = as_fan(&s, f, "POST", "/v1/events/demo/queue", &[]);
        assert_eq!(
            (r.status, &r.body["state"]),
            (200, &json!("pre-queue")),
            "{r:?}"
        );
        assert!(r.body.get("number").is_none());
    }
    let r = as_fan(&s, &fans[3], "POST", "/v1/events/demo/queue", &[]);
    assert_eq!(r.body["state"], "pre-queue");
    assert_eq!(room_when(&s, |_| true)["joined"], 10);
    // Before the shuffle nobody waits on admission (an alert on "fans
    // wait, nobody is admitted" must stay quiet through the pre-queue).
    let metrics = s.metrics();
    for line in [
        "boxoffice_waiting_room_fans{event=\"demo\",state=\"pre_queue\"} 10",
        "boxoffice_waiting_room_fans{event=\"demo\",state=\"waiting\"} 0",
        "boxoffice_waiting_room_paused{event=\"demo\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // The opening: the pre-queue is shuffled by the published seed, and
    // the first fan is admitted (two a second, one at once).
    s.clock.advance_ms(opens - T0_MS - SEC);
    let view = room_when(&s, |v| v["serving"] == 1);
    let seed: u64 = view["shuffle_seed"].as_str().unwrap().parse().unwrap();
    let mut expected: Vec<String> = fans[..10].to_vec();
    boxoffice::domain::shuffle(&mut expected, seed);
    for (n, f) in expected.iter().enumerate() {
        let r = me(&s, f);
        assert_eq!(r.body["number"], n as u64, "{f}: {r:?}");
        let state = if n == 0 { "admitted" } else { "waiting" };
        assert_eq!(r.body["state"], state, "{f}: {r:?}");
        if n > 0 {
            assert_eq!(r.body["ahead"], n as u64 - 1);
            assert!(r.body["estimated_wait_secs"].as_u64().is_some());
        }
    }
    // Later fans queue after everyone who came before.
    for (i, f) in fans[10..].iter().enumerate() {
        let r = as_fan(&s, f, "POST", "/v1/events/demo/queue", &[]);
        assert_eq!(
            (r.status, &r.body["number"]),
            (200, &json!(10 + i)),
            "{r:?}"
        );
    }

    // A second on: two more, in queue order; no more until the clock moves.
    s.clock.advance_ms(SEC);
    room_when(&s, |v| v["serving"] == 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(room_when(&s, |_| true)["serving"], 3);
    let admission = |n: usize| {
        me(&s, &expected[n]).body["admission"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for f in &expected[..3] {
        assert_eq!(me(&s, f).body["state"], "admitted");
    }
    assert!(me(&s, &expected[3]).body.get("admission").is_none());

    // An admitted fan holds with its admission; another fan cannot use it,
    // nor anything this server did not sign.
    let first = admission(0);
    assert_eq!(hold(&s, &expected[0], Some(&first)).status, 201);
    let r = hold(&s, &expected[5], Some(&first));
    check_problem(&r, 403, "admission-required");
    assert_eq!(r.body["reason"], "another-fan");
    let r = hold(&s, &expected[5], Some("BXA1.e30.AAAA"));
    assert_eq!(r.body["reason"], "invalid");

    // A booking ends the admission (its place under a cap frees).
    let r = as_fan(&s, &expected[1], "GET", "/v1/events/demo/queue/me", &[]);
    let second = r.body["admission"].as_str().unwrap().to_owned();
    let held = hold(&s, &expected[1], Some(&second));
    assert_eq!(held.status, 201, "{held:?}");
    let token = s.token_for(&expected[1]);
    let auth = format!("Bearer {token}");
    let r = s.post_with(
        &format!("/v1/holds/{}/confirm", held.body["id"].as_str().unwrap()),
        &pay(&s.data_dir, &held.body, "fan@example.com"),
        &[("Authorization", auth.as_str())],
    );
    assert_eq!(r.status, 201, "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while me(&s, &expected[1]).body["state"] != "done" {
        assert!(
            Instant::now() < deadline,
            "the booking did not end the admission"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = hold(&s, &expected[1], Some(&second));
    assert_eq!((r.status, &r.body["reason"]), (403, &json!("expired")));

    // Unused admissions expire after 30 s; the fans behind are admitted
    // on time regardless (at most a second's credit after the jump).
    let third = admission(2);
    s.clock.advance_ms(30 * SEC);
    room_when(&s, |v| v["serving"] == 5);
    let deadline = Instant::now() + Duration::from_secs(5);
    while me(&s, &expected[2]).body["state"] != "expired" {
        assert!(Instant::now() < deadline, "the admission did not expire");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = hold(&s, &expected[2], Some(&third));
    assert_eq!((r.status, &r.body["reason"]), (403, &json!("expired")));
    assert_eq!(me(&s, &expected[4]).body["state"], "admitted");

    // What an operator sees.
    let metrics = s.metrics();
    for line in [
        "boxoffice_waiting_room_total{event=\"demo\",kind=\"joined\"} 12",
        "boxoffice_waiting_room_total{event=\"demo\",kind=\"admitted\"} 5",
        "boxoffice_waiting_room_total{event=\"demo\",kind=\"expired\"} 2",
        "boxoffice_waiting_room_total{event=\"demo\",kind=\"done\"} 1",
        "boxoffice_waiting_room_fans{event=\"demo\",state=\"waiting\"} 7",
        "boxoffice_waiting_room_fans{event=\"demo\",state=\"active\"} 2",
        "boxoffice_waiting_room_fans{event=\"demo\",state=\"pre_queue\"} 0",
        // Waits from the opening: 0 s, 1 s twice, 31 s twice.
        "boxoffice_waiting_room_wait_seconds_bucket{event=\"demo\",le=\"1\"} 3",
        "boxoffice_waiting_room_wait_seconds_bucket{event=\"demo\",le=\"30\"} 3",
        "boxoffice_waiting_room_wait_seconds_bucket{event=\"demo\",le=\"60\"} 5",
        "boxoffice_waiting_room_wait_seconds_bucket{event=\"demo\",le=\"+Inf\"} 5",
        "boxoffice_waiting_room_wait_seconds_sum{event=\"demo\"} 64",
        "boxoffice_waiting_room_wait_seconds_count{event=\"demo\"} 5",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // An admission is for its event only.
    create_event(&s.base, &small_event("hall", &[4], 10, 4));
    let r = s.raw(
        "PUT",
        "/v1/events/hall/waiting-room",
        Some(on.to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer test-admin-token"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let fourth = admission(4);
    let token = s.token_for(&expected[4]);
    let auth = format!("Bearer {token}");
    let r = s.raw(
        "POST",
        "/v1/events/hall/holds",
        Some(json!({"section": "F", "quantity": 1}).to_string()),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
            ("Boxoffice-Admission", fourth.as_str()),
        ],
    );
    assert_eq!(
        (r.status, &r.body["reason"]),
        (403, &json!("another-event")),
        "{r:?}"
    );

    // A fan whose admission ran out unused may queue again, at the back;
    // one who booked keeps its "done".
    let r = as_fan(&s, &expected[2], "POST", "/v1/events/demo/queue", &[]);
    assert_eq!(
        (r.status, &r.body["state"]),
        (200, &json!("waiting")),
        "{r:?}"
    );
    assert_eq!(r.body["number"], 12, "{r:?}");
    let r = as_fan(&s, &expected[1], "POST", "/v1/events/demo/queue", &[]);
    assert_eq!(r.body["state"], "done", "{r:?}");

    // Off again: holds go straight through, and the queue is gone.
    let r = put_room(&s, &json!({"enabled": false}));
    assert_eq!((r.status, &r.body["enabled"]), (200, &json!(false)));
    assert_eq!(hold(&s, &expected[9], None).status, 201);
    check_problem(&me(&s, &expected[9]), 404, "waiting-room-off");
    s.stop();
}

/// RFC 3339 of a manual-clock time.
fn clock_text(ms: u64) -> String {
    boxoffice::clock::rfc3339(ms)
}

/// `fan`'s standing at the real binary at `base`: (state, number).
fn standing_at(
    base: &str,
    dir: &std::path::Path,
    fan: &str,
) -> Result<(String, Option<u64>), String> {
    let auth = bearer(&token(dir, fan));
    let r = try_request(
        "GET",
        &format!("{base}/v1/events/demo/queue/me"),
        None,
        &[(auth.0, auth.1.as_str())],
    )?;
    assert_eq!(r.status, 200, "{fan}: {r:?}");
    Ok((
        r.body["state"].as_str().unwrap().to_owned(),
        r.body["number"].as_u64(),
    ))
}

fn public_room(base: &str) -> Value {
    let r = request(
        "GET",
        &format!("{base}/v1/events/demo/waiting-room"),
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

/// Fans join and are admitted while the real binary is killed with
/// SIGKILL (after a snapshot, so both the snapshot and the journal after
/// it carry the room): after a restart every acknowledged fan has its
/// number, no admission shown is lost, the shuffle is the same, and
/// admission goes on from where it was.
#[test]
fn the_queue_survives_sigkill() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const EARLY: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--admin-token", ADMIN_TOKEN, "--fan-holds-per-sec", "0"];
    let (mut child, base) = serve(dir.path(), &flags);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let opens = now_ms + 3 * SEC;
    let r = request(
        "PUT",
        &format!("{base}/v1/events/demo/waiting-room"),
        Some(
            json!({"enabled": true, "opens_at": boxoffice::clock::rfc3339_ms(opens),
                   "rate_per_sec": 40, "admission_ttl_secs": 3600})
            .to_string(),
        ),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer test-admin-token"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let join = |base: &str, fan: &str| -> Result<Value, String> {
        let auth = bearer(&token(dir.path(), fan));
        let r = try_request(
            "POST",
            &format!("{base}/v1/events/demo/queue"),
            None,
            &[(auth.0, auth.1.as_str())],
        )?;
        assert_eq!(r.status, 200, "{fan}: {r:?}");
        Ok(r.body)
    };
    let early: Vec<String> = (0..EARLY).map(|i| format!("early-{i}")).collect();
    for f in &early {
        assert_eq!(join(&base, f).unwrap()["state"], "pre-queue");
    }
    // The opening, then a snapshot while fans are being admitted.
    let deadline = Instant::now() + Duration::from_secs(20);
    while public_room(&base)["serving"].as_u64().unwrap() < 5 {
        assert!(Instant::now() < deadline, "nobody was admitted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let seed = public_room(&base)["shuffle_seed"].clone();
    let snap = request(
        "POST",
        &format!("{base}/v1/admin/snapshots"),
        None,
        &admin(),
    );
    assert_eq!(snap.status, 201, "{snap:?}");

    // Late fans join (each join answered once durable) until the kill.
    let stop = Arc::new(AtomicBool::new(false));
    let joiner = {
        let (base, stop, dir) = (base.clone(), Arc::clone(&stop), dir.path().to_owned());
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let fan = format!("late-{i}");
                let auth = bearer(&token(&dir, &fan));
                match try_request(
                    "POST",
                    &format!("{base}/v1/events/demo/queue"),
                    None,
                    &[(auth.0, auth.1.as_str())],
                ) {
                    Ok(r) if r.status == 200 => {
                        acked.push((fan, r.body["number"].as_u64().unwrap()))
                    }
                    Ok(r) => panic!("{r:?}"),
                    Err(_) => break,
                }
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // What the early fans were shown just before the kill.
    let before: Vec<(String, Option<u64>)> = early
        .iter()
        .map(|f| standing_at(&base, dir.path(), f).unwrap())
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let late = joiner.join().unwrap();
    assert!(
        late.len() > 5,
        "fans joined before the kill: {}",
        late.len()
    );

    let (mut child, base) = serve(dir.path(), &flags);
    let after = public_room(&base);
    assert_eq!(after["shuffle_seed"], seed, "the shuffle is not redone");
    let admitted_before = before.iter().filter(|(s, _)| s == "admitted").count() as u64;
    assert!(admitted_before >= 5);
    assert!(after["serving"].as_u64().unwrap() >= admitted_before);
    for (f, (state, number)) in early.iter().zip(&before) {
        let (now_state, now_number) = standing_at(&base, dir.path(), f).unwrap();
        assert_eq!(&now_number, number, "{f} keeps its number");
        if state == "admitted" {
            assert_eq!(now_state, "admitted", "{f} keeps its admission");
        }
    }
    for (f, number) in &late {
        let (_, now_number) = standing_at(&base, dir.path(), f).unwrap();
        assert_eq!(now_number, Some(*number), "{f} keeps its number");
    }
    // Admission goes on: everyone who joined is admitted in time.
    let joined = after["joined"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while public_room(&base)["serving"].as_u64().unwrap() < joined {
        assert!(
            Instant::now() < deadline,
            "admission did not go on after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (f, number) in early
        .iter()
        .map(|f| (f, None))
        .chain(late.iter().map(|(f, n)| (f, Some(*n))))
    {
        let (state, n) = standing_at(&base, dir.path(), f).unwrap();
        assert_eq!(state, "admitted", "{f}");
        if number.is_some() {
            assert_eq!(n, number);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// An event document may start its sale behind a waiting room; the room
/// opens with the first sale phase unless it says otherwise, keeps that
/// opening when the phases move, and comes back after a restart.
#[test]
fn an_event_document_starts_behind_a_waiting_room() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let opens = T0_MS + 3_600 * SEC;
    let mut doc = small_event("gig", &[4, 4], 10, 4);
    doc["sale_phases"] = json!([{"name": "General", "opens_at": clock_text(opens)}]);
    doc["waiting_room"] = json!({"enabled": true, "rate_per_sec": 50, "admission_ttl_secs": 600});
    let mut bad = doc.clone();
    bad["id"] = "gig2".into();
    bad["waiting_room"]["rate_per_sec"] = 0.into();
    let r = s.raw(
        "POST",
        "/v1/events",
        Some(bad.to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer test-admin-token"),
        ],
    );
    check_problem(&r, 422, "invalid-request");
    assert_eq!(r.body["field"], "waiting_room.rate_per_sec", "{r:?}");
    create_event(&s.base, &doc);
    let room = s.get("/v1/events/gig/waiting-room").body;
    assert_eq!(room["enabled"], true, "{room}");
    assert_eq!(room["settings"]["opens_at"], clock_text(opens));
    assert_eq!(room["settings"]["rate_per_sec"], 50);

    // Moving the sale does not move the room's opening.
    let r = s.raw(
        "PUT",
        "/v1/events/gig/sale-phases",
        Some(json!({"sale_phases": []}).to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer test-admin-token"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = as_fan(&s, "fan-doc", "POST", "/v1/events/gig/queue", &[]);
    assert_eq!(r.body["state"], "pre-queue", "{r:?}");
    s.stop();

    let s = TestServer::start(dir.path());
    let room = s.get("/v1/events/gig/waiting-room").body;
    assert_eq!(room["settings"]["opens_at"], clock_text(opens), "{room}");
    assert_eq!(room["joined"], 1);
    let r = as_fan(&s, "fan-doc", "GET", "/v1/events/gig/queue/me", &[]);
    assert_eq!(r.body["state"], "pre-queue", "{r:?}");
    s.stop();
}

/// The `standing` events of a waiting-room stream, read as they come.
struct Stream(std::io::BufReader<Box<dyn std::io::Read + Send + Sync>>);

impl Stream {
    fn open(s: &TestServer, fan: &str) -> Result<Stream, Box<Resp>> {
        let token = s.token_for(fan);
        let r = agent()
            .get(&format!("{}/v1/events/demo/queue/me/stream", s.base))
            .set("Authorization", &format!("Bearer {token}"))
            .call();
        match r {
            Ok(r) => {
                assert_eq!(r.content_type(), "text/event-stream");
                Ok(Stream(std::io::BufReader::new(r.into_reader())))
            }
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap();
                Err(Box::new(Resp {
                    status,
                    content_type: "application/problem+json".into(),
                    retry_after: None,
                    allow: None,
                    replayed: false,
                    body: serde_json::from_str(&text).unwrap(),
                    text,
                }))
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// The next standing, or `None` once the stream ended.
    fn next(&mut self) -> Option<Value> {
        use std::io::BufRead;
        let mut event = String::new();
        loop {
            let mut line = String::new();
            if self.0.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            match line.trim_end() {
                "" if !event.is_empty() => break,
                l if l.starts_with("event: ") => assert_eq!(l, "event: standing"),
                l if l.starts_with("data: ") => event = l["data: ".len()..].to_owned(),
                _ => {}
            }
        }
        Some(serde_json::from_str(&event).unwrap())
    }
}

/// A fan waits on one connection: the stream says where it stands as
/// that changes, ends with its admission, and the server keeps no more
/// streams than it is told to.
#[test]
fn a_fan_waits_on_a_stream_until_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.queue_streams_max = 1;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let opens = T0_MS + 10 * SEC;
    let r = put_room(
        &s,
        &json!({"enabled": true, "opens_at": clock_text(opens), "rate_per_sec": 1,
                "admission_ttl_secs": 60}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    check_problem(
        &Stream::open(&s, "sse-0").err().unwrap(),
        404,
        "not-in-queue",
    );
    s.clock.advance_ms(10 * SEC);
    for f in ["sse-0", "sse-1", "sse-2", "sse-3"] {
        assert_eq!(
            as_fan(&s, f, "POST", "/v1/events/demo/queue", &[]).status,
            200
        );
    }
    room_when(&s, |v| v["serving"] == 1);
    let mut stream = Stream::open(&s, "sse-2").unwrap();
    let first = stream.next().unwrap();
    assert_eq!(
        (first["state"].as_str(), first["number"].as_u64()),
        (Some("waiting"), Some(2))
    );
    assert_eq!(first["ahead"], 1, "{first}");
    // One stream at a time here: the next fan is told to poll.
    let r = Stream::open(&s, "sse-1").err().unwrap();
    check_problem(&r, 503, "overloaded");

    s.clock.advance_ms(SEC);
    let next = stream.next().unwrap();
    assert_eq!(
        (next["state"].as_str(), next["ahead"].as_u64()),
        (Some("waiting"), Some(0)),
        "{next}"
    );
    s.clock.advance_ms(SEC);
    let last = stream.next().unwrap();
    assert_eq!(last["state"], "admitted", "{last}");
    assert!(last["admission"].as_str().unwrap().starts_with("BXA1."));
    assert_eq!(stream.next(), None, "the stream ends with the admission");
    // An admitted fan's stream would say nothing new: 204, so a browser's
    // EventSource stops reconnecting.
    let token = s.token_for("sse-1");
    let r = agent()
        .get(&format!("{}/v1/events/demo/queue/me/stream", s.base))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 204);
    // The ended stream's place is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Stream::open(&s, "sse-3") {
            Ok(mut st) => {
                assert_eq!(st.next().unwrap()["state"], "waiting");
                // Its turn ends the stream at the server too.
                s.clock.advance_ms(SEC);
                assert_eq!(st.next().unwrap()["state"], "admitted");
                assert_eq!(st.next(), None);
                break;
            }
            Err(r) => check_problem(&r, 503, "overloaded"),
        }
        assert!(
            Instant::now() < deadline,
            "the stream's place was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.stop();
}
