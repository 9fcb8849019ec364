//! Invariants 2 and 5. The real binary across restarts: a retry after a
//! crash gets the very answer the first request got; a panic anywhere ends the process, and
//! the restart recovers exactly what was acknowledged.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    boxoffice, request, serve, small_event, spawn_listening, try_request, Resp, ADMIN_TOKEN,
};
use serde_json::{json, Value};

/// One keyed request, to send again after a restart.
struct Keyed {
    path: String,
    body: Value,
    key: &'static str,
    /// The admin token, or a fan's token.
    token: String,
}

impl Keyed {
    fn send(&self, base: &str) -> Resp {
        let auth = format!("Bearer {}", self.token);
        let headers = vec![
            ("Content-Type", "application/json"),
            ("Idempotency-Key", self.key),
            ("Authorization", auth.as_str()),
        ];
        request(
            "POST",
            &format!("{base}{}", self.path),
            Some(self.body.to_string()),
            &headers,
        )
    }
}

/// Event creation, a hold, its confirmation and the booking's cancellation,
/// each with an Idempotency-Key: after a SIGKILL (answers rebuilt by
/// replaying the journal) and after a graceful stop (answers loaded from
/// the last snapshot), each retry is answered with the first answer's
/// status and exact bytes, and changes nothing.
#[test]
fn keyed_answers_are_byte_identical_after_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--admin-token", ADMIN_TOKEN, "--hold-ttl-secs", "3600"];
    let (mut child, base) = serve(dir.path(), &flags);
    let fan = common::token(dir.path(), "fan-1");
    let mut sent: Vec<(Keyed, Resp)> = Vec::new();
    let mut first = |k: Keyed| {
        let r = k.send(&base);
        assert!(matches!(r.status, 200 | 201), "{} {r:?}", k.path);
        assert!(!r.replayed);
        sent.push((k, r.clone()));
        r
    };
    first(Keyed {
        path: "/v1/events".into(),
        body: small_event("tour", &[10, 10], 5, 4),
        key: "create-tour",
        token: ADMIN_TOKEN.to_owned(),
    });
    let hold = first(Keyed {
        path: "/v1/events/tour/holds".into(),
        body: json!({"section": "S", "quantity": 2}),
        key: "hold-1",
        token: fan.clone(),
    });
    let booking = first(Keyed {
        path: format!("/v1/holds/{}/confirm", hold.body["id"].as_str().unwrap()),
        body: common::pay(dir.path(), &hold.body, "fan@example.com"),
        key: "confirm-1",
        token: fan.clone(),
    });
    first(Keyed {
        path: format!(
            "/v1/bookings/{}/cancel",
            booking.body["id"].as_str().unwrap()
        ),
        body: json!({}),
        key: "cancel-1",
        token: fan.clone(),
    });
    let event_after = request("GET", &format!("{base}/v1/events/tour"), None, &[]).text;

    // SIGKILL: no last snapshot; the restart replays the journal.
    child.kill().unwrap();
    child.wait().unwrap();
    let (child, base) = serve(dir.path(), &flags);
    for (k, r) in &sent {
        let again = k.send(&base);
        assert!(again.replayed, "{}: {again:?}", k.path);
        assert_eq!(
            (again.status, &again.text),
            (r.status, &r.text),
            "{}",
            k.path
        );
    }

    // A graceful stop writes a last snapshot; the restart loads it.
    stop_gracefully(child);
    assert!(!boxoffice::snapshot::list(dir.path()).unwrap().is_empty());
    let (mut child, base) = serve(dir.path(), &flags);
    for (k, r) in &sent {
        let again = k.send(&base);
        assert!(again.replayed, "{}: {again:?}", k.path);
        assert_eq!(
            (again.status, &again.text),
            (r.status, &r.text),
            "{}",
            k.path
        );
    }
    // The retries changed nothing.
    assert_eq!(
        request("GET", &format!("{base}/v1/events/tour"), None, &[]).text,
        event_after
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Waits for `child` to exit, up to `secs`; kills it and fails otherwise.
fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server was still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop_gracefully(mut child: Child) {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(wait_exit(&mut child, 30).success());
}

/// Starts the server with the `--panic-in` failpoint at `place`, its
/// stderr kept for the test.
fn serve_panicking(dir: &Path, place: &str) -> (Child, String) {
    spawn_listening(
        boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(["--panic-in", place])
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped()),
    )
}

/// The process ended by SIGABRT, and said why on stderr.
fn assert_aborted(child: &mut Child, why: &str) {
    let status = wait_exit(child, 20);
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("panicked") && stderr.contains(why),
        "{stderr}"
    );
}

