//! What the mailer costs the allocator, and how fast it sends.
//!
//! Runs the release binary against a real SMTP server on loopback (the
//! tests' sink) in three modes, interleaved over several rounds so that
//! the machine's noise hits them alike:
//! - `off`: `--mail-enabled false` (bookings still queue their emails);
//! - `on`: the mailer sends to a healthy SMTP server;
//! - `stalled`: the SMTP server reads each message and never answers.
//!
//! Each round: fresh data directory, an event of 20 standing sections,
//! `CLIENTS` threads that hold one place and confirm it, for `SECS`
//! seconds. Reports confirms per second and confirm latency (medians over
//! rounds), and for `on` the emails per second the mailer delivered.
//!
//! The SMTP sink runs in this process at nice 10 by default: it stands in
//! for a mail server on another machine, and should take as little CPU as
//! it can from the server under test on a 2-core box.
//!
//! Each booking is of `PLACES` standing places (4 by default): its email
//! carries a ticket, and a QR code, per place.
//!
//!     cargo bench --bench mail [-- ROUNDS SECS CLIENTS MAIL_CONCURRENCY SINK_NICE PLACES]

#[path = "../tests/common/smtp.rs"]
mod smtp;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use smtp::{Fault, SmtpSink};

const TOKEN: &str = "bench-admin-token";
/// Places per booking (and tickets per email).
static PLACES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(4);

struct Server {
    child: Child,
    base: String,
    /// The server's demo issuer: signs each client's fan token.
    issuer: boxoffice::auth::issuer::LocalIssuer,
    /// The server's demo payment secret: signs each confirm's receipt.
    payments: Arc<boxoffice::auth::receipt::LocalPayments>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(sink: &SmtpSink, mail: bool, concurrency: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    // BOXOFFICE_BENCH_BIN: another build (of an earlier commit), to
    // compare in the same run.
    let bin = std::env::var_os("BOXOFFICE_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_boxoffice").into());
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", TOKEN])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--smtp-url", &sink.url()])
        .args(["--mail-concurrency", &concurrency.to_string()])
        .args(["--mail-enabled", if mail { "true" } else { "false" }])
        .args(["--mail-send-timeout-ms", "600000", "--demo-event", "false"])
        // Each client is one fan holding back to back: no per-fan pace.
        .args(["--fan-holds-per-sec", "0"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the release binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("listening line").unwrap();
        if let Some(url) = line.strip_prefix("boxoffice listening on ") {
            break url.to_owned();
        }
    };
    let sections: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("S{i}"), "name": format!("Standing {i}"), "category": "GA", "standing": {"capacity": 100_000}}))
        .collect();
    let event = json!({
        "format": "boxoffice.event/1", "id": "bench", "name": "Bench night",
        "starts_at": "2026-12-24T10:00:00Z", "currency": "KRW", "hold_ttl_secs": 600,
        "seats_per_hold_max": 4,
        "categories": [{"id": "GA", "name": "Standing", "price": 99000}],
        "venue": {"name": "Bench hall", "sections": sections}
    });
    ureq::post(&format!("{base}/v1/events"))
        .set("Authorization", &format!("Bearer {TOKEN}"))
        .send_json(event)
        .expect("the bench event is created");
    let issuer = boxoffice::auth::issuer::LocalIssuer::load_or_create(dir.path()).unwrap();
    let payments =
        Arc::new(boxoffice::auth::receipt::LocalPayments::load_or_create(dir.path()).unwrap());
    Server {
        child,
        base,
        issuer,
        payments,
        _dir: dir,
    }
}

struct Round {
    confirms: usize,
    secs: f64,
    /// Confirm latencies in microseconds, sorted.
    latencies_us: Vec<u64>,
    /// Emails delivered per second, from the first confirm until the
    /// last of them arrived (mode `on` only).
    emails_per_sec: Option<f64>,
    /// Emails delivered while the load ran, and seconds after it until the
    /// last arrived (mode `on` only): the mailer steps aside for a busy
    /// sale, so most go out after the rush.
    during_and_drain: Option<(usize, f64)>,
    /// CPU seconds during the load: the server's, and this process's
    /// (the clients and the SMTP sink).
    cpu: (f64, f64),
}

