//! Invariants 1 and 2. Crash safety of the real binary: clients hold, confirm and release while
//! the server is killed with SIGKILL at a random moment; after each restart
//! every acknowledged change must be there, nothing unacknowledged may be
//! half there, and no seat may have two owners.
//!
//! Replay a failure with `BOXOFFICE_CRASH_SEED=<seed printed> cargo test
//! --test crash`. `BOXOFFICE_CRASH_CYCLES` sets the number of kills (20).

mod common;

use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::acked::{check_all, client, verify, History, CLIENTS};
use common::Rng;

struct Server {
    child: Child,
    base: String,
}

fn start(dir: &Path) -> Server {
    let (child, base) = common::acked::start_server(dir);
    Server { child, base }
}

#[test]
fn acknowledged_changes_survive_sigkill() {
    let seed = common::seed("BOXOFFICE_CRASH_SEED");
    let cycles: usize = std::env::var("BOXOFFICE_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("crash test: {cycles} cycles");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let history = Mutex::new(History::default());
    let mut server = start(dir.path());
    let started = Instant::now();
    for cycle in 0..cycles {
        let stop = AtomicBool::new(false);
        let kill_after = Duration::from_millis(50 + rng.next() % 350);
        let client_seeds: Vec<u64> = (0..CLIENTS).map(|_| rng.next()).collect();
        std::thread::scope(|scope| {
            for s in &client_seeds {
                let (base, history, stop) = (&server.base, &history, &stop);
                let dir = dir.path();
                scope.spawn(move || client(dir, base, *s, history, stop));
            }
            std::thread::sleep(kill_after);
            // SIGKILL: no chance to flush, close or say goodbye.
            server.child.kill().unwrap();
            server.child.wait().unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        server = start(dir.path());
        let mut h = history.lock().unwrap();
        verify(&server.base, &mut h, check_all(cycle, cycles));
        eprintln!(
            "cycle {cycle}: killed after {kill_after:?}; {} holds, {} bookings, {} releases, {} cancels acknowledged so far",
            h.holds.len(),
            h.confirmed.len(),
            h.released.len(),
            h.cancelled.len()
        );
    }
    let h = history.lock().unwrap();
    assert!(
        h.holds.len() >= cycles,
        "the clients barely got through: {} holds",
        h.holds.len()
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The kills fell among snapshots: restarts started from them.
    let snapshots = boxoffice::snapshot::list(dir.path()).unwrap();
    assert!(
        !snapshots.is_empty() || cycles < 5,
        "no snapshot was taken during the run"
    );
    eprintln!(
        "crash test: {cycles} kills in {:?}; newest snapshot at journal position {:?}",
        started.elapsed(),
        snapshots.first().map(|s| s.0)
    );
}
