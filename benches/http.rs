//! HTTP end to end: the real server (`Application`, as `boxoffice serve`
//! builds it) on a loopback socket, driven by the load generator's client
//! in the same process over 64 keep-alive connections. Measures durable
//! holds per second (best available, one seat, rotating over 20 sections
//! of a 1,000,000-seat event), event reads per second, and seat-map reads
//! per second (section A of the demo arena, 720 seats, from its published
//! view).
//!
//!     cargo bench --bench http
//!     cargo bench --bench http -- --warm-up-time 1 --measurement-time 3   # quick
//!
//! The server and the client share the machine's cores; the load
//! generator's BENCHMARKS.md figures compare against a minimal handler to
//! show where that ceiling is.

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice::app::Application;
use boxoffice::auth::issuer::LocalIssuer;
use boxoffice::clock::SystemClock;
use boxoffice::config::ServeArgs;
use boxoffice::loadgen::{Conn, Target};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hyper::body::Bytes;
use hyper::Method;

const CONNECTIONS: usize = 64;
/// Requests each connection sends per measured round.
const PER_CONNECTION: usize = 16;
const SECTIONS: usize = 20;

struct Server {
    target: Target,
    handle: boxoffice::http::server::StopHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the server on port 0 with a fresh data directory, and creates
/// the bench event through the admin API.
fn start(rt: &tokio::runtime::Runtime) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs {
        listen: "127.0.0.1:0".into(),
        metrics_listen: "127.0.0.1:0".into(),
        data_dir: dir.path().join("data"),
        admin_token: Some("bench-admin-token".into()),
        // One fan makes every hold here: no pace per fan.
        fan_holds_per_sec: 0,
        ..ServeArgs::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(args, Arc::new(SystemClock))
                .await
                .expect("the server starts");
            tx.send((app.port(), app.handle())).unwrap();
            app.run_until_stopped().await.unwrap();
        })
    });
    let (port, handle) = rx.recv().unwrap();
    let target = rt
        .block_on(Target::resolve(&format!("http://127.0.0.1:{port}")))
        .unwrap();
    let event = support::event_json("bench", SECTIONS, 100, 500, 4, 3_600);
    let created = rt.block_on(async {
        Conn::new(target.clone(), Duration::from_secs(30))
            .request(
                Method::POST,
                "/v1/events",
                &[("authorization", "Bearer bench-admin-token")],
                Some(Bytes::from(event)),
            )
            .await
            .unwrap()
    });
    assert_eq!(created.status, 201, "{:?}", created.body);
    // One fan signed in with the demo issuer's token.
    let issuer = LocalIssuer::load_or_create(&dir.path().join("data")).unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = issuer.mint("bench-fan", &[], now_s, 24 * 3600, None);
    AUTH.set(format!("Bearer {token}")).unwrap();
    Server {
        target,
        handle,
        thread: Some(thread),
        _dir: dir,
    }
}

/// `iters` rounds of `CONNECTIONS` connections sending `PER_CONNECTION`
/// requests each; every answer must have status `expect`.
fn rounds(
    rt: &tokio::runtime::Runtime,
    conns: &mut Vec<Conn>,
    iters: u64,
    request: fn(u64) -> (Method, String, Option<Bytes>),
    expect: u16,
) -> Duration {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let tasks: Vec<_> = conns
                .drain(..)
                .map(|mut conn| {
                    tokio::spawn(async move {
                        for _ in 0..PER_CONNECTION {
                            let n = NEXT.fetch_add(1, Ordering::Relaxed);
                            let (method, path, body) = request(n);
                            let auth = AUTH.get().expect("signed in");
                            let a = conn
                                .request(method, &path, &[("authorization", auth)], body)
                                .await
                                .unwrap();
                            assert_eq!(a.status, expect, "{:?}", a.body);
                        }
                        conn
                    })
                })
                .collect();
            for t in tasks {
                conns.push(t.await.unwrap());
            }
        }
        start.elapsed()
    })
}

/// `Bearer <token>` of the bench's fan.
static AUTH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn hold(n: u64) -> (Method, String, Option<Bytes>) {
    let body = format!(r#"{{"section":"S{}","quantity":1}}"#, n % SECTIONS as u64);
    (
        Method::POST,
        "/v1/events/bench/holds".into(),
        Some(Bytes::from(body)),
    )
}

fn read_event(_: u64) -> (Method, String, Option<Bytes>) {
    (Method::GET, "/v1/events/bench".into(), None)
}

fn read_seat_map(_: u64) -> (Method, String, Option<Bytes>) {
    (Method::GET, "/v1/events/demo/sections/A/seats".into(), None)
}

fn http(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = start(&rt);
    let mut conns: Vec<Conn> = (0..CONNECTIONS)
        .map(|_| Conn::new(server.target.clone(), Duration::from_secs(30)))
        .collect();
    let mut g = c.benchmark_group("http");
    g.sample_size(20);
    g.throughput(Throughput::Elements((CONNECTIONS * PER_CONNECTION) as u64));
    g.bench_function(BenchmarkId::new("durable_hold", CONNECTIONS), |b| {
        b.iter_custom(|iters| rounds(&rt, &mut conns, iters, hold, 201))
    });
    g.bench_function(BenchmarkId::new("get_event", CONNECTIONS), |b| {
        b.iter_custom(|iters| rounds(&rt, &mut conns, iters, read_event, 200))
    });
    g.bench_function(BenchmarkId::new("seat_map", CONNECTIONS), |b| {
        b.iter_custom(|iters| rounds(&rt, &mut conns, iters, read_seat_map, 200))
    });
    g.finish();
    drop(conns);
    drop(server);
}

criterion_group!(benches, http);
criterion_main!(benches);
