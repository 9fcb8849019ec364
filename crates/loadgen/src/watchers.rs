//! Watchers (`--watchers N`): clients that keep one section's seat stream
//! open while the fans buy, as browsers showing the live seat map would.
//!
//! Each watcher reads its stream to the end and reconnects with
//! `Last-Event-ID` when the server ends it (it fell behind, or the server
//! stopped it). A few of them (`PROBES`) also measure the delay from a
//! hold's acknowledgement (as its fan received it) to the stream's frame
//! that shows its seats held; the rest only count what they receive, so
//! the generator's own CPU stays with the fans.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::client::{Conn, Target};
use super::stats::{Percentiles, Samples};

/// Watchers that measure delays; the others only count.
const PROBES: usize = 16;

/// When each seat of the watched section was last acknowledged held to
/// its fan, and which acknowledgement that was (a seat is held again
/// after a release).
pub struct Acks {
    section: String,
    index: HashMap<String, u32>,
    at: Mutex<HashMap<u32, (Instant, u64)>>,
    next: AtomicU64,
}

impl Acks {
    /// The watched section's seat ids, from its seat map.
    pub fn new(section: &str, map: &Value) -> Acks {
        let index = map["ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .filter_map(|(i, id)| Some((id.as_str()?.to_owned(), i as u32)))
                    .collect()
            })
            .unwrap_or_default();
        Acks {
            section: section.to_owned(),
            index,
            at: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    /// A fan was just told its hold of `seats` in `section` is durable.
    pub fn held(&self, section: &str, seats: &Value) {
        if section != self.section {
            return;
        }
        let now = Instant::now();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        for id in seats.as_array().into_iter().flatten() {
            if let Some(&i) = id.as_str().and_then(|id| self.index.get(id)) {
                at.insert(i, (now, n));
            }
        }
    }

    fn acked_at(&self, seat: u32) -> Option<(Instant, u64)> {
        let at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        at.get(&seat).copied()
    }
}

/// What the watchers share while the run is on.
#[derive(Default)]
pub struct Watching {
    open: AtomicUsize,
    open_max: AtomicUsize,
    opened: AtomicU64,
    ended: AtomicU64,
    refused: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
    /// Frames that showed a seat held before its fan heard of the hold.
    ahead_of_answer: AtomicU64,
    delays: Mutex<Samples>,
    /// The section's seat states as the first watcher rebuilt them from
    /// its stream (the whole state, then every change).
    replica: Mutex<Vec<u8>>,
    done: AtomicBool,
}

/// The watchers, in the report.
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    pub watchers: usize,
    pub section: String,
    /// Most streams open at once.
    pub open_max: usize,
    /// Streams opened, reconnections included.
    pub opened: u64,
    /// Streams the server ended while the run was on (fallen behind).
    pub ended_by_server: u64,
    /// Openings refused (503 past `--seat-streams-max`, or no answer).
    pub refused: u64,
    pub frames: u64,
    pub bytes: u64,
    /// From a hold's acknowledgement to the frame showing it, at the
    /// probes.
    pub delay: Percentiles,
    pub ahead_of_answer: u64,
    /// The seat states the first watcher rebuilt from its stream equal the
    /// seat map once the sale is over.
    pub replica_matches_map: bool,
}

/// Opens `n` watchers of `section` of `event` at `target` and waits (up
/// to 30 s) until they are all open; they run until `stop`.
pub async fn start(
    target: &Target,
    event: &str,
    section: &str,
    n: usize,
    acks: Arc<Acks>,
) -> (Arc<Watching>, Vec<tokio::task::JoinHandle<()>>) {
    let live = Arc::new(Watching::default());
    let path: Arc<str> = format!("/v1/events/{event}/sections/{section}/stream").into();
    let tasks = (0..n)
        .map(|i| {
            let (target, path, live, acks) = (
                target.clone(),
                Arc::clone(&path),
                Arc::clone(&live),
                Arc::clone(&acks),
            );
            let probe = (i < PROBES).then_some(acks);
            let replica = i == 0;
            tokio::spawn(
                async move { watch(target, &path, &live, probe.as_deref(), replica).await },
            )
        })
        .collect();
    let began = Instant::now();
    while live.open.load(Ordering::Relaxed) < n && began.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "loadgen: {} of {n} watchers streaming section {section}",
        live.open.load(Ordering::Relaxed)
    );
    (live, tasks)
}

