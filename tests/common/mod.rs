//! Shared helpers for the black-box tests: a server on a real socket
//! (in-process with a manual clock, or the real binary), and a tiny JSON
//! client on ureq.

#![allow(dead_code)]

pub mod acked;
pub mod smtp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use boxoffice::app::Application;
use boxoffice::clock::{Clock, ManualClock};
use boxoffice::config::ServeArgs;
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// Start of the manual clock: 2026-11-23T00:00:00Z.
pub const T0_MS: u64 = 1_795_392_000_000;

pub struct TestServer {
    pub base: String,
    /// The metrics listener's base URL (`GET /metrics` is only there).
    pub metrics_base: String,
    pub clock: Arc<ManualClock>,
    pub data_dir: PathBuf,
    /// The default fan's token (`fan-1`, a fanclub member): sent with
    /// every request that does not carry its own `Authorization`.
    pub token: String,
    handle: boxoffice::http::server::StopHandle,
    thread: Option<JoinHandle<()>>,
}

/// How long test tokens are valid: longer than any clock jump of a test.
pub const TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;

/// A token for fan `sub` (with `memberships`), signed by the demo issuer
/// of `data_dir` (made if the server has not made it yet), issued at
/// `now_ms`.
pub fn token_at(data_dir: &Path, sub: &str, memberships: &[&str], now_ms: u64) -> String {
    let issuer = boxoffice::auth::issuer::LocalIssuer::load_or_create(data_dir).unwrap();
    let memberships: Vec<String> = memberships.iter().map(|m| m.to_string()).collect();
    issuer.mint(sub, &memberships, now_ms / 1000, TOKEN_TTL_SECS, None)
}

/// A token for fan `sub` on the real clock, for the real binary.
pub fn token(data_dir: &Path, sub: &str) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    token_at(data_dir, sub, &["fanclub"], now_ms)
}

/// A payment reference no other receipt of this test process has.
pub fn fresh_ref() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("pay-{}-{n}", std::process::id())
}

/// A receipt of the demo payment secret of `data_dir` for `hold` (its
/// answer: `id`, `total_price`, `currency`), with reference `reference`,
/// valid for a year from the later of now and `T0_MS` (the manual
/// clock's start).
pub fn receipt(data_dir: &Path, hold: &Value, reference: &str) -> String {
    let payments = boxoffice::auth::receipt::LocalPayments::load_or_create(data_dir).unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .max(T0_MS / 1000);
    payments.receipt(
        hold["id"].as_str().expect("a hold's id"),
        hold["total_price"].as_u64().expect("a hold's total_price"),
        hold["currency"].as_str().expect("a hold's currency"),
        reference,
        now_s,
        365 * 24 * 3600,
    )
}

/// The body of a confirm of `hold` (its answer) for `email`, paid with a
/// good receipt of a fresh reference.
pub fn pay(data_dir: &Path, hold: &Value, email: &str) -> Value {
    serde_json::json!({"email": email, "receipt": receipt(data_dir, hold, &fresh_ref())})
}

/// `Authorization: Bearer <token>`, as a header pair.
pub fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

pub fn args(data_dir: &Path) -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        data_dir: data_dir.to_owned(),
        admin_token: Some(ADMIN_TOKEN.into()),
        workers: 2,
        arbiters: 2,
        sweep_interval_ms: 50,
        // The default fan holds all over the demo in most tests; the fan
        // limit has tests of its own.
        demo_tickets_per_fan_max: 0,
        // Likewise, it holds faster than a fan may: the rate limit too.
        fan_holds_per_sec: 0,
        ..ServeArgs::default()
    }
}

impl TestServer {
    pub fn start(data_dir: &Path) -> TestServer {
        Self::start_with(args(data_dir), Arc::new(ManualClock::new(T0_MS)))
    }

