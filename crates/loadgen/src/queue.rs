//! Fans through a waiting room (`boxoffice loadgen --queue`): each fan
//! arrives, joins the event's queue, waits for its turn, asks for its
//! admission, then shops as every fan does, sending the admission with
//! its holds.
//!
//! Waiting costs the server little, as it would with a cache in front:
//! one poller reads the public room (`GET .../waiting-room`) every
//! `--queue-poll-ms` and wakes the fans whose number the serving number
//! passed (and, once the pre-queue is shuffled, the fans who joined
//! before: they learn their number). Only then does a fan ask for its
//! own standing. A fan is a task, not a connection: connections are
//! leased from a pool for each request or shopping visit.
//!
//! The report adds the time each fan spent in the queue, admissions per
//! second, the fans who gave up (`--queue-patience-secs`), and a check
//! that admission followed queue order as fans saw it: no fan may still
//! be told "waiting" after a fan behind it was told "admitted".

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::Method;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{oneshot, Semaphore};

use super::args::QueueWait;
use super::client::Conn;
use super::stats::{Percentiles, Samples, Tally};
use super::{fan, Live, Plan, Session};

/// What a run through the waiting room measured.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    pub joined: usize,
    pub admitted: usize,
    /// Fans who left before their admission (`--queue-patience-secs`),
    /// or whose admission ran out before they used it.
    pub gave_up: usize,
    /// Joins refused or unanswered.
    pub join_failures: usize,
    /// Fans whose admission came on their own stream (`--queue-wait
    /// stream`; the others polled).
    pub admitted_on_streams: usize,
    /// A join's answer, from its first attempt (retries in it, the wait
    /// for one of the generator's connections not).
    pub join_latency: Percentiles,
    /// From a fan's join to the answer that admitted it.
    pub time_in_queue: Percentiles,
    /// Admissions seen per second, from the first to the last.
    pub admitted_per_s: f64,
    /// Fans told "waiting" after a fan behind them was told "admitted",
    /// plus fans who joined after the opening and were numbered behind
    /// a fan who joined after them.
    pub out_of_order: usize,
    pub ok: bool,
}

/// The connections fans lease, each with the tally of what went over it.
struct Pool {
    free: Mutex<Vec<(Conn, Tally)>>,
    permits: Semaphore,
}

struct Lease<'a> {
    pool: &'a Pool,
    slot: Option<(Conn, Tally)>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Pool {
    async fn lease(&self) -> Lease<'_> {
        let permit = self.permits.acquire().await.expect("the pool stays open");
        let slot = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Lease {
            pool: self,
            slot,
            _permit: permit,
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(slot);
        }
    }
}

/// Fans waiting for their turn, woken by the poller.
#[derive(Default)]
struct Turns {
    /// The serving number last read, and whether the pre-queue is
    /// shuffled.
    serving: u64,
    shuffled: bool,
    /// Fans whose number the serving number has not passed yet.
    by_number: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    /// Fans in the pre-queue, until the shuffle.
    unshuffled: Vec<oneshot::Sender<()>>,
}

impl Turns {
    /// A receiver that fires once fan `number` (`None`: in the pre-queue)
    /// may ask for its standing.
    fn wait(&mut self, number: Option<u64>) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        match number {
            None if !self.shuffled => self.unshuffled.push(tx),
            Some(n) if n >= self.serving => self.by_number.entry(n).or_default().push(tx),
            _ => {
                let _ = tx.send(());
            }
        }
        rx
    }

    fn update(&mut self, serving: u64, shuffled: bool) {
        self.serving = self.serving.max(serving);
        if shuffled && !self.shuffled {
            self.shuffled = true;
            for tx in self.unshuffled.drain(..) {
                let _ = tx.send(());
            }
        }
        let later = self.by_number.split_off(&self.serving);
        for tx in std::mem::replace(&mut self.by_number, later)
            .into_values()
            .flatten()
        {
            let _ = tx.send(());
        }
    }
}

/// What one fan saw of the queue.
#[derive(Default)]
struct Seen {
    number: Option<u64>,
    /// When it last asked and was told "waiting" (the request's start).
    waiting_at: Option<Instant>,
    /// When the answer that admitted it came back.
    admitted_at: Option<Instant>,
    joined_at: Option<Instant>,
    /// When its join was sent, and whether the join's answer gave it its
    /// number (it came after the opening).
    join_sent: Option<Instant>,
    numbered_at_join: bool,
    /// Its admission came on its own stream.
    streamed: bool,
    gave_up: bool,
    join_failed: bool,
    join_us: Option<u64>,
}

