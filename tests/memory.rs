//! The memory guard: the heap a sale's state costs once a server has
//! started on it, per seat and per booking, counted by a counting global
//! allocator and compared with a committed baseline (`tests/memory.json`),
//! in the manner of the instruction guard (`benches/instructions.rs`).
//!
//! The state is the snapshot bench's (`benches/snapshot.rs`) at a tenth
//! of its size: 10 sections of 20 rows of 50 seats, 2,600 bookings of one
//! to four seats, each its own fan, address and payment reference, all
//! their confirmations still owed, the event limited to 4 tickets a fan;
//! then a tail of 5,000 holds and their releases. What is counted is
//! what recovery keeps (sections, outbox) and what starting the event
//! builds from it (fan ledger, fans' lists, payment references), as
//! `Registry::start_event` does. Allocations are counted too: each costs
//! malloc a header and rounding the byte count does not show.
//!
//! The counts are deterministic (one thread, the same input), so a rise
//! of a few percent is a change, not noise. Past `TOLERANCE_PCT` above the
//! baseline the test fails, naming the figure; after a change that is
//! worth its bytes, accept the new figures with
//!
//!     BOXOFFICE_MEMORY_BASELINE=save cargo test --test memory

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use boxoffice::actors::{FanBookings, FanHolds, FanLedger, PaymentRefs};
use boxoffice::domain::{Change, FanId, Section};
use boxoffice::idempotency::IdempotencyStore;
use boxoffice::journal::{decode_all, encode, ChangeRecord, JournalConfig, Record, Store};
use boxoffice::layout::EventSpec;
use boxoffice::recovery::{self, Remember, Replay, State};

/// Largest rise over the baseline that still passes.
const TOLERANCE_PCT: f64 = 3.0;
const BASELINE: &str = "tests/memory.json";

const SECTIONS: usize = 10;
const ROWS: usize = 20;
const SEATS: u32 = 50;
/// Bookings, each its own fan: 2,600 spread the fans' lists and the
/// payment references over their 16 randomly keyed shards ~160 to a
/// shard, far from where a shard's table doubles (112, 224), so the
/// count does not vary with the keys.
const BOOKINGS: usize = 2_600;
const TAIL_HOLDS: usize = 5_000;

/// Bytes and allocations live, counted by every allocation and free.
static BYTES: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicI64 = AtomicI64::new(0);

struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are only added to.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> (i64, i64) {
    (
        BYTES.load(Ordering::Relaxed),
        ALLOCATIONS.load(Ordering::Relaxed),
    )
}

fn spec_json() -> String {
    let rows: Vec<serde_json::Value> = (0..ROWS)
        .map(|r| serde_json::json!({"label": (r + 1).to_string(), "seats": SEATS, "x": 0.0, "y": r as f32}))
        .collect();
    let sections: Vec<serde_json::Value> = (0..SECTIONS)
        .map(|s| serde_json::json!({"id": format!("S{s}"), "name": format!("Section {s}"), "category": "R", "rows": rows}))
        .collect();
    serde_json::json!({
        "format": "boxoffice.event/1", "id": "tour", "name": "Stadium tour", "starts_at": "2026-12-24T10:00:00Z",
        "currency": "KRW", "hold_ttl_secs": 3600, "seats_per_hold_max": 4, "tickets_per_fan_max": 4,
        "categories": [{"id": "R", "name": "R seat", "price": 150000}],
        "venue": {"name": "Stadium", "sections": sections}
    })
    .to_string()
}

fn record(section: &str, change: &Change) -> Vec<u8> {
    encode(&Record::Section {
        event: "tour".into(),
        section: section.into(),
        change: ChangeRecord::from(change),
        idem: None,
    })
}

