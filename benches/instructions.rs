//! The throughput guard: instructions per operation of the hot paths,
//! counted by valgrind's callgrind and compared with a committed baseline.
//!
//! Wall-clock figures on a shared 2-core machine swing by 30%; instruction
//! counts of the same binary on the same input do not move at all, so a
//! regression of a few percent is visible. Each bench runs in its own
//! callgrind process; only the work inside [`boxoffice_measured`] counts
//! (`--toggle-collect`), so set-up and warm-up are free.
//!
//!     cargo bench --bench instructions                     # check (CI)
//!     cargo bench --bench instructions -- --save-baseline  # accept the counts
//!
//! A bench more than `TOLERANCE_PCT` above its baseline fails the run,
//! naming the bench and the change in percent. The counts depend on the
//! compiler: the baseline records the rustc that made it, and a different
//! one is reported (save a new baseline when upgrading the toolchain).
//! Threads (actors, flusher, HTTP) are not deterministic under callgrind,
//! so the guard covers the single-threaded work of each layer; the
//! criterion benches and the load generator measure the rest.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use boxoffice::api::dto::HoldRequest;
use boxoffice::auth::issuer::LocalIssuer;
use boxoffice::auth::{AuthSettings, Keys, Verifier};
use boxoffice::clock::ManualClock;
use boxoffice::domain::{Caller, Change, Hold, Outcome, Section, SectionKind};
use boxoffice::idempotency::{Begin, IdempotencyStore};
use boxoffice::journal::{decode_all, encode, ChangeRecord, IdemTag, Record};
use boxoffice::mail::Outbox;
use boxoffice::recovery::{Replay, State};
use boxoffice::snapshot;

/// Largest rise in instructions per operation that still passes.
const TOLERANCE_PCT: f64 = 3.0;
/// Where the baseline lives, relative to the package.
const BASELINE: &str = "benches/instructions.json";
/// The region callgrind counts; its name is what `--toggle-collect` sees.
const REGION: &str = "boxoffice_measured";

/// Runs `f` as the counted region. Never inlined, and not mangled, so
/// callgrind finds it by name.
#[no_mangle]
#[inline(never)]
pub fn boxoffice_measured(f: &mut dyn FnMut()) {
    f();
}

/// One bench: a name, how many operations the region runs, and a set-up
/// that returns the operation (called `iters` times inside the region).
struct Bench {
    name: &'static str,
    iters: u64,
    setup: fn() -> Box<dyn FnMut()>,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "domain/hold_or_release_1_seat",
        iters: 20_000,
        setup: hold_or_release,
    },
    Bench {
        name: "domain/best_available_4_of_1000",
        iters: 2_000,
        setup: || best_available(40, 25),
    },
    Bench {
        name: "domain/best_available_4_of_10000",
        iters: 200,
        setup: || best_available(100, 100),
    },
    Bench {
        name: "domain/best_available_2_of_10000_front_90_rows_full",
        iters: 2_000,
        setup: best_available_behind_full_rows,
    },
    Bench {
        name: "domain/hold_confirm_cancel",
        iters: 5_000,
        setup: hold_confirm_cancel,
    },
    Bench {
        name: "domain/expire_1_hold",
        iters: 5_000,
        setup: expire_one,
    },
    Bench {
        name: "journal/encode_hold_record",
        iters: 20_000,
        setup: encode_hold_record,
    },
    Bench {
        name: "journal/replay_1_record",
        iters: 20_000,
        setup: replay_record,
    },
    Bench {
        name: "http/hold_request_parse_and_render",
        iters: 10_000,
        setup: hold_request,
    },
    Bench {
        name: "http/idempotency_begin_complete",
        iters: 10_000,
        setup: idempotency,
    },
    Bench {
        name: "auth/cached_token_check",
        iters: 10_000,
        setup: cached_token_check,
    },
    Bench {
        name: "snapshot/capture_encode_10000_seats",
        iters: 20,
        setup: snapshot_section,
    },
];

// ---- the operations ----

