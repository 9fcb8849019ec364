//! The pure core at memory speed: hold and release, hold + confirm +
//! cancel, best-available search on sections of 100 to 10,000 seats, and
//! the expiry sweep. No I/O, no actors; one core.
//!
//!     cargo bench --bench domain
//!     cargo bench --bench domain -- --warm-up-time 1 --measurement-time 2   # quick

#[path = "support/mod.rs"]
mod support;

use boxoffice::domain::{Caller, Change};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn hold_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("domain");
    g.throughput(Throughput::Elements(1));
    let fan = support::fan();
    let by = Caller::Fan(fan.clone());
    let mut s = support::section(40, 25);
    let seats = s.layout().capacity();
    let mut i = 0u32;
    let mut live: std::collections::VecDeque<u64> = Default::default();
    // Alternate: hold a seat, then release the oldest hold, so the section
    // stays half full. Each iteration is one decide + apply.
    g.bench_function("hold_or_release_1_seat", |b| {
        b.iter(|| {
            if live.len() < (seats / 2) as usize {
                let seat = [i % seats];
                i = i.wrapping_add(1);
                if let Ok(change) = s.decide_hold_seats(&seat, &fan, 1_000, 42) {
                    if let Change::HoldCreated { hold, .. } = change {
                        live.push_back(hold);
                    }
                    s.apply(&change).unwrap();
                }
            } else {
                let hold = live.pop_front().unwrap();
                let change = s.decide_release(hold, 42, &fan, 2_000).unwrap();
                s.apply(&change).unwrap();
            }
        })
    });
    // Best 2 together, confirm, cancel: one fan's whole purchase (and
    // its refund), three changes; the seats end free again.
    let mut s = support::section(40, 25);
    let mut n = 0u64;
    g.bench_function("hold_confirm_cancel", |b| {
        b.iter(|| {
            n += 1;
            let hold = s.decide_hold_best(2, &fan, n, n).unwrap();
            s.apply(&hold).unwrap();
            let Change::HoldCreated { hold, .. } = hold else {
                unreachable!()
            };
            let confirm = s
                .decide_confirm(hold, n, &fan, "fan@example.com".into(), "pay".into(), n, n)
                .unwrap();
            s.apply(&confirm).unwrap();
            let Change::HoldConfirmed { booking, .. } = confirm else {
                unreachable!()
            };
            let cancel = s.decide_cancel(booking, n, &by, n).unwrap();
            s.apply(&cancel).unwrap();
        })
    });
    g.finish();
}

fn best_available(c: &mut Criterion) {
    let mut g = c.benchmark_group("best_available_4");
    g.throughput(Throughput::Elements(1));
    let fan = support::fan();
    for (rows, per_row) in [(4, 25), (40, 25), (100, 100)] {
        let mut s = support::section(rows, per_row);
        support::fragment_front_half(&mut s);
        let cap = s.layout().capacity();
        g.bench_with_input(BenchmarkId::from_parameter(cap), &s, |b, s| {
            b.iter(|| black_box(s.decide_hold_best(4, &fan, 0, 7).unwrap()))
        });
    }
    g.finish();
    // Late in a sale: the front 90 of 100 rows are full.
    let mut g = c.benchmark_group("best_available_2_behind_full_rows");
    g.throughput(Throughput::Elements(1));
    let mut s = support::section(100, 100);
    support::fill_front_rows(&mut s, 90);
    g.bench_function("10000", |b| {
        b.iter(|| black_box(s.decide_hold_best(2, &fan, 0, 7).unwrap()))
    });
    g.finish();
}

/// The sweep a section runs every `--sweep-interval-ms`: 1,000 holds come
/// due at once and are expired (decided and applied). Throughput counts
/// expired holds.
fn expiry_sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("expiry_sweep");
    const DUE: u32 = 1_000;
    g.throughput(Throughput::Elements(u64::from(DUE)));
    g.bench_function("1000_due_holds", |b| {
        b.iter_batched_ref(
            || {
                let mut s = support::section(100, 100);
                let fan = support::fan();
                for k in 0..DUE {
                    let c = s.decide_hold_seats(&[k * 3], &fan, 0, 1).unwrap();
                    s.apply(&c).unwrap();
                }
                s
            },
            |s| {
                let ttl = s.limits().hold_ttl_ms;
                let due = s.decide_expiries(ttl, DUE as usize);
                assert_eq!(due.len(), DUE as usize);
                for c in &due {
                    s.apply(c).unwrap();
                }
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, hold_release, best_available, expiry_sweep);
criterion_main!(benches);
