//! Power loss, not just kill -9. The filesystem of `power/cutfs.rs`
//! keeps only what was synced when the power goes; these tests hold it to
//! its rules.

mod common;
#[path = "power/cutfs.rs"]
mod cutfs;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use cutfs::CutFs;

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn read(path: &Path) -> Option<Vec<u8>> {
    let mut f = File::open(path).ok()?;
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    Some(v)
}

/// Runs `before` on a fresh mount, cuts the power (no tearing), and runs
/// `after` on a new mount of what survived.
fn across_a_cut(before: impl FnOnce(&Path), after: impl FnOnce(&Path)) -> cutfs::CutReport {
    let mnt = tempfile::tempdir().unwrap();
    let fs = CutFs::new();
    let m = fs.mount(mnt.path());
    before(mnt.path());
    m.unmount();
    let report = fs.cut(None);
    let m = fs.mount(mnt.path());
    after(mnt.path());
    m.unmount();
    report
}

#[test]
fn synced_data_and_names_survive_a_cut_and_nothing_else() {
    let report = across_a_cut(
        |d| {
            // Synced data under a synced name: kept, up to the sync.
            let mut f = File::create(d.join("kept")).unwrap();
            f.write_all(b"durable").unwrap();
            f.sync_data().unwrap();
            f.write_all(b" and then not").unwrap();
            // Synced data, but its name never was: gone.
            let mut g = File::create(d.join("nameless")).unwrap();
            g.write_all(b"lost").unwrap();
            g.sync_all().unwrap();
            sync_dir(d);
            // Created after the directory's sync: gone as well.
            let mut h = File::create(d.join("late")).unwrap();
            h.write_all(b"late").unwrap();
            h.sync_all().unwrap();
            // Named durably, data never synced: empty.
            File::create(d.join("empty"))
                .unwrap()
                .write_all(b"x")
                .unwrap();
            fs::rename(d.join("nameless"), d.join("renamed")).unwrap();
        },
        |d| {
            assert_eq!(read(&d.join("kept")).as_deref(), Some(&b"durable"[..]));
            assert_eq!(
                read(&d.join("nameless")).as_deref(),
                Some(&b"lost"[..]),
                "the rename was never synced"
            );
            assert!(read(&d.join("renamed")).is_none());
            assert!(read(&d.join("late")).is_none());
            assert!(read(&d.join("empty")).is_none(), "created after the sync");
        },
    );
    assert!(
        report.bytes_dropped > 0 && report.names_reverted > 0,
        "{report:?}"
    );
}

#[test]
fn a_rename_or_unlink_counts_once_its_directory_is_synced() {
    across_a_cut(
        |d| {
            for name in ["a", "b", "c", "c2"] {
                let mut f = File::create(d.join(name)).unwrap();
                f.write_all(name.as_bytes()).unwrap();
                f.sync_all().unwrap();
            }
            fs::create_dir(d.join("sub")).unwrap();
            sync_dir(d);
            // A rename into a synced subdirectory; the source directory
            // synced, so the old name is gone and the new one durable.
            fs::rename(d.join("a"), d.join("sub/a")).unwrap();
            sync_dir(&d.join("sub"));
            sync_dir(d);
            // A rename over another file, synced: the replaced one is gone.
            fs::rename(d.join("c"), d.join("c2")).unwrap();
            sync_dir(d);
            // An unlink never synced: the file is back.
            fs::remove_file(d.join("b")).unwrap();
        },
        |d| {
            assert_eq!(read(&d.join("sub/a")).as_deref(), Some(&b"a"[..]));
            assert!(read(&d.join("a")).is_none());
            assert_eq!(read(&d.join("b")).as_deref(), Some(&b"b"[..]));
            assert_eq!(read(&d.join("c2")).as_deref(), Some(&b"c"[..]));
            assert!(read(&d.join("c")).is_none());
        },
    );
    // A directory made but never synced in its parent is gone, with
    // everything in it.
    across_a_cut(
        |d| {
            fs::create_dir(d.join("new")).unwrap();
            let mut f = File::create(d.join("new/f")).unwrap();
            f.write_all(b"f").unwrap();
            f.sync_all().unwrap();
            sync_dir(&d.join("new"));
        },
        |d| assert!(!d.join("new").exists()),
    );
}

/// `sync_file_range` (what sled 0.34 calls to flush) makes nothing
/// durable; `fdatasync` does; a truncation is data like any other.
#[test]
fn sync_file_range_is_no_barrier() {
    across_a_cut(
        |d| {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(d.join("log"))
                .unwrap();
            sync_dir(d);
            f.write_all(b"0123456789").unwrap();
            f.sync_data().unwrap();
            f.write_all(b"abcdef").unwrap();
            // SAFETY: a plain syscall on an open descriptor.
            let r = unsafe {
                libc::sync_file_range(
                    f.as_raw_fd(),
                    0,
                    0,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )
            };
            assert_eq!(r, 0);
            let t = OpenOptions::new().write(true).open(d.join("log")).unwrap();
            t.set_len(4).unwrap();
        },
        |d| assert_eq!(read(&d.join("log")).as_deref(), Some(&b"0123456789"[..])),
    );
}