/// Holds a seat, or releases the oldest hold once half the section is
/// held: one decide + apply per operation, the section half full.
fn hold_or_release() -> Box<dyn FnMut()> {
    let fan = support::fan();
    let mut s = support::section(40, 25);
    let seats = s.layout().capacity();
    let mut next = 0u32;
    let mut live = std::collections::VecDeque::new();
    Box::new(move || {
        if live.len() < (seats / 2) as usize {
            let seat = next % seats;
            next = next.wrapping_add(1);
            if let Ok(change) = s.decide_hold_seats(&[seat], &fan, 1_000, 42) {
                if let Change::HoldCreated { hold, .. } = change {
                    live.push_back(hold);
                }
                s.apply(&change).expect("applies");
            }
        } else {
            let hold = live.pop_front().expect("a live hold");
            let change = s.decide_release(hold, 42, &fan, 2_000).expect("live");
            s.apply(&change).expect("applies");
        }
    })
}

fn best_available(rows: u32, per_row: u32) -> Box<dyn FnMut()> {
    let fan = support::fan();
    let mut s = support::section(rows, per_row);
    support::fragment_front_half(&mut s);
    Box::new(move || {
        std::hint::black_box(s.decide_hold_best(4, &fan, 0, 7).expect("a block of 4"));
    })
}

/// The best 2 together in a 100 × 100 section whose first 90 rows are
/// taken: the search walks past 90 full rows.
fn best_available_behind_full_rows() -> Box<dyn FnMut()> {
    let fan = support::fan();
    let mut s = support::section(100, 100);
    support::fill_front_rows(&mut s, 90);
    Box::new(move || {
        std::hint::black_box(s.decide_hold_best(2, &fan, 0, 7).expect("a block of 2"));
    })
}

/// Best 2 together, confirm, cancel: three changes, the seats free again.
fn hold_confirm_cancel() -> Box<dyn FnMut()> {
    let fan = support::fan();
    let by = Caller::Fan(fan.clone());
    let mut s = support::section(40, 25);
    let mut i = 0u64;
    Box::new(move || {
        i += 1;
        let hold = s.decide_hold_best(2, &fan, i, i).expect("free seats");
        s.apply(&hold).expect("applies");
        let Change::HoldCreated { hold, .. } = hold else {
            unreachable!()
        };
        let confirm = s
            .decide_confirm(
                hold,
                i,
                &fan,
                "fan@example.com".into(),
                "pay_1234".into(),
                i,
                i,
            )
            .expect("live hold");
        s.apply(&confirm).expect("applies");
        let Change::HoldConfirmed { booking, .. } = confirm else {
            unreachable!()
        };
        let cancel = s.decide_cancel(booking, i, &by, i).expect("confirmed");
        s.apply(&cancel).expect("applies");
    })
}

/// 5,000 single-seat holds due one millisecond apart; each operation
/// expires the next one due.
fn expire_one() -> Box<dyn FnMut()> {
    let fan = support::fan();
    let mut s = support::section(100, 100);
    for seat in 0..5_000u32 {
        let c = s
            .decide_hold_seats(&[seat * 2], &fan, u64::from(seat), 1)
            .expect("free");
        s.apply(&c).expect("applies");
    }
    let ttl = s.limits().hold_ttl_ms;
    let mut now = ttl;
    Box::new(move || {
        for c in s.decide_expiries(now, 16) {
            s.apply(&c).expect("applies");
        }
        now += 1;
    })
}

fn hold_record(i: u64) -> Record {
    Record::Section {
        event: "demo".into(),
        section: "A".into(),
        change: ChangeRecord::from(&Change::HoldCreated {
            hold: i,
            secret: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            fan: support::fan(),
            claim: boxoffice::domain::Claim::Seats(vec![7, 8].into()),
            created_at_ms: 1_795_392_000_000,
            expires_at_ms: 1_795_392_420_000,
        }),
        idem: Some(IdemTag {
            key: format!("fan-{i}-hold"),
            fingerprint: [7; 32],
            at_ms: 1_795_392_000_000,
        }),
    }
}

