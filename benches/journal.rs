//! Group commit: durable records per second with many concurrent writers.
//! Each writer appends a hold-sized record and waits for its receipt before
//! the next (one in flight per writer), like one fan per connection.

use std::time::{Duration, Instant};

use boxoffice::journal::{encode, ChangeRecord, ClaimRecord, JournalConfig, Record, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn record(i: u64) -> Vec<u8> {
    encode(&Record::Section {
        event: "demo".into(),
        section: "A".into(),
        change: ChangeRecord::HoldCreated {
            hold: i,
            secret: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            claim: ClaimRecord::Seats(vec![(i % 700) as u32, (i % 700) as u32 + 1]),
            created_at_ms: 1_795_392_000_000,
            expires_at_ms: 1_795_392_420_000,
        },
        idem: None,
    })
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("journal_group_commit");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for sync_data in [true, false] {
        for writers in [1usize, 16, 64, 256] {
            let dir = tempfile::tempdir().unwrap();
            let (journal, thread) = Store::open(dir.path()).unwrap().start(JournalConfig {
                sync_data,
                ..JournalConfig::default()
            });
            let per_writer = 64u64;
            g.throughput(Throughput::Elements(writers as u64 * per_writer));
            let name = if sync_data {
                "fdatasync"
            } else {
                "no_fdatasync"
            };
            g.bench_with_input(BenchmarkId::new(name, writers), &writers, |b, &writers| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        std::thread::scope(|s| {
                            for w in 0..writers {
                                let journal = journal.clone();
                                s.spawn(move || {
                                    for i in 0..per_writer {
                                        let r =
                                            journal.append(record(w as u64 * 1000 + i)).unwrap();
                                        r.blocking_recv().unwrap().unwrap();
                                    }
                                });
                            }
                        });
                        total += start.elapsed();
                    }
                    total
                })
            });
            let stats = journal.stats();
            let batches = stats
                .batches
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(1);
            let records = stats.records.load(std::sync::atomic::Ordering::Relaxed);
            let flush_ms = stats.flush_ns.load(std::sync::atomic::Ordering::Relaxed) as f64
                / 1e6
                / batches as f64;
            eprintln!(
                "journal {name} writers={writers}: {records} records in {batches} flushes, {:.1} records/flush, {flush_ms:.3} ms/flush",
                records as f64 / batches as f64
            );
            drop(journal);
            thread.join().unwrap();
        }
    }
    g.finish();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
