//! Snapshots through the real binary's commands: create from a stopped
//! data directory, verify, inspect, restore elsewhere, and serve the
//! restored state exactly, journal tail included; every kind of damaged
//! file is refused with its own error and changes nothing.

mod common;

use std::path::Path;
use std::process::Output;

use boxoffice::snapshot::{self, SnapshotError};
use common::*;
use serde_json::{json, Value};

fn cli(args: &[&str], paths: &[&Path]) -> Output {
    let mut c = common::boxoffice();
    c.arg("snapshot").args(args);
    for p in paths {
        c.arg(p);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: &Output, needle: &str) {
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(needle), "wanted {needle:?} in {err}");
}

/// Everything a fan can see of the demo event: availability and every
/// section's seat map.
fn visible_state(s: &TestServer) -> Vec<Value> {
    let ev = s.get("/v1/events/demo");
    assert_eq!(ev.status, 200);
    // The whole event document: totals, per section and per category.
    assert!(
        ev.body["free"].is_u64() && ev.body["sections"].is_array(),
        "{ev:?}"
    );
    let mut out = vec![ev.body.clone()];
    for sec in ["A", "B", "C"] {
        out.push(json!(s.states(sec)));
    }
    out
}

/// A data directory with holds, bookings, a cancellation, and an
/// idempotent request; returns the ids and the visible state.
fn busy_data_dir(dir: &Path) -> (Vec<String>, Vec<String>, Vec<Value>) {
    let s = TestServer::start(dir);
    let mut holds = Vec::new();
    let mut bookings = Vec::new();
    for i in 0..6 {
        let section = ["A", "B", "C"][i % 3];
        let r = s.post_with(
            "/v1/events/demo/holds",
            &json!({"section": section, "quantity": 2}),
            &[("Idempotency-Key", &format!("key-{i}"))],
        );
        assert_eq!(r.status, 201, "{r:?}");
        holds.push(r.body["id"].as_str().unwrap().to_owned());
    }
    for h in &holds[..3] {
        let r = s.post(
            &format!("/v1/holds/{h}/confirm"),
            &s.pay(h, "fan@example.com"),
        );
        assert_eq!(r.status, 201);
        bookings.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let r = s.post(&format!("/v1/bookings/{}/cancel", bookings[0]), &json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(s.delete(&format!("/v1/holds/{}", holds[3])).status, 204);
    let state = visible_state(&s);
    s.stop();
    (holds, bookings, state)
}

#[test]
fn a_restored_snapshot_serves_exactly_the_old_state_and_keeps_new_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (holds, bookings, before) = busy_data_dir(dir.path());
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("demo.snap");

    let stdout = ok(&cli(
        &["create", "--data-dir"],
        &[dir.path(), Path::new("--out"), &file],
    ));
    assert!(stdout.contains("3 bookings"), "{stdout}");
    let stdout = ok(&cli(&["verify"], &[&file]));
    assert!(stdout.contains("valid"), "{stdout}");
    let header: Value = serde_json::from_str(&ok(&cli(&["inspect", "--json"], &[&file]))).unwrap();
    assert_eq!(header["format"], "boxoffice.snapshot/4");
    let demo = &header["events"][0];
    assert_eq!(
        (demo["id"].as_str(), demo["bookings"].as_u64()),
        (Some("demo"), Some(3))
    );
    // 2 bookings of 2 seats stand; holds 4 and 5 hold 2 seats each.
    assert_eq!(
        (demo["sold"].as_u64(), demo["held"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(header["idempotency_answers"], 6);
    assert!(ok(&cli(&["inspect"], &[&file])).contains("journal position"));

    // Restore onto a "new machine".
    let new_machine = tempfile::tempdir().unwrap();
    let restored = new_machine.path().join("data");
    ok(&cli(
        &["restore"],
        &[&file, Path::new("--data-dir"), &restored],
    ));
    let s = TestServer::start(&restored);
    assert_eq!(visible_state(&s), before);
    // Ids keep working: holds confirm, bookings read, cancelled stays so.
    let r = s.post(
        &format!("/v1/holds/{}/confirm", holds[4]),
        &s.pay(&holds[4], "late@example.com"),
    );
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(s.get(&format!("/v1/bookings/{}", bookings[1])).status, 200);
    assert_eq!(
        s.get(&format!("/v1/bookings/{}", bookings[0])).body["status"],
        "cancelled"
    );
    assert_eq!(s.get(&format!("/v1/holds/{}", holds[3])).status, 410);
    // An idempotent retry from before the snapshot gets its first answer.
    let r = s.post_with(
        "/v1/events/demo/holds",
        &json!({"section": "A", "quantity": 2}),
        &[("Idempotency-Key", "key-0")],
    );
    assert!(r.replayed, "{r:?}");
    assert_eq!(r.body["id"].as_str(), Some(holds[0].as_str()));
    let after = visible_state(&s);
    s.stop();
    // Changes after the restore live in the new journal, after the
    // snapshot's position, and survive a restart.
    let s = TestServer::start(&restored);
    assert_eq!(visible_state(&s), after);
    s.stop();
}

#[test]
fn restore_refuses_a_non_empty_directory_without_force() {
    let dir = tempfile::tempdir().unwrap();
    busy_data_dir(dir.path());
    let file = dir.path().join("x.snap");
    ok(&cli(
        &["create", "--data-dir"],
        &[dir.path(), Path::new("--out"), &file],
    ));
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("precious"), b"keep me").unwrap();
    let key = "ab".repeat(32);
    let keys = ["ticket.key", "issuer.key", "payment.key", "admission.key"];
    for k in keys {
        std::fs::write(target.path().join(k), &key).unwrap();
    }
    fails(
        &cli(
            &["restore"],
            &[&file, Path::new("--data-dir"), target.path()],
        ),
        "pass --force",
    );
    assert_eq!(
        std::fs::read(target.path().join("precious")).unwrap(),
        b"keep me"
    );
    ok(&cli(
        &["restore", "--force"],
        &[&file, Path::new("--data-dir"), target.path()],
    ));
    assert!(!target.path().join("precious").exists());
    // The directory keeps its keys: tickets already emailed still verify
    // after the restore, as do the demo issuer's tokens and the demo
    // payment secret's receipts.
    for k in keys {
        assert_eq!(
            std::fs::read_to_string(target.path().join(k)).unwrap(),
            key,
            "{k}"
        );
    }
    // Creating a snapshot of a running server's directory is refused.
    let s = TestServer::start(dir.path());
    fails(
        &cli(
            &["create", "--data-dir"],
            &[dir.path(), Path::new("--out"), &file],
        ),
        "in use by another boxoffice process",
    );
    s.stop();
}

/// Recomputes the checksum after editing a file's header or body, so that
/// the damage is caught by the check it targets, not by the checksum.
fn reseal(bytes: &mut [u8]) {
    use sha2::Digest;
    let n = bytes.len() - 32;
    let digest = sha2::Sha256::digest(&bytes[8..n]);
    bytes[n..].copy_from_slice(&digest);
}

#[test]
fn every_kind_of_damage_is_named_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    busy_data_dir(dir.path());
    let file = dir.path().join("good.snap");
    ok(&cli(
        &["create", "--data-dir"],
        &[dir.path(), Path::new("--out"), &file],
    ));
    let good = std::fs::read(&file).unwrap();
    assert!(snapshot::decode(&good).unwrap().restore().is_ok());

    // Truncated anywhere.
    for cut in [4, 10, 40, good.len() / 2, good.len() - 1] {
        let e = snapshot::decode(&good[..cut]).unwrap_err();
        assert!(
            matches!(e, SnapshotError::Truncated(_) | SnapshotError::NotASnapshot),
            "cut at {cut}: {e}"
        );
    }
    // A flipped byte anywhere after the magic.
    for at in [9, 20, good.len() / 2, good.len() - 40, good.len() - 1] {
        let mut b = good.clone();
        b[at] ^= 0x01;
        let e = snapshot::decode(&b).unwrap_err();
        assert!(
            matches!(e, SnapshotError::Checksum | SnapshotError::Truncated(_)),
            "flip at {at}: {e}"
        );
    }
    // Not a snapshot at all.
    assert!(matches!(
        snapshot::decode(b"{\"format\": \"boxoffice.event/1\"}"),
        Err(SnapshotError::NotASnapshot)
    ));
    // A newer format.
    let text = String::from_utf8_lossy(&good).into_owned();
    assert!(text.contains("boxoffice.snapshot/4"));
    let mut b = good.clone();
    let at = b
        .windows(20)
        .position(|w| w == b"boxoffice.snapshot/4")
        .unwrap();
    b[at + 19] = b'9';
    reseal(&mut b);
    match snapshot::decode(&b) {
        Err(SnapshotError::Version { found }) => assert_eq!(found, "boxoffice.snapshot/9"),
        other => panic!("{other:?}"),
    }
    // An event layout this build cannot read: the body's event document
    // names an unknown format.
    let mut b = good.clone();
    let at = b
        .windows(17)
        .position(|w| w == b"boxoffice.event/1")
        .unwrap();
    b[at + 16] = b'7';
    reseal(&mut b);
    let mut snap = snapshot::decode(&b).expect("well-formed");
    match snap.restore() {
        Err(SnapshotError::Layout { event, message }) => {
            assert_eq!(event, "demo");
            assert!(message.contains("format"), "{message}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("restored a snapshot with an unknown layout"),
    }

    // Through the commands: each refusal names the problem, and restore
    // leaves the target as it was.
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("precious"), b"keep me").unwrap();
    let key = "ab".repeat(32);
    std::fs::write(target.path().join("ticket.key"), &key).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..good.len() / 2].to_vec(), "truncated"),
        (
            {
                let mut x = good.clone();
                x[good.len() / 2] ^= 1;
                x
            },
            "checksum",
        ),
        (b"hello".to_vec(), "not a boxoffice snapshot"),
        (b.clone(), "layout does not build"),
    ];
    for (bytes, needle) in cases {
        let f = dir.path().join("bad.snap");
        std::fs::write(&f, &bytes).unwrap();
        fails(&cli(&["verify"], &[&f]), needle);
        fails(
            &cli(
                &["restore", "--force"],
                &[&f, Path::new("--data-dir"), target.path()],
            ),
            needle,
        );
        assert_eq!(
            std::fs::read(target.path().join("precious")).unwrap(),
            b"keep me"
        );
    }
}