/// Runs every fan through the queue; the merged tally and the queue's
/// report.
pub(super) async fn run(plan: Arc<Plan>, live: Arc<Live>) -> (Tally, QueueReport) {
    let n = plan.args.connections as usize;
    let timeout = Duration::from_secs(plan.args.timeout_secs.max(1));
    let pool = Arc::new(Pool {
        free: Mutex::new(
            (0..n)
                .map(|_| (Conn::new(plan.target.clone(), timeout), Tally::default()))
                .collect(),
        ),
        permits: Semaphore::new(n),
    });
    let turns = Arc::new(Mutex::new(Turns::default()));
    let poller = tokio::spawn(poll_room(
        Arc::clone(&plan),
        Arc::clone(&live),
        Arc::clone(&turns),
    ));
    let fans: Vec<_> = (0..plan.args.fans)
        .map(|k| {
            tokio::spawn(queued_fan(
                Arc::clone(&plan),
                Arc::clone(&live),
                Arc::clone(&pool),
                Arc::clone(&turns),
                k,
            ))
        })
        .collect();
    let mut seen = Vec::with_capacity(fans.len());
    for f in fans {
        if let Ok(s) = f.await {
            seen.push(s);
        }
    }
    live.done.store(true, Ordering::Relaxed);
    poller.abort();
    let mut tally = Tally::default();
    for (_, t) in pool
        .free
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        tally.merge(t);
    }
    (tally, report(&seen))
}

fn report(seen: &[Seen]) -> QueueReport {
    let mut join_latency = Samples::default();
    let mut in_queue = Samples::default();
    for s in seen {
        if let Some(us) = s.join_us {
            join_latency.push(us);
        }
        if let (Some(j), Some(a)) = (s.joined_at, s.admitted_at) {
            in_queue.push(a.duration_since(j).as_micros() as u64);
        }
    }
    let admitted: Vec<Instant> = seen.iter().filter_map(|s| s.admitted_at).collect();
    let admitted_per_s = match (admitted.iter().min(), admitted.iter().max()) {
        (Some(a), Some(b)) if b > a => admitted.len() as f64 / b.duration_since(*a).as_secs_f64(),
        _ => 0.0,
    };
    // By number: a fan told "waiting" after anyone behind it was admitted.
    let mut by_number: Vec<&Seen> = seen.iter().filter(|s| s.number.is_some()).collect();
    by_number.sort_by_key(|s| s.number);
    let mut out_of_order = 0;
    let mut first_admitted_behind: Option<Instant> = None;
    for s in by_number.iter().rev() {
        if let (Some(w), Some(a)) = (s.waiting_at, first_admitted_behind) {
            if w > a {
                out_of_order += 1;
            }
        }
        if let Some(a) = s.admitted_at {
            first_admitted_behind = Some(first_admitted_behind.map_or(a, |b| b.min(a)));
        }
    }
    // After the opening, first come first served: a fan whose join was
    // answered before another's was sent has the lower number.
    let mut answered_behind: Option<Instant> = None;
    for s in by_number.iter().rev().filter(|s| s.numbered_at_join) {
        if let (Some(sent), Some(behind)) = (s.join_sent, answered_behind) {
            if behind < sent {
                out_of_order += 1;
            }
        }
        if let Some(j) = s.joined_at {
            answered_behind = Some(answered_behind.map_or(j, |b| b.min(j)));
        }
    }
    let join_failures = seen.iter().filter(|s| s.join_failed).count();
    QueueReport {
        joined: seen.iter().filter(|s| s.joined_at.is_some()).count(),
        admitted: admitted.len(),
        gave_up: seen.iter().filter(|s| s.gave_up).count(),
        join_failures,
        admitted_on_streams: seen.iter().filter(|s| s.streamed).count(),
        join_latency: join_latency.percentiles(),
        time_in_queue: in_queue.percentiles(),
        admitted_per_s,
        out_of_order,
        ok: out_of_order == 0 && join_failures == 0,
    }
}

/// Reads the public room every `--queue-poll-ms` and wakes the fans whose
/// turn came.
async fn poll_room(plan: Arc<Plan>, live: Arc<Live>, turns: Arc<Mutex<Turns>>) {
    let mut conn = Conn::new(plan.target.clone(), Duration::from_secs(5));
    let path = format!("/v1/events/{}/waiting-room", plan.args.event);
    let mut every = tokio::time::interval(Duration::from_millis(plan.args.queue_poll_ms));
    while !live.done.load(Ordering::Relaxed) {
        every.tick().await;
        let Ok(answer) = conn.get(&path).await else {
            continue;
        };
        live.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(room) = serde_json::from_slice::<Value>(&answer.body) else {
            continue;
        };
        let serving = room["serving"].as_u64().unwrap_or(0);
        let shuffled = room["shuffle_seed"].is_string();
        turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .update(serving, shuffled);
    }
}

