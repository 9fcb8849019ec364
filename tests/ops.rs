//! Operations: `/metrics` parses as Prometheus text and moves with
//! traffic; every answer carries a request id.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::json;

/// Parses the Prometheus text format strictly enough to catch a broken
/// exposition: every sample line is `name{labels} value`, every metric has
/// its `# TYPE`. Returns sample → value.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "{line}"
        );
        let base = name
            .strip_suffix("_bucket")
            .or(name.strip_suffix("_sum"))
            .or(name.strip_suffix("_count"))
            .filter(|b| typed.contains(*b))
            .unwrap_or(name);
        assert!(typed.contains(base), "no # TYPE for {name}");
        if key.contains('{') {
            assert!(key.ends_with('}'), "{line}");
        }
        samples.insert(key.to_owned(), value);
    }
    samples
}

fn scrape(s: &TestServer) -> HashMap<String, f64> {
    let r = request("GET", &format!("{}/metrics", s.metrics_base), None, &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    parse(&r.text)
}

fn at(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// The metrics are the scraper's: the fans' listener does not have them
/// (they count refusals, queues and fans), and the metrics listener has
/// nothing else.
#[test]
fn metrics_are_on_their_own_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    check_problem(&s.unsigned("GET", "/metrics", None, &[]), 404, "not-found");
    let on = |path: &str| request("GET", &format!("{}{path}", s.metrics_base), None, &[]);
    assert_eq!(on("/metrics").status, 200);
    for path in ["/v1/events", "/healthz", "/v1/demo"] {
        check_problem(&on(path), 404, "not-found");
    }
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let before = scrape(&s);
    let holds = r#"boxoffice_changes_total{event="demo",kind="hold",section="A"}"#;
    let confirms = r#"boxoffice_changes_total{event="demo",kind="confirm",section="A"}"#;
    let held = r#"boxoffice_seats{event="demo",section="A",state="held"}"#;
    let sold = r#"boxoffice_seats{event="demo",section="A",state="sold"}"#;
    let created = r#"boxoffice_http_requests_total{method="POST",route="/v1/events/{event}/holds",status="201"}"#;
    let conflict = r#"boxoffice_http_requests_total{method="POST",route="/v1/events/{event}/holds",status="409"}"#;
    assert_eq!(at(&before, held), 0.0);

    let h = s.hold("A", &["A/1/1", "A/1/2"]);
    s.hold("A", &["A/1/3"]);
    let r = s.post(
        "/v1/events/demo/holds",
        &json!({"section": "A", "seats": ["A/1/3"]}),
    );
    assert_eq!(r.status, 409);
    let c = s.post(
        &format!("/v1/holds/{}/confirm", h["id"].as_str().unwrap()),
        &common::pay(&s.data_dir, &h, "m@example.com"),
    );
    assert_eq!(c.status, 201);

    let after = scrape(&s);
    assert_eq!(at(&after, holds) - at(&before, holds), 2.0);
    assert_eq!(at(&after, confirms) - at(&before, confirms), 1.0);
    assert_eq!(at(&after, held), 1.0);
    assert_eq!(at(&after, sold), 2.0);
    assert_eq!(at(&after, created) - at(&before, created), 2.0);
    assert_eq!(at(&after, conflict) - at(&before, conflict), 1.0);
    assert!(
        at(&after, "boxoffice_journal_records_total")
            - at(&before, "boxoffice_journal_records_total")
            >= 3.0
    );
    assert!(at(&after, "boxoffice_journal_flush_seconds_count") >= 1.0);
    // The email reaches the mailer after the confirm's answer (nothing
    // waits for the mailer): give it a moment.
    let queued = r#"boxoffice_mail_total{event="queued"}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while at(&scrape(&s), queued) < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the email never reached the mailer"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(at(&after, "process_resident_memory_bytes") > 0.0);
    let latency = r#"boxoffice_http_request_seconds_count{route="/v1/events/{event}/holds"}"#;
    assert_eq!(at(&after, latency) - at(&before, latency), 3.0);
    // Ids never become labels: one route for every hold.
    assert!(after.keys().all(|k| !k.contains(h["id"].as_str().unwrap())));
}

#[test]
fn every_answer_carries_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let id_of = |headers: &[(&str, &str)]| {
        let mut req = agent().get(&format!("{}/v1/events", s.base));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = req.call().unwrap();
        resp.header("x-request-id").unwrap().to_owned()
    };
    assert_eq!(id_of(&[("X-Request-Id", "abc-123.x:y")]), "abc-123.x:y");
    let fresh = id_of(&[]);
    assert_eq!(fresh.len(), 16);
    assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()), "{fresh}");
    assert_ne!(fresh, id_of(&[]));
    // Odd or overlong ids are replaced, not echoed.
    let replaced = id_of(&[("X-Request-Id", "<script>")]);
    assert_eq!(replaced.len(), 16);
    let replaced = id_of(&[("X-Request-Id", &"a".repeat(200))]);
    assert_eq!(replaced.len(), 16);
    // Errors carry one too.
    let resp = agent().get(&format!("{}/v1/nothing", s.base)).call();
    let Err(ureq::Error::Status(404, resp)) = resp else {
        panic!("expected 404")
    };
    assert!(resp.header("x-request-id").is_some());
}