    pub fn start_with(args: ServeArgs, clock: Arc<ManualClock>) -> TestServer {
        let (tx, rx) = std::sync::mpsc::channel();
        let data_dir = args.data_dir.clone();
        let c = Arc::clone(&clock);
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = match Application::build(args, c).await {
                    Ok(app) => app,
                    Err(e) => {
                        tx.send(Err(format!("{e:#}"))).unwrap();
                        return;
                    }
                };
                tx.send(Ok((app.port(), app.metrics_port(), app.handle())))
                    .unwrap();
                app.run_until_stopped().await.unwrap();
            })
        });
        let (port, metrics_port, handle) = rx.recv().unwrap().expect("server starts");
        let token = token_at(&data_dir, "fan-1", &["fanclub"], clock.now_ms());
        TestServer {
            base: format!("http://127.0.0.1:{port}"),
            metrics_base: format!("http://127.0.0.1:{metrics_port}"),
            clock,
            data_dir,
            token,
            handle,
            thread: Some(thread),
        }
    }

    /// A token for another fan of this server.
    pub fn token_for(&self, sub: &str) -> String {
        token_at(&self.data_dir, sub, &["fanclub"], self.clock.now_ms())
    }

    /// `headers`, with the default fan's token unless they carry one.
    fn signed(&self, headers: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            out.push(("Authorization".into(), format!("Bearer {}", self.token)));
        }
        out
    }

    /// A request as given, signed in as the default fan unless `headers`
    /// carry their own `Authorization`.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let headers = self.signed(headers);
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        request(method, &format!("{}{path}", self.base), body, &refs)
    }

    /// Stops the server gracefully and waits until it has let go of the
    /// data directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let h = self.handle.clone();
            actix_web::rt::System::new().block_on(h.stop());
            t.join().unwrap();
        }
    }

    /// The Prometheus text of `GET /metrics`, from the metrics listener.
    pub fn metrics(&self) -> String {
        let r = request("GET", &format!("{}/metrics", self.metrics_base), None, &[]);
        assert_eq!(r.status, 200, "{r:?}");
        r.text
    }

    pub fn get(&self, path: &str) -> Resp {
        self.raw("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_with(path, body, &[])
    }

    pub fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        self.raw("POST", path, Some(body.to_string()), &h)
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.raw("DELETE", path, None, &[])
    }

    /// A request exactly as given: no token.
    pub fn unsigned(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Resp {
        request(method, &format!("{}{path}", self.base), body, headers)
    }

    /// The body of a confirm of the default fan's hold `hold_id`, paid
    /// with a good receipt (the hold is read back for its total).
    pub fn pay(&self, hold_id: &str, email: &str) -> Value {
        let hold = self.get(&format!("/v1/holds/{hold_id}"));
        assert_eq!(hold.status, 200, "{hold:?}");
        pay(&self.data_dir, &hold.body, email)
    }

    /// Holds `seats` in a section of the demo event; panics unless 201.
    pub fn hold(&self, section: &str, seats: &[&str]) -> Value {
        let r = self.post(
            "/v1/events/demo/holds",
            &serde_json::json!({"section": section, "seats": seats}),
        );
        assert_eq!(r.status, 201, "{r:?}");
        r.body
    }

    /// The seat map's state string of a section of the demo event.
    pub fn states(&self, section: &str) -> String {
        let r = self.get(&format!("/v1/events/demo/sections/{section}/seats"));
        assert_eq!(r.status, 200);
        r.body["states"].as_str().unwrap().to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub allow: Option<String>,
    pub replayed: bool,
    pub body: Value,
    pub text: String,
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .max_idle_connections_per_host(64)
        .build()
}

thread_local! {
    static AGENT: ureq::Agent = agent();
}

pub fn request(method: &str, url: &str, body: Option<String>, headers: &[(&str, &str)]) -> Resp {
    try_request(method, url, body, headers).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Like `request`, but a transport failure (refused, reset) is an `Err`.
pub fn try_request(
    method: &str,
    url: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Result<Resp, String> {
    let mut req = AGENT.with(|a| a.request(method, url));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_string(&b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let content_type = resp.header("content-type").unwrap_or("").to_owned();
    let retry_after = resp.header("retry-after").map(str::to_owned);
    let allow = resp.header("allow").map(str::to_owned);
    let replayed = resp.header("idempotent-replayed") == Some("true");
    let text = resp.into_string().map_err(|e| e.to_string())?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        content_type,
        retry_after,
        allow,
        replayed,
        body,
        text,
    })
}

/// A small event for tests: section `S` with rows of the given sizes, and
/// a standing section `F` of `standing` places.
pub fn small_event(id: &str, rows: &[u32], standing: u32, max: u32) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, n)| serde_json::json!({"label": (i + 1).to_string(), "seats": n, "x": 0.0, "y": i as f32}))
        .collect();
    serde_json::json!({
        "format": "boxoffice.event/1", "id": id, "name": "Small hall", "starts_at": "2026-12-24T10:00:00Z",
        "currency": "KRW", "hold_ttl_secs": 60, "seats_per_hold_max": max,
        "categories": [{"id": "R", "name": "R seat", "price": 1000}, {"id": "GA", "name": "Standing", "price": 500}],
        "venue": {"name": "Small", "sections": [
            {"id": "S", "name": "Seats", "category": "R", "rows": rows},
            {"id": "F", "name": "Floor", "category": "GA", "standing": {"capacity": standing}}
        ]}
    })
}