/// Ends the watchers and reports; `map` reads the section's seat map.
pub async fn stop(
    live: Arc<Watching>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    section: &str,
    conn: &mut Conn,
    map_path: &str,
) -> WatchReport {
    // The last changes reach the streams within a publisher round or so.
    let began = Instant::now();
    let mut replica_matches_map = false;
    while !replica_matches_map && began.elapsed() < Duration::from_secs(5) {
        if let Ok(a) = conn.get(map_path).await {
            let map: Value = serde_json::from_slice(&a.body).unwrap_or_default();
            let replica = live
                .replica
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            replica_matches_map = map["states"].as_str().map(str::as_bytes) == Some(&replica[..]);
        }
        if !replica_matches_map {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    live.done.store(true, Ordering::Relaxed);
    let watchers = tasks.len();
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let delay = live
        .delays
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .percentiles();
    WatchReport {
        watchers,
        section: section.to_owned(),
        open_max: live.open_max.load(Ordering::Relaxed),
        opened: live.opened.load(Ordering::Relaxed),
        ended_by_server: live.ended.load(Ordering::Relaxed),
        refused: live.refused.load(Ordering::Relaxed),
        frames: live.frames.load(Ordering::Relaxed),
        bytes: live.bytes.load(Ordering::Relaxed),
        delay,
        ahead_of_answer: live.ahead_of_answer.load(Ordering::Relaxed),
        replica_matches_map,
    }
}

async fn watch(target: Target, path: &str, live: &Watching, probe: Option<&Acks>, replica: bool) {
    use http_body_util::BodyExt;
    let mut conn = Conn::new(target.clone(), Duration::from_secs(30));
    let mut last: Option<String> = None;
    while !live.done.load(Ordering::Relaxed) {
        let header = last.clone();
        let headers: Vec<(&str, &str)> = header
            .as_deref()
            .map(|l| ("last-event-id", l))
            .into_iter()
            .collect();
        let mut body = match conn.open_stream(path, &headers).await {
            Ok((200, body)) => body,
            _ => {
                live.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        live.opened.fetch_add(1, Ordering::Relaxed);
        let open = live.open.fetch_add(1, Ordering::Relaxed) + 1;
        live.open_max.fetch_max(open, Ordering::Relaxed);
        let mut buffer = String::new();
        // The acknowledgement each seat's delay was measured from.
        let mut measured: HashMap<u32, u64> = HashMap::new();
        let passive = probe.is_none() && !replica;
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            live.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            if passive {
                // Counted, not parsed: the crowd's CPU is the fans'. A
                // frame comes whole in one chunk (the server writes each
                // at once).
                let frames = data.windows(2).filter(|w| w == b"\n\n").count();
                live.frames.fetch_add(frames as u64, Ordering::Relaxed);
                if let Some(id) = last_id(&data) {
                    last = Some(id);
                }
                continue;
            }
            buffer.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(id) = event.lines().find_map(|l| l.strip_prefix("id: ")) {
                    live.frames.fetch_add(1, Ordering::Relaxed);
                    last = Some(id.to_owned());
                }
                if let Some(acks) = probe {
                    measure(&event, acks, live, &mut measured);
                }
                if replica {
                    rebuild(&event, live);
                }
            }
        }
        live.open.fetch_sub(1, Ordering::Relaxed);
        if !live.done.load(Ordering::Relaxed) {
            live.ended.fetch_add(1, Ordering::Relaxed);
        }
        // A new connection: the server may have closed this one.
        conn = Conn::new(target.clone(), Duration::from_secs(30));
    }
}

/// The last `id:` in a chunk of a stream.
fn last_id(data: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    let at = text.rfind("id: ")?;
    let line = text[at + 4..].lines().next()?;
    Some(line.to_owned())
}

/// Applies a frame to the replica of the section's seat states.
fn rebuild(event: &str, live: &Watching) {
    let Some(json) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
        return;
    };
    let Ok(data) = serde_json::from_str::<Value>(json) else {
        return;
    };
    let mut replica = live.replica.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(states) = data["states"].as_str() {
        *replica = states.as_bytes().to_vec();
        return;
    }
    for (key, state) in [("free", b'f'), ("held", b'h'), ("sold", b's')] {
        for seat in data[key].as_array().into_iter().flatten() {
            if let Some(s) = seat.as_u64().and_then(|i| replica.get_mut(i as usize)) {
                *s = state;
            }
        }
    }
}

/// For a `changes` frame at a probe: the delay of every seat shown held
/// since its latest acknowledgement. A seat shown held whose latest
/// acknowledgement was measured already (or that has none) is a new hold
/// whose fan has not heard yet: the stream was ahead of the answer.
fn measure(event: &str, acks: &Acks, live: &Watching, measured: &mut HashMap<u32, u64>) {
    if !event.contains("event: changes") {
        return;
    }
    let Some(json) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
        return;
    };
    let Ok(changes) = serde_json::from_str::<Value>(json) else {
        return;
    };
    let now = Instant::now();
    let mut delays = live.delays.lock().unwrap_or_else(|e| e.into_inner());
    for seat in changes["held"].as_array().into_iter().flatten() {
        let Some(seat) = seat.as_u64().map(|s| s as u32) else {
            continue;
        };
        match acks.acked_at(seat) {
            Some((at, n)) if measured.get(&seat) != Some(&n) => {
                measured.insert(seat, n);
                delays.push(now.saturating_duration_since(at).as_micros() as u64);
            }
            _ => {
                live.ahead_of_answer.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