fn encode_hold_record() -> Box<dyn FnMut()> {
    let records: Vec<Record> = (0..64).map(hold_record).collect();
    let mut i = 0;
    Box::new(move || {
        std::hint::black_box(encode(&records[i % records.len()]));
        i += 1;
    })
}

/// The start-up path of one journal record: decode the frame, then
/// `Replay::apply` (find the event and section, one of 20, apply the
/// change). Records alternate holds and releases.
fn replay_record() -> Box<dyn FnMut()> {
    let fan = support::fan();
    let spec = support::event_json("b", 20, 10, 50, 4, 600);
    let def = support::event(&spec);
    let mut live: Vec<Section> = def
        .sections
        .iter()
        .map(|l| Section::new(Arc::clone(l), def.limits))
        .collect();
    let mut frames = vec![encode(&Record::EventCreated {
        spec_json: spec,
        at_ms: 0,
        idem: None,
    })];
    for i in 0..BENCHES_REPLAY_HOLDS {
        let s = &mut live[(i % 20) as usize];
        let hold = s
            .decide_hold_best(1 + (i % 4) as u32, &fan, i, i)
            .expect("free seats");
        s.apply(&hold).expect("applies");
        let Change::HoldCreated { hold: h, .. } = hold else {
            unreachable!()
        };
        let release = s.decide_release(h, i, &fan, i + 1).expect("live");
        s.apply(&release).expect("applies");
        for c in [&hold, &release] {
            frames.push(encode(&Record::Section {
                event: "b".into(),
                section: s.layout().id.clone(),
                change: c.into(),
                idem: None,
            }));
        }
    }
    // Leaked: the replay borrows the store for the life of the bench.
    let idem: &'static Arc<IdempotencyStore> =
        Box::leak(Box::new(IdempotencyStore::new(86_400_000, 1_000, Some(64))));
    let remember = boxoffice::recovery::Remember {
        store: idem,
        answers: &boxoffice::api::ApiAnswers,
        now_ms: 0,
        ttl_ms: 86_400_000,
    };
    let mut replay = Replay::new(State::default(), remember);
    let mut frames = frames.into_iter();
    for r in decode_all(&frames.next().expect("the event")).expect("decodes") {
        replay.apply(0, r).expect("the event applies");
    }
    Box::new(move || {
        for record in decode_all(&frames.next().expect("a frame")).expect("decodes") {
            replay.apply(1, record).expect("applies");
        }
    })
}

/// Holds (and releases) the replay bench journals: a record for each of
/// its 20,000 operations and 100 warm-ups, none replayed twice.
const BENCHES_REPLAY_HOLDS: u64 = 10_050;

/// What a hold handler does besides waiting for the section: parse the
/// body, look up explicit seats, render the answer.
fn hold_request() -> Box<dyn FnMut()> {
    let def = support::event(&support::event_json("demo", 1, 40, 25, 8, 600));
    let layout = Arc::clone(&def.sections[0]);
    let body = br#"{"section":"S0","seats":["S0/12/7","S0/12/8"]}"#;
    let held = Outcome::Held(Hold {
        seq: 0x2a,
        secret: 0x5f1c_9e0b_7d3a_8642,
        fan: support::fan(),
        claim: boxoffice::domain::Claim::Seats(vec![282, 283].into()),
        created_at_ms: 1_795_392_000_000,
        expires_at_ms: 1_795_392_420_000,
    });
    Box::new(move || {
        let req: HoldRequest = serde_json::from_slice(body).expect("parses");
        let SectionKind::Seated(map) = &layout.kind else {
            unreachable!()
        };
        let seats: Vec<u32> = req
            .seats
            .iter()
            .flatten()
            .map(|id| map.lookup(id).expect("a seat"))
            .collect();
        std::hint::black_box(seats);
        std::hint::black_box(boxoffice::api::answer(&def, &layout, &held));
    })
}