/// Creates `event` (a `boxoffice.event/1` document) on the server at
/// `base` with the admin token; it must answer 201.
pub fn create_event(base: &str, event: &Value) {
    let r = request(
        "POST",
        &format!("{base}/v1/events"),
        Some(event.to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {ADMIN_TOKEN}")),
        ],
    );
    assert_eq!(r.status, 201, "{r:?}");
}

/// Asserts an RFC 9457 answer with the given status and problem kind.
#[track_caller]
pub fn check_problem(r: &Resp, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.content_type, "application/problem+json", "{r:?}");
    assert_eq!(
        r.body["type"],
        format!("urn:boxoffice:problem:{kind}"),
        "{r:?}"
    );
    assert_eq!(r.body["status"], status);
    assert!(r.body["title"].is_string() && r.body["detail"].is_string());
}

pub fn admin() -> [(&'static str, &'static str); 1] {
    [("Authorization", "Bearer test-admin-token")]
}

/// The real binary, in a clean environment: no `BOXOFFICE_*` variable of
/// whoever runs the tests reaches it. It is killed when the test that
/// started it ends, however it ends: a failed test must not leave a
/// server behind (cargo would wait on its output for ever).
pub fn boxoffice() -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boxoffice"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BOXOFFICE_") {
            cmd.env_remove(name);
        }
    }
    // Tests run servers side by side: the metrics listener's default
    // port would let only one start (a flag still wins).
    cmd.env("BOXOFFICE_METRICS_LISTEN", "127.0.0.1:0");
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            // Sent when the thread that spawned the child (the test) ends.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// `boxoffice serve` on a free port of 127.0.0.1 over `data_dir`, with
/// `extra` flags, quiet but for warnings; returns once it listens.
pub fn serve(data_dir: &Path, extra: &[&str]) -> (Child, String) {
    spawn_listening(
        boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn"),
    )
}

/// The metrics listener of each server `spawn_listening` started, by the
/// base URL of its API.
static METRICS_OF: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// The Prometheus text of the server `spawn_listening` started at `base`.
pub fn metrics_of(base: &str) -> String {
    let metrics = METRICS_OF
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(b, _)| b == base)
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("no metrics listener known for {base}"));
    let r = request("GET", &format!("{metrics}/metrics"), None, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    r.text
}

/// Spawns `cmd` (the real binary, `serve ...`) with stdout piped, waits
/// for its "listening" line, and returns the child and its base URL (its
/// metrics listener's, from the line before, for `metrics_of`).
pub fn spawn_listening(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the boxoffice binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut metrics = None;
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("boxoffice metrics on ") {
                    metrics = Some(url.to_owned());
                }
                if let Some(url) = line.strip_prefix("boxoffice listening on ") {
                    if let Some(m) = metrics {
                        METRICS_OF.lock().unwrap().push((url.to_owned(), m));
                    }
                    return (child, url.to_owned());
                }
            }
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!("the server exited before listening: {other:?}, {status:?}")
            }
        }
    }
}

/// The seed of a randomized test: the variable `var` replays a run, else a
/// fresh one. Printed either way, so any failure can be replayed.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{var}={seed}");
    seed
}

/// A small seeded generator (splitmix64): the same seed, the same run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What the QR code in a PNG (as the server draws them) encodes.
pub fn qr_token(png_bytes: &[u8]) -> String {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}
