//! Durable records per second through the journal, a lone store against
//! a leader of three replicas (real sockets on loopback, each replica its
//! own runtime and directory; the followers apply every record), in the
//! same run, alternating. Each writer keeps one record in flight (a hold,
//! then its release, on a seat of its own), as a section's fans do.
//!
//! `cargo bench -p boxoffice-raft --bench replication [-- <seconds> <rounds>]`
//! All replicas share this machine's disk and cores: a figure for the
//! design's costs (a round trip and a follower's fdatasync per commit),
//! not for three machines.

#[path = "../tests/support/mod.rs"]
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use boxoffice_store::journal::{encode, ChangeRecord, Journal, JournalConfig, Record, Store};

fn release(hold: u64) -> Record {
    Record::Section {
        event: "e".into(),
        section: "A".into(),
        change: ChangeRecord::HoldReleased {
            hold,
            at_ms: 1_700_000_000_000,
        },
        idem: None,
    }
}

struct Figures {
    records_per_sec: f64,
    p50_ms: f64,
    per_commit: f64,
    /// CPU of the whole process (every replica, the writers) a record.
    cpu_us: f64,
}

/// User and system CPU this process has used, in seconds (from
/// /proc/self/stat, in clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after
    // the command's closing parenthesis.
    (ticks(11) + ticks(12)) / 100.0
}

/// `writers` writers for `secs` seconds against `journal`.
fn run(journal: &Journal, writers: u32, secs: u64) -> Figures {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        journal
            .append(encode(&support::event_created("e")))
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        let next = Rc::new(Cell::new(0u64));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let batches_before = journal
            .stats()
            .batches
            .load(std::sync::atomic::Ordering::Relaxed);
        let local = tokio::task::LocalSet::new();
        let mut tasks = Vec::new();
        for seat in 0..writers {
            let (journal, next) = (journal.clone(), next.clone());
            tasks.push(local.spawn_local(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    // Ids in journal order: taken and appended with no
                    // await between (one thread).
                    let hold = next.get();
                    next.set(hold + 1);
                    let started = Instant::now();
                    let r = journal.append(encode(&support::hold("e", "A", hold, seat)));
                    r.unwrap().await.unwrap().unwrap();
                    latencies.push(started.elapsed());
                    let started = Instant::now();
                    journal
                        .append(encode(&release(hold)))
                        .unwrap()
                        .await
                        .unwrap()
                        .unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            }));
        }
        let started = Instant::now();
        let cpu_before = cpu_secs();
        let mut all = local
            .run_until(async {
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                all
            })
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu_before;
        let batches = journal
            .stats()
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
            - batches_before;
        all.sort();
        Figures {
            records_per_sec: all.len() as f64 / elapsed,
            p50_ms: all[all.len() / 2].as_secs_f64() * 1e3,
            per_commit: all.len() as f64 / batches.max(1) as f64,
            cpu_us: cpu * 1e6 / all.len().max(1) as f64,
        }
    })
}

fn lone(writers: u32, secs: u64) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let (journal, flusher) = Store::open(dir.path())
        .unwrap()
        .start(JournalConfig::default());
    let f = run(&journal, writers, secs);
    journal.close();
    drop(journal);
    flusher.join().unwrap();
    f
}

fn replicated(writers: u32, secs: u64, in_flight: usize) -> Figures {
    let root = tempfile::tempdir().unwrap();
    let mut raft = (*support::cluster::config(100_000)).clone();
    raft.heartbeat_interval = 100;
    raft.election_timeout_min = 1_000;
    raft.election_timeout_max = 2_000;
    let replicas = support::start_replicas(root.path(), 3, &raft);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let leader = loop {
        if let Some(r) = replicas.values().find(|r| r.is_leader()) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let taken = rt.block_on(leader.take_lead());

    let (journal, flusher) = Journal::start(
        Box::new(leader.sink(Duration::from_secs(10), in_flight)),
        taken.position,
        Some(leader.journal_reader()),
        JournalConfig::default(),
    );
    let f = run(&journal, writers, secs);
    journal.close();
    drop(journal);
    flusher.join().unwrap();
    f
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::var("RUST_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(3);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    println!("writers | lone records/s | 3 replicas, 1 batch in flight | 3 replicas, 4 in flight | ratios to lone | p50 ms (lone / 1 / 4) | records a commit (lone / 1 / 4) | CPU µs a record (lone / 1 / 4)");
    for writers in [1u32, 16, 64] {
        let (mut l, mut one, mut four) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            l.push(lone(writers, secs));
            one.push(replicated(writers, secs, 1));
            four.push(replicated(writers, secs, 4));
        }
        let m = |v: &[Figures], f: fn(&Figures) -> f64| median(v.iter().map(f).collect());
        let rate = |v: &[Figures]| m(v, |f| f.records_per_sec);
        let (lr, r1, r4) = (rate(&l), rate(&one), rate(&four));
        println!(
            "{writers} | {lr:.0} | {r1:.0} | {r4:.0} | {:.2}x / {:.2}x | {:.2} / {:.2} / {:.2} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0}",
            r1 / lr,
            r4 / lr,
            m(&l, |f| f.p50_ms),
            m(&one, |f| f.p50_ms),
            m(&four, |f| f.p50_ms),
            m(&l, |f| f.per_commit),
            m(&one, |f| f.per_commit),
            m(&four, |f| f.per_commit),
            m(&l, |f| f.cpu_us),
            m(&one, |f| f.cpu_us),
            m(&four, |f| f.cpu_us),
        );
    }
}
