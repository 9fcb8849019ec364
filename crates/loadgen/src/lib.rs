//! `boxoffice loadgen`: a flash-sale load generator against a running
//! server, in the spirit of pgbench and redis-benchmark.
//!
//! Fans arrive on a schedule (all at once, spread over a ramp, or at a
//! fixed rate), pick a section with a popularity skew (front sections
//! hot), hold the best N seats together or seats they picked from the
//! seat map, then confirm, release or let the hold expire. A timeout,
//! refused connection or 503 is retried with the same `Idempotency-Key`,
//! as a real app would. The report gives throughput, latency percentiles
//! per operation, status counts, how every fan's visit ended, time to sell
//! out, and a consistency check read back from the server (no seat sold
//! twice, sold places equal the bookings' places). One seed, printed,
//! repeats a run.
//!
//! Connections are tasks on one (or `--threads`) thread, each a
//! keep-alive HTTP/1.1 connection running one fan at a time
//! ([`client::Conn`]), so the generator needs little CPU beside the server.

pub mod args;
pub mod client;
pub mod doors;
pub mod queue;
pub mod report;
pub mod stats;
pub mod watchers;

pub use args::{LoadgenArgs, QueueWait};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::body::Bytes;
use hyper::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};

pub use client::{Answer, Conn, Target, TransportError};
pub use report::{
    check_consistency, print_report, section_weights, BookedPlaces, Consistency, Outcomes,
    Percentiles, Report, Samples, Tally,
};

use boxoffice_auth::issuer::LocalIssuer;
use boxoffice_auth::receipt::LocalPayments;

/// Tries of a GET the checks make, while the server answers 503.
const READ_ATTEMPTS_MAX: u32 = 100;
/// Seat-map picks a fan tries (each beaten by a faster fan means a fresh
/// map) before asking for the best available instead.
const PICKS_MAX: usize = 3;
/// Random starting seats a fan tries on one seat map.
const PICK_TRIES_MAX: usize = 16;
/// Connections reading bookings back at the end.
const READBACK_CONNECTIONS_MAX: usize = 16;

fn pick(weights: &[f64], rng: &mut StdRng) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random_range(0.0..total);
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// One section as the generator sees it.
#[derive(Debug, Clone)]
struct SectionInfo {
    id: String,
    seated: bool,
}

/// The run's fixed inputs, shared by every connection.
struct Plan {
    args: LoadgenArgs,
    seed: u64,
    target: Target,
    sections: Vec<SectionInfo>,
    weights: Vec<f64>,
    quantity_max: u32,
    started: Instant,
    /// Time between two fans' arrivals.
    interval: Duration,
    deadline: Option<Instant>,
    hold_path: String,
    /// Each identity's `Bearer <token>`: fan k signs in as k mod len.
    tokens: Vec<Arc<str>>,
    /// Signs each confirm's receipt.
    payments: LocalPayments,
    /// The event's `tickets_per_fan_max`, and most places per hold.
    limit: Option<u32>,
    per_hold_max: u32,
    /// With `--watchers`: when each seat of the watched section was
    /// acknowledged held.
    acks: Option<Arc<watchers::Acks>>,
}

/// What connections share while the run is on.
#[derive(Default)]
struct Live {
    requests: AtomicU64,
    server_errors: AtomicU64,
    next_fan: AtomicUsize,
    arrived: AtomicUsize,
    /// Arrivals stop: sold out (with --until-sold-out) or past the deadline.
    stop: AtomicBool,
    /// Every connection is done.
    done: AtomicBool,
    /// When no place was left to hold (seconds from the start).
    sold_out_at: Mutex<Option<f64>>,
    /// When every place was sold: no hold left either.
    all_sold_at: Mutex<Option<f64>>,
}

/// How a request ended without a usable answer, after every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// 503 every time: the server said "later".
    Shed,
    /// No answer, or a 5xx other than 503.
    Unanswered,
}