/// SIGTERM under load: `/readyz` turns 503 first; every request is either
/// answered normally or refused without effect; the process exits 0;
/// exactly the acknowledged holds are there after a restart.
#[test]
fn sigterm_under_load_finishes_what_it_accepted() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        spawn_listening(
            common::boxoffice()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(["--shutdown-delay-ms", "400", "--hold-ttl-secs", "3600"])
                .arg("--data-dir")
                .arg(dir)
                .env("RUST_LOG", "warn"),
        )
    };
    let (mut child, base) = start(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (base, stop) = (base.clone(), Arc::clone(&stop));
            let dir = dir.path().to_owned();
            std::thread::spawn(move || {
                // A fresh connection per request: each is either accepted
                // and answered, or refused.
                let agent = ureq::AgentBuilder::new()
                    .max_idle_connections(0)
                    .timeout(std::time::Duration::from_secs(30))
                    .build();
                let section = ["A", "B", "C", "D", "E", "F"][c];
                let mut acked = Vec::new();
                let mut refused = 0;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A fan per hold: each holds within any per-fan limit.
                    n += 1;
                    let token = common::token(&dir, &format!("sigterm-{c}-{n}"));
                    let r = agent
                        .post(&format!("{base}/v1/events/demo/holds"))
                        .set("Authorization", &format!("Bearer {token}"))
                        .send_json(json!({"section": section, "quantity": 1}));
                    match r {
                        Ok(resp) => {
                            assert_eq!(resp.status(), 201);
                            let v: serde_json::Value = resp.into_json().unwrap();
                            acked.push((v["id"].as_str().unwrap().to_owned(), token));
                        }
                        // A request that reached a connection accepted
                        // just before the stop began: refused, unchanged.
                        Err(ureq::Error::Status(503, resp)) => {
                            assert_eq!(resp.header("Retry-After"), Some("1"));
                            let body: serde_json::Value = resp.into_json().unwrap();
                            assert_eq!(body["type"], "urn:boxoffice:problem:shutting-down");
                            refused += 1;
                            if refused > 3 {
                                break;
                            }
                        }
                        Err(ureq::Error::Status(code, resp)) => {
                            panic!("answered {code}: {:?}", resp.into_string())
                        }
                        Err(ureq::Error::Transport(t)) => {
                            // Refused at connect, or closed unread: a
                            // connection still in the kernel's backlog
                            // when the listener closes was never accepted
                            // by the server (the count check after the
                            // restart proves none had an effect).
                            assert!(
                                matches!(
                                    t.kind(),
                                    ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io
                                ),
                                "{t}"
                            );
                            refused += 1;
                            if refused > 3 {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let ready = request("GET", &format!("{base}/readyz"), None, &[]);
    assert_eq!(
        (ready.status, ready.text.as_str()),
        (503, "shutting down\n")
    );
    let status = child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<(String, String)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        acked.len() > 20,
        "the clients barely worked: {}",
        acked.len()
    );

    let (mut child, base) = start(dir.path());
    for (id, token) in &acked {
        let auth = format!("Bearer {token}");
        let r = request(
            "GET",
            &format!("{base}/v1/holds/{id}"),
            None,
            &[("Authorization", &auth)],
        );
        assert_eq!(r.status, 200, "{id} lost: {r:?}");
    }
    // Nothing that was not acknowledged took effect.
    let ev = request("GET", &format!("{base}/v1/events/demo"), None, &[]);
    assert_eq!(ev.body["held"].as_u64(), Some(acked.len() as u64), "{ev:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Precedence through the real binary: a flag beats its environment
/// variable, which beats the configuration file, which beats the default.
#[test]
fn configuration_file_environment_and_flags_layer_in_order() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let file = dir.path().join("boxoffice.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:1\"\ndata-dir = {:?}\nmail_enabled = false\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let listening = |cmd: &mut std::process::Command| {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // (The metrics listener's line comes first.)
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .find(|l| !l.starts_with("boxoffice metrics on "));
        child.kill().unwrap();
        child.wait().unwrap();
        line.unwrap_or_default()
    };
    // The environment beats the file's port 1 (which would not bind);
    // the file still gives the data directory.
    let line = listening(
        common::boxoffice()
            .args(["serve", "--config"])
            .arg(&file)
            .env("BOXOFFICE_LISTEN", "127.0.0.1:0"),
    );
    assert!(
        line.starts_with("boxoffice listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(!line.ends_with(":1"), "{line}");
    assert!(data.join("journal").exists());
    // A flag beats the environment.
    let line = listening(
        common::boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .env("BOXOFFICE_LISTEN", "127.0.0.1:1"),
    );
    assert!(line.starts_with("boxoffice listening on"), "{line}");
    assert!(!line.ends_with(":1"), "{line}");
    // A bad value in the file is refused, naming it.
    std::fs::write(&file, "hold_ttl_secs = 5\n").unwrap();
    let out = common::boxoffice()
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--hold-ttl-secs"), "{err}");
}

/// `boxoffice probe` is the container health check.
#[test]
fn probe_succeeds_against_a_live_server_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let probe = |server: &str, path: &str| {
        common::boxoffice()
            .args(["probe", "--server", server, "--path", path])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(probe(&s.base, "/healthz"));
    assert!(probe(&s.base, "/readyz"));
    assert!(!probe(&s.base, "/nothing"));
    let base = s.base.clone();
    s.stop();
    assert!(!probe(&base, "/healthz"));
}

/// A restart (SIGTERM, start again on the same port) under load, with
/// clients that retry with the same Idempotency-Key as a phone app would:
/// no fan request ends in failure, no hold is made twice. Prints the
/// unavailable window (goal: under a second for the demo arena).
#[test]
fn restart_under_load_with_idempotent_retries_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let base = format!("http://{listen}");
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        spawn_listening(
            common::boxoffice()
                .args(["serve", "--listen", &listen, "--hold-ttl-secs", "3600"])
                .arg("--data-dir")
                .arg(dir.path())
                .env("RUST_LOG", "warn"),
        )
        .0
    };
    let mut child = start();
    let stop = Arc::new(AtomicBool::new(false));
    // (first failure, next success) per retried request.
    let outages: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (base, stop, outages) = (base.clone(), Arc::clone(&stop), Arc::clone(&outages));
            let dir = dir.path().to_owned();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .max_idle_connections(0)
                    .timeout(Duration::from_secs(10))
                    .build();
                let mut done: Vec<(String, String)> = Vec::new();
                let section = ["A", "B", "C", "D"][c];
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("fan-{c}-{i}");
                    i += 1;
                    let token = common::token(&dir, &key);
                    let mut failed_at = None;
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let id = loop {
                        let r = agent
                            .post(&format!("{base}/v1/events/demo/holds"))
                            .set("Idempotency-Key", &key)
                            .set("Authorization", &format!("Bearer {token}"))
                            .send_json(json!({"section": section, "quantity": 1}));
                        match r {
                            Ok(resp) => {
                                let v: serde_json::Value = resp.into_json().unwrap();
                                break v["id"].as_str().unwrap().to_owned();
                            }
                            Err(ureq::Error::Status(503 | 409, _))
                            | Err(ureq::Error::Transport(_)) => {
                                // 409: the first attempt is still in flight.
                                failed_at.get_or_insert_with(Instant::now);
                                assert!(Instant::now() < deadline, "{key} never succeeded");
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            Err(ureq::Error::Status(code, resp)) => {
                                panic!("{key}: {code} {}", resp.into_string().unwrap_or_default())
                            }
                        }
                    };
                    if let Some(t) = failed_at {
                        outages.lock().unwrap().push((t, Instant::now()));
                    }
                    done.push((key, id));
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    let mut child = start();
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let done: Vec<(String, String)> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    // Every request got its hold, each key exactly one, each hold one key.
    let ids: std::collections::HashSet<&String> = done.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), done.len(), "a hold answered two keys");
    let ev = request("GET", &format!("{base}/v1/events/demo"), None, &[]);
    assert_eq!(
        ev.body["held"].as_u64(),
        Some(done.len() as u64),
        "duplicate or lost holds"
    );
    let outages = outages.lock().unwrap();
    let window = outages
        .iter()
        .map(|(a, b)| *b - *a)
        .max()
        .unwrap_or_default();
    eprintln!(
        "restart under load: {} holds, {} retried requests, longest unavailable window {:?}",
        done.len(),
        outages.len(),
        window
    );
    assert!(
        window < Duration::from_secs(10),
        "unavailable for {window:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `--log-format json` writes one JSON object a line.
#[test]
fn json_logs_are_one_object_a_line() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_listening(
        common::boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "info,boxoffice=debug")
            .stderr(Stdio::piped()),
    );
    let h = request(
        "POST",
        &format!("{base}/v1/events/demo/holds"),
        Some(json!({"section": "A", "quantity": 1}).to_string()),
        &[
            ("Content-Type", "application/json"),
            ("X-Request-Id", "trace-me-1"),
            (
                "Authorization",
                &format!("Bearer {}", common::token(dir.path(), "fan-1")),
            ),
        ],
    );
    assert_eq!(h.status, 201);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(child.wait().unwrap().success());
    let mut objects = 0;
    for line in stderr.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        objects += 1;
    }
    assert!(objects >= 3, "{stderr}");
    assert!(stderr.contains("\"stopping: not ready"), "{stderr}");
}

/// Any token is a valid HTTP method: a thousand made-up ones must not
/// make a thousand label sets (memory that grows until a restart). They
/// count as one `other` method; the series are the same after them.
#[test]
fn made_up_methods_do_not_grow_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let send = |method: &str| {
        let r = common::request(method, &format!("{}/v1/events", s.base), None, &[]);
        assert_eq!(r.status, 405, "{method}: {r:?}");
    };
    send("FOO0");
    let series = |m: &HashMap<String, f64>| -> std::collections::BTreeSet<String> {
        m.keys().cloned().collect()
    };
    // A scrape counts itself after it renders: scrape once for that.
    scrape(&s);
    let before = scrape(&s);
    for i in 1..1_000 {
        send(&format!("FOO{i}"));
    }
    let after = scrape(&s);
    let (b, a) = (series(&before), series(&after));
    assert_eq!(
        a.symmetric_difference(&b).collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    let key = r#"boxoffice_http_requests_total{method="other",route="/v1/events",status="405"}"#;
    assert_eq!(at(&after, key), 1_000.0);
}

/// The real binary refuses weak settings at start, naming them, before it
/// touches the data directory: a short admin token (from the environment,
/// as deploy/ gives it), a blank one, and a number out of range.
#[test]
fn weak_or_out_of_range_settings_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let start = |flags: &[&str], env: &[(&str, &str)]| {
        let out = common::boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(flags)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?} {env:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = start(&[], &[("BOXOFFICE_ADMIN_TOKEN", "hunter2")]);
    assert!(
        e.contains("--admin-token") && e.contains("at least 16"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the refusal echoes the secret: {e}");
    let e = start(&["--admin-token", "  "], &[]);
    assert!(e.contains("--admin-token") && e.contains("blank"), "{e}");
    let e = start(&["--idempotency-ttl-secs", "18446744073709551615"], &[]);
    assert!(e.contains("--idempotency-ttl-secs"), "{e}");
    let e = start(&[], &[("BOXOFFICE_IDEMPOTENCY_KEYS_MAX", "0")]);
    assert!(e.contains("--idempotency-keys-max"), "{e}");
    assert!(!data.exists(), "a refused start made the data directory");
}