/// One fan: arrive, join, wait for its turn, take its admission, shop.
async fn queued_fan(
    plan: Arc<Plan>,
    live: Arc<Live>,
    pool: Arc<Pool>,
    turns: Arc<Mutex<Turns>>,
    k: usize,
) -> Seen {
    let mut seen = Seen::default();
    let arrive = plan.started + plan.interval.mul_f64(k as f64);
    tokio::time::sleep_until(arrive.into()).await;
    if live.stop.load(Ordering::Relaxed) || plan.deadline.is_some_and(|d| Instant::now() >= d) {
        live.stop.store(true, Ordering::Relaxed);
        return seen;
    }
    live.arrived.fetch_add(1, Ordering::Relaxed);
    let auth = Arc::clone(&plan.tokens[k % plan.tokens.len()]);
    let queue_path = format!("/v1/events/{}/queue", plan.args.event);
    let me_path = format!("{queue_path}/me");

    let Some((joined, sent, took)) =
        ask(&plan, &live, &pool, &auth, Method::POST, &queue_path).await
    else {
        seen.join_failed = true;
        return seen;
    };
    seen.join_us = Some(took.as_micros() as u64);
    seen.join_sent = Some(sent);
    let started = sent;
    seen.joined_at = Some(Instant::now());
    seen.number = joined["number"].as_u64();
    seen.numbered_at_join = seen.number.is_some();
    let patience = Duration::from_secs(plan.args.queue_patience_secs);
    if plan.args.queue_wait == QueueWait::Stream {
        let left = patience.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, wait_on_stream(&plan, &live, &auth, &mut seen)).await {
            Ok(Some(admission)) => return shop(plan, live, pool, auth, admission, k, seen).await,
            // Refused a stream, or it ended: poll as everyone else.
            Ok(None) => {}
            Err(_) => {
                seen.gave_up = true;
                return seen;
            }
        }
    }
    let admission = loop {
        let turn = turns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wait(seen.number);
        let left = patience.saturating_sub(started.elapsed());
        if tokio::time::timeout(left, turn).await.is_err() || live.stop.load(Ordering::Relaxed) {
            seen.gave_up = true;
            return seen;
        }
        let Some((me, asked, _)) = ask(&plan, &live, &pool, &auth, Method::GET, &me_path).await
        else {
            seen.gave_up = true;
            return seen;
        };
        seen.number = me["number"].as_u64().or(seen.number);
        match me["state"].as_str() {
            Some("admitted") => {
                seen.admitted_at = Some(Instant::now());
                break me["admission"].as_str().unwrap_or_default().to_owned();
            }
            Some("waiting") | Some("pre-queue") => {
                seen.waiting_at = Some(asked);
                // Told early by a stale read: look again shortly.
                tokio::time::sleep(Duration::from_millis(plan.args.queue_poll_ms)).await;
            }
            _ => {
                seen.gave_up = true;
                return seen;
            }
        }
    };
    shop(plan, live, pool, auth, admission, k, seen).await
}

/// An admitted fan shops, on a connection of the pool.
async fn shop(
    plan: Arc<Plan>,
    live: Arc<Live>,
    pool: Arc<Pool>,
    auth: Arc<str>,
    admission: String,
    k: usize,
    seen: Seen,
) -> Seen {
    let mut lease = pool.lease().await;
    let (conn, tally) = lease.slot.as_mut().expect("a leased connection");
    let mut session = Session {
        plan: &plan,
        live: &live,
        conn,
        tally,
        auth,
        admission: Some(admission),
    };
    // Boxed: a waiting fan's task stays small until it shops.
    Box::pin(fan(&mut session, k)).await;
    seen
}