/// Runs `boxoffice loadgen`: prints the report, and fails on a double
/// sale, a miscount, a 5xx other than 503 or a fan left unanswered.
pub fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads as usize)
            .enable_all()
            .build()?
    };
    let json = args.json;
    let report = rt.block_on(execute(args))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if let Some(failure) = report.failure() {
        bail!("{failure}");
    }
    Ok(())
}

fn check_args(args: &LoadgenArgs) -> anyhow::Result<()> {
    if args.queue && args.fan_pool > 0 {
        bail!("--queue needs every fan its own identity: a fan's place is its identity's (drop --fan-pool)");
    }
    if args.fans == 0 && args.watchers > 0 && args.duration_secs.is_none() {
        bail!("--fans 0 --watchers N only watches: say for how long with --duration-secs");
    }
    let ratio = |name: &str, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(anyhow::anyhow!("--{name} must be between 0 and 1, not {v}"))
        }
    };
    ratio("confirm-ratio", args.confirm_ratio)?;
    ratio("release-ratio", args.release_ratio)?;
    ratio("explicit-ratio", args.explicit_ratio)?;
    ratio("greedy-ratio", args.greedy_ratio)?;
    ratio("rescan-ratio", args.rescan_ratio)?;
    if args.doors > 0 && args.scanner_token.is_none() {
        bail!("--doors needs --scanner-token: the doors check tickets in with it");
    }
    if args.confirm_ratio + args.release_ratio > 1.0 {
        bail!("--confirm-ratio plus --release-ratio is more than 1");
    }
    if !(args.ramp_secs >= 0.0 && args.ramp_secs.is_finite()) {
        bail!("--ramp-secs must be 0 or more");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be above 0");
    }
    if !(args.skew >= 0.0 && args.skew.is_finite()) {
        bail!("--skew must be 0 or more");
    }
    if args.quantity_max == 0 {
        bail!("--quantity-max must be at least 1");
    }
    Ok(())
}

