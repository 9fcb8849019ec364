//! The pure core at memory speed: single-seat hold/release, and the
//! best-available search. No I/O, no actors.

use std::sync::Arc;

use boxoffice::domain::{Change, Section};
use boxoffice::layout::EventSpec;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn section(rows: u32, per_row: u32) -> Section {
    let rows: Vec<serde_json::Value> = (0..rows)
        .map(|r| serde_json::json!({"label": (r + 1).to_string(), "seats": per_row, "x": 0.0, "y": r as f32}))
        .collect();
    let spec: EventSpec = serde_json::from_value(serde_json::json!({
        "format": "boxoffice.event/1", "id": "b", "name": "Bench", "starts_at": "2026-12-24T10:00:00Z",
        "currency": "KRW", "hold_ttl_secs": 600, "seats_per_hold_max": 8,
        "categories": [{"id": "R", "name": "R", "price": 1}],
        "venue": {"name": "V", "sections": [{"id": "S", "name": "S", "category": "R", "rows": rows}]}
    }))
    .unwrap();
    let def = spec.build().unwrap();
    Section::new(Arc::clone(&def.sections[0]), def.limits)
}

fn hold_release(c: &mut Criterion) {
    let mut g = c.benchmark_group("domain");
    g.throughput(Throughput::Elements(1));
    let mut s = section(40, 25);
    let seats = s.layout().capacity();
    let mut i = 0u32;
    let mut live: Vec<u64> = Vec::new();
    // Alternate: hold a seat, then release the oldest hold, so the section
    // stays half full. Each iteration is one decide + apply.
    g.bench_function("hold_or_release_1_seat", |b| {
        b.iter(|| {
            if live.len() < (seats / 2) as usize {
                let seat = [i % seats];
                i = i.wrapping_add(1);
                if let Ok(change) = s.decide_hold_seats(&seat, 1_000, 42) {
                    if let Change::HoldCreated { hold, .. } = change {
                        live.push(hold);
                    }
                    s.apply(&change).unwrap();
                }
            } else {
                let hold = live.swap_remove(0);
                let change = s.decide_release(hold, 42, 2_000).unwrap();
                s.apply(&change).unwrap();
            }
        })
    });
    g.finish();
}

fn best_available(c: &mut Criterion) {
    let mut g = c.benchmark_group("best_available_4");
    g.throughput(Throughput::Elements(1));
    for (rows, per_row) in [(4, 25), (40, 25), (100, 100)] {
        let mut s = section(rows, per_row);
        // Fragment the front half: every third seat held, so the search has
        // to walk past rows with free seats but no block of 4.
        let cap = s.layout().capacity();
        let mut seat = 0;
        while seat < cap / 2 {
            let change = s.decide_hold_seats(&[seat], 0, 1).unwrap();
            s.apply(&change).unwrap();
            seat += 3;
        }
        g.bench_with_input(BenchmarkId::from_parameter(cap), &s, |b, s| {
            b.iter(|| black_box(s.decide_hold_best(4, 0, 7).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, hold_release, best_available);
criterion_main!(benches);