#[test]
fn a_damaged_snapshot_is_skipped_only_when_the_journal_covers_it() {
    // A full journal: a garbage snapshot beside it is skipped.
    let dir = tempfile::tempdir().unwrap();
    let (_, _, before) = busy_data_dir(dir.path());
    std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
    std::fs::write(snapshot::path_for(dir.path(), 3), b"garbage").unwrap();
    let s = TestServer::start(dir.path());
    assert_eq!(visible_state(&s), before);
    s.stop();

    // A restored directory whose only snapshot is damaged: refusing to
    // start beats starting empty.
    let file = dir.path().join("x.snap");
    std::fs::remove_file(snapshot::path_for(dir.path(), 3)).unwrap();
    ok(&cli(
        &["create", "--data-dir"],
        &[dir.path(), Path::new("--out"), &file],
    ));
    let target = tempfile::tempdir().unwrap();
    let restored = target.path().join("data");
    ok(&cli(
        &["restore"],
        &[&file, Path::new("--data-dir"), &restored],
    ));
    let (_, path) = snapshot::list(&restored).unwrap().remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let out = common::boxoffice()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&restored)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no usable snapshot") && err.contains("checksum"),
        "{err}"
    );
}

/// SIGKILL at a random instant of `snapshot restore` and `snapshot
/// create`, 20 times each: afterwards the data directory holds the old
/// state or the new one, never a mix or nothing, and a snapshot file is
/// whole or absent. Set `BOXOFFICE_SNAPSHOT_CRASH_SEED` to replay.
#[test]
fn sigkill_during_restore_or_create_leaves_old_or_new() {
    let seed = common::seed("BOXOFFICE_SNAPSHOT_CRASH_SEED");
    let mut rng = common::Rng(seed);
    let mut next = move || rng.next();
    let src = tempfile::tempdir().unwrap();
    busy_data_dir(src.path());
    let file = src.path().join("f.snap");
    ok(&cli(
        &["create", "--data-dir"],
        &[src.path(), Path::new("--out"), &file],
    ));
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("data");
    let reset = |target: &Path| {
        let _ = std::fs::remove_dir_all(target);
        std::fs::create_dir_all(target).unwrap();
        std::fs::write(target.join("old-marker"), b"old").unwrap();
    };
    reset(&target);
    let (mut old, mut new) = (0, 0);
    for cycle in 0..20 {
        let mut child = common::boxoffice()
            .args(["snapshot", "restore", "--force"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(next() % 100_000));
        let _ = child.kill();
        child.wait().unwrap();
        boxoffice::snapshot::offline::repair_interrupted_restore(&target).unwrap();
        let has_old = target.join("old-marker").exists();
        let snaps = snapshot::list(&target).unwrap();
        match (has_old, snaps.len()) {
            (true, 0) => old += 1,
            (false, 1) => {
                snapshot::read(&snaps[0].1)
                    .and_then(|mut s| s.restore().map(|_| ()))
                    .unwrap_or_else(|e| panic!("cycle {cycle}: restored a bad snapshot: {e}"));
                new += 1;
                reset(&target);
            }
            other => panic!("cycle {cycle} (seed {seed}): a mix: {other:?}"),
        }
    }
    println!("restore: {old} times the old state, {new} times the new one");

    let out = work.path().join("created.snap");
    for cycle in 0..20 {
        let _ = std::fs::remove_file(&out);
        let mut child = common::boxoffice()
            .args(["snapshot", "create", "--data-dir"])
            .arg(src.path())
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(next() % 100_000));
        let _ = child.kill();
        child.wait().unwrap();
        if out.exists() {
            snapshot::read(&out)
                .and_then(|mut s| s.restore().map(|_| ()))
                .unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): a half snapshot: {e}"));
        }
    }
}