/// With tearing, the last unsynced write of a file survives in part: a
/// prefix of it as long as the random draw says, over the synced data.
#[test]
fn a_cut_can_tear_the_last_write() {
    for keep in [0u64, 3, 6] {
        let mnt = tempfile::tempdir().unwrap();
        let fs = CutFs::new();
        let m = fs.mount(mnt.path());
        let path = mnt.path().join("torn");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"AAAAAAAA").unwrap();
        f.sync_all().unwrap();
        sync_dir(mnt.path());
        use std::os::unix::fs::FileExt;
        f.write_at(b"zz", 7).unwrap();
        f.write_at(b"bbbbbb", 2).unwrap();
        drop(f);
        m.unmount();
        let mut draw = move || keep;
        let report = fs.cut(Some(&mut draw));
        assert_eq!(report.bytes_torn_in, keep);
        let m = fs.mount(mnt.path());
        let mut want = b"AAAAAAAA".to_vec();
        want[2..2 + keep as usize].copy_from_slice(&b"bbbbbb"[..keep as usize]);
        assert_eq!(
            read(&path).unwrap(),
            want,
            "kept {keep} bytes of the last write"
        );
        m.unmount();
    }
}

/// A test killed with its filesystem mounted leaves the mount dead in its
/// temporary directory; the next mount (any test's) detaches it.
#[test]
fn a_killed_tests_mount_is_swept_by_the_next() {
    use std::io::BufRead;
    let mnt = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holds_a_mount_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("CUTFS_HOLD_AT", mnt.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let said = out.lines().map_while(Result::ok).find(|l| l == "mounted");
    assert!(said.is_some(), "the child mounted");
    child.kill().unwrap();
    child.wait().unwrap();
    let dead =
        |p: &Path| fs::metadata(p).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOTCONN);
    assert!(dead(mnt.path()), "killed, its mount is dead");
    let other = tempfile::tempdir().unwrap();
    let m = CutFs::new().mount(other.path());
    assert!(!dead(mnt.path()), "the next mount detached it");
    assert_eq!(
        fs::read_dir(mnt.path()).unwrap().count(),
        0,
        "the directory as it was"
    );
    assert_eq!(cutfs::sweep_dead_mounts(), 0, "a live mount is never swept");
    assert!(fs::metadata(other.path()).is_ok());
    m.unmount();
}

/// The child of `a_killed_tests_mount_is_swept_by_the_next`: mounts, says
/// so, and waits to be killed.
#[test]
#[ignore = "a child process of a_killed_tests_mount_is_swept_by_the_next"]
fn holds_a_mount_until_killed() {
    let Some(dir) = std::env::var_os("CUTFS_HOLD_AT") else {
        return;
    };
    let _m = CutFs::new().mount(Path::new(&dir));
    println!("mounted");
    std::thread::sleep(std::time::Duration::from_secs(600));
}