/// Runs the load and reads the result back; the report, whatever it says.
pub async fn execute(args: LoadgenArgs) -> anyhow::Result<Report> {
    check_args(&args)?;
    let seed = args
        .seed
        .unwrap_or_else(|| rand::rngs::StdRng::from_os_rng().random());
    eprintln!("loadgen: seed {seed} (repeat with --seed {seed})");
    let target = Target::resolve(&args.server).await?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let mut conn = Conn::new(target.clone(), timeout);
    let event_path = format!("/v1/events/{}", args.event);
    let event = get_json(&mut conn, &event_path)
        .await
        .with_context(|| format!("cannot read event {:?} from {}", args.event, args.server))?;
    let sections: Vec<SectionInfo> = event["sections"]
        .as_array()
        .context("the event lists no sections")?
        .iter()
        .filter_map(|s| {
            Some(SectionInfo {
                id: s["id"].as_str()?.to_owned(),
                seated: s["kind"] == "seated",
            })
        })
        .collect();
    if sections.is_empty() {
        bail!("the event has no sections");
    }
    let per_hold_max = event["seats_per_hold_max"].as_u64().unwrap_or(4) as u32;
    let interval = match args.rate {
        Some(rate) => Duration::from_secs_f64(1.0 / rate),
        None if args.fans > 0 => Duration::from_secs_f64(args.ramp_secs / args.fans as f64),
        None => Duration::ZERO,
    };
    let issuer = LocalIssuer::from_file(&args.issuer_key)
        .context("--issuer-key: the server's demo issuer key signs the fans' tokens")?;
    let payments = LocalPayments::from_file(&args.payment_key)
        .context("--payment-key: the server's demo payment secret signs the receipts")?;
    let limit = event["tickets_per_fan_max"].as_u64().map(|n| n as u32);
    let tokens = sign_in_all(&args, &issuer, seed);
    let watched = match args.watchers {
        0 => None,
        _ => Some(watch_section(&args, &sections, &mut conn).await?),
    };
    let watching = match &watched {
        Some((section, acks)) => Some((
            section.clone(),
            watchers::start(
                &target,
                &args.event,
                section,
                args.watchers as usize,
                Arc::clone(acks),
            )
            .await,
        )),
        None => None,
    };

    let started = Instant::now();
    let plan = Arc::new(Plan {
        acks: watched.as_ref().map(|(_, acks)| Arc::clone(acks)),
        tokens,
        payments,
        limit,
        per_hold_max,
        quantity_max: args.quantity_max.min(per_hold_max).max(1),
        weights: section_weights(sections.len(), args.skew),
        sections,
        seed,
        target,
        started,
        interval,
        deadline: args.duration_secs.map(|d| started + Duration::from_secs(d)),
        hold_path: format!("/v1/events/{}/holds", args.event),
        args,
    });
    let live = Arc::new(Live::default());
    let progress = tokio::spawn(progress(
        Arc::clone(&plan),
        Arc::clone(&live),
        event_path.clone(),
    ));
    let mut tally = Tally::default();
    let mut queue_report = None;
    if plan.args.queue {
        let (t, q) = queue::run(Arc::clone(&plan), Arc::clone(&live)).await;
        tally = t;
        queue_report = Some(q);
    } else if plan.args.fans == 0 {
        // Only watching: for the run's duration.
        if let Some(deadline) = plan.deadline {
            tokio::time::sleep_until(deadline.into()).await;
        }
    } else {
        let connections: Vec<_> = (0..plan.args.connections)
            .map(|_| tokio::spawn(connection(Arc::clone(&plan), Arc::clone(&live))))
            .collect();
        for c in connections {
            tally.merge(c.await.context("a connection task failed")?);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    live.done.store(true, Ordering::Relaxed);
    let _ = progress.await;
    let watch = match watching {
        Some((section, (watching, tasks))) => {
            let map = format!("{event_path}/sections/{section}/seats");
            Some(watchers::stop(watching, tasks, &section, &mut conn, &map).await)
        }
        None => None,
    };

    let booked = read_back(&plan, &tally.bookings).await?;
    let ev = get_json(&mut conn, &event_path).await?;
    let sold = ev["sold"].as_u64().unwrap_or(0);
    let consistency = check_consistency(
        &booked,
        sold.saturating_sub(plan.args.sold_before),
        plan.limit.map(u64::from),
        tally.limit_breaches,
    );
    let doors = match (&plan.args.scanner_token, plan.args.doors) {
        (Some(token), n) if n > 0 => Some(
            doors::open(
                &plan.target,
                token,
                booked.iter().flat_map(|b| b.tickets.clone()).collect(),
                n as usize,
                plan.args.rescan_ratio,
                plan.args.retries,
                seed,
            )
            .await,
        ),
        _ => None,
    };
    let requests = live.requests.load(Ordering::Relaxed);
    let sold_out_after_s = *live.sold_out_at.lock().unwrap_or_else(|e| e.into_inner());
    let all_sold_after_s = *live.all_sold_at.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Report {
        seed,
        fans: live.arrived.load(Ordering::Relaxed),
        connections: plan.args.connections,
        elapsed_s: elapsed,
        requests,
        requests_per_s: requests as f64 / elapsed,
        statuses: tally.statuses,
        latency: tally
            .latency
            .iter()
            .map(|(k, v)| (*k, v.percentiles()))
            .collect(),
        holds: tally.holds,
        explicit_holds: tally.explicit_holds,
        confirms: tally.confirms,
        releases: tally.releases,
        expiring: tally.expiring,
        retries: tally.retries,
        outcomes: tally.outcomes,
        sold_out_after_s,
        all_sold_after_s,
        server_errors: live.server_errors.load(Ordering::Relaxed),
        limit_refusals: tally.limit_refusals,
        refusals_without_retry_after: tally.refusals_without_retry_after,
        consistency,
        doors,
        queue: queue_report,
        watch,
    })
}

/// The section `--watchers` stream, and its seat ids for measuring.
async fn watch_section(
    args: &LoadgenArgs,
    sections: &[SectionInfo],
    conn: &mut Conn,
) -> anyhow::Result<(String, Arc<watchers::Acks>)> {
    let section = match &args.watch_section {
        Some(s) => s.clone(),
        None => sections
            .iter()
            .find(|s| s.seated)
            .map(|s| s.id.clone())
            .context("--watchers: the event has no seated section to watch")?,
    };
    let map = get_json(
        conn,
        &format!("/v1/events/{}/sections/{section}/seats", args.event),
    )
    .await
    .with_context(|| format!("--watch-section {section:?}"))?;
    let acks = Arc::new(watchers::Acks::new(&section, &map));
    Ok((section, acks))
}

async fn get_json(conn: &mut Conn, path: &str) -> anyhow::Result<Value> {
    get_json_as(conn, path, "").await
}

/// A GET with `authorization` (none when empty). A `503` is asked again
/// after a pause, as its `Retry-After` invites (the checks after a run
/// read everything, and may meet a server still shedding).
async fn get_json_as(conn: &mut Conn, path: &str, authorization: &str) -> anyhow::Result<Value> {
    let headers = [("authorization", authorization)];
    let headers = if authorization.is_empty() {
        &headers[..0]
    } else {
        &headers[..]
    };
    let mut attempts = 0;
    let a = loop {
        let a = conn
            .request(Method::GET, path, headers, None)
            .await
            .map_err(|e| anyhow::anyhow!("GET {path}: {e:?}"))?;
        attempts += 1;
        if a.status != 503 || attempts >= READ_ATTEMPTS_MAX {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if a.status != 200 {
        bail!("GET {path}: status {}", a.status);
    }
    serde_json::from_slice(&a.body).with_context(|| format!("GET {path}: not JSON"))
}

/// A line four times a second (unless `--json`), the sell-out moment, and
/// the stop of arrivals once sold out (`--until-sold-out`).
async fn progress(plan: Arc<Plan>, live: Arc<Live>, event_path: String) {
    let mut conn = Conn::new(plan.target.clone(), Duration::from_secs(5));
    let quiet = plan.args.json;
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.tick().await;
    while !live.done.load(Ordering::Relaxed) {
        tick.tick().await;
        let ev = get_json(&mut conn, &event_path).await.ok();
        let (free, held, sold) = ev.as_ref().map_or((0, 0, 0), |e| {
            (
                e["free"].as_u64().unwrap_or(0),
                e["held"].as_u64().unwrap_or(0),
                e["sold"].as_u64().unwrap_or(0),
            )
        });
        if ev.is_some() && free == 0 {
            let at = plan.started.elapsed().as_secs_f64();
            let first = |m: &Mutex<Option<f64>>| {
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(at);
            };
            first(&live.sold_out_at);
            if held == 0 {
                first(&live.all_sold_at);
            }
            if plan.args.until_sold_out {
                live.stop.store(true, Ordering::Relaxed);
            }
        }
        let now = live.requests.load(Ordering::Relaxed);
        if !quiet {
            eprint!(
                "\r{:>6.1} s  {:>7} req/s  sold {sold:>7}  held {held:>6}  free {free:>7}  5xx {:>4}   ",
                plan.started.elapsed().as_secs_f64(),
                (now - last) * 4,
                live.server_errors.load(Ordering::Relaxed),
            );
        }
        last = now;
    }
    if !quiet {
        eprintln!();
    }
}

/// One connection: takes the next fan, waits for the fan's arrival, runs
/// the fan's visit, and again, until fans run out or arrivals stop.
async fn connection(plan: Arc<Plan>, live: Arc<Live>) -> Tally {
    let mut conn = Conn::new(
        plan.target.clone(),
        Duration::from_secs(plan.args.timeout_secs.max(1)),
    );
    let mut tally = Tally::default();
    loop {
        if live.stop.load(Ordering::Relaxed) {
            break;
        }
        let k = live.next_fan.fetch_add(1, Ordering::Relaxed);
        if k >= plan.args.fans {
            break;
        }
        let arrive = plan.started + plan.interval.mul_f64(k as f64);
        tokio::time::sleep_until(arrive.into()).await;
        if live.stop.load(Ordering::Relaxed) || plan.deadline.is_some_and(|d| Instant::now() >= d) {
            live.stop.store(true, Ordering::Relaxed);
            break;
        }
        live.arrived.fetch_add(1, Ordering::Relaxed);
        let mut session = Session {
            plan: &plan,
            live: &live,
            conn: &mut conn,
            tally: &mut tally,
            auth: Arc::clone(&plan.tokens[k % plan.tokens.len()]),
            admission: None,
        };
        fan(&mut session, k).await;
    }
    tally
}

/// What a connection works with while it runs a fan.
struct Session<'a> {
    plan: &'a Plan,
    live: &'a Live,
    conn: &'a mut Conn,
    tally: &'a mut Tally,
    /// `Bearer <token>` of the fan being run.
    auth: Arc<str>,
    /// Its waiting room's admission, sent with each request.
    admission: Option<String>,
}

impl Session<'_> {
    /// One request, retried with the same key (and body) after a transport
    /// failure or a 503, with a growing pause between attempts.
    async fn send(
        &mut self,
        op: &'static str,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Bytes>,
    ) -> Result<Answer, Failure> {
        let Session {
            plan,
            live,
            conn,
            tally,
            auth,
            admission,
        } = self;
        let mut failure = Failure::Unanswered;
        for attempt in 0..=plan.args.retries {
            if attempt > 0 {
                tally.retries += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            let mut headers = Vec::with_capacity(3);
            headers.push(("authorization", &**auth));
            if let Some(key) = key {
                headers.push(("idempotency-key", key));
            }
            if let Some(a) = admission {
                headers.push(("boxoffice-admission", a.as_str()));
            }
            let started = Instant::now();
            let r = conn
                .request(method.clone(), path, &headers, body.clone())
                .await;
            live.requests.fetch_add(1, Ordering::Relaxed);
            let answer = match r {
                Ok(a) => a,
                Err(e) => {
                    tally.count(e.kind());
                    failure = Failure::Unanswered;
                    continue;
                }
            };
            tally.count(
                hyper::StatusCode::from_u16(answer.status)
                    .map(|s| s.as_str().to_owned())
                    .as_deref()
                    .unwrap_or("invalid"),
            );
            // "Not now" answers are timed apart: the latency of the
            // answered work is what shedding is for.
            let refused_for_now = matches!(answer.status, 429 | 503);
            if refused_for_now && !answer.retry_after {
                tally.refusals_without_retry_after += 1;
            }
            tally
                .latency
                .entry(if refused_for_now { "refused" } else { op })
                .or_default()
                .push(started.elapsed().as_micros() as u64);
            if answer.status >= 500 {
                if answer.status == 503 {
                    failure = Failure::Shed;
                } else {
                    live.server_errors.fetch_add(1, Ordering::Relaxed);
                    failure = Failure::Unanswered;
                }
                continue;
            }
            return Ok(answer);
        }
        Err(failure)
    }
}

/// The columns of a seat map this generator reads.
#[derive(Deserialize)]
struct SeatMapView {
    ids: Vec<String>,
    states: String,
}

/// `quantity` free seats side by side in one row, from a random start,
/// as a fan picking on the map would; `None` when the tries find none.
fn pick_block(map: &SeatMapView, quantity: usize, rng: &mut StdRng) -> Option<Vec<String>> {
    let states = map.states.as_bytes();
    let n = states.len().min(map.ids.len());
    if n == 0 {
        return None;
    }
    let row = |i: usize| map.ids[i].rsplit_once('/').map(|(r, _)| r);
    for _ in 0..PICK_TRIES_MAX {
        let start = rng.random_range(0..n);
        let first = (start..n).chain(0..start).find(|&i| states[i] == b'f')?;
        let end = first + quantity;
        if end <= n && (first..end).all(|i| states[i] == b'f' && row(i) == row(first)) {
            return Some(map.ids[first..end].to_vec());
        }
    }
    None
}

/// Seconds since the epoch, on this machine's clock.
fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Session<'_> {
    /// Releases hold `id` (its fan's own).
    async fn release(&mut self, id: &str) -> Result<Answer, Failure> {
        let path = format!("/v1/holds/{id}");
        self.send("release", Method::DELETE, &path, None, None)
            .await
    }

    /// A greedy fan, holding `held` places, asks for just enough more to
    /// pass the event's limit, in the same section: the server must
    /// refuse (`fan-limit-reached`). A hold that is granted anyway is a
    /// breach, counted and released.
    async fn try_past_the_limit(&mut self, section: &str, held: u32, key: &str) {
        let Some(limit) = self.plan.limit else {
            return;
        };
        let more = limit.saturating_sub(held) + 1;
        if more > self.plan.per_hold_max {
            return;
        }
        let body = json!({"section": section, "quantity": more}).to_string();
        let path = self.plan.hold_path.clone();
        let key = format!("{key}-greedy");
        let Ok(a) = self
            .send(
                "greedy",
                Method::POST,
                &path,
                Some(&key),
                Some(Bytes::from(body)),
            )
            .await
        else {
            return;
        };
        let refused_at_limit = a.status == 409
            && serde_json::from_slice::<Value>(&a.body)
                .is_ok_and(|p| p["type"] == "urn:boxoffice:problem:fan-limit-reached");
        if refused_at_limit {
            self.tally.limit_refusals += 1;
        } else if a.status == 201 {
            self.tally.limit_breaches += 1;
            let id = serde_json::from_slice::<Value>(&a.body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = self.release(&id).await;
        }
    }

    /// The hold of a fan picking seats on the map: a fresh map for every pick,
    /// a new key for every distinct request. `None`: no pick worked out, ask
    /// for the best available.
    async fn hold_picked(
        &mut self,
        section: &str,
        quantity: u32,
        key: &str,
        rng: &mut StdRng,
    ) -> Option<Result<Answer, Failure>> {
        let map_path = format!(
            "/v1/events/{}/sections/{section}/seats",
            self.plan.args.event
        );
        for attempt in 0..PICKS_MAX {
            let map = match self
                .send("seat_map", Method::GET, &map_path, None, None)
                .await
            {
                Ok(a) if a.status == 200 => serde_json::from_slice::<SeatMapView>(&a.body).ok()?,
                Ok(_) => return None,
                Err(f) => return Some(Err(f)),
            };
            let seats = pick_block(&map, quantity as usize, rng)?;
            let body = json!({"section": section, "seats": seats}).to_string();
            let hold_path = &self.plan.hold_path;
            let r = self
                .send(
                    "hold",
                    Method::POST,
                    hold_path,
                    Some(&format!("{key}-p{attempt}")),
                    Some(Bytes::from(body)),
                )
                .await;
            match r {
                // Someone was faster: look again.
                Ok(a) if a.status == 409 => continue,
                Ok(a) if a.status == 201 => {
                    self.tally.explicit_holds += 1;
                    return Some(Ok(a));
                }
                other => return Some(other),
            }
        }
        None
    }
}

/// `Bearer <token>` of every identity the run's fans sign in as (one per
/// fan, or `--fan-pool` of them), signed in for the length of any run.
/// Minted before the clock starts: signing is the issuer's work, not
/// the fans', and must not slow the load generator down.
fn sign_in_all(args: &LoadgenArgs, issuer: &LocalIssuer, seed: u64) -> Vec<Arc<str>> {
    let now_s = unix_now_s();
    let identities = match args.fan_pool {
        0 => args.fans,
        n => n.min(args.fans),
    };
    let memberships: Vec<String> = (args.memberships.iter())
        .filter(|m| !m.is_empty())
        .cloned()
        .collect();
    (0..identities.max(1))
        .map(|who| {
            let sub = format!("lg-{seed:x}-{who}");
            let token = issuer.mint(&sub, &memberships, now_s, 24 * 3600, None);
            format!("Bearer {token}").into()
        })
        .collect()
}

/// One fan's visit: hold, then confirm, release, or walk away.
async fn fan(s: &mut Session<'_>, k: usize) {
    let plan = s.plan;
    let mut rng = StdRng::seed_from_u64(plan.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let section = &plan.sections[pick(&plan.weights, &mut rng)];
    let quantity = rng.random_range(1..=plan.quantity_max);
    let explicit = section.seated && rng.random::<f64>() < plan.args.explicit_ratio;
    let roll: f64 = rng.random();
    let key = format!("lg-{:x}-{k}", plan.seed);

    let mut hold = None;
    if explicit {
        hold = s.hold_picked(&section.id, quantity, &key, &mut rng).await;
    }
    let hold = match hold {
        Some(h) => h,
        None => {
            let body = json!({"section": section.id, "quantity": quantity}).to_string();
            s.send(
                "hold",
                Method::POST,
                &plan.hold_path,
                Some(&format!("{key}-h")),
                Some(Bytes::from(body)),
            )
            .await
        }
    };
    let hold = match hold {
        Ok(a) if a.status == 201 => a,
        Ok(_) => {
            s.tally.outcomes.refused += 1;
            return;
        }
        Err(Failure::Shed) => {
            s.tally.outcomes.shed += 1;
            return;
        }
        Err(Failure::Unanswered) => {
            s.tally.outcomes.unanswered += 1;
            return;
        }
    };
    s.tally.holds += 1;
    let held: Value = serde_json::from_slice(&hold.body).unwrap_or_default();
    if let Some(acks) = &plan.acks {
        acks.held(&section.id, &held["seats"]);
    }
    let id = held["id"].as_str().unwrap_or_default().to_owned();
    let quantity_held = held["quantity"].as_u64().unwrap_or(0) as u32;
    if rng.random::<f64>() < plan.args.greedy_ratio {
        s.try_past_the_limit(&section.id, quantity_held, &key).await;
    }

    let after = if roll < plan.args.confirm_ratio {
        let reference = format!("{key}-pay");
        let receipt = plan.payments.receipt(
            &id,
            held["total_price"].as_u64().unwrap_or(0),
            held["currency"].as_str().unwrap_or(""),
            &reference,
            unix_now_s(),
            3600,
        );
        let body = json!({"email": format!("fan{k}@example.com"), "receipt": receipt}).to_string();
        let r = s
            .send(
                "confirm",
                Method::POST,
                &format!("/v1/holds/{id}/confirm"),
                Some(&format!("{key}-c")),
                Some(Bytes::from(body)),
            )
            .await;
        if let Ok(a) = &r {
            if a.status == 201 {
                s.tally.confirms += 1;
                s.tally.outcomes.bought += 1;
                if let Some(b) = serde_json::from_slice::<Value>(&a.body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                {
                    s.tally.bookings.push((b, Arc::clone(&s.auth), reference));
                }
                return;
            }
        }
        r
    } else if roll < plan.args.confirm_ratio + plan.args.release_ratio {
        let r = s.release(&id).await;
        if r.as_ref().is_ok_and(|a| a.status == 204) {
            s.tally.releases += 1;
            s.tally.outcomes.released += 1;
            return;
        }
        r
    } else {
        s.tally.expiring += 1;
        s.tally.outcomes.held_only += 1;
        return;
    };
    match after {
        Err(Failure::Shed) => s.tally.outcomes.shed += 1,
        Err(Failure::Unanswered) => s.tally.outcomes.unanswered += 1,
        // Refused (the hold expired, say): the fan keeps nothing.
        Ok(_) => s.tally.outcomes.held_only += 1,
    }
}

/// Reads every booking back, over a few connections at once.
async fn read_back(
    plan: &Plan,
    ids: &[(String, Arc<str>, String)],
) -> anyhow::Result<Vec<BookedPlaces>> {
    let n = READBACK_CONNECTIONS_MAX
        .min(plan.args.connections as usize)
        .max(1);
    let chunk = ids.len().div_ceil(n).max(1);
    let tasks: Vec<_> = ids
        .chunks(chunk)
        .map(|part| {
            let part = part.to_vec();
            let mut conn = Conn::new(plan.target.clone(), Duration::from_secs(30));
            tokio::spawn(async move {
                let mut out = Vec::new();
                for (id, auth, paid_ref) in part {
                    let b = get_json_as(&mut conn, &format!("/v1/bookings/{id}"), &auth)
                        .await
                        .with_context(|| format!("cannot read back booking {id}"))?;
                    if b["status"] == "confirmed" {
                        out.push(BookedPlaces {
                            section: b["section"].as_str().unwrap_or("").to_owned(),
                            seats: b["seats"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|s| s.as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default(),
                            quantity: b["quantity"].as_u64().unwrap_or(0),
                            payment_ref: b["payment_ref"].as_str().unwrap_or("").to_owned(),
                            tickets: b["tickets"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|t| t["token"].as_str().map(str::to_owned))
                                        .collect()
                                })
                                .unwrap_or_default(),
                            fan: auth,
                            paid_ref,
                        });
                    }
                }
                Ok::<_, anyhow::Error>(out)
            })
        })
        .collect();
    let mut booked = Vec::with_capacity(ids.len());
    for t in tasks {
        booked.extend(t.await.context("a read-back task failed")??);
    }
    Ok(booked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_sections_are_hot() {
        let w = section_weights(4, 1.0);
        assert_eq!(w, vec![1.0, 0.5, 1.0 / 3.0, 0.25]);
        assert_eq!(section_weights(3, 0.0), vec![1.0, 1.0, 1.0]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut hits = [0usize; 4];
        for _ in 0..10_000 {
            hits[pick(&w, &mut rng)] += 1;
        }
        assert!(
            hits[0] > hits[1] && hits[1] > hits[2] && hits[2] > hits[3],
            "{hits:?}"
        );
    }

    fn map(rows: &[&str]) -> SeatMapView {
        let mut ids = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            for k in 0..row.len() {
                ids.push(format!("A/{}/{}", r + 1, k + 1));
            }
        }
        SeatMapView {
            ids,
            states: rows.concat(),
        }
    }

    #[test]
    fn a_picked_block_is_free_adjacent_and_in_one_row() {
        let mut rng = StdRng::seed_from_u64(3);
        // The only block of 3 is the end of row 2; row 1's last two free
        // seats continue into row 2's first, which is not adjacent.
        let m = map(&["sssff", "fssfff"]);
        for _ in 0..50 {
            if let Some(b) = pick_block(&m, 3, &mut rng) {
                assert_eq!(b, vec!["A/2/4", "A/2/5", "A/2/6"]);
            }
        }
        assert_eq!(pick_block(&map(&["sshs", "hsss"]), 1, &mut rng), None);
        let one = pick_block(&map(&["ssfs"]), 1, &mut rng);
        assert_eq!(one, Some(vec!["A/1/3".to_owned()]));
    }

    fn args() -> LoadgenArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: LoadgenArgs,
        }
        Cli::parse_from(["loadgen"]).a
    }

    #[test]
    fn bad_ratios_and_rates_are_refused_by_name() {
        let mut a = args();
        assert!(check_args(&a).is_ok());
        a.confirm_ratio = 0.9;
        a.release_ratio = 0.2;
        assert_eq!(
            check_args(&a).unwrap_err().to_string(),
            "--confirm-ratio plus --release-ratio is more than 1"
        );
        let mut a = args();
        a.explicit_ratio = 1.5;
        assert_eq!(
            check_args(&a).unwrap_err().to_string(),
            "--explicit-ratio must be between 0 and 1, not 1.5"
        );
        let mut a = args();
        a.rate = Some(0.0);
        assert_eq!(
            check_args(&a).unwrap_err().to_string(),
            "--rate must be above 0"
        );
        let mut a = args();
        a.doors = 4;
        assert_eq!(
            check_args(&a).unwrap_err().to_string(),
            "--doors needs --scanner-token: the doors check tickets in with it"
        );
        a.scanner_token = Some("scanner-token-123".into());
        assert!(check_args(&a).is_ok());
        a.rescan_ratio = -0.1;
        assert_eq!(
            check_args(&a).unwrap_err().to_string(),
            "--rescan-ratio must be between 0 and 1, not -0.1"
        );
    }
}