fn round(sink: &SmtpSink, mode: &str, secs: u64, clients: usize, concurrency: usize) -> Round {
    sink.set_fault(
        if mode == "stalled" {
            Fault::Stall
        } else {
            Fault::None
        },
        None,
    );
    let before = sink.count();
    let server = start(sink, mode != "off", concurrency);
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let server_pid = server.child.id();
    let cpu_before = (
        cpu_secs(&format!("/proc/{server_pid}/stat")),
        cpu_secs("/proc/self/stat"),
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, lat, base) = (Arc::clone(&stop), Arc::clone(&lat), server.base.clone());
            let payments = Arc::clone(&server.payments);
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let auth = format!(
                "Bearer {}",
                server
                    .issuer
                    .mint(&format!("bench-{c}"), &[], now_s, 3600, None)
            );
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let mut mine = Vec::new();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let section = format!("S{}", i % 20);
                    i += clients;
                    let hold: Value = agent
                        .post(&format!("{base}/v1/events/bench/holds"))
                        .set("Authorization", &auth)
                        .send_json(
                            json!({"section": section, "quantity": PLACES.load(Ordering::Relaxed)}),
                        )
                        .expect("hold")
                        .into_json()
                        .unwrap();
                    let id = hold["id"].as_str().unwrap();
                    let receipt = payments.receipt(
                        id,
                        hold["total_price"].as_u64().unwrap(),
                        "KRW",
                        &format!("bench-{c}-{i}"),
                        now_s,
                        3600,
                    );
                    let t = Instant::now();
                    agent
                        .post(&format!("{base}/v1/holds/{id}/confirm"))
                        .set("Authorization", &auth)
                        .send_json(
                            json!({"email": format!("fan{i}@example.com"), "receipt": receipt}),
                        )
                        .expect("confirm");
                    mine.push(t.elapsed().as_micros() as u64);
                }
                lat.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let load_secs = started.elapsed().as_secs_f64();
    let sent_during = sink.count().saturating_sub(before);
    let cpu = (
        cpu_secs(&format!("/proc/{server_pid}/stat")) - cpu_before.0,
        cpu_secs("/proc/self/stat") - cpu_before.1,
    );
    let mut latencies_us = std::mem::take(&mut *lat.lock().unwrap());
    latencies_us.sort_unstable();
    let confirms = latencies_us.len();
    let emails_per_sec = (mode == "on").then(|| {
        let want = before + confirms;
        while sink.count() < want {
            std::thread::sleep(Duration::from_millis(5));
        }
        confirms as f64 / started.elapsed().as_secs_f64()
    });
    let during_and_drain =
        (mode == "on").then(|| (sent_during, started.elapsed().as_secs_f64() - load_secs));
    drop(server);
    sink.set_fault(Fault::None, None); // releases stalled sessions
    Round {
        confirms,
        secs: load_secs,
        latencies_us,
        emails_per_sec,
        during_and_drain,
        cpu,
    }
}

/// CPU seconds (user + system) of the process whose `stat` file is
/// `path`, with 100 clock ticks a second.
fn cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; our own arguments are numbers.
    let nums: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let rounds = *nums.first().unwrap_or(&3) as usize;
    let secs = *nums.get(1).unwrap_or(&5);
    let clients = *nums.get(2).unwrap_or(&32) as usize;
    let concurrency = *nums.get(3).unwrap_or(&32) as usize;
    let sink_nice = *nums.get(4).unwrap_or(&10) as i32;
    let places = *nums.get(5).unwrap_or(&4);
    PLACES.store(places, Ordering::Relaxed);
    let sink = SmtpSink::start_niced(sink_nice);
    let modes = ["off", "on", "stalled"];
    let mut results: Vec<Vec<Round>> = modes.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (m, mode) in modes.iter().enumerate() {
            let res = round(&sink, mode, secs, clients, concurrency);
            eprintln!(
                "round {r} {mode:>7}: {:>7.0} confirms/s, p50 {} us, p99 {} us{}; CPU: server {:.0} us a confirm, clients + sink {:.0} us",
                res.confirms as f64 / res.secs,
                pct(&res.latencies_us, 0.5),
                pct(&res.latencies_us, 0.99),
                match (res.emails_per_sec, res.during_and_drain) {
                    (Some(e), Some((during, drain))) => format!(
                        ", {e:.0} emails/s ({during} during the load, the last {drain:.1} s after it)"
                    ),
                    _ => String::new(),
                },
                res.cpu.0 * 1e6 / res.confirms.max(1) as f64,
                res.cpu.1 * 1e6 / res.confirms.max(1) as f64,
            );
            results[m].push(res);
        }
    }
    println!(
        "\nmail bench: {rounds} rounds x {secs} s, {clients} clients, {places} places a booking, \
         --mail-concurrency {concurrency}, SMTP sink at nice {sink_nice}; medians over rounds"
    );
    println!("| mode | confirms/s | vs off | confirm p50 | confirm p99 | emails/s |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let rate = |rs: &Vec<Round>| median(rs.iter().map(|r| r.confirms as f64 / r.secs).collect());
    let off = rate(&results[0]);
    for (m, mode) in modes.iter().enumerate() {
        let rs = &results[m];
        let r = rate(rs);
        let p50 = median(
            rs.iter()
                .map(|r| pct(&r.latencies_us, 0.5) as f64)
                .collect(),
        );
        let p99 = median(
            rs.iter()
                .map(|r| pct(&r.latencies_us, 0.99) as f64)
                .collect(),
        );
        let emails = rs
            .iter()
            .filter_map(|r| r.emails_per_sec)
            .collect::<Vec<_>>();
        println!(
            "| {mode} | {r:.0} | {:.0}% | {:.2} ms | {:.2} ms | {} |",
            100.0 * r / off,
            p50 / 1000.0,
            p99 / 1000.0,
            if emails.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}", median(emails))
            }
        );
    }
}