/// Waits on the fan's own stream (`GET .../queue/me/stream`, a
/// connection of its own) until it says "admitted": the admission, or
/// `None` when the server keeps no more streams or the stream ended
/// otherwise (the caller polls). A stream's "waiting" is not evidence
/// for the order check: when the server computed it is not known.
async fn wait_on_stream(plan: &Plan, live: &Live, auth: &str, seen: &mut Seen) -> Option<String> {
    use http_body_util::BodyExt;
    let mut conn = Conn::new(
        plan.target.clone(),
        Duration::from_secs(plan.args.timeout_secs.max(1)),
    );
    let path = format!("/v1/events/{}/queue/me/stream", plan.args.event);
    live.requests.fetch_add(1, Ordering::Relaxed);
    let (status, mut body) = conn
        .open_stream(&path, &[("authorization", auth)])
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    let mut buffer = String::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(json) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let Ok(standing) = serde_json::from_str::<Value>(json) else {
                continue;
            };
            seen.number = standing["number"].as_u64().or(seen.number);
            if standing["state"] == "admitted" {
                seen.admitted_at = Some(Instant::now());
                seen.streamed = true;
                return standing["admission"].as_str().map(str::to_owned);
            }
        }
    }
    None
}

/// One request of the queue as a fan: its JSON body if answered 200,
/// when its first attempt was sent and how long it took from there (the
/// wait for a connection of the generator's pool is not the server's,
/// and not in it).
async fn ask(
    plan: &Plan,
    live: &Live,
    pool: &Pool,
    auth: &str,
    method: Method,
    path: &str,
) -> Option<(Value, Instant, Duration)> {
    let mut lease = pool.lease().await;
    let (conn, tally) = lease.slot.as_mut().expect("a leased connection");
    let first = Instant::now();
    for attempt in 0..=plan.args.retries {
        if attempt > 0 {
            tally.retries += 1;
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
        let started = Instant::now();
        let r = conn
            .request(method.clone(), path, &[("authorization", auth)], None)
            .await;
        live.requests.fetch_add(1, Ordering::Relaxed);
        let op = if method == Method::POST {
            "join"
        } else {
            "standing"
        };
        match r {
            Ok(a) => {
                tally.count(a.status.to_string().as_str());
                tally
                    .latency
                    .entry(op)
                    .or_default()
                    .push(started.elapsed().as_micros() as u64);
                match a.status {
                    200 => {
                        return serde_json::from_slice(&a.body)
                            .ok()
                            .map(|v| (v, first, first.elapsed()))
                    }
                    503 => continue,
                    s if s >= 500 => {
                        live.server_errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    _ => return None,
                }
            }
            Err(e) => tally.count(e.kind()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_wake_fans_as_the_serving_number_passes_them() {
        let mut t = Turns::default();
        let mut pre = t.wait(None);
        let mut two = t.wait(Some(2));
        let mut five = t.wait(Some(5));
        t.update(2, false);
        assert!(pre.try_recv().is_err() && two.try_recv().is_err());
        t.update(3, true);
        assert!(pre.try_recv().is_ok() && two.try_recv().is_ok());
        assert!(five.try_recv().is_err());
        t.update(1, true); // a stale read never moves it back
        assert_eq!(t.serving, 3);
        t.update(6, true);
        assert!(five.try_recv().is_ok());
        assert!(t.wait(Some(4)).try_recv().is_ok(), "already passed");
    }

    #[test]
    fn a_fan_told_waiting_after_one_behind_was_admitted_is_out_of_order() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let fan = |number, waiting_at, admitted_at| Seen {
            number: Some(number),
            waiting_at,
            admitted_at,
            joined_at: Some(t0),
            ..Seen::default()
        };
        let fair = [
            fan(0, at(5), at(10)),
            fan(1, at(8), at(20)),
            fan(2, at(15), None),
        ];
        assert_eq!(report(&fair).out_of_order, 0);
        // Fan 0 still waiting at 25 ms, after fan 1's admission at 20 ms.
        let unfair = [fan(0, at(25), at(30)), fan(1, at(8), at(20))];
        let r = report(&unfair);
        assert_eq!((r.out_of_order, r.ok), (1, false));
        assert_eq!(r.admitted, 2);
    }

    #[test]
    fn a_later_joiner_numbered_ahead_is_out_of_order() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let joined = |number, sent, answered| Seen {
            number: Some(number),
            join_sent: sent,
            joined_at: answered,
            numbered_at_join: true,
            ..Seen::default()
        };
        // Joins that overlap may be numbered either way.
        let fair = [joined(0, at(10), at(20)), joined(1, at(5), at(15))];
        assert_eq!(report(&fair).out_of_order, 0);
        // Fan 1 was answered at 6 ms, before fan 0 even asked at 10 ms.
        let unfair = [joined(0, at(10), at(12)), joined(1, at(5), at(6))];
        assert_eq!(report(&unfair).out_of_order, 1);
    }
}