/// A fresh key begins and completes, as every POST with an
/// Idempotency-Key does.
fn idempotency() -> Box<dyn FnMut()> {
    let store = IdempotencyStore::new(86_400_000, 2_000_000, Some(64));
    let body = actix_web::web::Bytes::from_static(b"{\"id\":\"demo.A.h2a.5f1c9e0b7d3a8642\"}");
    let mut i = 0u64;
    Box::new(move || {
        // Scoped as the handlers scope a fan's keys: a new fan each time.
        let key = format!("fan-{i}\nhold");
        let Begin::Fresh(pending) = store.begin(&key, [1; 32], i) else {
            unreachable!("every key is fresh")
        };
        pending.complete(201, body.clone(), i);
        i += 1;
    })
}

/// A signed-in fan's later request: its token was verified once (the
/// signature), so the check is a hash of the token and a cache lookup.
fn cached_token_check() -> Box<dyn FnMut()> {
    let dir = Box::leak(Box::new(
        tempfile::tempdir().expect("a temporary directory"),
    ));
    let issuer = LocalIssuer::load_or_create(dir.path()).expect("the demo issuer");
    let now_s = 1_795_392_000;
    let token = issuer.mint("fan-1", &["fanclub".to_owned()], now_s, 3_600, None);
    let verifier = Verifier::new(
        Keys::fixed(issuer.key_set()),
        AuthSettings {
            issuer: None,
            audience: None,
            membership_claim: "memberships".into(),
            leeway_secs: 30,
            cache_max: 100_000,
        },
        Arc::new(ManualClock::new(now_s * 1000)),
    );
    verifier.verify(&token).expect("a good token");
    Box::new(move || {
        std::hint::black_box(verifier.verify(&token).expect("remembered"));
    })
}

/// A 10,000-seat section, a third of it sold in bookings of 2: capture
/// and encode it as a snapshot.
fn snapshot_section() -> Box<dyn FnMut()> {
    let fan = support::fan();
    let json = support::event_json("snap", 1, 100, 100, 4, 600);
    let def = support::event(&json);
    let mut s = Section::new(Arc::clone(&def.sections[0]), def.limits);
    for i in 0..1_700u64 {
        let hold = s.decide_hold_best(2, &fan, i, i).expect("free seats");
        s.apply(&hold).expect("applies");
        let Change::HoldCreated { hold, .. } = hold else {
            unreachable!()
        };
        let c = s
            .decide_confirm(hold, i, &fan, "fan@example.com".into(), "pay".into(), i, i)
            .expect("live");
        s.apply(&c).expect("applies");
    }
    let sections = vec![s];
    let outbox = Outbox::new();
    Box::new(move || {
        let (header, body) = snapshot::capture(
            [snapshot::EventState {
                spec_json: &json,
                def: &def,
                created_at_ms: 0,
                sections: &sections,
                room: None,
            }],
            &[],
            &outbox,
            1,
            0,
            None,
        );
        std::hint::black_box(snapshot::encode(&header, &body));
    })
}

// ---- the runner ----

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--run-one") {
        let name = args.get(i + 1).map(String::as_str).unwrap_or_default();
        run_one(name);
        return;
    }
    let save = args.iter().any(|a| a == "--save-baseline");
    // `cargo bench` passes `--bench`; a filter narrows the benches run.
    let filter: Option<&String> = args.iter().find(|a| !a.starts_with("--"));
    std::process::exit(check(save, filter.map(String::as_str)));
}

/// Inside callgrind: set up, warm up, then run the counted region.
fn run_one(name: &str) {
    let bench = BENCHES
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no bench {name:?}"));
    let mut op = (bench.setup)();
    for _ in 0..bench.iters.min(100) {
        op();
    }
    let iters = bench.iters;
    boxoffice_measured(&mut || {
        for _ in 0..iters {
            op();
        }
    });
}

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(BASELINE)
}