fn counts(base: &str) -> (u64, u64, u64) {
    let e = request("GET", &format!("{base}/v1/events/demo"), None, &[]).body;
    let n = |k: &str| e[k].as_u64().unwrap();
    (n("free"), n("held"), n("sold"))
}

fn hold(base: &str, token: &str) -> Result<Resp, String> {
    let auth = format!("Bearer {token}");
    try_request(
        "POST",
        &format!("{base}/v1/events/demo/holds"),
        Some(json!({"section": "A", "quantity": 2}).to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
    )
}

/// A panic in a section actor, the journal's flusher or the mailer ends
/// the process at once with SIGABRT (no half-alive server answering 503
/// from a dead actor, no exit 0), and a restart recovers exactly what was
/// acknowledged: the change the section applied but never journaled, and
/// the one the flusher never wrote, are not there; the booking whose
/// email the mailer died sending is there, and its email is sent.
#[test]
fn a_panic_anywhere_aborts_and_a_restart_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // A first start creates the demo event, so that the failpoint runs
    // write nothing before the request that trips them.
    stop_gracefully(serve(dir.path(), &[]).0);

    for (place, why) in [
        ("section", "failpoint: a section panics"),
        ("flusher", "failpoint: the flusher panics"),
    ] {
        let (mut child, base) = serve_panicking(dir.path(), place);
        let answer = hold(&base, &common::token(dir.path(), "fan-1"));
        assert!(answer.is_err(), "{place}: answered {answer:?}");
        assert_aborted(&mut child, why);
        let (child, base) = serve(dir.path(), &[]);
        assert_eq!(counts(&base), (17_500, 0, 0), "{place}");
        stop_gracefully(child);
    }

    let (mut child, base) = serve_panicking(dir.path(), "mailer");
    let token = common::token(dir.path(), "fan-1");
    let held = hold(&base, &token).unwrap();
    assert_eq!(held.status, 201);
    let auth = format!("Bearer {token}");
    let confirmed = try_request(
        "POST",
        &format!(
            "{base}/v1/holds/{}/confirm",
            held.body["id"].as_str().unwrap()
        ),
        Some(common::pay(dir.path(), &held.body, "fan@example.com").to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
    );
    // The answer may or may not get out before the abort; the booking was
    // durable before the mailer ever heard of it.
    if let Ok(r) = &confirmed {
        assert_eq!(r.status, 201, "{r:?}");
    }
    assert_aborted(&mut child, "failpoint: the mailer panics");
    let (child, base) = serve(dir.path(), &[]);
    assert_eq!(counts(&base), (17_498, 0, 2));
    let eml = dir.path().join("mail").join("demo.A.b0.confirmation.eml");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !eml.exists() {
        assert!(Instant::now() < deadline, "no email after the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_gracefully(child);
}

/// Sends `request` on a fresh connection and, `wait` later, resets it
/// (SO_LINGER 0: an RST, not a FIN), as a phone that loses its network
/// does; never reads an answer.
fn send_and_reset(base: &str, request: &[u8], wait: Duration) {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let addr = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(request).unwrap();
    std::thread::sleep(wait);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a pointer to a linger of the size given.
    let rc = unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(conn);
}

/// An admin whose connection drops while the event is being created
/// (here: while its record waits on a slow disk) cancels nothing half-way:
/// the event, once journaled, is started; its id is not left "being
/// created"; a retry is told it exists; and it is there after a crash.
#[test]
fn event_creation_survives_a_client_hang_up() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base) = serve(
        dir.path(),
        &["--admin-token", ADMIN_TOKEN, "--journal-delay-ms", "400"],
    );
    let body = small_event("gone", &[10], 5, 4).to_string();
    let raw = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // The record is queued within milliseconds and written after 400.
    send_and_reset(&base, raw.as_bytes(), Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request_get(&base, "/v1/events/gone");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 404);
        assert!(Instant::now() < deadline, "the event never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let again = request(
        "POST",
        &format!("{base}/v1/events"),
        Some(body.clone()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {ADMIN_TOKEN}")),
        ],
    );
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(
        again.body["type"], "urn:boxoffice:problem:event-exists",
        "{again:?}"
    );
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    let (child, base) = serve(dir.path(), &[]);
    assert_eq!(request_get(&base, "/v1/events/gone").status, 200);
    stop_gracefully(child);
}

fn request_get(base: &str, path: &str) -> Resp {
    request("GET", &format!("{base}{path}"), None, &[])
}
