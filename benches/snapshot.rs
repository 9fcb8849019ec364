//! Snapshot and restart at stadium-tour scale: 1,000,000 seats (100
//! sections of 100 rows of 100), 100,000 bookings, then a 1,000,000-record
//! journal tail; each booking its own fan, address and payment reference,
//! as in a sale. Measures, in one run: snapshot capture + encode time and
//! file size, verify time (decode, checksum, rebuild every section),
//! restart time of the release binary (snapshot load + tail replay, until
//! it listens), and its resident memory per seat against an empty server,
//! with its mailer off (and, for the record, on).
//!
//!     cargo bench --bench snapshot
//!
//! With `BOXOFFICE_BENCH_KEEP=<dir>` it keeps its data directories there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use boxoffice::domain::{Change, Section};
use boxoffice::idempotency::Answer;
use boxoffice::journal::{encode, ChangeRecord, JournalConfig, Record, Store};
use boxoffice::layout::EventSpec;
use boxoffice::mail::Outbox;
use boxoffice::snapshot;

const SECTIONS: usize = 100;
const ROWS: usize = 100;
const SEATS: u32 = 100;
const BOOKINGS: usize = 100_000;
const TAIL: usize = 1_000_000;

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

fn record(event: &str, section: &str, change: &Change) -> Vec<u8> {
    encode(&Record::Section {
        event: event.into(),
        section: section.into(),
        change: ChangeRecord::from(change),
        idem: None,
    })
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Starts the release binary on `dir`, sending emails or not; returns
/// seconds until it listened, and its RSS 300 ms later.
fn start_server(dir: &Path, mail: bool) -> (f64, u64) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(["serve", "--listen", "127.0.0.1:0", "--demo-event", "false"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--snapshot-every-secs", "86400"])
        .args(["--mail-enabled", if mail { "true" } else { "false" }])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("a listening line").unwrap();
        if line.starts_with("boxoffice listening on ") {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (secs, rss)
}

fn main() {
    let spec_json = spec_json();
    let def = Arc::new(
        EventSpec::from_json(spec_json.as_bytes())
            .unwrap()
            .build()
            .unwrap(),
    );
    let seats = def.capacity();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // A journal with the event and 100,000 bookings.
    let store = Store::open(&data.join("journal")).unwrap();
    let (journal, flusher) = store.start(JournalConfig::default());
    journal
        .append_unacked(encode(&Record::EventCreated {
            spec_json: spec_json.clone(),
            at_ms: 0,
            idem: None,
        }))
        .unwrap();
    let mut sections: Vec<Section> = def
        .sections
        .iter()
        .map(|l| Section::new(Arc::clone(l), def.limits))
        .collect();
    let t = Instant::now();
    for i in 0..BOOKINGS {
        // As in a sale: each booking its own fan, address and payment
        // (a fan club's member id, a payment service's reference).
        let fan: boxoffice::domain::FanId = format!("member-{i:013}").into();
        let s = &mut sections[i % SECTIONS];
        let id = s.layout().id.clone();
        let n = 1 + (i % 4) as u32;
        let hold = s.decide_hold_best(n, &fan, 1_000, i as u64).unwrap();
        s.apply(&hold).unwrap();
        journal.append_unacked(record("tour", &id, &hold)).unwrap();
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
        journal
            .append_unacked(record("tour", &id, &confirm))
            .unwrap();
    }
    journal.close();
    flusher.join().unwrap();
    eprintln!(
        "built {BOOKINGS} bookings in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Capture + encode, in process.
    let t = Instant::now();
    let (header, body) = snapshot::capture(
        [snapshot::EventState {
            spec_json: &spec_json,
            def: &def,
            created_at_ms: 0,
            sections: &sections,
            room: None,
        }],
        &Vec::<Answer>::new(),
        &Outbox::new(),
        2 * BOOKINGS as u64 + 1,
        0,
        None,
    );
    let bytes = snapshot::encode(&header, &body);
    let capture_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut snap = snapshot::decode(&bytes).unwrap();
    snap.restore().unwrap();
    let verify_s = t.elapsed().as_secs_f64();
    drop(sections);

    // Offline create through the binary (includes the journal replay).
    let file = dir.path().join("tour.snap");
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(["snapshot", "create", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let create_cli_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&file).unwrap().len();

    // Restore it, then a 1,000,000-record tail: holds and their releases.
    let restored = dir.path().join("restored");
    let out = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(["snapshot", "restore"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The same state without the tail, for memory per seat.
    let bare = dir.path().join("bare");
    let out = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .args(["snapshot", "restore"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&bare)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut snap = snapshot::read(&file).unwrap();
    let mut sections = snap.restore().unwrap().events.remove(0).sections;
    let mut store = Store::open(&restored.join("journal")).unwrap();
    store.advance_to(snap.header.journal_position);
    let (journal, flusher) = store.start(JournalConfig::default());
    let fan: boxoffice::domain::FanId = "fan-1".into();
    for i in 0..TAIL / 2 {
        let s = &mut sections[i % SECTIONS];
        let id = s.layout().id.clone();
        let hold = s.decide_hold_best(1, &fan, 3_000, i as u64).unwrap();
        s.apply(&hold).unwrap();
        journal.append_unacked(record("tour", &id, &hold)).unwrap();
        let Change::HoldCreated { hold: h, .. } = hold else {
            unreachable!()
        };
        let release = s.decide_release(h, i as u64, &fan, 3_001).unwrap();
        s.apply(&release).unwrap();
        journal
            .append_unacked(record("tour", &id, &release))
            .unwrap();
    }
    journal.close();
    flusher.join().unwrap();
    drop(sections);

    // The state's memory is measured with the mailer off: sending, it
    // journals each email's outcome, and sled keeps the pages it writes
    // (up to its cache capacity, whatever the seats), which the figure
    // with the mailer on (the same data, a fourth start) shows beside.
    let empty = dir.path().join("empty");
    let (_, rss_empty) = start_server(&empty, false);
    let mut restarts = Vec::new();
    let mut rss = 0;
    for _ in 0..3 {
        let (secs, r) = start_server(&restored, false);
        restarts.push(secs);
        rss = r;
    }
    restarts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (_, rss_bare) = start_server(&bare, false);
    // To look into the memory of a server on these data directories
    // (massif, heaptrack): they are copied there, `restored` (snapshot
    // + tail) and `bare` (the snapshot alone).
    if let Some(keep) = std::env::var_os("BOXOFFICE_BENCH_KEEP") {
        let keep = Path::new(&keep);
        for (from, name) in [(&restored, "restored"), (&bare, "bare")] {
            let status = Command::new("cp")
                .arg("-a")
                .arg(from)
                .arg(keep.join(name))
                .status()
                .unwrap();
            assert!(status.success(), "cp {from:?} to {keep:?}");
        }
        eprintln!("kept the data directories in {}", keep.display());
    }
    // Last: sending writes to the data directory.
    let (_, rss_empty_mailing) = start_server(&empty, true);
    let (_, rss_mailing) = start_server(&restored, true);
    let per_seat = (rss.saturating_sub(rss_empty) * 1024) as f64 / seats as f64;
    let per_seat_bare = (rss_bare.saturating_sub(rss_empty) * 1024) as f64 / seats as f64;
    let per_seat_mailing =
        (rss_mailing.saturating_sub(rss_empty_mailing) * 1024) as f64 / seats as f64;
    println!("\nsnapshot bench: {seats} seats, {BOOKINGS} bookings, {TAIL}-record tail");
    println!("| measure | value |");
    println!("| --- | --- |");
    println!(
        "| capture + encode (in process) | {:.0} ms |",
        capture_s * 1000.0
    );
    println!("| file size | {:.1} MB |", size as f64 / 1e6);
    println!(
        "| verify: decode + checksum + rebuild | {:.0} ms |",
        verify_s * 1000.0
    );
    println!(
        "| `snapshot create --data-dir` (replays {} records) | {:.0} ms |",
        2 * BOOKINGS,
        create_cli_s * 1000.0
    );
    println!(
        "| restart: snapshot + {TAIL}-record tail, until listening (median of 3) | {:.0} ms |",
        restarts[1] * 1000.0
    );
    println!("| RSS empty server | {:.1} MB |", rss_empty as f64 / 1024.0);
    println!(
        "| RSS loaded from the snapshot alone | {:.1} MB |",
        rss_bare as f64 / 1024.0
    );
    println!("| RSS per seat, snapshot alone (loaded - empty) | {per_seat_bare:.0} bytes |");
    println!(
        "| RSS loaded, snapshot + tail | {:.1} MB |",
        rss as f64 / 1024.0
    );
    println!("| RSS per seat, snapshot + tail | {per_seat:.0} bytes |");
    println!(
        "| RSS per seat, snapshot + tail, sending its {BOOKINGS} owed emails | {per_seat_mailing:.0} bytes |"
    );
}