fn rustc_version() -> String {
    Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Baseline {
    /// The compiler the counts were made with.
    rustc: String,
    /// Instructions per operation, by bench.
    instructions: BTreeMap<String, u64>,
}

/// Counts every bench under callgrind; saves them, or compares them with
/// the baseline. Returns the exit code.
fn check(save: bool, filter: Option<&str>) -> i32 {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("instructions: valgrind is not installed (Debian: apt-get install valgrind)");
        return 2;
    }
    let exe = std::env::current_exe().expect("the bench binary's path");
    let out_dir = tempfile::tempdir().expect("a temporary directory");
    let mut counts = BTreeMap::new();
    for bench in BENCHES
        .iter()
        .filter(|b| filter.is_none_or(|f| b.name.contains(f)))
    {
        let out = out_dir.path().join("callgrind.out");
        let status = Command::new("valgrind")
            .args(["--tool=callgrind", "--collect-atstart=no"])
            .arg(format!("--toggle-collect={REGION}"))
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&exe)
            .args(["--run-one", bench.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run valgrind");
        if !status.success() {
            eprintln!(
                "instructions: {} failed under callgrind ({status})",
                bench.name
            );
            return 1;
        }
        let text = std::fs::read_to_string(&out).expect("callgrind wrote its output");
        let total = total_instructions(&text).expect("callgrind's totals line");
        assert!(total > 0, "{}: the region ran no instructions", bench.name);
        counts.insert(bench.name.to_owned(), total / bench.iters);
    }
    let rustc = rustc_version();
    let path = baseline_path();
    if save {
        let mut baseline = read_baseline(&path).unwrap_or(Baseline {
            rustc: rustc.clone(),
            instructions: BTreeMap::new(),
        });
        baseline.rustc = rustc;
        baseline.instructions.extend(counts);
        let json = serde_json::to_string_pretty(&baseline).expect("serializes") + "\n";
        std::fs::write(&path, json).expect("write the baseline");
        println!("instructions: baseline saved to {}", path.display());
        return 0;
    }
    let Some(baseline) = read_baseline(&path) else {
        eprintln!(
            "instructions: no baseline at {}; make one with `cargo bench --bench instructions -- --save-baseline`",
            path.display()
        );
        return 1;
    };
    if baseline.rustc != rustc {
        println!(
            "instructions: note: the baseline was made with {}, this is {rustc}; counts may differ",
            baseline.rustc
        );
    }
    let report = compare(&baseline.instructions, &counts, TOLERANCE_PCT);
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "bench", "baseline", "now", "change"
    );
    for line in &report.lines {
        println!("{line}");
    }
    for r in &report.regressions {
        eprintln!("instructions: REGRESSION {r}");
    }
    if report.regressions.is_empty() {
        println!("instructions: every bench within {TOLERANCE_PCT}% of the baseline");
        0
    } else {
        1
    }
}

fn read_baseline(path: &Path) -> Option<Baseline> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str(&text) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("instructions: {} does not parse: {e}", path.display());
            None
        }
    }
}

/// The `totals:` (or `summary:`) line of a callgrind output file: the
/// instructions counted inside the region.
fn total_instructions(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

struct Report {
    lines: Vec<String>,
    regressions: Vec<String>,
}

/// Compares counts with the baseline: a bench more than `tolerance_pct`
/// above it is a regression; one missing from the baseline is reported.
fn compare(
    baseline: &BTreeMap<String, u64>,
    now: &BTreeMap<String, u64>,
    tolerance_pct: f64,
) -> Report {
    let mut lines = Vec::new();
    let mut regressions = Vec::new();
    for (name, &n) in now {
        match baseline.get(name) {
            Some(&b) => {
                let pct = (n as f64 - b as f64) / b.max(1) as f64 * 100.0;
                lines.push(format!("{name:<40} {b:>12} {n:>12} {pct:>+7.2}%"));
                if pct > tolerance_pct {
                    regressions.push(format!(
                        "{name}: {pct:+.2}% instructions per operation ({b} → {n}; tolerance {tolerance_pct}%)"
                    ));
                } else if pct < -tolerance_pct {
                    lines.push(format!(
                        "{:<40} improved beyond the tolerance: save a new baseline to keep the gain",
                        ""
                    ));
                }
            }
            None => {
                lines.push(format!("{name:<40} {:>12} {n:>12}      new", "-"));
                regressions.push(format!(
                    "{name}: not in the baseline; save one with `cargo bench --bench instructions -- --save-baseline`"
                ));
            }
        }
    }
    Report { lines, regressions }
}