/// A data directory with the event, its bookings, a snapshot of them and
/// the tail after it; the number of seats.
fn sale(data: &Path) -> u64 {
    let spec_json = spec_json();
    let def = Arc::new(
        EventSpec::from_json(spec_json.as_bytes())
            .unwrap()
            .build()
            .unwrap(),
    );
    let mut sections: Vec<Section> = def
        .sections
        .iter()
        .map(|l| Section::new(Arc::clone(l), def.limits))
        .collect();
    let store = Store::open(&data.join("journal")).unwrap();
    let (journal, flusher) = store.start(JournalConfig::default());
    journal
        .append_unacked(encode(&Record::EventCreated {
            spec_json,
            at_ms: 0,
            idem: None,
        }))
        .unwrap();
    for i in 0..BOOKINGS {
        let fan: FanId = format!("member-{i:013}").into();
        let s = &mut sections[i % SECTIONS];
        let id = s.layout().id.clone();
        let hold = s
            .decide_hold_best(1 + (i % 4) as u32, &fan, 1_000, i as u64)
            .unwrap();
        s.apply(&hold).unwrap();
        journal.append_unacked(record(&id, &hold)).unwrap();
        let Change::HoldCreated { hold: h, .. } = hold else {
            unreachable!()
        };
        let confirm = s
            .decide_confirm(
                h,
                i as u64,
                &fan,
                format!("member-{i:013}@example.com").into(),
                format!("pi_{i:024}"),
                2_000,
                7,
            )
            .unwrap();
        s.apply(&confirm).unwrap();
        journal.append_unacked(record(&id, &confirm)).unwrap();
    }
    journal.close();
    flusher.join().unwrap();

    // The snapshot, as the snapshotter takes it.
    let mut store = Store::open(&data.join("journal")).unwrap();
    let (header, bytes) = recovery::take_snapshot(
        data,
        &store.reader(),
        &boxoffice::api::ApiAnswers,
        60_000,
        None,
        3_000,
        &mut |_| {},
    )
    .unwrap();
    std::fs::create_dir_all(data.join(boxoffice::snapshot::DIR)).unwrap();
    boxoffice::snapshot::write_atomic(
        &boxoffice::snapshot::path_for(data, header.journal_position),
        &bytes,
    )
    .unwrap();

    // The tail: holds of one seat and their releases.
    store.advance_to(header.journal_position);
    let (journal, flusher) = store.start(JournalConfig::default());
    let fan: FanId = "fan-of-the-tail".into();
    for i in 0..TAIL_HOLDS {
        let s = &mut sections[i % SECTIONS];
        let id = s.layout().id.clone();
        let hold = s.decide_hold_best(1, &fan, 3_000, i as u64).unwrap();
        s.apply(&hold).unwrap();
        journal.append_unacked(record(&id, &hold)).unwrap();
        let Change::HoldCreated { hold: h, .. } = hold else {
            unreachable!()
        };
        let release = s.decide_release(h, i as u64, &fan, 3_001).unwrap();
        s.apply(&release).unwrap();
        journal.append_unacked(record(&id, &release)).unwrap();
    }
    journal.close();
    flusher.join().unwrap();
    def.capacity()
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Figures {
    heap_bytes_per_seat: f64,
    allocations_per_booking: f64,
}

#[test]
fn a_sales_state_keeps_within_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seats = sale(&data);

    // What a start reads, read beforehand: the snapshot file and the
    // tail's records, as bytes (the journal's own memory is sled's, and
    // its threads would make the count vary).
    let (snapshot_path, snapshot_bytes) = {
        let (_, path) = boxoffice::snapshot::list(&data).unwrap().remove(0);
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    };
    let position = boxoffice::snapshot::decode(&snapshot_bytes)
        .unwrap()
        .header
        .journal_position;
    let mut tail: Vec<(u64, Vec<u8>)> = Vec::new();
    Store::open(&data.join("journal"))
        .unwrap()
        .reader()
        .replay_range::<recovery::ReplayError>(position, None, |batch, record| {
            tail.push((batch, encode(&record)));
            Ok(())
        })
        .unwrap();
    assert_eq!(tail.len(), 2 * TAIL_HOLDS, "{}", snapshot_path.display());
    let idempotency = IdempotencyStore::new(60_000, 1_000, None);

    // What a start keeps: what recovery builds from them (as `recover`
    // does, less the reading), and what starting the event builds from
    // its sections (as `Registry::start_event` does).
    let (bytes_before, allocations_before) = live();
    let mut replay = Replay::new(
        State::default(),
        Remember {
            store: &idempotency,
            answers: &boxoffice::api::ApiAnswers,
            now_ms: 4_000,
            ttl_ms: 60_000,
        },
    );
    let mut snap = boxoffice::snapshot::decode(&snapshot_bytes).unwrap();
    let restored = snap.restore().unwrap();
    replay.load_snapshot(&snap, restored).unwrap();
    drop(snap);
    for (batch, bytes) in &tail {
        for record in decode_all(bytes).unwrap() {
            replay.apply(*batch, record).unwrap();
        }
    }
    let state = replay.into_state();
    let payments = PaymentRefs::default();
    let indexes: Vec<_> = state
        .events
        .values()
        .map(|e| {
            e.sections.iter().for_each(|s| payments.add_bookings(s));
            (
                FanLedger::new(e.def.limits.tickets_per_fan_max, &e.sections),
                FanBookings::new(&e.sections),
                FanHolds::new(&e.sections),
            )
        })
        .collect();
    let (bytes_after, allocations_after) = live();

    // The state is what it should be: nothing lost to save bytes.
    assert_eq!(state.outbox.len(), BOOKINGS, "every email owed");
    assert_eq!(payments.len(), BOOKINGS, "every payment reference kept");
    let e = &state.events["tour"];
    let booked: usize = e.sections.iter().map(|s| s.bookings().count()).sum();
    assert_eq!(booked, BOOKINGS);
    let (ledger, lists, _) = &indexes[0];
    assert_eq!(ledger.owned("member-0000000000003"), 4);
    assert_eq!(ledger.owned("fan-of-the-tail"), 0);
    assert_eq!(lists.newest("member-0000000000003", 10).1, 1);

    let now = Figures {
        heap_bytes_per_seat: (bytes_after - bytes_before) as f64 / seats as f64,
        allocations_per_booking: (allocations_after - allocations_before) as f64 / BOOKINGS as f64,
    };
    println!("{now:?}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(BASELINE);
    if std::env::var("BOXOFFICE_MEMORY_BASELINE").as_deref() == Ok("save") {
        let text = serde_json::to_string_pretty(&now).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        println!("saved {}", path.display());
        return;
    }
    let base: Figures = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut over = Vec::new();
    for (what, now, base) in [
        (
            "heap bytes a seat",
            now.heap_bytes_per_seat,
            base.heap_bytes_per_seat,
        ),
        (
            "allocations a booking",
            now.allocations_per_booking,
            base.allocations_per_booking,
        ),
    ] {
        let pct = (now / base - 1.0) * 100.0;
        println!("{what}: {now:.2} against {base:.2} ({pct:+.1}%)");
        if pct > TOLERANCE_PCT {
            over.push(format!("{what}: {now:.2}, {pct:+.1}% over {base:.2}"));
        }
    }
    assert!(
        over.is_empty(),
        "past the baseline by more than {TOLERANCE_PCT}% ({}); if the change is worth it, \
         save a new baseline (BOXOFFICE_MEMORY_BASELINE=save cargo test --test memory): {}",
        BASELINE,
        over.join("; ")
    );
}
