//! The doors open (`--doors N --scanner-token T`): after the sale, every
//! ticket of every booking read back is scanned once at one of N doors,
//! and a share of them (`--rescan-ratio`, a screenshot passed on) a second
//! time at another door. Each scan is a `POST /v1/tickets/check-in` with
//! its own `Idempotency-Key`, retried as a scanner would after a timeout
//! or a 503. The check: every ticket admitted exactly once, every other
//! scan refused as `already-checked-in`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;

use super::client::{Conn, Target};
use super::stats::{Percentiles, Samples};

const ALREADY_CHECKED_IN: &str = "urn:boxoffice:problem:already-checked-in";

#[derive(Debug, Clone, Serialize)]
pub struct DoorsReport {
    pub doors: usize,
    pub tickets: usize,
    /// Scans in all: every ticket once, plus the rescans.
    pub scans: u64,
    pub elapsed_s: f64,
    /// Tickets admitted per second (first scans answered `200`).
    pub check_ins_per_s: f64,
    /// Latency of every scan's answer, admitted or refused.
    pub latency: Percentiles,
    pub admitted: u64,
    /// Second scans refused as `already-checked-in`, as they must be.
    pub refused_as_used: u64,
    pub retries: u64,
    /// Tickets admitted other than exactly once, and answers that were
    /// neither an admission nor `already-checked-in`.
    pub tickets_not_admitted_once: usize,
    pub wrong_answers: u64,
    pub ok: bool,
}

/// One scan: the ticket's index and token.
type Scan = (usize, Arc<str>);

/// What one door saw.
#[derive(Default)]
struct DoorTally {
    latency: Samples,
    /// (ticket, admitted?) per answered scan.
    answers: Vec<(usize, bool)>,
    wrong: u64,
    retries: u64,
}

/// Scans `tickets` at `doors` doors; `rescan_ratio` of them twice.
pub async fn open(
    target: &Target,
    scanner_token: &str,
    tickets: Vec<String>,
    doors: usize,
    rescan_ratio: f64,
    retries: u32,
    seed: u64,
) -> DoorsReport {
    let doors = doors.max(1);
    let mut rng = StdRng::seed_from_u64(seed ^ 0xd002);
    let mut lists: Vec<Vec<Scan>> = vec![Vec::new(); doors];
    let tokens: Vec<Arc<str>> = tickets.into_iter().map(Arc::from).collect();
    for (i, t) in tokens.iter().enumerate() {
        lists[i % doors].push((i, Arc::clone(t)));
    }
    // A rescan goes to another door, at a random point of its queue.
    for (i, t) in tokens.iter().enumerate() {
        if rng.random_bool(rescan_ratio) {
            let door = (i + 1 + rng.random_range(0..doors.max(2) - 1)) % doors;
            let at = rng.random_range(0..=lists[door].len());
            lists[door].insert(at, (i, Arc::clone(t)));
        }
    }
    let scans: u64 = lists.iter().map(|l| l.len() as u64).sum();
    let auth: Arc<str> = format!("Bearer {scanner_token}").into();
    let started = Instant::now();
    let tasks: Vec<_> = lists
        .into_iter()
        .enumerate()
        .map(|(d, list)| {
            let conn = Conn::new(target.clone(), Duration::from_secs(10));
            tokio::spawn(door(conn, (seed, d), list, Arc::clone(&auth), retries))
        })
        .collect();
    let mut latency = Samples::default();
    let mut admitted_per_ticket = vec![0u32; tokens.len()];
    let (mut refused_as_used, mut wrong, mut retried) = (0, 0, 0);
    for t in tasks {
        let tally = t.await.unwrap_or_default();
        latency.extend(tally.latency);
        for (ticket, admitted) in tally.answers {
            if admitted {
                admitted_per_ticket[ticket] += 1;
            } else {
                refused_as_used += 1;
            }
        }
        wrong += tally.wrong;
        retried += tally.retries;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let admitted: u64 = admitted_per_ticket.iter().map(|&n| u64::from(n)).sum();
    let not_once = admitted_per_ticket.iter().filter(|&&n| n != 1).count();
    DoorsReport {
        doors,
        tickets: tokens.len(),
        scans,
        elapsed_s,
        check_ins_per_s: admitted as f64 / elapsed_s.max(1e-9),
        latency: latency.percentiles(),
        admitted,
        refused_as_used,
        retries: retried,
        tickets_not_admitted_once: not_once,
        wrong_answers: wrong,
        ok: not_once == 0 && wrong == 0,
    }
}

/// One door's scans; `(seed, d)` names the run and the door in the scans'
/// keys, so no two runs or doors share one.
async fn door(
    mut conn: Conn,
    (seed, d): (u64, usize),
    list: Vec<Scan>,
    auth: Arc<str>,
    retries: u32,
) -> DoorTally {
    let mut tally = DoorTally::default();
    for (n, (ticket, token)) in list.into_iter().enumerate() {
        let key = format!("door-{seed:x}-{d}-scan-{n}");
        let body = Bytes::from(serde_json::json!({ "token": &*token }).to_string());
        let headers = [
            ("authorization", &*auth),
            ("content-type", "application/json"),
            ("idempotency-key", key.as_str()),
        ];
        let mut attempt = 0;
        loop {
            let sent = Instant::now();
            let answer = conn
                .request(
                    Method::POST,
                    "/v1/tickets/check-in",
                    &headers,
                    Some(body.clone()),
                )
                .await;
            match answer {
                Ok(a) if a.status == 503 || a.status == 409 && in_use(&a.body) => {}
                Ok(a) => {
                    tally.latency.push(sent.elapsed().as_micros() as u64);
                    match a.status {
                        200 => tally.answers.push((ticket, true)),
                        409 if problem_type(&a.body) == ALREADY_CHECKED_IN => {
                            tally.answers.push((ticket, false))
                        }
                        _ => tally.wrong += 1,
                    }
                    break;
                }
                Err(_) => {}
            }
            attempt += 1;
            if attempt > retries {
                tally.wrong += 1;
                break;
            }
            tally.retries += 1;
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
    }
    tally
}

fn problem_type(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The scan's first try is still being answered (a retry after a
/// timeout came too soon): try again.
fn in_use(body: &[u8]) -> bool {
    problem_type(body) == "urn:boxoffice:problem:idempotency-key-in-use"
}
