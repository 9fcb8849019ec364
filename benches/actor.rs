//! Section actors: the round trip of a message to a section, and a
//! durable hold + release through actor and journal, with one section and
//! with 16 sections spread over two arbiters. 64 requests are in flight at
//! once (64 fans), as the HTTP workers would send them.
//!
//!     cargo bench --bench actor
//!     cargo bench --bench actor -- --warm-up-time 1 --measurement-time 2   # quick

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice::actors::{Command, EventEntry, GetHold, Registry, SectionSettings, WhatToHold};
use boxoffice::clock::SystemClock;
use boxoffice::domain::{Hold, Outcome, Section};
use boxoffice::journal::{JournalConfig, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Requests in flight at once.
const FANS: usize = 64;
/// Requests each fan sends per measured round.
const PER_FAN: usize = 32;

struct Setup {
    system: actix_rt::SystemRunner,
    registry: Arc<Registry>,
    event: Arc<EventEntry>,
    _dir: tempfile::TempDir,
}

/// A registry with two arbiters and one event of `sections` sections of
/// 10,000 seats; the journal syncs (`fdatasync`) when `durable`.
fn setup(sections: usize, durable: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let system = actix_rt::System::new();
    let def = support::event(&support::event_json("bench", sections, 100, 100, 4, 3_600));
    let (registry, event) = system.block_on(async {
        let store = Store::open(dir.path()).unwrap();
        let (journal, _flusher) = store.start(JournalConfig {
            sync_data: durable,
            ..JournalConfig::default()
        });
        let registry = Arc::new(Registry::new(
            journal,
            Arc::new(SystemClock),
            SectionSettings {
                mailbox_capacity: 4096,
                process_inflight_max: 65_536,
                latency_target: Duration::from_millis(10),
                sweep_interval: Duration::from_secs(1),
                panic_on_change: false,
            },
            2,
            None,
        ));
        let sections: Vec<Section> = def
            .sections
            .iter()
            .map(|l| Section::new(Arc::clone(l), def.limits))
            .collect();
        let event = registry
            .start_event(Arc::clone(&def), Default::default(), sections, None, 0)
            .unwrap();
        (registry, event)
    });
    Setup {
        system,
        registry,
        event,
        _dir: dir,
    }
}

/// Runs `FANS` concurrent fans of `PER_FAN` requests each, `iters` times,
/// and returns the time taken.
fn rounds<F, Fut>(s: &Setup, iters: u64, fan: F) -> Duration
where
    F: Fn(Arc<EventEntry>, usize) -> Fut + Copy + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    s.system.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let tasks: Vec<_> = (0..FANS)
                .map(|f| actix_rt::spawn(fan(Arc::clone(&s.event), f)))
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        start.elapsed()
    })
}

/// Holds the best seat of `section`.
async fn hold_one(section: &boxoffice::actors::SectionHandle) -> Hold {
    let outcome = section
        .change(
            Command::Hold {
                what: WhatToHold::Best(1),
                fan: support::fan(),
            },
            None,
        )
        .await
        .unwrap();
    let Outcome::Held(hold) = outcome else {
        panic!("a hold answers with the hold: {outcome:?}")
    };
    hold
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("actor_round_trip");
    g.throughput(Throughput::Elements((FANS * PER_FAN) as u64));
    for sections in [1usize, 16] {
        // A read: one message to the actor and its answer, no journal.
        let s = setup(sections, false);
        let holds: Vec<(usize, u64, u64)> = s.system.block_on(async {
            let mut holds = Vec::new();
            for f in 0..FANS {
                let i = f % sections;
                let hold = hold_one(&s.event.sections()[i]).await;
                holds.push((i, hold.seq, hold.secret));
            }
            holds
        });
        let holds: &'static [(usize, u64, u64)] = holds.leak();
        g.bench_function(BenchmarkId::new("get_hold", sections), |b| {
            b.iter_custom(|iters| {
                rounds(&s, iters, move |event, f| async move {
                    let (i, hold, secret) = holds[f];
                    for _ in 0..PER_FAN {
                        event.sections()[i]
                            .ask(GetHold {
                                hold,
                                secret,
                                fan: support::fan(),
                            })
                            .await
                            .unwrap();
                    }
                })
            })
        });
        s.registry.shutdown();
    }
    g.finish();
}

fn durable_hold_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("actor_durable");
    g.sample_size(10);
    // Each element is a hold and its release: two durable changes.
    g.throughput(Throughput::Elements((FANS * PER_FAN) as u64));
    for sections in [1usize, 16] {
        let s = setup(sections, true);
        g.bench_function(BenchmarkId::new("hold_release", sections), |b| {
            b.iter_custom(|iters| {
                rounds(&s, iters, move |event, f| async move {
                    let section = &event.sections()[f % event.sections().len()];
                    for _ in 0..PER_FAN {
                        let hold = hold_one(section).await;
                        let release = Command::Release {
                            hold: hold.seq,
                            secret: hold.secret,
                            fan: hold.fan,
                        };
                        section.change(release, None).await.unwrap();
                    }
                })
            })
        });
        let stats = s.registry.journal().stats();
        let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
        let records = stats.records.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "actor_durable/{sections}: {records} records in {batches} group commits ({:.1} per commit)",
            records as f64 / batches.max(1) as f64
        );
        s.registry.shutdown();
    }
    g.finish();
}

criterion_group!(benches, round_trip, durable_hold_release);
criterion_main!(benches);