/// The real binary on the power-cut filesystem, under load (clients
/// holding, confirming, releasing and cancelling, as tests/crash.rs does,
/// snapshots and compaction every 50 records, the `.eml` mailer on), the
/// power cut at a random moment (unsynced writes dropped, last writes
/// torn at random); after each cut the server must start on what
/// survived and keep every acknowledged change, with nothing half there,
/// no seat owned twice, every snapshot on disk readable or ignored, and
/// every `.eml` whole.
///
/// Replay with `BOXOFFICE_POWER_SEED=<seed printed>`;
/// `BOXOFFICE_POWER_CUTS` sets the number of cuts (20).
#[test]
fn acknowledged_changes_survive_power_cuts() {
    use common::acked::{check_all, client, verify, History, CLIENTS};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    let seed = common::seed("BOXOFFICE_POWER_SEED");
    let cuts: usize = std::env::var("BOXOFFICE_POWER_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = common::Rng(seed);
    let mnt = tempfile::tempdir().unwrap();
    let fs = CutFs::new();
    let mut mounted = fs.mount(mnt.path());
    let dir = mnt.path().join("data");
    let start = common::acked::start_server;
    let history = Mutex::new(History::default());
    let (mut server, mut base) = start(&dir);
    let began = Instant::now();
    let mut totals = cutfs::CutReport::default();
    let (mut snapshots_read, mut snapshots_ignored, mut emails) = (0, 0, 0);
    let mut emails_seen = std::collections::HashMap::new();
    let (mut changes_before, mut fewest_in_a_run) = (0, usize::MAX);
    for cut in 0..cuts {
        let stop = AtomicBool::new(false);
        let cut_after = Duration::from_millis(100 + rng.next() % 500);
        let client_seeds: Vec<u64> = (0..CLIENTS).map(|_| rng.next()).collect();
        std::thread::scope(|scope| {
            for s in &client_seeds {
                let (base, history, stop, dir) = (&base, &history, &stop, &dir);
                scope.spawn(move || client(dir, base, *s, history, stop));
            }
            std::thread::sleep(cut_after);
            // The power goes: the process stops dead, and what it had not
            // synced goes with it.
            server.kill().unwrap();
            server.wait().unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        mounted.unmount();
        let mut draw = || rng.next();
        let report = fs.cut(Some(&mut draw));
        totals.bytes_dropped += report.bytes_dropped;
        totals.names_reverted += report.names_reverted;
        totals.nodes_dropped += report.nodes_dropped;
        totals.bytes_torn_in += report.bytes_torn_in;
        mounted = fs.mount(mnt.path());
        let restart = Instant::now();
        (server, base) = start(&dir);
        let restarted_in = restart.elapsed();
        let mut h = history.lock().unwrap();
        let checking = Instant::now();
        let all = check_all(cut, cuts);
        verify(&base, &mut h, all);
        let checked_in = checking.elapsed();
        // Every snapshot left on disk reads, or the server, which
        // started, ignored it.
        for (_, path) in boxoffice::snapshot::list(&dir).unwrap() {
            match boxoffice::snapshot::read(&path) {
                Ok(_) => snapshots_read += 1,
                // Pruned by the running server since the listing.
                Err(_) if !path.exists() => {}
                Err(e) => {
                    eprintln!("cut {cut}: snapshot {} ignored: {e}", path.display());
                    snapshots_ignored += 1;
                }
            }
        }
        // Every email written is whole: each new one read; on a whole
        // check, each read again if its length changed since (a synced
        // file does not change at a cut).
        if let Ok(entries) = std::fs::read_dir(dir.join("mail")) {
            for e in entries {
                let path = e.unwrap().path();
                if path.extension().is_none_or(|x| x != "eml")
                    || (!all && emails_seen.contains_key(&path))
                {
                    continue;
                }
                let len = std::fs::metadata(&path).unwrap().len();
                if emails_seen.insert(path.clone(), len) == Some(len) {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let msg = mail_parser::MessageParser::default()
                    .parse(&bytes)
                    .unwrap_or_else(|| panic!("{} does not parse", path.display()));
                use mail_parser::MimeHeaders;
                if let Some(b) = msg.content_type().and_then(|c| c.attribute("boundary")) {
                    assert!(
                        String::from_utf8_lossy(&bytes).contains(&format!("--{b}--")),
                        "{} is cut short",
                        path.display()
                    );
                }
                emails += 1;
            }
        }
        let changes = h.holds.len() + h.confirmed.len() + h.released.len() + h.cancelled.len();
        fewest_in_a_run = fewest_in_a_run.min(changes - changes_before);
        changes_before = changes;
        eprintln!(
            "cut {cut} after {cut_after:?}: {report:?}; restarted in {restarted_in:?}, checked{} in {checked_in:?}; \
             {} holds, {} bookings, {} releases, {} cancels acknowledged so far",
            if all { " all" } else { "" },
            h.holds.len(),
            h.confirmed.len(),
            h.released.len(),
            h.cancelled.len()
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let h = history.lock().unwrap();
    assert!(
        h.holds.len() >= cuts,
        "the clients barely got through: {} holds",
        h.holds.len()
    );
    // Every cut fell among acknowledged changes: the arena never sold out.
    assert!(fewest_in_a_run > 0, "a run acknowledged nothing");
    assert!(
        totals.bytes_dropped > 0,
        "no cut dropped anything: {totals:?}"
    );
    let st = fs.state();
    eprintln!(
        "power-cut test: {cuts} cuts in {:?} (seed {seed}): {} holds, {} bookings, {} releases, {} cancels \
         acknowledged and found (fewest in one run: {fewest_in_a_run}); dropped in all {} unsynced bytes, {} names, {} files, tore in {} bytes; \
         {snapshots_read} snapshot reads, {snapshots_ignored} ignored; {emails} emails read whole; \
         {} file syncs, {} directory syncs",
        began.elapsed(),
        h.holds.len(),
        h.confirmed.len(),
        h.released.len(),
        h.cancelled.len(),
        totals.bytes_dropped,
        totals.names_reverted,
        totals.nodes_dropped,
        totals.bytes_torn_in,
        st.file_syncs,
        st.dir_syncs
    );
    drop(st);
    mounted.unmount();
}
