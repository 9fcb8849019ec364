//! The waiting room's core at memory speed: what a waiting fan costs in
//! memory (counted by the allocator, not guessed), and what a join, a
//! position read and an admission step cost in time, in a room of
//! 500,000 fans. No I/O; one core.
//!
//!     cargo bench --bench waiting_room
//!     cargo bench --bench waiting_room -- --warm-up-time 1 --measurement-time 2   # quick

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use boxoffice::domain::{FanId, FanKey, RoomSettings, WaitingRoom};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only
// counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const FANS: usize = 500_000;
const OPENS: u64 = 1_000_000_000;

fn settings() -> RoomSettings {
    RoomSettings {
        queue_opens_at_ms: 0,
        opens_at_ms: OPENS,
        rate_per_sec: 1_000,
        active_max: None,
        admission_ttl_ms: 600_000,
        paused: false,
    }
}

/// A fan id as a fan club's service would issue it: a UUID.
fn fan(i: usize) -> FanId {
    Arc::from(format!("{i:08x}-7d2c-4b6e-9a51-3f0e8c1d2b4a").as_str())
}

/// A room of `n` fans who joined before the opening, shuffled.
fn room(n: usize) -> WaitingRoom {
    let mut r = WaitingRoom::new(settings());
    for i in 0..n {
        let c = r.decide_join(&fan(i), OPENS - 1).unwrap().unwrap();
        r.apply(&c).unwrap();
    }
    let c = r.decide_opening(OPENS, 42).unwrap();
    r.apply(&c).unwrap();
    r
}

/// Bytes the room holds per waiting fan, counted by the allocator
/// (requested sizes: malloc's rounding is not in it). Printed, and
/// written to target/waiting_room_memory.txt for BENCHMARKS.md.
fn memory_per_fan() {
    let before = LIVE.load(Ordering::Relaxed);
    let r = room(FANS);
    let during = LIVE.load(Ordering::Relaxed) - before;
    let line = format!(
        "waiting room: {FANS} fans waiting hold {during} bytes: {:.1} bytes a fan",
        during as f64 / FANS as f64
    );
    println!("{line}");
    let _ = std::fs::write("target/waiting_room_memory.txt", format!("{line}\n"));
    drop(r);
}

fn waiting_room(c: &mut Criterion) {
    memory_per_fan();
    let mut g = c.benchmark_group("waiting_room");
    g.throughput(Throughput::Elements(1));

    // A join into a room of 500,000 (decide + apply: hash the id, look it
    // up, append). New fans each time; the room grows by the samples.
    let mut r = room(FANS);
    let mut next = FANS;
    g.bench_function("join_500k", |b| {
        b.iter(|| {
            let c = r.decide_join(&fan(next), OPENS + 1).unwrap().unwrap();
            r.apply(&c).unwrap();
            next += 1;
        })
    });

    // Where a fan stands: hash its id, find its number.
    let r = room(FANS);
    let keys: Vec<FanKey> = (0..1024).map(|i| FanKey::of(&fan(i * 397))).collect();
    let mut i = 0;
    g.bench_function("standing_500k", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(r.standing(&keys[i]))
        })
    });
    let ids: Vec<FanId> = (0..1024).map(|i| fan(i * 397)).collect();
    g.bench_function("key_of_fan_id", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(FanKey::of(&ids[i]))
        })
    });

    // One admission step of a tick at 1,000 fans a second and 50 ms
    // ticks: 50 fans admitted (decide + apply). Timed alone: when the
    // queue runs low, fans join between the timed steps.
    let mut r = room(FANS);
    let mut now = OPENS;
    let mut next = FANS;
    g.throughput(Throughput::Elements(50));
    g.bench_function("admit_50", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                while r.len() - r.serving() < 50 {
                    let c = r.decide_join(&fan(next), now).unwrap().unwrap();
                    r.apply(&c).unwrap();
                    next += 1;
                }
                now += 50;
                let started = std::time::Instant::now();
                let c = r.decide_admission(now).unwrap();
                r.apply(&c).unwrap();
                spent += started.elapsed();
                // Expire what is due, untimed, so the heap stays as a
                // running room's would.
                for c in r.decide_expiries(now, usize::MAX) {
                    r.apply(&c).unwrap();
                }
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, waiting_room);
criterion_main!(benches);