fn admin_post(s: &TestServer, path: &str) -> Resp {
    s.raw("POST", path, None, &admin())
}

/// Holds (and confirms every other one) in a loop until `stop`; returns
/// the acknowledged hold ids.
fn fan(
    base: String,
    dir: std::path::PathBuf,
    section: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 400 {
        // A fan per hold, signed in on the test server's clock.
        let token = common::token_at(&dir, &format!("{section}-{i}"), &["fanclub"], T0_MS);
        let auth = format!("Bearer {token}");
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ];
        let r = request(
            "POST",
            &format!("{base}/v1/events/demo/holds"),
            Some(json!({"section": section, "quantity": 1}).to_string()),
            &headers,
        );
        if r.status != 201 {
            break;
        }
        let id = r.body["id"].as_str().unwrap().to_owned();
        if i % 2 == 0 {
            let c = request(
                "POST",
                &format!("{base}/v1/holds/{id}/confirm"),
                Some(common::pay(&dir, &r.body, "f@example.com").to_string()),
                &headers,
            );
            assert_eq!(c.status, 201, "{c:?}");
        }
        acked.push((id, token));
        i += 1;
    }
    acked
}

#[test]
fn a_live_snapshot_plus_the_journal_after_it_is_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fans: Vec<_> = ["D", "E", "F"]
        .into_iter()
        .map(|sec| {
            let (b, st) = (s.base.clone(), std::sync::Arc::clone(&stop));
            let dir = dir.path().to_owned();
            std::thread::spawn(move || fan(b, dir, sec, st))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Mid-load: snapshot through the admin API, and download it.
    let r = admin_post(&s, "/v1/admin/snapshots");
    assert_eq!(r.status, 201, "{r:?}");
    let mid = r.body["journal_position"].as_u64().unwrap();
    assert!(mid > 0);
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("live.snap");
    let o = common::boxoffice()
        .args([
            "snapshot",
            "create",
            "--server",
            &s.base,
            "--admin-token",
            ADMIN_TOKEN,
            "--out",
        ])
        .arg(&file)
        .output()
        .unwrap();
    ok(&o);
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked: Vec<(String, String)> = fans.into_iter().flat_map(|f| f.join().unwrap()).collect();
    assert!(acked.len() > 10, "the fans did work: {}", acked.len());
    let live = visible_state(&s);
    let r = s.raw("GET", "/v1/admin/snapshots", None, &admin());
    assert_eq!(r.status, 200);
    assert!(r.body["snapshots"].as_array().unwrap().len() >= 2, "{r:?}");
    s.stop();
    // The graceful stop took a last snapshot; drop every snapshot after
    // the mid-load one, so that start-up is that snapshot + journal tail.
    for (pos, path) in snapshot::list(dir.path()).unwrap() {
        if pos > mid {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert_eq!(snapshot::list(dir.path()).unwrap()[0].0, mid);
    let s = TestServer::start(dir.path());
    assert_eq!(visible_state(&s), live);
    for (id, token) in &acked {
        let auth = format!("Bearer {token}");
        let r = s.raw(
            "GET",
            &format!("/v1/holds/{id}"),
            None,
            &[("Authorization", &auth)],
        );
        // Live, or confirmed into a booking: either way the server knows it.
        assert!(r.status == 200 || r.status == 409, "{id}: {r:?}");
    }
    s.stop();
    // The downloaded snapshot verifies on its own.
    ok(&cli(&["verify"], &[&file]));
}

#[test]
fn old_snapshots_are_pruned_and_the_journal_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.snapshot_keep = 1;
    let s = TestServer::start_with(
        a.clone(),
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    s.hold("A", &["A/1/1"]);
    let p1 = admin_post(&s, "/v1/admin/snapshots").body["journal_position"]
        .as_u64()
        .unwrap();
    s.hold("A", &["A/1/2"]);
    s.hold("A", &["A/1/3"]);
    let p2 = admin_post(&s, "/v1/admin/snapshots").body["journal_position"]
        .as_u64()
        .unwrap();
    assert!(p2 > p1);
    // Nothing changed: the same snapshot answers.
    let again = admin_post(&s, "/v1/admin/snapshots");
    assert_eq!(
        again.body["journal_position"].as_u64(),
        Some(p2),
        "{again:?}"
    );
    let listed = snapshot::list(dir.path()).unwrap();
    assert_eq!(listed.iter().map(|l| l.0).collect::<Vec<_>>(), vec![p2]);
    // The flusher drops the covered batches while idle.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let state = visible_state(&s);
    s.stop();
    {
        let store = boxoffice::journal::Store::open(&dir.path().join("journal")).unwrap();
        let first = store.reader().first_batch().unwrap();
        assert!(
            first.is_none_or(|f| f >= p2),
            "first batch {first:?}, snapshot at {p2}"
        );
    }
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    assert_eq!(visible_state(&s), state);
    s.hold("A", &["A/1/4"]);
    s.stop();
}

/// `snapshots/demo.snap` is what the README tells a new operator to
/// restore: it must stay readable by this build.
#[test]
fn the_shipped_demo_snapshot_restores_and_serves() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/demo.snap");
    ok(&cli(&["verify"], &[&file]));
    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    ok(&cli(&["restore"], &[&file, Path::new("--data-dir"), &data]));
    let mut a = args(&data);
    a.demo_event = false; // the event comes from the snapshot, not the built-in
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let r = s.get("/v1/events");
    assert_eq!(r.status, 200);
    let ev = s.get("/v1/events/demo");
    assert_eq!(ev.status, 200, "{ev:?}");
    assert_eq!(ev.body["free"], 17_500, "{ev:?}");
    s.hold("A", &["A/1/1"]);
    s.stop();
}

/// A start that replayed at least `--snapshot-every-records` records
/// writes a snapshot of what it recovered before it listens: a server
/// killed again and again before its automatic snapshot finished would
/// otherwise replay ever more at each start. A start with little to
/// replay writes none.
#[test]
fn a_start_after_a_long_replay_snapshots_what_it_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let start = |every: &str| {
        common::spawn_listening(
            common::boxoffice()
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(["--snapshot-every-records", every])
                .args(["--snapshot-every-secs", "3600"])
                .arg("--data-dir")
                .arg(dir.path())
                .env("RUST_LOG", "warn"),
        )
    };
    let (mut server, base) = start("1000000");
    for n in 0..30 {
        let token = common::token(dir.path(), &format!("replayed-{n}"));
        let r = common::try_request(
            "POST",
            &format!("{base}/v1/events/demo/holds"),
            Some(json!({"section": "A", "quantity": 1}).to_string()),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &format!("Bearer {token}")),
            ],
        )
        .unwrap();
        assert_eq!(r.status, 201, "{r:?}");
    }
    // Killed: no snapshot at shutdown; the next start replays the holds.
    server.kill().unwrap();
    server.wait().unwrap();
    let before: Vec<u64> = snapshot::list(dir.path())
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();

    let (mut server, _) = start("20");
    let listed = snapshot::list(dir.path()).unwrap();
    let (newest, path) = listed.first().expect("a snapshot written at start").clone();
    assert!(before.iter().all(|p| *p < newest), "{before:?} {newest}");
    let header: Value = serde_json::from_str(&ok(&cli(&["inspect", "--json"], &[&path]))).unwrap();
    assert_eq!(header["events"][0]["held"], 30, "{header}");
    server.kill().unwrap();
    server.wait().unwrap();

    // Nothing to replay now: no other snapshot.
    let (mut server, _) = start("20");
    let again = snapshot::list(dir.path()).unwrap();
    assert_eq!(again.first().map(|(p, _)| *p), Some(newest));
    assert_eq!(again.len(), listed.len());
    server.kill().unwrap();
    server.wait().unwrap();
}
